"""The rules in force: one object, built once from the settings, used by every path.

The engine, the backtest, the paper replay and ``nettrace rules`` all take their GoalValidator
thresholds and risk limits from ``RulesInForce.from_settings`` -- the same construction, so
what ``nettrace rules`` prints is what decides. Settings can only tighten the law: a looser
value is refused by ``Settings`` itself (one line naming it, exit code 2 at the CLI), and
``GoalThresholds`` refuses to be built looser a second time, underneath.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from nettrace.agents.agent_goals import (
    HARDSTOP_DAILY_LOSS,
    LAW,
    RULES,
    DecisionRecorder,
    GoalThresholds,
    GoalValidator,
    required_entry_move,
)
from nettrace.agents.risk_controller import RiskController, RiskLimits
from nettrace.config.settings import Settings
from nettrace.domain.fees import FeeSchedule

HardstopAction = Literal["halt", "flatten"]


@dataclass(frozen=True, slots=True)
class RulesInForce:
    """The thresholds, risk limits and HARDSTOP policy every decision is judged with."""

    thresholds: GoalThresholds
    limits: RiskLimits
    hardstop_action: HardstopAction = "halt"

    @classmethod
    def from_settings(cls, settings: Settings) -> RulesInForce:
        return cls(
            thresholds=settings.goal_thresholds(),
            limits=settings.risk_limits(),
            hardstop_action=settings.hardstop_action,
        )

    def risk(self) -> RiskController:
        return RiskController(self.limits)

    def validator(
        self,
        fees: FeeSchedule,
        recorder: DecisionRecorder | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> GoalValidator:
        return GoalValidator(self.thresholds, fees, recorder, clock)

    def to_json(self, fees: FeeSchedule) -> dict[str, Any]:
        """What ``nettrace rules --json`` prints: everything a decision is judged with."""
        return {
            "rules": [asdict(rule) for rule in RULES],
            "thresholds": {"law": asdict(LAW), "in_force": asdict(self.thresholds)},
            "fees": asdict(fees),
            "required_entry_move": required_entry_move(fees, self.thresholds),
            "hardstop_daily_loss": HARDSTOP_DAILY_LOSS,
            "hardstop_action": self.hardstop_action,
            "risk_limits": asdict(self.limits),
        }
