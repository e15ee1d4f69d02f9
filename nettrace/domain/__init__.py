"""Plain domain types shared by every layer. Nothing here imports anything above it."""

from nettrace.domain.fees import FeeSchedule
from nettrace.domain.portfolio import Holding, PortfolioSnapshot
from nettrace.domain.types import (
    ExitReason,
    OrderState,
    Regime,
    Side,
    StrategyStage,
    parse_regime,
    parse_side,
)

__all__ = [
    "ExitReason",
    "FeeSchedule",
    "Holding",
    "OrderState",
    "PortfolioSnapshot",
    "Regime",
    "Side",
    "StrategyStage",
    "parse_regime",
    "parse_side",
]
