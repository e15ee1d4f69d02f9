"""Turning a strategy's wish at one bar into a judged, sized order intent.

These are the functions every mode calls -- the backtest engine at a paused kernel bar, and
the paper/live engines on each closed bar -- so that a decision is made one way only: the
GoalValidator judges it (and records it), the risk controller tightens the thresholds and
sizes it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from nettrace.agents.agent_goals import GoalValidator, TradeDecision, TradeProposal
from nettrace.agents.risk_controller import AccountState, RiskController
from nettrace.domain.types import ExitReason, Side
from nettrace.strategies.base import Strategy, StrategySignals

REGIME_LABELS = {1: "uptrend", -1: "downtrend", 0: "neutral"}


@dataclass(frozen=True, slots=True)
class ChargedFees:
    """The fee rates each leg will really be charged (fractions), by the fill model or venue.

    Rule 2 prices the round trip with ``entry`` + ``exit``; rule 1 bounds a signal exit with
    ``exit`` and a take-profit with ``take_profit``. A maker strategy pays the maker rate on
    all three; a next-open fill model pays the taker rate on the entry and the signal exit.
    """

    entry: float
    exit: float
    take_profit: float

    @classmethod
    def maker(cls, validator: GoalValidator) -> ChargedFees:
        rate = validator.fees.maker
        return cls(rate, rate, rate)


@dataclass(frozen=True, slots=True)
class EntryPlan:
    """An approved or refused entry. Fractions: of equity (size), of entry price (tp);
    ``stop_price`` is absolute (quote per unit) and stored with the approval."""

    decision: TradeDecision
    size_fraction: float = 0.0
    stop_fraction: float = math.nan
    take_profit_fraction: float = math.nan
    stop_price: float = math.nan

    @property
    def place(self) -> bool:
        return self.decision.approved and self.size_fraction > 0.0

    @property
    def price_bound(self) -> float:
        """The highest entry price the approval allows (NaN when there is none)."""
        bound = self.decision.price_bound
        return math.nan if bound is None else bound


def decide_entry(
    strategy: Strategy,
    signals: StrategySignals,
    bar: int,
    pair: str,
    price: float,
    account: AccountState,
    validator: GoalValidator,
    risk: RiskController,
    context: Mapping[str, object] | None = None,
    charged: ChargedFees | None = None,
) -> EntryPlan:
    """Judge a BUY at ``price`` (quote per unit) on ``bar``'s close and size it if approved.

    The risk controller sizes the entry and sets its stop *before* the validator judges it,
    so the approval is stored with that stop (a later stop-loss exit is valid only there) and
    binds the entry price (``TradeDecision.price_bound``). The take-profit comes from the
    risk controller (or the strategy's own), the expected move that rule 2 checks from the
    strategy's estimate; the decision records both. A take-profit that could not pay both
    fees is dropped rather than placed: the approval of a take-profit exit must respect rule 1.
    """
    charged = charged or ChargedFees.maker(validator)
    atr = _at(signals.atr, bar)
    size = risk.position_size(account, price, atr if atr is not None else math.nan)
    stop_fraction = (price - size.stop_price) / price if not size.is_zero else math.nan
    stop_price = price * (1.0 - stop_fraction) if not size.is_zero else math.nan
    take_profit = strategy.take_profit
    if take_profit is None:
        take_profit = risk.take_profit_fraction(price, atr if atr is not None else math.nan)
    breakeven = (1.0 + charged.entry) / (1.0 - charged.take_profit) - 1.0
    if not take_profit >= breakeven:
        take_profit = math.nan  # never placed: it would sell at a loss (or it is unusable)
    expected_move = _at(signals.expected_move, bar)
    proposal = TradeProposal(
        side=Side.BUY,
        confidence=_at(signals.confidence, bar),
        signal_count=int(signals.signal_count[bar]) if signals.signal_count is not None else None,
        regime=_regime(signals, bar),
        symbol=pair,
        expected_move=expected_move,
        entry_price=price,
        entry_fee_rate=charged.entry,
        exit_fee_rate=charged.exit,
        stop_price=None if size.is_zero else stop_price,
        context={
            **(context or {}),
            "take_profit_fraction": None if math.isnan(take_profit) else take_profit,
            "expected_move_method": strategy.expected_move_method,
        },
    )
    decision = validator.evaluate(proposal, thresholds=risk.goal_thresholds(account))
    if not decision.approved or size.is_zero:
        return EntryPlan(decision)
    return EntryPlan(
        decision=decision,
        size_fraction=size.notional / account.equity,
        stop_fraction=stop_fraction,
        take_profit_fraction=take_profit,
        stop_price=stop_price,
    )


def decide_exit(
    signals: StrategySignals,
    bar: int,
    pair: str,
    price: float,
    entry_price: float,
    entry_fee_rate: float,
    validator: GoalValidator,
    context: Mapping[str, object] | None = None,
    exit_fee_rate: float | None = None,
) -> TradeDecision:
    """Judge a signal SELL at ``price``: rule 1 refuses it if it would realise a loss.

    ``exit_fee_rate`` is what the exit will pay (``None``: maker). An approval binds the
    lowest exit price (``price_bound``): every reprice of this exit stays at or above it.
    """
    return validator.evaluate(
        TradeProposal(
            side=Side.SELL,
            confidence=_at(signals.confidence, bar),
            signal_count=int(signals.signal_count[bar])
            if signals.signal_count is not None
            else None,
            regime=_regime(signals, bar),
            symbol=pair,
            entry_price=entry_price,
            exit_price=price,
            entry_fee_rate=entry_fee_rate,
            exit_fee_rate=exit_fee_rate,
            exit_reason=ExitReason.SIGNAL,
            context=context,
        )
    )


def _at(values: object, bar: int) -> float | None:
    if values is None:
        return None
    value = float(values[bar])  # type: ignore[index]
    return value if math.isfinite(value) else math.nan


def _regime(signals: StrategySignals, bar: int) -> str | None:
    if signals.regime is None:
        return None
    return REGIME_LABELS.get(int(signals.regime[bar]))
