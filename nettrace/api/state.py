"""What the request handlers share: settings, the database and its repositories.

Kept in ``app.extensions`` (not module globals) so several apps - a test server per database,
say - can live in one process without seeing each other's state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flask import Flask, current_app

from nettrace.config.settings import Settings
from nettrace.store.database import Database
from nettrace.store.signals import SignalStore
from nettrace.store.tokens import TokenStore

EXTENSION_KEY = "nettrace"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class ApiState:
    settings: Settings
    database: Database
    signals: SignalStore
    tokens: TokenStore
    head_revision: str
    #: The server clock (UTC); tests may replace it to age regions without sleeping.
    clock: Callable[[], datetime] = field(default=_utcnow)


def install(app: Flask, state: ApiState) -> None:
    app.extensions[EXTENSION_KEY] = state


def api_state(app: Flask | None = None) -> ApiState:
    target = app if app is not None else current_app
    found = target.extensions.get(EXTENSION_KEY)
    if not isinstance(found, ApiState):  # pragma: no cover - create_app always installs it
        raise RuntimeError("the NetTrace API state is not installed on this app")
    return found
