"""The ``sniper`` strategy: generators aggregated, every candidate judged by the rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nettrace.agents.agent_goals import LAW, RefusalCode
from nettrace.agents.risk_controller import RiskLimits
from nettrace.backtest.engine import BacktestConfig, run_backtest
from nettrace.market.candles import CandleKey, Candles
from nettrace.signals.aggregate import aggregate
from nettrace.signals.catalog import default_generators
from nettrace.signals.regime import detect_regime
from nettrace.signals.track_record import track_record_weights
from nettrace.strategies.catalog import strategy_by_name
from nettrace.strategies.sniper import Sniper

NAME = "coinbase_BTC-USD_1h.parquet"


@pytest.fixture(scope="module")
def candles(shared_data: Path) -> Candles:
    return Candles.from_frame(pd.read_parquet(shared_data / NAME), CandleKey.from_filename(NAME))


def test_signals_are_the_aggregate_of_the_five_candle_generators(candles: Candles) -> None:
    signals = Sniper(weighting="fixed").run(candles)
    expected = aggregate([g.compute(candles) for g in default_generators()])
    np.testing.assert_array_equal(signals.entry, expected.side == 1)
    np.testing.assert_array_equal(signals.exit, expected.side == -1)
    np.testing.assert_allclose(signals.confidence, expected.confidence, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(signals.signal_count, expected.signal_count)
    np.testing.assert_array_equal(signals.regime, detect_regime(candles))


def test_by_default_each_generator_weighs_its_track_record_at_every_bar(
    candles: Candles,
) -> None:
    outputs = [g.compute(candles) for g in default_generators()]
    weights = {o.name: track_record_weights(o.direction, candles.close) for o in outputs}
    signals = Sniper().run(candles)
    expected = aggregate(outputs, weights)
    np.testing.assert_array_equal(signals.entry, expected.side == 1)
    np.testing.assert_allclose(signals.confidence, expected.confidence, rtol=0, atol=1e-12)
    # The record matters: some bars decide differently from equal weights.
    equal = aggregate(outputs)
    assert np.any(np.abs(expected.confidence - equal.confidence) > 1e-6)


def test_expected_move_is_the_atr_target(candles: Candles) -> None:
    sniper = Sniper(move_atr_multiple=3.0)
    signals = sniper.run(candles)
    assert signals.expected_move is not None
    assert signals.atr is not None
    ready = np.isfinite(signals.atr)
    np.testing.assert_allclose(
        signals.expected_move[ready], 3.0 * signals.atr[ready] / candles.close[ready], rtol=1e-9
    )


def test_every_trade_was_approved_by_the_validator_and_sized_by_risk(candles: Candles) -> None:
    result = run_backtest(Sniper(), candles, BacktestConfig())
    assert result.trades, "the real BTC/USD hourly series should give the sniper some trades"
    approved_buys = [d for d in result.decisions if d.approved and d.proposal.side == "BUY"]
    assert len(approved_buys) >= len(result.trades)
    for decision in approved_buys:
        assert float(decision.proposal.confidence) >= LAW.min_confidence  # type: ignore[arg-type]
        assert int(decision.proposal.signal_count) >= LAW.min_signal_count  # type: ignore[call-overload]
        assert decision.proposal.regime != "downtrend"
    # Risk sizing: no position is worth more than the risk controller's per-position cap of
    # the equity (which never exceeded its peak), and sizes vary with volatility.
    cap = RiskLimits().max_position_fraction * float(result.equity.max())
    notionals = [trade.amount * trade.entry_price for trade in result.trades]
    assert max(notionals) <= cap * (1 + 1e-9)
    assert min(notionals) < 0.99 * max(notionals)


def test_refusals_carry_the_reasons_the_rules_give(candles: Candles) -> None:
    result = run_backtest(Sniper(), candles, BacktestConfig())
    codes = {refusal.code for d in result.decisions for refusal in d.refusals}
    # On real data the gate refuses for low confidence and for lack of agreement at least.
    assert RefusalCode.CONFIDENCE_BELOW_THRESHOLD in codes
    assert RefusalCode.TOO_FEW_SIGNALS in codes


def test_a_silenced_generator_is_not_computed_and_does_not_vote(candles: Candles) -> None:
    sniper = Sniper(weights={"trend": 1.0, "momentum": 1.0, "ml_forecast": 0.0})
    indicators = sniper.indicators(candles)
    assert "vote_ml_forecast" not in indicators
    assert {"vote_trend", "vote_momentum"} <= set(indicators)
    assert int(sniper.run(candles).signal_count.max()) <= 2  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weights": {"astrology": 1.0}}, "unknown generator"),
        ({"weights": {"trend": 0.0}}, "positive weight"),
        ({"atr_period": 1}, "atr_period"),
        ({"move_atr_multiple": 0.0}, "move_atr_multiple"),
    ],
)
def test_bad_parameters_are_refused_with_their_name(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Sniper(**kwargs)  # type: ignore[arg-type]


def test_the_catalog_builds_the_sniper_by_name() -> None:
    strategy = strategy_by_name("sniper")
    assert isinstance(strategy, Sniper)
    assert strategy.gated
    with pytest.raises(ValueError, match="ema_cross, sniper"):
        strategy_by_name("nope")
