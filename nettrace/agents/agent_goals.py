"""The operator's three rules and the ``GoalValidator`` that every order passes through.

This module is the single source of truth for the trading rules (DESIGN §1, §3). The
thresholds below are law: configuration and the risk controller may *tighten* them, never
loosen them, and ``GoalThresholds`` refuses to be built looser.

The validator fails closed. Any input it cannot make sense of -- NaN, infinities, values out
of range, ``None``, unknown sides or regimes, wrong types -- yields a refusal that names the
problem, never an exception, because an exception in the trading path could skip a check.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, Protocol

from nettrace.domain.fees import FeeSchedule
from nettrace.domain.numbers import finite_float, strict_int
from nettrace.domain.types import ExitReason, Regime, Side, parse_regime, parse_side


def _log() -> Any:
    """The module's logger, imported on first use: the rules load without structlog (~0.1 s)."""
    import structlog

    return structlog.get_logger(__name__)


# --- The law -----------------------------------------------------------------------------------
#: Lowest aggregated confidence (a fraction in [0, 1]) at which a signal-driven order may be placed.
MIN_CONFIDENCE = 0.70
#: Fewest distinct, agreeing signal generators needed for a signal-driven order.
MIN_SIGNAL_COUNT = 2
#: Expected move an entry must clear *on top of* round-trip maker fees (fraction of price).
DEFAULT_ENTRY_MARGIN = 0.001
#: HARDSTOP: trading halts everywhere when equity falls more than this fraction below its value
#: at the start of the UTC day (mark-to-market, unrealised losses count).
HARDSTOP_DAILY_LOSS = 0.05
#: Relative slack on the fee comparisons, for float representation only (2 x 0.004 + 0.001 is
#: 0.009000000000000001 in binary): an expected move of exactly 0.9% meets a 0.9% hurdle. It is
#: orders of magnitude below any exchange's price tick, so it never lets a real loss through.
FLOAT_TOLERANCE = 1e-12


@dataclass(frozen=True, slots=True)
class Rule:
    """One of the operator's immutable rules and how the system enforces it."""

    number: int
    name: str
    enforcement: str


RULES: tuple[Rule, ...] = (
    Rule(
        1,
        "Never lose money",
        "A SELL that would realise a loss after fees is refused unless it is a risk exit: a "
        "stop-loss at the stop the risk controller stored with the entry, or a HARDSTOP "
        "flatten while HARDSTOP is up. Every approval binds a price the order must respect.",
    ),
    Rule(
        2,
        "Always make money",
        "An entry's expected move must clear round-trip maker fees (2 x maker fee) plus a margin.",
    ),
    Rule(
        3,
        "Grow money faster",
        "Only high-conviction trades: confidence >= the threshold from at least the minimum "
        "number of agreeing signal generators, and no buying into a downtrend.",
    ),
)


class RefusalCode(StrEnum):
    """Machine-readable reasons for a refusal; stable strings stored in the audit trail."""

    INVALID_CONFIDENCE = "invalid_confidence"
    CONFIDENCE_BELOW_THRESHOLD = "confidence_below_threshold"
    INVALID_SIGNAL_COUNT = "invalid_signal_count"
    TOO_FEW_SIGNALS = "too_few_signals"
    UNKNOWN_SIDE = "unknown_side"
    UNKNOWN_REGIME = "unknown_regime"
    BUY_IN_DOWNTREND = "buy_in_downtrend"
    EXPECTED_MOVE_MISSING = "expected_move_missing"
    INVALID_EXPECTED_MOVE = "invalid_expected_move"
    MOVE_BELOW_FEES = "move_below_fees"
    EXIT_PRICES_MISSING = "exit_prices_missing"
    INVALID_PRICE = "invalid_price"
    INVALID_FEE = "invalid_fee"
    EXIT_REALISES_LOSS = "exit_realises_loss"
    INVALID_EXIT_REASON = "invalid_exit_reason"
    STOP_PRICE_MISSING = "stop_price_missing"
    NOT_THE_STORED_STOP = "not_the_stored_stop"
    HARDSTOP_NOT_ACTIVE = "hardstop_not_active"
    AUDIT_UNAVAILABLE = "audit_unavailable"
    INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a proposal was refused: a stable code, the rule it protects (if any) and a sentence."""

    code: RefusalCode
    message: str
    rule: int | None = None

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class GoalThresholds:
    """The gate's thresholds. Construction refuses anything looser than the law.

    ``min_confidence`` is a fraction in [0, 1]; ``entry_margin`` is a fraction of price added to
    the round-trip maker fee when checking an entry's expected move.
    """

    min_confidence: float = MIN_CONFIDENCE
    min_signal_count: int = MIN_SIGNAL_COUNT
    entry_margin: float = DEFAULT_ENTRY_MARGIN

    def __post_init__(self) -> None:
        confidence = finite_float(self.min_confidence)
        if confidence is None or not MIN_CONFIDENCE <= confidence <= 1.0:
            raise ValueError(
                f"min_confidence must be in [{MIN_CONFIDENCE}, 1.0], got {self.min_confidence!r}"
            )
        count = strict_int(self.min_signal_count)
        if count is None or count < MIN_SIGNAL_COUNT:
            raise ValueError(
                f"min_signal_count must be an integer >= {MIN_SIGNAL_COUNT}, "
                f"got {self.min_signal_count!r}"
            )
        margin = finite_float(self.entry_margin)
        if margin is None or not 0.0 <= margin < 1.0:
            raise ValueError(f"entry_margin must be in [0, 1), got {self.entry_margin!r}")

    def tightened(
        self,
        *,
        min_confidence: float | None = None,
        min_signal_count: int | None = None,
        entry_margin: float | None = None,
    ) -> GoalThresholds:
        """Return thresholds at least as strict as these; a looser value is ignored, not applied."""
        return GoalThresholds(
            min_confidence=max(self.min_confidence, min_confidence or 0.0),
            min_signal_count=max(self.min_signal_count, min_signal_count or 0),
            entry_margin=max(self.entry_margin, entry_margin or 0.0),
        )

    def at_least_as_strict_as(self, other: GoalThresholds) -> bool:
        return (
            self.min_confidence >= other.min_confidence
            and self.min_signal_count >= other.min_signal_count
            and self.entry_margin >= other.entry_margin
        )


#: The law itself, for callers that need to compare against it.
LAW = GoalThresholds()


@dataclass(frozen=True, slots=True)
class TradeProposal:
    """What a caller wants to do, with everything the rules need to judge it.

    Units: ``confidence`` is a fraction in [0, 1]; ``expected_move`` is a fraction of the entry
    price (0.012 = +1.2%); prices are quote currency per unit of base; fee rates are fractions.
    Fields are typed loosely on purpose (``object``) because the validator must judge garbage
    input too, and refuse it, rather than trust the caller's types.
    """

    side: object
    confidence: object
    signal_count: object
    regime: object
    symbol: str = ""
    #: BUY only: the move the signals expect, as a fraction of price.
    expected_move: object = None
    #: BUY: the intended entry (limit) price, from which the approval's price bound is set.
    #: SELL: the position's cost per unit (quote). ``exit_price``: SELL only, the intended exit.
    entry_price: object = None
    exit_price: object = None
    #: SELL only: the fee rate paid at entry; ``None`` means the schedule's maker rate.
    entry_fee_rate: object = None
    #: SELL only: the fee rate the exit will really pay -- the taker rate for a market or
    #: next-open fill, the maker rate for a post-only limit; ``None`` means the maker rate.
    exit_fee_rate: object = None
    #: SELL only: a risk exit (stop-loss, HARDSTOP) may realise a loss; a signal exit may not.
    exit_reason: object = ExitReason.SIGNAL
    #: SELL stop-loss only: the stop the risk controller set when the entry was approved, as
    #: stored with that approval. A stop-loss exit is valid only at this price: the validator
    #: never takes the caller's word that an exit is a stop.
    stop_price: object = None
    #: SELL HARDSTOP flatten only: whether the HARDSTOP latch is up (read from the store).
    hardstop_active: object = False
    #: What the caller saw (per-generator votes, bar time, price, scouts): stored with the
    #: decision so ``nettrace why`` can explain it; never read by the rules.
    context: Mapping[str, object] | None = None


_PROPOSAL_FIELDS = fields(TradeProposal)


@dataclass(frozen=True, slots=True)
class TradeDecision:
    """The validator's verdict on one proposal, with every reason it was refused."""

    approved: bool
    proposal: TradeProposal
    refusals: tuple[Refusal, ...]
    thresholds: GoalThresholds
    fees: FeeSchedule
    decided_at: datetime
    decision_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    #: The price the approval binds (quote per unit), ``None`` when refused or unbounded.
    #: BUY: the highest entry price that still clears rule 2. SELL signal or take-profit: the
    #: lowest exit price at which the round trip breaks even after both fees as they will be
    #: charged. SELL stop-loss: the stored stop itself. SELL HARDSTOP: ``None`` (any price,
    #: only while the latch is up). The order store refuses an order outside it.
    price_bound: float | None = None

    @property
    def reasons(self) -> list[str]:
        """Human-readable refusal reasons; empty when approved."""
        return [refusal.message for refusal in self.refusals]

    @property
    def codes(self) -> list[RefusalCode]:
        return [refusal.code for refusal in self.refusals]

    def to_record(self) -> dict[str, Any]:
        """A JSON-serialisable form for the audit trail (values: str, number, bool or None)."""
        # Field by field, not ``asdict``: asdict deep-copies the context on the decision path.
        proposal = {f.name: _jsonable(getattr(self.proposal, f.name)) for f in _PROPOSAL_FIELDS}
        return {
            "decision_id": self.decision_id,
            "decided_at": self.decided_at.isoformat(),
            "approved": self.approved,
            "symbol": self.proposal.symbol,
            "inputs": proposal,
            "refusals": [
                {"code": r.code.value, "rule": r.rule, "message": r.message} for r in self.refusals
            ],
            "thresholds": _fields_of(self.thresholds),
            "fees": _fields_of(self.fees),
            "price_bound": self.price_bound,
        }


class DecisionRecorder(Protocol):
    """Anything that durably records decisions (the store implements this)."""

    def record(self, decision: TradeDecision) -> None: ...


class MemoryDecisionRecorder:
    """Keeps decisions in a list: for backtests and tests, where no database is wanted."""

    def __init__(self) -> None:
        self.decisions: list[TradeDecision] = []

    def record(self, decision: TradeDecision) -> None:
        self.decisions.append(decision)


class GoalValidator:
    """The one gate between a trading idea and the exchange.

    ``should_trade`` is the seed's quick check on the law's thresholds. ``evaluate`` is the full
    judgement every order goes through: it applies all three rules, returns a ``TradeDecision``
    with every reason for refusal, and records the decision -- taken or refused -- so the
    operator can ask why the system did or did not trade. If recording fails the decision is
    turned into a refusal, because an order without a recorded approval must not exist.
    """

    def __init__(
        self,
        thresholds: GoalThresholds = LAW,
        fees: FeeSchedule | None = None,
        recorder: DecisionRecorder | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.thresholds = thresholds
        self.fees = fees or FeeSchedule()
        self.recorder = recorder
        self._clock = clock or (lambda: datetime.now(UTC))

    @staticmethod
    def should_trade(
        confidence: object, signal_count: object, side: object, regime: object
    ) -> bool:
        """True only if a signal-driven order passes the law's gate (DESIGN §3).

        confidence >= 0.70, signal_count >= 2 distinct agreeing generators, and not a BUY in a
        downtrend. Anything malformed returns False; this never raises.
        """
        try:
            return not _gate_refusals(confidence, signal_count, side, regime, LAW)
        except Exception:
            return False

    def evaluate(
        self, proposal: TradeProposal, *, thresholds: GoalThresholds | None = None
    ) -> TradeDecision:
        """Judge ``proposal`` against all three rules, record the decision and return it.

        ``thresholds`` lets the risk controller pass tightened thresholds for this call; they
        are combined with the validator's own so that the stricter value always wins.
        """
        effective = self.thresholds
        if thresholds is not None:
            effective = effective.tightened(
                min_confidence=thresholds.min_confidence,
                min_signal_count=thresholds.min_signal_count,
                entry_margin=thresholds.entry_margin,
            )
        try:
            refusals = tuple(self._refusals(proposal, effective))
        except Exception as exc:
            _log().error("goal_validator_internal_error", error=repr(exc))
            refusals = (Refusal(RefusalCode.INTERNAL_ERROR, f"validator error: {exc!r}"),)
        bound = None
        if not refusals:
            try:
                bound = price_bound(proposal, self.fees, effective)
            except Exception as exc:  # fail closed: an approval without its bound is no approval
                refusals = (Refusal(RefusalCode.INTERNAL_ERROR, f"price bound: {exc!r}"),)
        decision = TradeDecision(
            approved=not refusals,
            proposal=proposal,
            refusals=refusals,
            thresholds=effective,
            fees=self.fees,
            decided_at=self._clock(),
            price_bound=bound,
        )
        if self.recorder is None:
            return decision
        try:
            self.recorder.record(decision)
        except Exception as exc:
            _log().error("decision_not_recorded", decision_id=decision.decision_id, error=repr(exc))
            return replace(
                decision,
                approved=False,
                refusals=(
                    *decision.refusals,
                    Refusal(RefusalCode.AUDIT_UNAVAILABLE, f"decision not recorded: {exc!r}"),
                ),
            )
        return decision

    def _refusals(self, proposal: TradeProposal, thresholds: GoalThresholds) -> list[Refusal]:
        side = parse_side(proposal.side)
        exit_reason = _parse_exit_reason(proposal.exit_reason)
        if side is Side.SELL and exit_reason is ExitReason.STOP_LOSS:
            # A stop closes a position whatever the signals say (refusing it would break rule 1
            # harder than taking it) -- but only the stop the risk controller stored with the
            # entry's approval, never a price the caller calls a stop.
            return stop_refusals(proposal.exit_price, proposal.stop_price)
        if side is Side.SELL and exit_reason is ExitReason.HARDSTOP:
            return hardstop_refusals(proposal.hardstop_active)
        entry_fee = self.fees.maker if proposal.entry_fee_rate is None else proposal.entry_fee_rate
        exit_fee = self.fees.maker if proposal.exit_fee_rate is None else proposal.exit_fee_rate
        if side is Side.SELL and exit_reason is ExitReason.TAKE_PROFIT:
            # The entry's own target: the gate was passed at entry; only rule 1 applies now.
            return exit_refusals(
                proposal.entry_price, proposal.exit_price, entry_fee, self.fees, exit_fee
            )
        refusals = _gate_refusals(
            proposal.confidence, proposal.signal_count, proposal.side, proposal.regime, thresholds
        )
        if exit_reason is None:
            refusals.append(
                Refusal(
                    RefusalCode.INVALID_EXIT_REASON,
                    f"exit_reason {proposal.exit_reason!r} is not one of "
                    f"{', '.join(r.value for r in ExitReason)}",
                )
            )
        if side is Side.BUY:
            refusals.extend(
                entry_refusals(proposal.expected_move, self.fees, thresholds, entry_fee, exit_fee)
            )
        elif side is Side.SELL:
            refusals.extend(
                exit_refusals(
                    proposal.entry_price, proposal.exit_price, entry_fee, self.fees, exit_fee
                )
            )
        return refusals


def entry_refusals(
    expected_move: object,
    fees: FeeSchedule,
    thresholds: GoalThresholds = LAW,
    entry_fee_rate: object = None,
    exit_fee_rate: object = None,
) -> list[Refusal]:
    """Rule 2 at entry: the expected move (fraction) must reach the round-trip fees + margin.

    The round trip is priced as it will be charged: ``entry_fee_rate`` and ``exit_fee_rate``
    (``None``: the maker rate, so 2 x maker for a maker strategy; a fill model that takes
    liquidity passes its taker rate).
    """
    entry_fee = finite_float(fees.maker if entry_fee_rate is None else entry_fee_rate)
    exit_fee = finite_float(fees.maker if exit_fee_rate is None else exit_fee_rate)
    if entry_fee is None or exit_fee is None or not (0 <= entry_fee < 1 and 0 <= exit_fee < 1):
        return [
            Refusal(
                RefusalCode.INVALID_FEE,
                f"fee rates {entry_fee_rate!r} / {exit_fee_rate!r} are not fractions in [0, 1)",
                rule=2,
            )
        ]
    if expected_move is None:
        return [
            Refusal(
                RefusalCode.EXPECTED_MOVE_MISSING,
                "expected_move is missing, so rule 2 (clear the fees) cannot be checked",
                rule=2,
            )
        ]
    move = finite_float(expected_move)
    if move is None:
        return [
            Refusal(
                RefusalCode.INVALID_EXPECTED_MOVE,
                f"expected_move {expected_move!r} is not a finite number",
                rule=2,
            )
        ]
    hurdle = required_entry_move(fees, thresholds, entry_fee, exit_fee)
    if move < hurdle - FLOAT_TOLERANCE * max(1.0, abs(hurdle)):
        return [
            Refusal(
                RefusalCode.MOVE_BELOW_FEES,
                f"expected move {move:.4%} does not clear round-trip fees plus margin "
                f"{hurdle:.4%} (fees {entry_fee:.2%} + {exit_fee:.2%} + margin "
                f"{thresholds.entry_margin:.2%})",
                rule=2,
            )
        ]
    return []


def required_entry_move(
    fees: FeeSchedule,
    thresholds: GoalThresholds = LAW,
    entry_fee_rate: float | None = None,
    exit_fee_rate: float | None = None,
) -> float:
    """The smallest expected move (fraction of price) an entry may have: the round-trip fees
    (2 x maker unless other rates are given) plus the margin."""
    if entry_fee_rate is None and exit_fee_rate is None:
        return fees.round_trip_maker + thresholds.entry_margin
    entry_fee = fees.maker if entry_fee_rate is None else entry_fee_rate
    exit_fee = fees.maker if exit_fee_rate is None else exit_fee_rate
    return entry_fee + exit_fee + thresholds.entry_margin


def exit_refusals(
    entry_price: object,
    exit_price: object,
    entry_fee_rate: object,
    fees: FeeSchedule,
    exit_fee_rate: object = None,
) -> list[Refusal]:
    """Rule 1 at exit: a signal-driven SELL must not realise a loss after fees.

    Both legs' fees count, as they will really be charged: the position cost
    ``entry_price * (1 + entry_fee_rate)`` per unit, and the exit returns
    ``exit_price * (1 - exit_fee_rate)`` per unit (``None``: the maker rate; a market or
    next-open exit pays the taker rate). Breaking even is not a loss.
    """
    if entry_price is None or exit_price is None:
        return [
            Refusal(
                RefusalCode.EXIT_PRICES_MISSING,
                "entry_price and exit_price are needed to check that the exit realises no loss",
                rule=1,
            )
        ]
    entry, exit_ = finite_float(entry_price), finite_float(exit_price)
    fee = finite_float(entry_fee_rate)
    out_fee = finite_float(fees.maker if exit_fee_rate is None else exit_fee_rate)
    bad = [
        Refusal(RefusalCode.INVALID_PRICE, f"{name} {raw!r} is not a positive finite number", 1)
        for name, raw, value in (
            ("entry_price", entry_price, entry),
            ("exit_price", exit_price, exit_),
        )
        if value is None or value <= 0.0
    ]
    if fee is None or not 0.0 <= fee < 1.0:
        bad.append(
            Refusal(
                RefusalCode.INVALID_FEE,
                f"entry_fee_rate {entry_fee_rate!r} is not a fraction in [0, 1)",
                rule=1,
            )
        )
    if out_fee is None or not 0.0 <= out_fee < 1.0:
        bad.append(
            Refusal(
                RefusalCode.INVALID_FEE,
                f"exit_fee_rate {exit_fee_rate!r} is not a fraction in [0, 1)",
                rule=1,
            )
        )
    if bad or entry is None or exit_ is None or fee is None or out_fee is None:
        return bad
    cost = entry * (1.0 + fee)
    proceeds = exit_ * (1.0 - out_fee)
    if proceeds < cost * (1.0 - FLOAT_TOLERANCE):
        return [
            Refusal(
                RefusalCode.EXIT_REALISES_LOSS,
                f"selling at {exit_:.8g} realises a loss after fees: proceeds {proceeds:.8g} "
                f"< cost {cost:.8g} per unit "
                f"(break-even {breakeven_exit_price(entry, fee, fees, out_fee):.8g})",
                rule=1,
            )
        ]
    return []


def breakeven_exit_price(
    entry_price: float,
    entry_fee_rate: float,
    fees: FeeSchedule,
    exit_fee_rate: float | None = None,
) -> float:
    """The lowest exit price (quote per unit) that realises no loss after both fees.

    ``exit_fee_rate`` is the rate the exit will pay (``None``: the maker rate). Rounded up by
    ``FLOAT_TOLERANCE`` would be wrong here: this is the exact bound, the comparisons that use
    it carry the tolerance.
    """
    exit_fee = fees.maker if exit_fee_rate is None else exit_fee_rate
    return entry_price * (1.0 + entry_fee_rate) / (1.0 - exit_fee)


def max_entry_price(
    decision_price: float,
    expected_move: float,
    fees: FeeSchedule,
    thresholds: GoalThresholds,
    entry_fee_rate: float | None = None,
    exit_fee_rate: float | None = None,
) -> float:
    """The highest entry price that still clears rule 2 for a move expected from
    ``decision_price``: the target ``decision_price * (1 + expected_move)`` must lie at least
    the hurdle (round-trip fees + margin) above the entry."""
    hurdle = required_entry_move(fees, thresholds, entry_fee_rate, exit_fee_rate)
    return decision_price * (1.0 + expected_move) / (1.0 + hurdle)


def price_bound(
    proposal: TradeProposal, fees: FeeSchedule, thresholds: GoalThresholds = LAW
) -> float | None:
    """The price an approval of ``proposal`` binds (see ``TradeDecision.price_bound``).

    ``None`` when the proposal carries no price to bind (the order store then refuses every
    order for it, except a HARDSTOP flatten, which may sell at any price while the latch is up).
    """
    side = parse_side(proposal.side)
    reason = _parse_exit_reason(proposal.exit_reason)
    if side is Side.BUY:
        price, move = finite_float(proposal.entry_price), finite_float(proposal.expected_move)
        if price is None or move is None or price <= 0.0:
            return None
        return max_entry_price(
            price, move, fees, thresholds,
            finite_float(proposal.entry_fee_rate), finite_float(proposal.exit_fee_rate),
        )  # fmt: skip
    if side is not Side.SELL or reason is None or reason is ExitReason.HARDSTOP:
        return None
    if reason is ExitReason.STOP_LOSS:
        return finite_float(proposal.stop_price)
    entry = finite_float(proposal.entry_price)
    entry_fee = finite_float(
        fees.maker if proposal.entry_fee_rate is None else proposal.entry_fee_rate
    )
    exit_fee = finite_float(
        fees.maker if proposal.exit_fee_rate is None else proposal.exit_fee_rate
    )
    if entry is None or entry_fee is None or exit_fee is None:
        return None
    return breakeven_exit_price(entry, entry_fee, fees, exit_fee)


def stop_refusals(exit_price: object, stop_price: object) -> list[Refusal]:
    """A stop-loss exit is valid only at the stop stored with its entry's approval."""
    stop = finite_float(stop_price)
    if stop is None or stop <= 0.0:
        return [
            Refusal(
                RefusalCode.STOP_PRICE_MISSING,
                f"a stop-loss exit needs the stop stored with its entry's approval, got "
                f"{stop_price!r}",
                rule=1,
            )
        ]
    price = finite_float(exit_price)
    if price is None or price <= 0.0:
        return [
            Refusal(
                RefusalCode.INVALID_PRICE,
                f"exit_price {exit_price!r} is not a positive finite number",
                rule=1,
            )
        ]
    if abs(price - stop) > FLOAT_TOLERANCE * stop:
        return [
            Refusal(
                RefusalCode.NOT_THE_STORED_STOP,
                f"a stop-loss at {price:.8g} is not the stop {stop:.8g} the risk controller "
                "set with the entry; only that stop may close at a loss",
                rule=1,
            )
        ]
    return []


def hardstop_refusals(hardstop_active: object) -> list[Refusal]:
    """A HARDSTOP flatten may close at a loss, but only while the latch is up."""
    if hardstop_active is True:
        return []
    return [
        Refusal(
            RefusalCode.HARDSTOP_NOT_ACTIVE,
            "a HARDSTOP exit is valid only while HARDSTOP is raised",
            rule=1,
        )
    ]


def _gate_refusals(
    confidence: object,
    signal_count: object,
    side: object,
    regime: object,
    thresholds: GoalThresholds,
) -> list[Refusal]:
    """Rule 3's gate: conviction, agreement and trend. Collects every failing reason."""
    refusals: list[Refusal] = []
    conf = finite_float(confidence)
    if conf is None or not 0.0 <= conf <= 1.0:
        refusals.append(
            Refusal(
                RefusalCode.INVALID_CONFIDENCE,
                f"confidence {confidence!r} is not a number in [0, 1]",
                rule=3,
            )
        )
    elif conf < thresholds.min_confidence:
        refusals.append(
            Refusal(
                RefusalCode.CONFIDENCE_BELOW_THRESHOLD,
                f"confidence {conf:.4f} is below {thresholds.min_confidence:.2f}",
                rule=3,
            )
        )
    count = strict_int(signal_count)
    if count is None or count < 0:
        refusals.append(
            Refusal(
                RefusalCode.INVALID_SIGNAL_COUNT,
                f"signal_count {signal_count!r} is not a non-negative integer",
                rule=3,
            )
        )
    elif count < thresholds.min_signal_count:
        refusals.append(
            Refusal(
                RefusalCode.TOO_FEW_SIGNALS,
                f"only {count} agreeing signal(s); {thresholds.min_signal_count} needed",
                rule=3,
            )
        )
    parsed_side = parse_side(side)
    parsed_regime = parse_regime(regime)
    if parsed_side is None:
        refusals.append(
            Refusal(RefusalCode.UNKNOWN_SIDE, f"side {side!r} is not BUY or SELL", rule=3)
        )
    if parsed_regime is None:
        refusals.append(
            Refusal(
                RefusalCode.UNKNOWN_REGIME,
                f"regime {regime!r} is not uptrend, downtrend or neutral",
                rule=3,
            )
        )
    if parsed_side is Side.BUY and parsed_regime is Regime.DOWNTREND:
        refusals.append(Refusal(RefusalCode.BUY_IN_DOWNTREND, "no buying in a downtrend", rule=3))
    return refusals


def _parse_exit_reason(value: object) -> ExitReason | None:
    if isinstance(value, ExitReason):
        return value
    if isinstance(value, str):
        try:
            return ExitReason(value.strip().lower())
        except ValueError:
            return None
    return None


@lru_cache(maxsize=256)
def _frozen_fields(value: GoalThresholds | FeeSchedule) -> tuple[tuple[str, Any], ...]:
    return tuple(asdict(value).items())


def _fields_of(value: GoalThresholds | FeeSchedule) -> dict[str, Any]:
    """``asdict`` of a frozen, flat dataclass, remembered: every decision records the same
    few thresholds and fee schedules, and ``asdict``'s deep copy was a tenth of the record's
    cost on the decision path. A new dict each time, so no caller can change another's."""
    return dict(_frozen_fields(value))


#: Exact types ``_jsonable`` returns as they are (checked by ``type`` first: the record is built
#: on the decision path, and the ABC ``isinstance`` chain below cost most of it).
_PLAIN_TYPES: frozenset[type] = frozenset({type(None), bool, int, str})


def _jsonable(value: object) -> object:
    """Turn a proposal field into something JSON can hold without losing what it was."""
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else repr(value)  # type: ignore[arg-type]
    if kind in _PLAIN_TYPES:
        return value
    if kind is dict:
        return {str(key): _jsonable(item) for key, item in value.items()}  # type: ignore[attr-defined]
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return repr(value)
