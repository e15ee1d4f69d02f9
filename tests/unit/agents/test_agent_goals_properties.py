"""Property tests: the validator never raises, and nothing below a threshold gets through."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from nettrace.agents.agent_goals import (
    FLOAT_TOLERANCE,
    GoalThresholds,
    GoalValidator,
    TradeProposal,
    breakeven_exit_price,
    required_entry_move,
)
from nettrace.domain.fees import FeeSchedule
from nettrace.domain.types import parse_regime, parse_side

anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["BUY", "SELL", "buy", "uptrend", "downtrend", "neutral", "bear"]),
    st.lists(st.integers(), max_size=2),
    st.binary(max_size=4),
)
confidences = st.one_of(st.floats(allow_nan=True, allow_infinity=True), anything)
counts = st.one_of(st.integers(min_value=-5, max_value=20), anything)
sides = st.one_of(st.sampled_from(["BUY", "SELL", "buy", "sell"]), anything)
regimes = st.one_of(st.sampled_from(["uptrend", "downtrend", "neutral"]), anything)


@given(confidences, counts, sides, regimes)
def test_should_trade_never_raises_and_returns_a_bool(
    confidence: object, count: object, side: object, regime: object
) -> None:
    assert GoalValidator.should_trade(confidence, count, side, regime) in (True, False)


@given(confidences, counts, sides, regimes)
def test_true_only_when_every_condition_holds(
    confidence: object, count: object, side: object, regime: object
) -> None:
    if GoalValidator.should_trade(confidence, count, side, regime):
        assert isinstance(confidence, int | float)
        assert not isinstance(confidence, bool)
        assert 0.70 <= confidence <= 1.0
        assert isinstance(count, int)
        assert not isinstance(count, bool)
        assert count >= 2
        assert parse_side(side) is not None
        assert parse_regime(regime) is not None
        assert not (parse_side(side) == "BUY" and parse_regime(regime) == "downtrend")


@given(
    st.floats(min_value=0.0, max_value=0.70, exclude_max=True),
    st.integers(min_value=0, max_value=100),
    st.sampled_from(["BUY", "SELL"]),
    st.sampled_from(["uptrend", "downtrend", "neutral"]),
)
def test_below_the_confidence_threshold_is_never_true(
    confidence: float, count: int, side: str, regime: str
) -> None:
    assert GoalValidator.should_trade(confidence, count, side, regime) is False


@given(
    st.floats(min_value=0.0, max_value=1.0),
    st.integers(max_value=1),
    st.sampled_from(["BUY", "SELL"]),
    st.sampled_from(["uptrend", "downtrend", "neutral"]),
)
def test_fewer_than_two_signals_is_never_true(
    confidence: float, count: int, side: str, regime: str
) -> None:
    assert GoalValidator.should_trade(confidence, count, side, regime) is False


@given(st.floats(min_value=0.0, max_value=1.0), st.integers(min_value=0, max_value=100))
def test_a_buy_in_a_downtrend_is_never_true(confidence: float, count: int) -> None:
    assert GoalValidator.should_trade(confidence, count, "BUY", "downtrend") is False


@given(
    st.floats(min_value=0.70, max_value=1.0),
    st.integers(min_value=2, max_value=8),
    st.sampled_from(
        [
            ("BUY", "uptrend"),
            ("BUY", "neutral"),
            ("SELL", "uptrend"),
            ("SELL", "downtrend"),
            ("SELL", "neutral"),
        ]
    ),
)
def test_everything_at_or_above_the_thresholds_is_true(
    confidence: float, count: int, side_regime: tuple[str, str]
) -> None:
    assert GoalValidator.should_trade(confidence, count, *side_regime) is True


proposals = st.builds(
    TradeProposal,
    side=sides,
    confidence=confidences,
    signal_count=counts,
    regime=regimes,
    symbol=st.text(max_size=10),
    expected_move=st.one_of(st.floats(allow_nan=True, allow_infinity=True), anything),
    entry_price=st.one_of(st.floats(allow_nan=True, allow_infinity=True), anything),
    exit_price=st.one_of(st.floats(allow_nan=True, allow_infinity=True), anything),
    entry_fee_rate=st.one_of(st.none(), st.floats(allow_nan=True), anything),
    exit_reason=st.one_of(st.sampled_from(["signal", "stop_loss", "hardstop"]), anything),
)


@given(proposals)
def test_evaluate_never_raises_and_approval_means_no_reasons(proposal: TradeProposal) -> None:
    decision = GoalValidator().evaluate(proposal)
    assert decision.approved is (not decision.refusals)


@given(
    st.floats(min_value=1e-6, max_value=1e7),
    st.floats(min_value=1e-6, max_value=1e7),
    st.floats(min_value=0.0, max_value=0.05),
    st.floats(min_value=0.0, max_value=0.05),
)
def test_an_approved_signal_exit_never_realises_a_loss(
    entry: float, exit_price: float, entry_fee: float, maker: float
) -> None:
    validator = GoalValidator(fees=FeeSchedule(maker=maker, taker=max(maker, 0.006)))
    decision = validator.evaluate(
        TradeProposal(
            side="SELL",
            confidence=0.9,
            signal_count=3,
            regime="neutral",
            entry_price=entry,
            exit_price=exit_price,
            entry_fee_rate=entry_fee,
        )
    )
    proceeds, cost = exit_price * (1 - maker), entry * (1 + entry_fee)
    if proceeds >= cost:
        assert decision.approved
    if decision.approved:
        # Only float representation error (FLOAT_TOLERANCE) separates an approval from break-even.
        assert proceeds >= cost * (1 - FLOAT_TOLERANCE)
        assert exit_price >= breakeven_exit_price(entry, entry_fee, validator.fees) * (1 - 1e-11)


@given(
    st.floats(min_value=-1.0, max_value=1.0),
    st.floats(min_value=0.0, max_value=0.05),
    st.floats(min_value=0.001, max_value=0.05),
)
def test_an_approved_entry_always_clears_fees_and_margin(
    move: float, maker: float, margin: float
) -> None:
    fees = FeeSchedule(maker=maker, taker=max(maker, 0.006))
    thresholds = GoalThresholds(entry_margin=margin)
    decision = GoalValidator(thresholds=thresholds, fees=fees).evaluate(
        TradeProposal(
            side="BUY", confidence=0.9, signal_count=3, regime="uptrend", expected_move=move
        )
    )
    hurdle = required_entry_move(fees, thresholds)
    if move >= hurdle:
        assert decision.approved
    if decision.approved:
        assert move >= hurdle - FLOAT_TOLERANCE
        assert move > 2 * maker


@given(
    st.floats(min_value=0.70, max_value=1.0),
    st.integers(min_value=2, max_value=10),
    st.floats(min_value=0.001, max_value=0.5),
    st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    st.one_of(st.none(), st.integers(min_value=-10, max_value=10)),
)
def test_tightened_thresholds_are_never_looser(
    confidence: float, count: int, margin: float, new_conf: float | None, new_count: int | None
) -> None:
    base = GoalThresholds(min_confidence=confidence, min_signal_count=count, entry_margin=margin)
    if new_conf is not None and not math.isfinite(new_conf):
        new_conf = None
    if new_conf is not None and new_conf > 1.0:
        new_conf = 1.0
    tightened = base.tightened(min_confidence=new_conf, min_signal_count=new_count)
    assert tightened.at_least_as_strict_as(base)
