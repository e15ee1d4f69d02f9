"""The backtest audit: a gated run's trades keep the money invariants, a tampered one does not,
and an ungated baseline's losses are reported as notes, never as breaches.

Real small runs through ``run_backtest`` give the records (with their approval bounds); each
tampering changes one column of one trade, and the test asserts the exact list of breaches, so
a check that is silent or fires on the wrong trade fails.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from nettrace.backtest.audit import audit_backtest
from nettrace.backtest.engine import BacktestConfig, run_backtest
from nettrace.backtest.results import BacktestResult, TradeRecords
from nettrace.domain.audit import AuditReport, BreachKind, Verdict
from nettrace.market.candles import Candles, FloatArray
from nettrace.strategies.base import Strategy, StrategySignals
from tests.unit.backtest.test_engine import bars

# ``bars`` is test_engine's; the scripted strategies below differ from its own on purpose.


def _flags(n: int, at: tuple[int, ...]) -> np.ndarray:
    flags = np.zeros(n, dtype=np.bool_)
    flags[list(at)] = True
    return flags


@dataclass
class Scripted(Strategy):
    """Ungated: enters and exits at the bars it is told to, whatever it loses."""

    name: ClassVar[str] = "scripted"
    gated: ClassVar[bool] = False
    entries: tuple[int, ...] = ()
    exits: tuple[int, ...] = ()
    stake_fraction: float = math.inf

    def indicators(self, candles: Candles) -> dict[str, FloatArray]:
        return {}

    def signals(self, candles: Candles, indicators: Mapping[str, FloatArray]) -> StrategySignals:
        n = len(candles)
        return StrategySignals(entry=_flags(n, self.entries), exit=_flags(n, self.exits))


@dataclass
class GatedScript(Strategy):
    """Gated: wants to enter/exit at the given bars; the GoalValidator and risk controller judge."""

    name: ClassVar[str] = "gated_script"
    entries: tuple[int, ...] = ()
    exits: tuple[int, ...] = ()

    def indicators(self, candles: Candles) -> dict[str, FloatArray]:
        return {}

    def signals(self, candles: Candles, indicators: Mapping[str, FloatArray]) -> StrategySignals:
        n = len(candles)
        return StrategySignals(
            entry=_flags(n, self.entries), exit=_flags(n, self.exits),
            confidence=np.full(n, 0.9), signal_count=np.full(n, 3),
            regime=np.full(n, 1, dtype=np.int8), expected_move=np.full(n, 0.05),
            atr=np.full(n, 2.0),
        )  # fmt: skip


RISING = [(100.0 + i, 101.0 + i, 99.0 + i, 100.0 + i) for i in range(12)]
WAVY = [(100.0 + i, 101.5 + i, 98.5 + i, 100.0 + i) for i in range(12)]
#: Rises, then one bar falls through the entry's ATR stop (96): a losing stop exit.
CRASH = [(100.0 + i, 101.0 + i, 99.0 + i, 100.0 + i) for i in range(4)] + [
    (103.0, 103.5, 90.0, 92.0),
    (92.0, 93.0, 91.0, 92.0),
]
#: An ungated entry at 101 and a signal exit at 90: a loss no gate stopped.
FALLING = [(100.0, 100, 100, 100), (101, 103, 100, 102), (95, 96, 94, 95), (90, 91, 88, 89)]


def gated_run(fill: str = "next_open") -> BacktestResult:
    """Two round trips, every entry and exit approved: signal exits at the next open, or (maker
    limits need the price to trade through them) take-profits on a wider-ranging series."""
    if fill == "maker":
        config, rows = BacktestConfig(fill="maker"), WAVY
    else:
        config, rows = BacktestConfig(fill="next_open"), RISING
    result = run_backtest(GatedScript(entries=(0, 5), exits=(3, 10)), bars(rows), config)
    assert len(result.records) == 2
    return result


def stop_run() -> BacktestResult:
    result = run_backtest(GatedScript(entries=(0,)), bars(CRASH))
    [trade] = result.trades
    assert trade.exit_reason == "stop_loss"
    assert trade.profit < 0
    return result


def tamper(result: BacktestResult, column: str, index: int, value: float) -> BacktestResult:
    """``result`` with one trade's ``column`` set to ``value`` (every other value as run)."""
    values = getattr(result.records, column).copy()
    values[index] = value
    records = dataclasses.replace(result.records, **{column: values})
    return dataclasses.replace(result, records=records)


def kinds(report: AuditReport) -> list[BreachKind]:
    return [b.kind for b in report.breaches]


# --- Gated ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fill", ["next_open", "maker"])
def test_a_clean_gated_run_passes(fill: str) -> None:
    result = gated_run(fill)
    report = audit_backtest(result)
    assert report.breaches == ()
    assert report.notes == ()
    assert report.verdict is Verdict.CLEAN
    assert report.round_trips_checked == 2
    assert report.decisions_checked == len(result.decisions) >= 2
    assert report.summary() == (
        f"backtest gated_script clean: {len(result.decisions)} decisions, 2 round trips checked"
    )


def test_a_gated_stop_loss_at_a_loss_is_clean() -> None:
    result = stop_run()
    assert result.records.exit_price[0] <= result.records.stop_price[0]
    assert audit_backtest(result).clean


def test_a_signal_trade_with_negative_profit_is_a_breach() -> None:
    result = tamper(gated_run(), "profit", 1, -5.0)
    report = audit_backtest(result)
    assert kinds(report) == [BreachKind.LOSING_SIGNAL_EXIT]
    assert report.breaches[0].subject.startswith("trade 1 BTC/USD ")
    assert "profit -5 after fees" in report.breaches[0].message
    assert report.verdict is Verdict.BREACHED
    assert not report.clean


def test_an_entry_above_its_bound_is_a_breach() -> None:
    result = gated_run()
    bound = float(result.records.entry_bound[0])
    report = audit_backtest(tamper(result, "entry_price", 0, bound * 1.001))
    assert kinds(report) == [BreachKind.BUY_ABOVE_BOUND]
    assert report.breaches[0].subject.startswith("trade 0 ")


def test_an_entry_at_its_bound_within_float_noise_is_clean() -> None:
    result = gated_run()
    bound = float(result.records.entry_bound[0])
    assert audit_backtest(tamper(result, "entry_price", 0, bound * (1 + 1e-12))).clean


def test_a_signal_exit_below_its_bound_is_a_breach() -> None:
    result = gated_run()
    bound = float(result.records.exit_bound[0])
    report = audit_backtest(tamper(result, "exit_price", 0, bound * 0.999))
    assert kinds(report) == [BreachKind.SELL_BELOW_BOUND]


def test_a_stop_exit_above_its_stop_is_a_breach() -> None:
    result = stop_run()
    stop = float(result.records.stop_price[0])
    report = audit_backtest(tamper(result, "exit_price", 0, stop + 1.0))
    assert kinds(report) == [BreachKind.STOP_MISMATCH]
    assert f"above its stop {stop:.10g}" in report.breaches[0].message


def test_a_losing_take_profit_is_a_breach() -> None:
    # The reason column says take-profit: such an exit may never lose either.
    result = tamper(stop_run(), "reason", 0, 2)
    report = audit_backtest(result)
    assert kinds(report) == [BreachKind.LOSING_SIGNAL_EXIT]
    assert "a take_profit exit" in report.breaches[0].message


def test_a_gated_trade_without_its_bounds_is_a_breach() -> None:
    result = gated_run()
    unbound = dataclasses.replace(result, records=TradeRecords.from_trades(result.trades))
    report = audit_backtest(unbound)
    assert kinds(report) == [BreachKind.NO_PRICE_BOUND] * 4  # entry and exit of both trades


def test_trades_without_approved_buys_are_a_breach() -> None:
    result = gated_run()
    sells_only = [d for d in result.decisions if d.proposal.side != "BUY"]
    report = audit_backtest(dataclasses.replace(result, decisions=sells_only))
    assert kinds(report) == [BreachKind.UNAPPROVED_ENTRY]
    assert "2 trades but only 0 approved BUY decisions" in report.breaches[0].message


# --- Ungated -------------------------------------------------------------------------------------


def test_an_ungated_run_with_losing_signal_exits_is_noted_not_breached() -> None:
    result = run_backtest(Scripted(entries=(0,), exits=(2,)), bars(FALLING))
    [trade] = result.trades
    assert trade.exit_reason == "signal"
    assert trade.profit < 0
    report = audit_backtest(result)
    assert report.breaches == ()
    assert report.clean  # so `nettrace backtest` exits 0
    assert report.verdict is Verdict.NOT_GATED
    assert not report.gated
    noted = [n.kind for n in report.notes]
    assert BreachKind.LOSING_SIGNAL_EXIT in noted
    assert BreachKind.UNAPPROVED_ENTRY in noted  # nothing approved its entry: it was never asked
    assert "not gated" in report.explanation
    assert "can never be promoted past COLD" in report.explanation
    assert "not breaches" in report.summary()
    assert report.to_dict()["verdict"] == "not gated"


def test_the_same_trades_claimed_as_gated_are_breaches() -> None:
    # The gate flag decides: the ungated run's records, read as a gated run's, fail.
    result = run_backtest(Scripted(entries=(0,), exits=(2,)), bars(FALLING))
    claimed = dataclasses.replace(result, params={**result.params, "gated": True})
    report = audit_backtest(claimed)
    assert BreachKind.LOSING_SIGNAL_EXIT in kinds(report)
    assert report.verdict is Verdict.BREACHED


def test_a_result_that_does_not_say_is_audited_as_gated() -> None:
    result = run_backtest(Scripted(entries=(0,), exits=(2,)), bars(FALLING))
    silent = dataclasses.replace(result, params={})
    assert not audit_backtest(silent).clean
