"""Dynamic risk parameters: how big, how far the stop, how much exposure, how strict the gate.

The defaults in ``RiskLimits`` are the only place trading-size literals live; agents ask this
controller and never hard-code a size or a stop. Everything scales with the account's state:
size shrinks linearly as drawdown grows and reaches zero at ``max_drawdown``, and the
GoalValidator's thresholds rise towards ``max_tightened_confidence`` -- the controller can only
tighten the validator, never loosen it.

Units: ``equity``, ``exposure`` and notionals are quote currency; ``price`` and ``atr`` are quote
per unit of base; ``drawdown`` and every ``*_fraction`` are fractions (0.05 = 5%).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nettrace.agents.agent_goals import FLOAT_TOLERANCE, LAW, GoalThresholds
from nettrace.domain.numbers import finite_float
from nettrace.domain.types import ExitReason


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The account-wide risk budget. Every field is a fraction unless it says otherwise."""

    #: Largest single position, as a fraction of equity, before any drawdown scaling.
    max_position_fraction: float = 0.10
    #: Equity lost if the stop is hit, as a fraction of equity (the per-trade risk budget).
    risk_per_trade: float = 0.01
    #: Stop distance in multiples of ATR.
    atr_stop_multiple: float = 2.0
    #: Most positions open at once (a count).
    max_open_positions: int = 5
    #: Sum of open notionals, as a fraction of equity.
    max_total_exposure: float = 0.50
    #: Drawdown from peak equity at which new positions shrink to zero.
    max_drawdown: float = 0.20
    #: Highest confidence threshold the controller will demand as drawdown deepens.
    max_tightened_confidence: float = 0.90
    #: Take-profit distance in multiples of ATR (with the 2-ATR stop, 1.5 : 1 reward to risk).
    #: It is the exit's target, not rule 2's expected move: the strategy estimates that.
    take_profit_atr_multiple: float = 3.0
    #: How often an unfilled exit follows the touch (never below its approval's price bound)
    #: before it is left to its bracket and a new exit signal (a count).
    max_exit_reprices: int = 200
    #: Bars an entry may wait unfilled before its signal counts as expired (a count).
    entry_ttl_bars: int = 1

    def __post_init__(self) -> None:
        fractions = {
            "max_position_fraction": self.max_position_fraction,
            "risk_per_trade": self.risk_per_trade,
            "max_total_exposure": self.max_total_exposure,
            "max_drawdown": self.max_drawdown,
        }
        for name, value in fractions.items():
            if not (_finite(value) and 0.0 < value <= 1.0):
                raise ValueError(f"{name} must be a fraction in (0, 1], got {value!r}")
        for name in ("atr_stop_multiple", "take_profit_atr_multiple"):
            value = getattr(self, name)
            if not (_finite(value) and value > 0.0):
                raise ValueError(f"{name} must be > 0, got {value!r}")
        for name, least in (("max_open_positions", 1), ("max_exit_reprices", 0),
                            ("entry_ttl_bars", 1)):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, int) and value >= least):
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
        if not (
            _finite(self.max_tightened_confidence)
            and LAW.min_confidence <= self.max_tightened_confidence <= 1.0
        ):
            raise ValueError(
                "max_tightened_confidence must be in "
                f"[{LAW.min_confidence}, 1.0], got {self.max_tightened_confidence!r}"
            )


@dataclass(frozen=True, slots=True)
class AccountState:
    """What the controller needs to know about the account (quote currency)."""

    equity: float
    peak_equity: float
    open_positions: int = 0
    exposure: float = 0.0

    @property
    def drawdown(self) -> float:
        """Fractional fall from peak equity, in [0, 1]; 1.0 when the inputs make no sense."""
        if not (_finite(self.equity) and _finite(self.peak_equity) and self.peak_equity > 0):
            return 1.0
        return min(1.0, max(0.0, 1.0 - self.equity / self.peak_equity))


@dataclass(frozen=True, slots=True)
class PositionSize:
    """A sizing verdict. ``quantity`` is base units, ``notional`` quote; zero means do not enter."""

    quantity: float
    notional: float
    stop_price: float
    limited_by: str

    @property
    def is_zero(self) -> bool:
        return self.quantity <= 0.0


NO_POSITION = PositionSize(0.0, 0.0, 0.0, "invalid input")


class RiskController:
    """Turns the account's state and a symbol's volatility into size, stop and gate thresholds."""

    def __init__(self, limits: RiskLimits | None = None) -> None:
        self.limits = limits or RiskLimits()

    def drawdown_scale(self, drawdown: float) -> float:
        """Multiplier in [0, 1] on new risk: 1 at no drawdown, 0 at ``max_drawdown`` or beyond."""
        if not _finite(drawdown):
            return 0.0
        # Drawdown is computed as 1 - equity/peak, which lands a few ulps short of the limit
        # when the account is exactly at it; that must size zero, not a dust position.
        if drawdown >= self.limits.max_drawdown - FLOAT_TOLERANCE:
            return 0.0
        return max(0.0, 1.0 - max(0.0, drawdown) / self.limits.max_drawdown)

    def stop_distance(self, atr: float) -> float:
        """Stop distance in quote per unit: ``atr_stop_multiple`` x ATR (0 if ATR is unusable)."""
        if not (_finite(atr) and atr > 0.0):
            return 0.0
        return self.limits.atr_stop_multiple * atr

    def take_profit_fraction(self, entry_price: float, atr: float) -> float:
        """The take-profit's distance above the entry, as a fraction (NaN if ATR is unusable)."""
        if not (_finite(atr) and atr > 0.0 and _finite(entry_price) and entry_price > 0.0):
            return math.nan
        return self.limits.take_profit_atr_multiple * atr / entry_price

    def stop_price(self, entry_price: float, atr: float) -> float:
        """Where a long entered at ``entry_price`` is stopped out (quote per unit)."""
        return max(0.0, entry_price - self.stop_distance(atr))

    def position_size(self, account: AccountState, price: float, atr: float) -> PositionSize:
        """Size a new long at ``price`` with volatility ``atr``.

        The quantity is the smallest of: the per-trade risk budget divided by the stop distance
        (so higher volatility means a smaller position), the per-position cap, and the room
        left under total exposure; all scaled down by drawdown. Any unusable input sizes zero.
        """
        limits = self.limits
        if not (
            _finite(account.equity)
            and account.equity > 0.0
            and _finite(price)
            and price > 0.0
            and _finite(account.exposure)
            and account.exposure >= 0.0
        ):
            return NO_POSITION
        stop = self.stop_distance(atr)
        if stop <= 0.0:
            return NO_POSITION
        if account.open_positions >= limits.max_open_positions:
            return PositionSize(0.0, 0.0, 0.0, "max open positions")
        scale = self.drawdown_scale(account.drawdown)
        candidates = {
            "risk budget": account.equity * limits.risk_per_trade * scale / stop * price,
            "position cap": account.equity * limits.max_position_fraction * scale,
            "total exposure": max(
                0.0, account.equity * limits.max_total_exposure - account.exposure
            ),
        }
        limited_by = min(candidates, key=candidates.__getitem__)
        notional = candidates[limited_by]
        if scale <= 0.0:
            limited_by = "drawdown"
        if notional <= 0.0:
            return PositionSize(0.0, 0.0, 0.0, limited_by)
        return PositionSize(
            quantity=notional / price,
            notional=notional,
            stop_price=max(0.0, price - stop),
            limited_by=limited_by,
        )

    def goal_thresholds(self, account: AccountState, base: GoalThresholds = LAW) -> GoalThresholds:
        """Thresholds for the validator given the account: stricter as drawdown deepens.

        Confidence rises linearly from ``base.min_confidence`` at no drawdown to
        ``max_tightened_confidence`` at ``max_drawdown``. The result is built through
        ``GoalThresholds.tightened`` so it can never be looser than ``base``.
        """
        depth = 1.0 - self.drawdown_scale(account.drawdown)
        target = (
            base.min_confidence
            + (self.limits.max_tightened_confidence - base.min_confidence) * depth
        )
        return base.tightened(min_confidence=min(1.0, target))

    def should_stop_out(self, entry_price: float, last_price: float, atr: float) -> ExitReason:
        """``STOP_LOSS`` when ``last_price`` is at or below the stop, else ``SIGNAL`` (no stop).

        Only this controller flags risk exits; the validator lets those realise a loss.
        """
        if not (_finite(last_price) and _finite(entry_price)):
            return ExitReason.STOP_LOSS  # a position we cannot price is a risk, close it
        if last_price <= self.stop_price(entry_price, atr):
            return ExitReason.STOP_LOSS
        return ExitReason.SIGNAL


def _finite(value: object) -> bool:
    return finite_float(value) is not None
