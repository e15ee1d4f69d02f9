"""The engine's fill model at its boundaries, the shared wallet, and the gate on every decision."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nettrace.agents.agent_goals import GoalValidator, MemoryDecisionRecorder
from nettrace.backtest.engine import BacktestConfig, run_backtest
from nettrace.domain.fees import FeeSchedule
from nettrace.market.candles import CandleKey, Candles, FloatArray
from nettrace.strategies.base import Strategy, StrategySignals

HOUR = 3_600_000


def bars(rows: list[tuple[float, float, float, float]], pair: str = "BTC/USD") -> Candles:
    """Candles from (open, high, low, close) rows, one hour apart."""
    data = np.array(rows, dtype=np.float64)
    n = len(rows)
    return Candles(
        key=CandleKey("test", pair, "1h"),
        timestamp=np.arange(n, dtype=np.int64) * HOUR + 1_700_000_000_000 // HOUR * HOUR,
        open=data[:, 0].copy(), high=data[:, 1].copy(), low=data[:, 2].copy(),
        close=data[:, 3].copy(), volume=np.ones(n),
    )  # fmt: skip


@dataclass
class Scripted(Strategy):
    """Enters and exits at the bars it is told to (decisions at those bars' closes)."""

    name: ClassVar[str] = "scripted"
    gated: ClassVar[bool] = False
    entries: tuple[int, ...] = ()
    exits: tuple[int, ...] = ()
    stop_loss: float | None = None
    take_profit: float | None = None
    stake_fraction: float = math.inf

    def indicators(self, candles: Candles) -> dict[str, FloatArray]:
        return {}

    def signals(self, candles: Candles, indicators: Mapping[str, FloatArray]) -> StrategySignals:
        entry = np.zeros(len(candles), dtype=np.bool_)
        exit_ = np.zeros(len(candles), dtype=np.bool_)
        entry[list(self.entries)] = True
        exit_[list(self.exits)] = True
        return StrategySignals(entry=entry, exit=exit_)


FLAT = (100.0, 100.0, 100.0, 100.0)


def test_next_open_fill_and_fees_by_hand() -> None:
    candles = bars([FLAT, (101, 103, 100, 102), (104, 106, 103, 105), (110, 111, 108, 109)])
    result = run_backtest(Scripted(entries=(0,), exits=(2,)), candles, BacktestConfig(fee=0.004))
    [trade] = result.trades
    notional = 10_000 / 1.004
    amount = notional / 101
    proceeds = amount * 110
    assert trade.entry_time == candles.time_at(1)
    assert trade.exit_time == candles.time_at(3)
    assert trade.entry_price == 101
    assert trade.exit_price == 110
    assert trade.amount == pytest.approx(amount, rel=1e-12)
    assert trade.fee == pytest.approx(notional * 0.004 + proceeds * 0.004, rel=1e-12)
    assert trade.profit == pytest.approx(proceeds * 0.996 - 10_000, rel=1e-12)
    assert result.equity[-1] == pytest.approx(proceeds * 0.996, rel=1e-12)
    assert result.equity[1] == pytest.approx(amount * 102, rel=1e-12)


def test_default_fees_are_taker_for_next_open_and_maker_for_maker_fills() -> None:
    candles = bars([FLAT, (100.5, 101, 99, 100), (99.5, 101, 99, 100), (100, 102, 99, 101)])
    taker = run_backtest(Scripted(entries=(0,), exits=(1,)), candles).trades[0]
    assert (taker.entry_price, taker.exit_price) == (100.5, 99.5)  # the opens
    assert taker.fee == pytest.approx(taker.amount * (100.5 + 99.5) * 0.006, rel=1e-12)
    maker = run_backtest(
        Scripted(entries=(0,), exits=(1,)), candles, BacktestConfig(fill="maker")
    ).trades[0]
    assert (maker.entry_price, maker.exit_price) == (100.0, 100.0)  # the limits
    assert maker.fee == pytest.approx(maker.amount * 100 * 0.004 * 2, rel=1e-12)


@pytest.mark.parametrize(
    ("next_bar", "filled"),
    [
        ((100.5, 101.0, 99.99, 100.2), True),  # trades through the 100 limit
        ((100.5, 101.0, 100.0, 100.2), False),  # touches but never through: no fill
        ((100.0, 101.0, 99.0, 100.2), False),  # opens at the limit: post-only would cross
        ((99.5, 101.0, 99.0, 100.2), False),  # gaps below: crossing, rejected
    ],
)
def test_maker_buy_needs_a_trade_through_and_never_crosses(
    next_bar: tuple[float, float, float, float], filled: bool
) -> None:
    candles = bars([FLAT, next_bar, (100, 100, 100, 100)])
    result = run_backtest(Scripted(entries=(0,), exits=(1,)), candles, BacktestConfig(fill="maker"))
    entered = result.exposure > 0
    assert entered is filled
    if filled:
        assert result.equity[1] == pytest.approx(10_000 / 1.004 / 100 * 100.2, rel=1e-12)


def test_maker_exit_keeps_working_until_it_trades_through() -> None:
    """The fill model itself, on an *ungated* research baseline (no approval binds its prices,
    so the exit follows the touch down to 99 after an entry at 100). A gated strategy's exit
    never goes below its approval's break-even: see ``test_rules_hold.py`` (issue 10), and the
    gated half of this test below."""
    rows = [
        FLAT,
        (100.5, 101.0, 99.0, 100.0),  # entry fills at 100; exit decided at close 100
        (99.0, 100.0, 98.0, 99.0),  # high touches 100 but not through: still open
        (98.0, 99.5, 97.0, 98.0),  # repriced to 99; 99.5 > 99 trades through: filled at 99
        (90.0, 90.0, 90.0, 90.0),
    ]
    result = run_backtest(
        Scripted(entries=(0,), exits=(1,)), bars(rows), BacktestConfig(fill="maker")
    )
    [trade] = result.trades
    assert trade.exit_price == 99.0
    assert trade.exit_time == bars(rows).time_at(3)
    # The same bars, gated: the approved exit never follows the touch below break-even, so it
    # never fills here (the last bar's high, 90, is far below 100.80).
    gated = run_backtest(
        GatedScript(entries=(0,), exits=(1,), move=0.05), bars(rows), BacktestConfig(fill="maker")
    )
    assert all(t.exit_reason != "signal" or t.profit >= 0 for t in gated.trades)
    assert not [t for t in gated.trades if t.exit_price == 99.0]


@pytest.mark.parametrize(
    ("bar", "price"),
    [
        ((99.0, 99.5, 95.0, 96.0), 95.0),  # low reaches the stop exactly: filled at the stop
        ((90.0, 92.0, 89.0, 91.0), 90.0),  # gaps through: filled at the worse open
    ],
)
def test_stop_fills_at_the_stop_or_worse(
    bar: tuple[float, float, float, float], price: float
) -> None:
    candles = bars([FLAT, (100, 100.5, 99.5, 100), bar, FLAT])
    result = run_backtest(Scripted(entries=(0,), stop_loss=0.05), candles, BacktestConfig(fee=0.0))
    [trade] = result.trades
    assert trade.exit_reason == "stop_loss"
    assert trade.exit_price == price


def test_stop_not_hit_when_low_stays_above() -> None:
    candles = bars([FLAT, (100, 100.5, 99.5, 100), (99, 99.5, 95.01, 96), FLAT])
    result = run_backtest(Scripted(entries=(0,), stop_loss=0.05), candles, BacktestConfig(fee=0.0))
    assert result.trades == []


@pytest.mark.parametrize(
    ("bar", "price"),
    [
        ((105.0, 125.0, 104.0, 109.0), None),  # high equals the target: no trade-through
        ((105.0, 125.01, 104.0, 109.0), 125.0),  # through: filled at the target
        ((127.0, 128.0, 126.0, 127.0), 127.0),  # gaps above: the resting limit fills at open
    ],
)
def test_take_profit_needs_a_trade_through(
    bar: tuple[float, float, float, float], price: float | None
) -> None:
    candles = bars([FLAT, (100, 100.5, 99.5, 100), bar, (100, 100, 100, 100)])
    result = run_backtest(
        Scripted(entries=(0,), take_profit=0.25), candles, BacktestConfig(fee=0.0)
    )
    if price is None:
        assert result.trades == []
    else:
        [trade] = result.trades
        assert trade.exit_reason == "take_profit"
        assert trade.exit_price == price


def test_stop_wins_when_stop_and_target_share_a_bar() -> None:
    candles = bars([FLAT, (100, 100.5, 99.5, 100), (100, 120, 80, 100), FLAT])
    result = run_backtest(
        Scripted(entries=(0,), stop_loss=0.05, take_profit=0.10), candles, BacktestConfig(fee=0)
    )
    assert result.trades[0].exit_reason == "stop_loss"


def _random_pairs(seed: int, n_pairs: int, n_bars: int) -> dict[str, Candles]:
    rng = np.random.default_rng(seed)
    out = {}
    for j in range(n_pairs):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n_bars)))
        open_ = np.concatenate([[100.0], close[:-1]])
        high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n_bars))
        low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n_bars))
        pair = f"C{j}/USD"
        out[pair] = Candles(
            key=CandleKey("test", pair, "1h"),
            timestamp=np.arange(n_bars, dtype=np.int64) * HOUR,
            open=open_, high=high, low=low, close=close, volume=np.ones(n_bars),
        )  # fmt: skip
    return out


@dataclass
class RandomSignals(Strategy):
    name: ClassVar[str] = "random"
    gated: ClassVar[bool] = False
    seed: int = 0
    stake_fraction: float = 0.5
    stop_loss: float | None = 0.03
    rng_state: dict[str, int] = field(default_factory=dict)

    def indicators(self, candles: Candles) -> dict[str, FloatArray]:
        return {}

    def signals(self, candles: Candles, indicators: Mapping[str, FloatArray]) -> StrategySignals:
        rng = np.random.default_rng(self.seed + hash(candles.key.pair) % 1000)
        return StrategySignals(
            entry=rng.random(len(candles)) < 0.1, exit=rng.random(len(candles)) < 0.1
        )


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    stake=st.sampled_from([0.2, 0.5, 0.9, math.inf]),
    max_open=st.integers(1, 3),
)
def test_shared_wallet_is_never_overdrawn_and_max_open_holds(
    seed: int, stake: float, max_open: int
) -> None:
    candles = _random_pairs(seed, 4, 300)
    result = run_backtest(
        RandomSignals(seed=seed, stake_fraction=stake),
        candles,
        BacktestConfig(fee=0.004, max_open_positions=max_open),
    )
    events: list[tuple[object, int, float]] = []
    for trade in result.trades:
        events.append((trade.entry_time, 1, -(trade.amount * trade.entry_price)))
        events.append((trade.exit_time, 0, trade.amount * trade.exit_price))
    # Exits (0) before entries (1) at the same bar, as the kernel does.
    cash, open_now = 10_000.0, 0
    for _, kind, flow in sorted(events, key=lambda e: (e[0], e[1])):
        cash += flow * (1.004 if flow < 0 else 0.996)
        open_now += 1 if kind == 1 else -1
        assert cash >= -1e-6
        assert open_now <= max_open
    assert np.all(result.equity > 0)


@dataclass
class GatedScript(Strategy):
    """A gated strategy whose rule inputs are given per bar."""

    name: ClassVar[str] = "gated_script"
    entries: tuple[int, ...] = ()
    exits: tuple[int, ...] = ()
    confidence: float = 0.9
    count: int = 3
    regime: int = 1
    move: float = 0.05

    def indicators(self, candles: Candles) -> dict[str, FloatArray]:
        return {}

    def signals(self, candles: Candles, indicators: Mapping[str, FloatArray]) -> StrategySignals:
        n = len(candles)
        entry = np.zeros(n, dtype=np.bool_)
        exit_ = np.zeros(n, dtype=np.bool_)
        entry[list(self.entries)] = True
        exit_[list(self.exits)] = True
        return StrategySignals(
            entry=entry, exit=exit_,
            confidence=np.full(n, self.confidence), signal_count=np.full(n, self.count),
            regime=np.full(n, self.regime, dtype=np.int8), expected_move=np.full(n, self.move),
            atr=np.full(n, 2.0),
        )  # fmt: skip


RISING = [(100 + i, 101 + i, 99 + i, 100 + i) for i in range(12)]


@pytest.mark.parametrize(
    ("overrides", "trades"),
    [
        ({}, 1),
        ({"confidence": 0.69}, 0),
        ({"count": 1}, 0),
        ({"regime": -1}, 0),  # no buying in a downtrend
        ({"move": 0.005}, 0),  # does not clear 2 x maker + margin
    ],
)
def test_gated_entries_pass_the_validator(overrides: dict[str, float], trades: int) -> None:
    strategy = GatedScript(entries=(0,), exits=(4,), **overrides)  # type: ignore[arg-type]
    result = run_backtest(strategy, bars(RISING))
    assert len(result.trades) == trades
    [entry_decision] = [d for d in result.decisions if d.proposal.side == "BUY"]
    assert entry_decision.approved is (trades == 1)


def test_every_gated_order_has_an_approved_recorded_decision() -> None:
    recorder = MemoryDecisionRecorder()
    validator = GoalValidator(recorder=recorder)
    result = run_backtest(
        GatedScript(entries=(0, 5), exits=(3, 10)), bars(RISING), validator=validator
    )
    approved = [d for d in recorder.decisions if d.approved]
    # Each trade needed an approved BUY and (for signal exits) an approved SELL.
    buys = [d for d in approved if d.proposal.side == "BUY"]
    sells = [d for d in approved if d.proposal.side == "SELL"]
    assert len(result.trades) == len(buys) == 2
    assert len(sells) == sum(t.exit_reason == "signal" for t in result.trades)


def test_rule_one_refuses_a_signal_exit_at_a_loss() -> None:
    falling = [(100.0, 101, 99, 100), (100, 101, 99, 100), (99, 99.5, 98, 98.5),
               (98.5, 99, 98, 98.6), (98.6, 99, 98, 98.7)]  # fmt: skip
    result = run_backtest(GatedScript(entries=(0,), exits=(2,)), bars(falling))
    sell = [d for d in result.decisions if d.proposal.side == "SELL"]
    assert [d.approved for d in sell] == [False]
    assert sell[0].codes[0].value == "exit_realises_loss"
    assert result.trades == []  # still holding: no loss was realised on a signal


def test_gated_sizes_come_from_the_risk_controller() -> None:
    result = run_backtest(GatedScript(entries=(0,), exits=(6,)), bars(RISING))
    [trade] = result.trades
    # Risk budget 1% of 10k over a 2 x ATR(2) stop = 25 units, above the 10% cap (1000 quote).
    assert trade.amount * 101 == pytest.approx(1_000.0, rel=1e-9)


def test_mixed_timeframes_are_refused() -> None:
    a = bars([FLAT, FLAT])
    b = Candles(
        key=CandleKey("test", "ETH/USD", "4h"), timestamp=a.timestamp, open=a.open, high=a.high,
        low=a.low, close=a.close, volume=a.volume,
    )  # fmt: skip
    with pytest.raises(ValueError, match="one timeframe"):
        run_backtest(Scripted(), {"BTC/USD": a, "ETH/USD": b})


def test_fee_schedule_per_exchange_is_honoured() -> None:
    candles = bars([FLAT, (100, 101, 99, 100), (100, 101, 99, 100), FLAT])
    config = BacktestConfig(fees=FeeSchedule(maker=0.001, taker=0.002))
    trade = run_backtest(Scripted(entries=(0,), exits=(1,)), candles, config).trades[0]
    assert trade.fee == pytest.approx(trade.amount * 100 * 0.002 * 2, rel=1e-12)
