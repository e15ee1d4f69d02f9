"""What every CLI command shares: the settings (read lazily) and the consoles."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import typer
from rich.console import Console

from nettrace.config.settings import Settings, load_settings
from nettrace.observability.log import configure_logging


class CliError(Exception):
    """A user-facing failure: printed as one line on stderr, exit code 2."""


@dataclass
class CliState:
    """Per-invocation state. Settings are read on first use so that ``--help`` and ``version``
    work even when the environment holds an invalid setting."""

    config_file: Path | None = None
    out: Console = field(default_factory=lambda: Console(soft_wrap=True))
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_file)
            configure_logging(
                level=self._settings.log_level,
                fmt=self._settings.log_format,
                secrets=self._settings.secret_values(),
            )
        return self._settings


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    if not isinstance(obj, CliState):  # pragma: no cover - the root callback always sets it
        raise CliError("internal error: CLI state missing")
    return obj
