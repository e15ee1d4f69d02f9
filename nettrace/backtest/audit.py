"""The backtest audit: the ledger audit's money invariants, checked on a backtest's own trades.

A gated strategy (``sniper``) decides every entry and exit through the same GoalValidator and
risk controller as the live engine, so its backtest must keep the same promises the ledger
audit (``execution.audit``) checks on stored fills: a signal or take-profit exit never loses
after fees, an entry never fills above its approval's bound, a signal exit never below its
break-even bound, a stop never fills above the stop stored with its entry, only stops lose, and
every trade's entry was an approved BUY. The trade records carry what bound each trade
(``TradeRecords.stop_price`` / ``entry_bound`` / ``exit_bound``) so this needs no re-run.

An ungated research baseline (``ema_cross``) trades raw signals and promised none of this; it
can never be promoted past COLD, so no order of it can reach an exchange. Its findings are
reported as notes with the verdict "not gated", never as breaches: a failing exit code there
would only teach the operator to ignore the audit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np

from nettrace.backtest.results import EXIT_REASONS, BacktestResult, TradeRecords
from nettrace.domain.audit import AuditReport, Breach, BreachKind
from nettrace.domain.types import ExitReason, Side, parse_side
from nettrace.market.candles import FloatArray

__all__ = ["PRICE_TOLERANCE", "PROFIT_TOLERANCE", "audit_backtest"]

#: Relative slack on the price comparisons. The kernel fills at the bound itself when it binds,
#: so the comparison is exact in principle; the slack only absorbs float noise (far below any
#: price tick), the same 1e-9 the ledger audit uses on stored prices.
PRICE_TOLERANCE = 1e-9
#: A trade "loses" when its profit is below ``-PROFIT_TOLERANCE * entry notional``: an exit at
#: exactly break-even may compute a few ulps under zero.
PROFIT_TOLERANCE = 1e-9

_PROFIT_EXITS = frozenset({ExitReason.SIGNAL.value, ExitReason.TAKE_PROFIT.value})


def audit_backtest(result: BacktestResult) -> AuditReport:
    """Check ``result``'s trades against the rules that bound them; see the module docstring.

    ``result.params["gated"]`` says whether the strategy was gated; a result that does not say
    is audited as gated (fail closed: the strict reading is the safe one).
    """
    gated = result.params.get("gated", True) is not False
    findings = list(_check_trades(result.records, gated))
    findings.extend(_check_entries_approved(result))
    scope = f"backtest {result.strategy}"
    if gated:
        return AuditReport(
            breaches=tuple(findings),
            decisions_checked=len(result.decisions),
            round_trips_checked=len(result.records),
            scope=scope,
            gated=True,
            explanation=(
                f"{result.strategy} is gated: every entry and exit was judged by the "
                "GoalValidator, so every finding is a breach"
            ),
        )
    return AuditReport(
        breaches=(),
        decisions_checked=len(result.decisions),
        round_trips_checked=len(result.records),
        scope=scope,
        gated=False,
        notes=tuple(findings),
        explanation=(
            f"not gated: {result.strategy} is an ungated research baseline; it trades raw "
            "signals and can never be promoted past COLD, so no order of it can reach an "
            f"exchange. Its {len(findings)} finding(s) are notes, not breaches."
        ),
    )


def _check_trades(records: TradeRecords, gated: bool) -> Iterator[Breach]:
    n = len(records)
    stop = _column(records.stop_price, n)
    entry_bound = _column(records.entry_bound, n)
    exit_bound = _column(records.exit_bound, n)
    # Per-element work on plain lists: numpy scalar indexing is far slower than the checks.
    rows = zip(
        records.pair.tolist(),
        records.entry_ms.tolist(),
        records.exit_ms.tolist(),
        records.reason.tolist(),
        records.entry_price.tolist(),
        records.exit_price.tolist(),
        records.amount.tolist(),
        records.profit.tolist(),
        stop.tolist(),
        entry_bound.tolist(),
        exit_bound.tolist(),
        strict=True,
    )
    for index, row in enumerate(rows):
        yield from _check_trade(records, index, row, gated)


def _check_trade(
    records: TradeRecords,
    index: int,
    row: tuple[int, int, int, int, float, float, float, float, float, float, float],
    gated: bool,
) -> Iterator[Breach]:
    pair, entry_ms, exit_ms, code, entry, exit_, amount, profit, stop, e_bound, x_bound = row
    subject = f"trade {index} {records.pairs[pair]} {_iso(entry_ms)} -> {_iso(exit_ms)}"
    if not 0 <= code < len(EXIT_REASONS):
        yield Breach(BreachKind.LEDGER_INCONSISTENT, subject, f"unknown exit reason code {code}")
        return
    reason = EXIT_REASONS[code]
    numbers = (
        f"entry {_num(entry)}, exit {_num(exit_)}, amount {_num(amount)}: "
        f"profit {_num(profit)} after fees"
    )
    if profit < -PROFIT_TOLERANCE * entry * amount and reason in _PROFIT_EXITS:
        # In a backtest only stops may lose, so this is also "every losing trade is a stop".
        yield Breach(
            BreachKind.LOSING_SIGNAL_EXIT,
            subject,
            f"a {reason} exit realised a loss ({numbers}); rule 1 allows a loss only to a "
            "stop-loss",
        )
    # NaN bounds: nothing bound the trade. Expected of an ungated baseline; a gated trade
    # without its approval's bound cannot be checked, which is itself a breach.
    if math.isnan(e_bound):
        if gated:
            yield Breach(BreachKind.NO_PRICE_BOUND, subject, "its entry carries no approved bound")
    elif entry > e_bound * (1.0 + PRICE_TOLERANCE):
        yield Breach(
            BreachKind.BUY_ABOVE_BOUND,
            subject,
            f"entered at {_num(entry)} above {_num(e_bound)}, the highest entry its approval "
            "allowed",
        )
    if reason == ExitReason.SIGNAL.value:
        if math.isnan(x_bound):
            if gated:
                yield Breach(
                    BreachKind.NO_PRICE_BOUND, subject, "its signal exit carries no approved bound"
                )
        elif exit_ < x_bound * (1.0 - PRICE_TOLERANCE):
            yield Breach(
                BreachKind.SELL_BELOW_BOUND,
                subject,
                f"signal exit at {_num(exit_)} below {_num(x_bound)}, the break-even after fees "
                "its approval allowed",
            )
    if reason == ExitReason.STOP_LOSS.value:
        if math.isnan(stop):
            yield Breach(BreachKind.STOP_MISMATCH, subject, "a stop exit with no stop recorded")
        elif exit_ > stop * (1.0 + PRICE_TOLERANCE):
            yield Breach(
                BreachKind.STOP_MISMATCH,
                subject,
                f"stop exit at {_num(exit_)} above its stop {_num(stop)}: a stop fills at the "
                "stop or worse, never better",
            )


def _check_entries_approved(result: BacktestResult) -> Iterator[Breach]:
    """Every trade's entry needs an approved BUY: at least as many approvals as trades."""
    approved = sum(
        1 for d in result.decisions if d.approved and parse_side(d.proposal.side) is Side.BUY
    )
    trades = len(result.records)
    if approved < trades:
        yield Breach(
            BreachKind.UNAPPROVED_ENTRY,
            f"backtest {result.strategy}",
            f"{trades} trades but only {approved} approved BUY decisions: "
            f"{trades - approved} entries had no approval",
        )


def _column(values: FloatArray | None, n: int) -> FloatArray:
    """An optional bound column, or all-NaN (nothing bound the trades) when it is absent."""
    return np.full(n, np.nan) if values is None else values


def _num(value: float) -> str:
    return format(value, ".10g")


def _iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat().replace("+00:00", "Z")
