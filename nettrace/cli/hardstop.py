"""``nettrace hardstop``: show, raise and clear the HARDSTOP latch (DESIGN §3).

Only the operator clears HARDSTOP, and clearing restarts trading, so ``clear`` needs the
operator token (``NETTRACE_OPERATOR_TOKEN``, as the API's clear endpoint does), checked the way
the API checks it, then asks for confirmation unless ``--yes`` is given, and says what it cleared.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated

import typer

from nettrace.cli.context import CliError, CliTable, open_database, state
from nettrace.store.hardstop import HardstopLatch

app = typer.Typer(help="Show, raise and clear the HARDSTOP trading halt.", no_args_is_help=True)

OPERATOR = "operator"
OPERATOR_TOKEN_ENV = "NETTRACE_OPERATOR_TOKEN"  # noqa: S105 - the variable's name, not a secret


def _require_operator(ctx: typer.Context) -> None:
    """Refuse (one line, exit 2) unless the caller holds the operator token.

    The token is a secret, so it comes only from the environment (``NETTRACE_OPERATOR_TOKEN``,
    the variable the API's clear endpoint checks) and is checked with the API's own check.
    """
    settings = state(ctx).settings
    if settings.operator_token is None:
        raise CliError(
            f"clearing HARDSTOP needs the operator token: set {OPERATOR_TOKEN_ENV} "
            "(only the operator may clear HARDSTOP)"
        )
    if not settings.is_operator_token(settings.operator_token.get_secret_value().strip()):
        raise CliError(f"not cleared: {OPERATOR_TOKEN_ENV} is blank")


@contextmanager
def _latch(ctx: typer.Context) -> Iterator[HardstopLatch]:
    with open_database(ctx, "the HARDSTOP tables") as database:
        try:
            yield HardstopLatch(database)
        except ValueError as exc:
            raise CliError(str(exc)) from None


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


@app.command()
def status(
    ctx: typer.Context,
    events: Annotated[int, typer.Option(min=0, max=1000, help="How many recent events.")] = 5,
) -> None:
    """Is HARDSTOP raised? By whom, why, since when; and the last events."""
    with _latch(ctx) as latch:
        current = latch.state()
        recent = latch.events(events) if events else []
    out = state(ctx).out
    if current.active:
        out.print("[bold red]HARDSTOP ACTIVE[/]: trading is halted in every region.")
    else:
        out.print("[bold green]HARDSTOP inactive[/]: trading may run.")
    table = CliTable(show_header=False)
    table.add_row("active", "yes" if current.active else "no")
    table.add_row("source", current.source or "-")
    table.add_row("reason", current.reason or "-")
    table.add_row("raised at", _when(current.raised_at))
    table.add_row("cleared at", _when(current.cleared_at))
    table.add_row("cleared by", current.cleared_by or "-")
    if current.active:
        table.add_row(
            "positions",
            "flattened at market"
            if current.flatten
            else "keep their protective stops (flattened if NETTRACE_HARDSTOP_ACTION=flatten)",
        )
    out.print(table)
    if recent:
        log = CliTable("id", "at", "action", "source", "reason", title="Last events")
        for event in recent:
            log.add_row(str(event.id), _when(event.at), event.action, event.source, event.reason)
        out.print(log)


@app.command("raise")
def raise_(
    ctx: typer.Context,
    reason: Annotated[str, typer.Option(help="Why trading must halt (kept in the log).")],
    flatten: Annotated[
        bool,
        typer.Option(
            "--flatten",
            help="Also close every position at market (reason hardstop), whatever "
            "NETTRACE_HARDSTOP_ACTION says. Without it, positions keep their protective stops.",
        ),
    ] = False,
) -> None:
    """Raise HARDSTOP as the operator: no new orders in any region until it is cleared.

    Working entries, signal exits and take-profits are cancelled; every open position keeps
    (or gets back) its protective stop. With --flatten (or NETTRACE_HARDSTOP_ACTION=flatten)
    the primary sells every position at market instead.
    """
    with _latch(ctx) as latch:
        before = latch.state()
        after = latch.raise_(OPERATOR, reason, flatten=flatten)
    out = state(ctx).out
    if flatten:
        out.print("every position will be flattened at market by the primary's next tick")
    if before.active:
        out.print(
            f"HARDSTOP was already active (source {after.source}: {after.reason}); "
            "your raise is logged."
        )
    else:
        out.print(f"HARDSTOP raised by {OPERATOR}: {after.reason}")


@app.command()
def clear(
    ctx: typer.Context,
    reason: Annotated[str, typer.Option(help="Why it is safe to trade again (kept in the log).")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Clear HARDSTOP (operator only: needs NETTRACE_OPERATOR_TOKEN): trading may resume."""
    _require_operator(ctx)
    with _latch(ctx) as latch:
        current = latch.state()
        if not current.active:
            state(ctx).out.print("HARDSTOP is not active; nothing to clear.")
            return
        if not yes and not typer.confirm(
            f"Clear HARDSTOP (source {current.source}: {current.reason})? Trading may resume",
            default=False,
        ):
            raise CliError("not cleared: confirmation refused (use --yes to skip the prompt)")
        cleared = latch.clear(OPERATOR, reason)
    state(ctx).out.print(
        f"HARDSTOP cleared by {OPERATOR}: was raised by {cleared.source} at "
        f"{_when(cleared.raised_at)} ({cleared.reason}); reason for clearing: {reason.strip()}"
    )
