"""Enumerations of the trading domain and tolerant parsers for them.

The parsers return ``None`` instead of raising because the trading path must fail closed:
an unknown side or regime is a refusal, never an exception that could skip a check.
"""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    """Order side. The system trades spot, long only: BUY opens, SELL closes."""

    BUY = "BUY"
    SELL = "SELL"


class Regime(StrEnum):
    """The three market regimes the rules understand (DESIGN §3).

    Richer regime labels from detectors are mapped onto these three by ``parse_regime``.
    """

    UPTREND = "uptrend"
    DOWNTREND = "downtrend"
    NEUTRAL = "neutral"


class ExitReason(StrEnum):
    """Why a position is being closed.

    Only the risk controller flags risk exits; they are the one kind of SELL allowed to realise
    a loss, because refusing a stop-loss would turn a small loss into a larger one.
    """

    SIGNAL = "signal"
    STOP_LOSS = "stop_loss"
    HARDSTOP = "hardstop"
    #: The target the risk controller set with the entry; it may not realise a loss (rule 1),
    #: but it needs no fresh signal agreement: it was approved as part of the entry's plan.
    TAKE_PROFIT = "take_profit"

    @property
    def is_risk_exit(self) -> bool:
        return self in (ExitReason.STOP_LOSS, ExitReason.HARDSTOP)

    @property
    def is_planned(self) -> bool:
        """Set when the entry was approved (its stop or target), not decided on a later bar."""
        return self in (ExitReason.STOP_LOSS, ExitReason.TAKE_PROFIT)


# Labels that regime detectors commonly emit, folded onto the three rule regimes.
_REGIME_SYNONYMS: dict[str, Regime] = {
    "uptrend": Regime.UPTREND,
    "up": Regime.UPTREND,
    "bull": Regime.UPTREND,
    "bullish": Regime.UPTREND,
    "strong_uptrend": Regime.UPTREND,
    "downtrend": Regime.DOWNTREND,
    "down": Regime.DOWNTREND,
    "bear": Regime.DOWNTREND,
    "bearish": Regime.DOWNTREND,
    "strong_downtrend": Regime.DOWNTREND,
    "crash": Regime.DOWNTREND,
    "neutral": Regime.NEUTRAL,
    "sideways": Regime.NEUTRAL,
    "range": Regime.NEUTRAL,
    "ranging": Regime.NEUTRAL,
    "flat": Regime.NEUTRAL,
}


def parse_side(value: object) -> Side | None:
    """Return the ``Side`` for ``value`` (case-insensitive), or ``None`` if it is not one."""
    if isinstance(value, Side):
        return value
    if not isinstance(value, str):
        return None
    try:
        return Side(value.strip().upper())
    except ValueError:
        return None


def parse_regime(value: object) -> Regime | None:
    """Return the rule regime for ``value`` (case-insensitive, synonyms folded), or ``None``."""
    if isinstance(value, Regime):
        return value
    if not isinstance(value, str):
        return None
    return _REGIME_SYNONYMS.get(value.strip().lower().replace("-", "_").replace(" ", "_"))


class Urgency(StrEnum):
    """How urgently an order must execute (DESIGN §3, Orders).

    ``NORMAL``: be a maker (post-only limit). ``CRITICAL``: a risk exit (a stop-loss or a
    HARDSTOP flatten) that may take liquidity; only a critical intent may be a market order.
    """

    NORMAL = "normal"
    CRITICAL = "critical"


class OrderState(StrEnum):
    """An order's life (DESIGN §3, Orders). ``UNKNOWN``: the submit's outcome was not confirmed
    (timeout, crash between submit and acknowledgement); only asking the exchange resolves it."""

    PENDING_SUBMIT = "pending_submit"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


class StrategyStage(StrEnum):
    """COLD (backtest) -> WARM (paper) -> HOT (live capital); RETIRED when demoted for good."""

    COLD = "cold"
    WARM = "warm"
    HOT = "hot"
    RETIRED = "retired"


class TradingState(StrEnum):
    """What the engine may do (NautilusTrader's trading states).

    ``ACTIVE``: enter and exit. ``REDUCING``: exits only (reconciliation found the exchange
    holding less than we thought, or the operator asked). ``HALTED``: nothing; open orders are
    cancelled (HARDSTOP).
    """

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"
