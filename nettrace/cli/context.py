"""What every CLI command shares: the settings (read lazily) and the consoles."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console, OverflowMethod, RenderableType
from rich.table import Table

if TYPE_CHECKING:
    from nettrace.config.settings import Settings
    from nettrace.store.database import Database


#: Output into a pipe or file is this wide, whatever COLUMNS says: no value is ever cut or
#: folded there, so ``grep`` finds whole values.
PIPE_WIDTH = 4096


class CliError(Exception):
    """A user-facing failure: printed as one line on stderr, exit code 2."""


class CliTable(Table):
    """The CLI's table: every column folds (wraps) long values instead of cutting them with
    an ellipsis, so a narrow terminal shows every value whole, over several lines if need be.

    Use it wherever a command prints a table (``CliTable("a", "b", title=...)``).
    """

    def add_column(
        self,
        header: RenderableType = "",
        footer: RenderableType = "",
        *,
        overflow: OverflowMethod = "fold",
        no_wrap: bool = False,
        **options: Any,
    ) -> None:
        super().add_column(header, footer, overflow=overflow, no_wrap=no_wrap, **options)

    def add_row(self, *renderables: RenderableType | None, **options: Any) -> None:
        while len(self.columns) < len(renderables):
            self.add_column()  # rich would add a cutting column of its own
        super().add_row(*renderables, **options)


def make_console() -> Console:
    """The console for a command's output: the terminal's width on a terminal, else wide."""
    console = Console(soft_wrap=True)
    if not console.is_terminal:
        console = Console(soft_wrap=True, width=max(console.width, PIPE_WIDTH))
    return console


@dataclass
class CliState:
    """Per-invocation state. Settings are read on first use so that ``--help`` and ``version``
    work even when the environment holds an invalid setting."""

    config_file: Path | None = None
    out: Console = field(default_factory=make_console)
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from nettrace.config.settings import load_settings
            from nettrace.observability.log import configure_logging

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


@contextmanager
def open_database(ctx: typer.Context, what: str, **database_options: Any) -> Iterator[Database]:
    """The configured database for one command; a missing table or server becomes one line.

    ``what`` names what the command needs ("the token table") in that line.
    """
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from nettrace.store.database import Database

    settings = state(ctx).settings
    database = Database(settings.resolved_database_url(), **database_options)
    try:
        yield database
    except (OperationalError, ProgrammingError) as exc:
        text = str(getattr(exc, "orig", exc) or exc).strip().splitlines()
        detail = text[0] if text else type(exc).__name__
        raise CliError(
            f"cannot use {what} in {settings.database_display()}: {detail} "
            "(is the database reachable and migrated? run `nettrace db upgrade`)"
        ) from None
    finally:
        database.dispose()
