"""A real API server on loopback for each test: werkzeug's threaded server in a thread.

Every test gets a freshly migrated database (SQLite always, PostgreSQL when configured) from the
shared ``migrated_db`` fixture, and talks HTTP to it with ``requests``, as a scout would.
"""

from __future__ import annotations

import logging
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import structlog
from flask import Flask
from werkzeug.serving import make_server

from nettrace.api.server import JsonErrorRequestHandler
from nettrace.api.state import api_state
from nettrace.app import create_app
from nettrace.config.settings import Settings
from nettrace.observability.log import configure_logging
from nettrace.store.database import Database
from nettrace.store.tokens import TokenStore

PUSH = "/api/v1/signals/push"
CROSS = "/api/v1/signals/cross-region"


@dataclass
class ApiServer:
    base_url: str
    app: Flask
    db: Database
    settings: Settings
    http: requests.Session = field(default_factory=requests.Session)

    def token(self, region: str) -> str:
        token, _ = TokenStore(self.db).issue(region, label="test")
        return token

    def reader(self) -> str:
        """A token of the primary region: the only region token that may read cross-region."""
        return self.token(self.settings.primary_region)

    def set_clock(self, clock: Callable[[], datetime]) -> None:
        api_state(self.app).clock = clock

    def push(self, token: str | None, body: Any, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(kwargs.pop("headers", {}))
        if isinstance(body, (str, bytes)):
            headers.setdefault("Content-Type", "application/json")
            return self.http.post(
                self.base_url + PUSH, data=body, headers=headers, timeout=30, **kwargs
            )
        return self.http.post(
            self.base_url + PUSH, json=body, headers=headers, timeout=30, **kwargs
        )

    def cross(self, token: str, **params: Any) -> requests.Response:
        return self.http.get(
            self.base_url + CROSS,
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )


def make_signal(region: str, **overrides: Any) -> dict[str, Any]:
    """A valid wire-form signal from ``region`` (ts now, ttl one hour)."""
    signal: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "source": "orderbook",
        "source_region": region,
        "exchange": "kraken",
        "symbol": "BTC/USD",
        "side": "BUY",
        "confidence": 0.8,
        "ts": datetime.now(UTC).isoformat(),
        "ttl_s": 3600,
        "meta": {"seq": 1},
    }
    signal.update(overrides)
    return signal


@pytest.fixture(autouse=True)
def _logging_to_this_tests_stderr() -> Iterator[None]:
    """structlog keeps the stream it was configured with, and pytest closes each test's captured
    stderr: log to this test's stream, and afterwards leave no reference to it behind."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(level="INFO", fmt="json", stream=sys.stderr)
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def signal_factory() -> Callable[..., dict[str, Any]]:
    return make_signal


@pytest.fixture
def start_server(migrated_db: Database) -> Iterator[Callable[..., ApiServer]]:
    """Start servers on the test's database; ``start(**settings)`` overrides API settings."""
    running: list[tuple[Any, threading.Thread]] = []

    def start(**overrides: Any) -> ApiServer:
        values: dict[str, Any] = {"api_rate_limit": "100000/second"}
        values.update(overrides)
        settings = Settings(**values)
        app = create_app(settings, migrated_db)
        server = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=JsonErrorRequestHandler
        )
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        running.append((server, thread))
        return ApiServer(f"http://127.0.0.1:{server.server_port}", app, migrated_db, settings)

    yield start
    for server, thread in running:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def api(start_server: Callable[..., ApiServer]) -> ApiServer:
    return start_server()
