"""GoalValidator: the boundary table, fail-closed inputs, and rules 1 and 2 with fees."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from fractions import Fraction

import pytest

from nettrace.agents.agent_goals import (
    LAW,
    GoalThresholds,
    GoalValidator,
    MemoryDecisionRecorder,
    RefusalCode,
    TradeDecision,
    TradeProposal,
    breakeven_exit_price,
    required_entry_move,
)
from nettrace.domain.fees import FeeSchedule
from nettrace.domain.types import ExitReason

SIDES_REGIMES = [
    (side, regime) for side in ("BUY", "SELL") for regime in ("uptrend", "downtrend", "neutral")
]


def _expected(confidence: float, count: int, side: str, regime: str) -> bool:
    return confidence >= 0.70 and count >= 2 and not (side == "BUY" and regime == "downtrend")


@pytest.mark.parametrize(("side", "regime"), SIDES_REGIMES)
@pytest.mark.parametrize("confidence", [0.6999, 0.70])
@pytest.mark.parametrize("count", [1, 2])
def test_boundary_table(confidence: float, count: int, side: str, regime: str) -> None:
    assert GoalValidator.should_trade(confidence, count, side, regime) is _expected(
        confidence, count, side, regime
    )


def test_the_one_case_that_passes_only_at_both_boundaries() -> None:
    assert GoalValidator.should_trade(0.70, 2, "BUY", "uptrend") is True
    assert GoalValidator.should_trade(math.nextafter(0.70, 0.0), 2, "BUY", "uptrend") is False


@pytest.mark.parametrize("side", ["buy", "Buy", " BUY ", "sell", "SeLL"])
def test_side_is_case_insensitive(side: str) -> None:
    assert GoalValidator.should_trade(0.9, 3, side, "neutral") is True


@pytest.mark.parametrize("regime", ["Downtrend", "bear", "crash", "strong-downtrend"])
def test_richer_downtrend_labels_block_buys(regime: str) -> None:
    assert GoalValidator.should_trade(0.9, 3, "BUY", regime) is False
    assert GoalValidator.should_trade(0.9, 3, "SELL", regime) is True


@pytest.mark.parametrize(
    "confidence",
    [
        math.nan,
        math.inf,
        -math.inf,
        -0.01,
        1.0000001,
        None,
        "0.8",
        True,
        [0.8],
        Fraction(4, 5) * 10,
    ],
)
def test_bad_confidence_fails_closed(confidence: object) -> None:
    assert GoalValidator.should_trade(confidence, 3, "BUY", "uptrend") is False


@pytest.mark.parametrize("count", [-1, None, 2.0, 3.5, "3", True, math.nan, math.inf])
def test_bad_signal_count_fails_closed(count: object) -> None:
    assert GoalValidator.should_trade(0.9, count, "SELL", "uptrend") is False


@pytest.mark.parametrize("side", ["LONG", "", "HOLD", None, 1, b"BUY"])
def test_unknown_side_fails_closed(side: object) -> None:
    assert GoalValidator.should_trade(0.9, 3, side, "uptrend") is False


@pytest.mark.parametrize("regime", ["sideways-ish", "", None, 0, "UP TREND!"])
def test_unknown_regime_fails_closed(regime: object) -> None:
    assert GoalValidator.should_trade(0.9, 3, "SELL", regime) is False


def test_fraction_confidence_is_a_real_number() -> None:
    # numbers.Real is accepted (numpy scalars register there too); only its value matters.
    assert GoalValidator.should_trade(Fraction(4, 5), 2, "BUY", "neutral") is True


def _entry(**overrides: object) -> TradeProposal:
    fields: dict[str, object] = {
        "side": "BUY",
        "confidence": 0.85,
        "signal_count": 3,
        "regime": "uptrend",
        "symbol": "BTC/USD",
        "expected_move": 0.02,
    }
    fields.update(overrides)
    return TradeProposal(**fields)  # type: ignore[arg-type]


def _exit(**overrides: object) -> TradeProposal:
    fields: dict[str, object] = {
        "side": "SELL",
        "confidence": 0.85,
        "signal_count": 3,
        "regime": "neutral",
        "symbol": "BTC/USD",
        "entry_price": 100.0,
        "exit_price": 110.0,
    }
    fields.update(overrides)
    return TradeProposal(**fields)  # type: ignore[arg-type]


def test_evaluate_lists_every_reason_at_once() -> None:
    decision = GoalValidator().evaluate(
        _entry(confidence=0.5, signal_count=1, regime="downtrend", expected_move=0.001)
    )
    assert decision.approved is False
    assert set(decision.codes) == {
        RefusalCode.CONFIDENCE_BELOW_THRESHOLD,
        RefusalCode.TOO_FEW_SIGNALS,
        RefusalCode.BUY_IN_DOWNTREND,
        RefusalCode.MOVE_BELOW_FEES,
    }
    assert len(decision.reasons) == 4
    assert any("0.5000 is below 0.70" in reason for reason in decision.reasons)


def test_evaluate_approves_a_good_entry_with_no_reasons() -> None:
    decision = GoalValidator().evaluate(_entry())
    assert decision.approved is True
    assert decision.refusals == ()
    assert decision.decided_at.tzinfo is UTC


# --- Rule 2: entries must clear round-trip fees plus the margin ---------------------------


def test_entry_hurdle_is_two_maker_fees_plus_margin() -> None:
    assert required_entry_move(FeeSchedule(), LAW) == pytest.approx(2 * 0.004 + 0.001)


@pytest.mark.parametrize(
    ("move", "approved"),
    [
        (0.009, True),
        (0.0090001, True),
        (0.0089999, False),
        (0.008, False),  # clears the fees alone, not the margin
        (-0.05, False),
    ],
)
def test_entry_rule_boundary_with_default_fees(move: float, approved: bool) -> None:
    decision = GoalValidator().evaluate(_entry(expected_move=move))
    assert decision.approved is approved
    if not approved:
        assert decision.codes == [RefusalCode.MOVE_BELOW_FEES]
        assert decision.refusals[0].rule == 2


def test_entry_hurdle_follows_the_exchange_fee_schedule() -> None:
    cheap = GoalValidator(fees=FeeSchedule(maker=0.001, taker=0.002))
    assert cheap.evaluate(_entry(expected_move=0.0031)).approved is True
    assert cheap.evaluate(_entry(expected_move=0.0029)).approved is False


@pytest.mark.parametrize(
    ("move", "code"),
    [
        (None, RefusalCode.EXPECTED_MOVE_MISSING),
        (math.nan, RefusalCode.INVALID_EXPECTED_MOVE),
        (math.inf, RefusalCode.INVALID_EXPECTED_MOVE),
        ("2%", RefusalCode.INVALID_EXPECTED_MOVE),
    ],
)
def test_entry_without_a_usable_expected_move_is_refused(move: object, code: RefusalCode) -> None:
    decision = GoalValidator().evaluate(_entry(expected_move=move))
    assert decision.approved is False
    assert decision.codes == [code]


# --- Rule 1: no signal exit may realise a loss after fees ---------------------------------


def test_breakeven_price_covers_both_fees() -> None:
    price = breakeven_exit_price(100.0, 0.004, FeeSchedule())
    assert price == pytest.approx(100.0 * 1.004 / 0.996)
    assert price * (1 - 0.004) == pytest.approx(100.0 * 1.004)


@pytest.mark.parametrize(
    ("factor", "approved"), [(1 + 1e-9, True), (1 - 1e-9, False), (1.05, True), (0.9, False)]
)
def test_exit_rule_boundary_with_fees(factor: float, approved: bool) -> None:
    breakeven = breakeven_exit_price(100.0, 0.004, FeeSchedule())
    decision = GoalValidator().evaluate(_exit(exit_price=breakeven * factor))
    assert decision.approved is approved
    if not approved:
        assert decision.codes == [RefusalCode.EXIT_REALISES_LOSS]
        assert decision.refusals[0].rule == 1


def test_a_nominal_gain_smaller_than_fees_is_a_loss() -> None:
    # +0.5% on price, but 0.8% of fees: refused.
    assert GoalValidator().evaluate(_exit(exit_price=100.5)).approved is False


def test_breaking_even_exactly_is_not_a_loss() -> None:
    feeless = GoalValidator(fees=FeeSchedule(maker=0.0, taker=0.0))
    decision = feeless.evaluate(_exit(entry_price=100.0, exit_price=100.0, entry_fee_rate=0.0))
    assert decision.approved is True


def test_the_entry_fee_actually_paid_counts() -> None:
    # Entered as a taker (0.6%): the break-even is higher than after a maker entry.
    maker_breakeven = breakeven_exit_price(100.0, 0.004, FeeSchedule())
    exit_price = maker_breakeven * (1 + 1e-6)
    validator = GoalValidator()
    assert validator.evaluate(_exit(exit_price=exit_price)).approved is True
    assert validator.evaluate(_exit(exit_price=exit_price, entry_fee_rate=0.006)).approved is False


# Before issue 10 this test approved any SELL that called itself a stop-loss, at any price:
# a risk exit was the caller's word. Now a stop is valid only at the stop stored with the
# entry's approval, and a HARDSTOP flatten only while the latch is up.
@pytest.mark.parametrize("reason", [ExitReason.STOP_LOSS, "stop_loss"])
def test_a_stop_loss_may_realise_a_loss_only_at_its_stored_stop(reason: object) -> None:
    validator = GoalValidator()
    at_stop = validator.evaluate(
        _exit(exit_price=80.0, exit_reason=reason, confidence=0.1, signal_count=0, stop_price=80.0)
    )
    assert at_stop.approved is True
    assert at_stop.price_bound == 80.0
    # The reproducer: SELL entry=100 exit=1 exit_reason='stop_loss' was approved.
    anywhere = validator.evaluate(_exit(exit_price=1.0, exit_reason=reason))
    assert anywhere.approved is False
    assert anywhere.codes == [RefusalCode.STOP_PRICE_MISSING]
    elsewhere = validator.evaluate(_exit(exit_price=1.0, exit_reason=reason, stop_price=80.0))
    assert elsewhere.codes == [RefusalCode.NOT_THE_STORED_STOP]


def test_a_hardstop_flatten_may_realise_a_loss_only_while_the_latch_is_up() -> None:
    validator = GoalValidator()
    raised = validator.evaluate(
        _exit(exit_price=60.0, exit_reason=ExitReason.HARDSTOP, hardstop_active=True)
    )
    assert raised.approved is True
    assert raised.price_bound is None  # any price, while the latch is up
    claimed = validator.evaluate(_exit(exit_price=60.0, exit_reason=ExitReason.HARDSTOP))
    assert claimed.codes == [RefusalCode.HARDSTOP_NOT_ACTIVE]


def test_a_buy_cannot_claim_to_be_a_risk_exit() -> None:
    decision = GoalValidator().evaluate(
        _entry(confidence=0.1, signal_count=0, exit_reason=ExitReason.HARDSTOP)
    )
    assert decision.approved is False


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"entry_price": None}, RefusalCode.EXIT_PRICES_MISSING),
        ({"exit_price": None}, RefusalCode.EXIT_PRICES_MISSING),
        ({"exit_price": math.nan}, RefusalCode.INVALID_PRICE),
        ({"entry_price": -1.0}, RefusalCode.INVALID_PRICE),
        ({"entry_price": 0.0}, RefusalCode.INVALID_PRICE),
        ({"entry_fee_rate": 1.5}, RefusalCode.INVALID_FEE),
        ({"exit_reason": "panic"}, RefusalCode.INVALID_EXIT_REASON),
    ],
)
def test_signal_exit_without_usable_prices_is_refused(
    overrides: dict[str, object], code: RefusalCode
) -> None:
    decision = GoalValidator().evaluate(_exit(**overrides))
    assert decision.approved is False
    assert code in decision.codes


# --- Thresholds can only be tightened ----------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_confidence": 0.69},
        {"min_confidence": 1.01},
        {"min_confidence": math.nan},
        {"min_signal_count": 1},
        {"min_signal_count": 2.5},
        {"entry_margin": -0.001},
    ],
)
def test_thresholds_looser_than_the_law_cannot_be_built(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        GoalThresholds(**kwargs)  # type: ignore[arg-type]


def test_tightened_ignores_looser_values() -> None:
    strict = GoalThresholds(min_confidence=0.8, min_signal_count=3, entry_margin=0.002)
    same = strict.tightened(min_confidence=0.7, min_signal_count=2, entry_margin=0.0)
    assert same == strict
    stricter = strict.tightened(min_confidence=0.9)
    assert stricter.min_confidence == 0.9
    assert stricter.at_least_as_strict_as(strict)


def test_per_call_thresholds_can_only_tighten_the_validator() -> None:
    validator = GoalValidator(thresholds=GoalThresholds(min_confidence=0.8))
    assert validator.evaluate(_entry(confidence=0.75)).approved is False
    # A caller passing the (looser) law does not loosen the validator's 0.8.
    assert validator.evaluate(_entry(confidence=0.75), thresholds=LAW).approved is False
    tighter = GoalThresholds(min_confidence=0.9)
    assert validator.evaluate(_entry(confidence=0.85), thresholds=tighter).approved is False
    assert validator.evaluate(_entry(confidence=0.95), thresholds=tighter).approved is True


# --- Every decision is recorded -----------------------------------------------------------


def test_every_decision_taken_or_refused_is_recorded() -> None:
    recorder = MemoryDecisionRecorder()
    validator = GoalValidator(recorder=recorder)
    taken = validator.evaluate(_entry())
    refused = validator.evaluate(_entry(confidence=0.1))
    assert recorder.decisions == [taken, refused]
    assert [d.approved for d in recorder.decisions] == [True, False]


class _BrokenRecorder:
    def record(self, decision: TradeDecision) -> None:
        raise ConnectionError("database is down")


def test_an_approval_that_cannot_be_recorded_becomes_a_refusal() -> None:
    decision = GoalValidator(recorder=_BrokenRecorder()).evaluate(_entry())
    assert decision.approved is False
    assert decision.codes == [RefusalCode.AUDIT_UNAVAILABLE]
    assert "database is down" in decision.reasons[0]


def test_decision_record_is_strict_json_even_for_garbage_inputs() -> None:
    clock = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    decision = GoalValidator(clock=lambda: clock).evaluate(
        _entry(confidence=math.nan, signal_count=object(), expected_move=math.inf)
    )
    record = decision.to_record()
    encoded = json.dumps(record, allow_nan=False)
    assert decision.approved is False
    assert record["decided_at"] == "2026-01-02T03:04:05+00:00"
    assert record["inputs"]["confidence"] == "nan"
    assert {r["code"] for r in json.loads(encoded)["refusals"]} >= {
        "invalid_confidence",
        "invalid_signal_count",
        "invalid_expected_move",
    }
