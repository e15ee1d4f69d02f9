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
class EntryPlan:
    """An approved or refused entry. Fractions: of equity (size), of entry price (stop, tp)."""

    decision: TradeDecision
    size_fraction: float = 0.0
    stop_fraction: float = math.nan
    take_profit_fraction: float = math.nan

    @property
    def place(self) -> bool:
        return self.decision.approved and self.size_fraction > 0.0


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
) -> EntryPlan:
    """Judge a BUY at ``price`` (quote per unit) on ``bar``'s close and size it if approved."""
    proposal = TradeProposal(
        side=Side.BUY,
        confidence=_at(signals.confidence, bar),
        signal_count=int(signals.signal_count[bar]) if signals.signal_count is not None else None,
        regime=_regime(signals, bar),
        symbol=pair,
        expected_move=_at(signals.expected_move, bar),
        context=context,
    )
    decision = validator.evaluate(proposal, thresholds=risk.goal_thresholds(account))
    if not decision.approved:
        return EntryPlan(decision)
    atr = _at(signals.atr, bar)
    size = risk.position_size(account, price, atr if atr is not None else math.nan)
    if size.is_zero:
        return EntryPlan(decision)
    take_profit = strategy.take_profit
    if take_profit is None:
        take_profit = _at(signals.expected_move, bar) or math.nan
    return EntryPlan(
        decision=decision,
        size_fraction=size.notional / account.equity,
        stop_fraction=(price - size.stop_price) / price,
        take_profit_fraction=take_profit,
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
) -> TradeDecision:
    """Judge a signal SELL at ``price``: rule 1 refuses it if it would realise a loss."""
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
