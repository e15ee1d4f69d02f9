"""``nettrace handoff``: append to and read the operator's HANDOFF.md (seed format).

The file is the one the HARDSTOP watcher reads (``NETTRACE_HANDOFF_PATH``, default the
checkout's ``agents/HANDOFF.md``), so ``add`` refuses any text that could put a line starting
with HARDSTOP into it; raising HARDSTOP is ``nettrace hardstop raise``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from nettrace.cli.context import CliError, state
from nettrace.execution.handoff import HandoffEntry, HandoffError, append_entry, read_entries

app = typer.Typer(help="Append to and read the operator's HANDOFF.md.", no_args_is_help=True)

_FILE_HELP = "The HANDOFF.md (default: NETTRACE_HANDOFF_PATH, else agents/HANDOFF.md)."


def _path(ctx: typer.Context, given: Path | None) -> Path:
    if given is not None:
        return given
    configured = state(ctx).settings.handoff_path
    if configured is None:
        raise CliError("no HANDOFF.md configured (NETTRACE_HANDOFF_PATH is empty); pass --file")
    return configured


@app.command()
def add(
    ctx: typer.Context,
    agent: Annotated[str, typer.Option(help="Who hands off (agent or person).")],
    did: Annotated[str, typer.Option(help="What was done (one line).")],
    next_: Annotated[str, typer.Option("--next", help="What comes next (one line).")],
    blockers: Annotated[str, typer.Option(help="What blocks it ('none' if nothing).")],
    deploy: Annotated[str, typer.Option(help="Deployment state (one line).")],
    file: Annotated[Path | None, typer.Option("--file", help=_FILE_HELP, dir_okay=False)] = None,
) -> None:
    """Append one entry: `## [date] [agent] Handoff` and its Did/Next/Blockers/Deploy bullets."""
    try:
        entry = HandoffEntry.create(
            day=datetime.now(UTC).date(),
            agent=agent,
            did=did,
            next=next_,
            blockers=blockers,
            deploy=deploy,
        )
        path = _path(ctx, file)
        append_entry(path, entry)
    except HandoffError as exc:
        raise CliError(str(exc)) from None
    typer.echo(f"appended to {path}: {entry.heading}")


@app.command()
def show(
    ctx: typer.Context,
    last: Annotated[
        int, typer.Option("--last", "-n", min=1, help="How many of the latest entries.")
    ] = 1,
    all_: Annotated[bool, typer.Option("--all", help="Every entry, oldest first.")] = False,
    file: Annotated[Path | None, typer.Option("--file", help=_FILE_HELP, dir_okay=False)] = None,
) -> None:
    """Print the latest entry (or the last N, or all), oldest first."""
    path = _path(ctx, file)
    try:
        entries = read_entries(path)
    except HandoffError as exc:
        raise CliError(str(exc)) from None
    if not entries:
        typer.echo(f"no handoff entries in {path} yet")
        return
    typer.echo("\n".join(entries if all_ else entries[-last:]), nl=False)
