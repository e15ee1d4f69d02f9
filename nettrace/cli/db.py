"""``nettrace db``: create and migrate the database that holds NetTrace's state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer
from alembic.util.exc import CommandError
from sqlalchemy.exc import OperationalError

from nettrace.cli.context import CliError, state
from nettrace.store import migrate
from nettrace.store.models import Base

app = typer.Typer(
    help="Create, migrate and inspect the database (SQLite by default, or DATABASE_URL).",
    no_args_is_help=True,
)


@app.command()
def upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Option(help="Migrate up to this revision.")] = "head",
) -> None:
    """Apply migrations (creates the database on first run). Safe to run again."""
    st = state(ctx)
    settings = st.settings
    url = settings.resolved_database_url()
    before = _current(url, settings.database_display())
    _run(lambda: migrate.upgrade(url, revision), settings.database_display())
    after = _current(url, settings.database_display())
    if before == after:
        st.out.print(f"{settings.database_display()} is already at revision {after}.")
    else:
        st.out.print(
            f"Upgraded {settings.database_display()} from {before or 'empty'} to {after} "
            f"({len(Base.metadata.tables)} tables)."
        )


@app.command()
def downgrade(
    ctx: typer.Context,
    revision: Annotated[
        str, typer.Argument(help="Target revision, or 'base' to drop every table.")
    ],
) -> None:
    """Revert migrations down to REVISION. 'base' removes all NetTrace tables and their data."""
    st = state(ctx)
    settings = st.settings
    url = settings.resolved_database_url()
    _run(lambda: migrate.downgrade(url, revision), settings.database_display())
    after = _current(url, settings.database_display())
    st.out.print(f"Downgraded {settings.database_display()} to {after or 'base (empty)'}.")


@app.command()
def current(ctx: typer.Context) -> None:
    """Show the database's revision and whether migrations are pending."""
    st = state(ctx)
    settings = st.settings
    revision = _current(settings.resolved_database_url(), settings.database_display())
    head = migrate.head_revision()
    status = "up to date" if revision == head else f"behind: run `nettrace db upgrade` ({head})"
    st.out.print(f"{settings.database_display()}: revision {revision or 'none'} - {status}")


def _current(url: str, shown: str) -> str | None:
    try:
        return migrate.current_revision(url)
    except OperationalError as exc:
        raise CliError(f"cannot reach database {shown}: {_first_line(exc)}") from None


def _run(action: Callable[[], None], shown: str) -> None:
    try:
        action()
    except CommandError as exc:
        raise CliError(f"migration failed on {shown}: {exc}") from None
    except OperationalError as exc:
        raise CliError(f"cannot reach database {shown}: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "orig", exc) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
