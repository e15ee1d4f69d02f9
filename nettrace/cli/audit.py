"""``nettrace audit``: check every money invariant over the stored orders, fills and decisions.

The order store refuses a forbidden order when it is written; this command is the independent
second look (``execution.audit``) that trusts no writer. It only reads, so it is safe to run
against a database a trading process is using.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nettrace.cli.context import CliTable, open_database, state
from nettrace.domain.audit import AuditReport, Breach

#: Exit code when the audit found at least one breach (0: clean; 2: could not run).
BREACHED = 1


def audit(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON for scripts and CI.")
    ] = False,
) -> int:
    """Audit the ledger: does every stored order, fill and round trip keep the rules?

    Read-only, so safe beside a running engine. Each breach names its kind,
    the order, decision or round trip, and the numbers that show it.

    \b
    The invariants checked:
      1  every order has a recorded, approved decision (same side, symbol)
      2  prices (and fills) respect the approval's bound: a BUY at or
         below it, a signal/take-profit SELL at or above break-even
         after fees, a stop-loss exactly at its entry's stored stop
      3  no signal or take-profit round trip loses money after fees
      4  every losing round trip is a stop filled at or below its
         stored stop, or a HARDSTOP flatten
      5  market orders are critical; only stops and flattens are
      6  while HARDSTOP is up only protective stops and flattens are
         stored, and every flatten is stored while it is up
      7  no order comes from outside the primary region (PRIMARY_REGION)

    Exit code 0 when clean, 1 on any breach, 2 when the database cannot be
    read (unreachable, or not migrated: run `nettrace db upgrade`).

    \b
    Examples:
      nettrace audit
      nettrace audit --json | jq -r '.breaches[].kind'
      DATABASE_URL=postgresql://host/nettrace nettrace audit
    """
    st = state(ctx)
    settings = st.settings
    from nettrace.execution.audit import audit_ledger

    with open_database(ctx, "the orders, fills and decisions tables") as database:
        report = audit_ledger(database, primary_region=settings.primary_region)
    if as_json:
        typer.echo(report.to_json())
    else:
        print_report(st.out, report)
    return 0 if report.clean else BREACHED


def print_report(out: Console, report: AuditReport, *, limit: int | None = None) -> None:
    """The report for a terminal: one summary line, then a table of breaches (or notes).

    Shared with ``nettrace backtest``, which prints its own run's audit the same way and passes
    ``limit`` (a baseline may have hundreds of noted trades; ``--json`` here lists them all).
    """
    if report.breaches:
        out.print(f"[bold red]{escape(report.summary())}[/]")
        out.print(breach_table("Breaches", report.breaches, limit))
        return
    if not report.gated:
        out.print(f"[bold yellow]{escape(report.summary())}[/]")
        if report.explanation:
            out.print(escape(report.explanation))
        if report.notes:
            out.print(breach_table("Findings (notes, not breaches)", report.notes, limit))
        return
    out.print(f"[bold green]{escape(report.summary())}[/]")


def breach_table(title: str, breaches: Sequence[Breach], limit: int | None = None) -> Table:
    """Kind, subject and numbers of each breach; past ``limit`` rows, a count of the rest."""
    shown = breaches if limit is None else breaches[:limit]
    hidden = len(breaches) - len(shown)
    caption = f"... and {hidden} more" if hidden else None
    table = CliTable(title=title, caption=caption)
    table.add_column("Kind", no_wrap=True)
    table.add_column("Subject")
    table.add_column("What happened")
    for breach in shown:
        table.add_row(breach.kind.value, escape(breach.subject), escape(breach.message))
    return table
