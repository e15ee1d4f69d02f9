"""The one interface execution talks to: the paper exchange and the ccxt adapter both speak it.

It is ccxt's unified API cut down to what a maker-first spot engine needs, keyed by *our* client
order id rather than the venue's id: after a crash the client id is all the engine knows for
certain (it is derived from the decision, ``execution.client_ids``), so every lookup must work
from it alone.

Error meanings matter more than names here, because each decides what the engine may do next:

* ``OrderRejected`` -- the exchange answered "no" (post-only would cross, not enough funds):
  nothing was placed, the order is ``rejected``.
* ``ExchangeUnavailable`` -- no answer (timeout, 5xx, connection lost): the outcome is
  *unknown*; the order goes to ``unknown`` and only a later ``fetch_order`` resolves it.
* ``OrderNotFound`` -- the exchange does not know this client id: if we never got an
  acknowledgement, the submit never arrived.

Units: prices quote per base, amounts base, fees in ``fee_currency``; times are epoch ms (UTC).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable

from nettrace.domain.types import Side

__all__ = [
    "Exchange",
    "ExchangeError",
    "ExchangeOrder",
    "ExchangeStatus",
    "ExchangeTrade",
    "ExchangeUnavailable",
    "OrderKind",
    "OrderNotFound",
    "OrderRejected",
    "OrderRequest",
]

#: ``limit``/``market`` as ccxt; ``stop_loss`` (a sell that becomes a market order when the price
#: trades at or below ``trigger_price``) and ``take_profit`` (a sell at ``trigger_price`` once the
#: price trades above it) are ccxt's ``stopLossPrice`` / ``takeProfitPrice`` conditional orders.
OrderKind = Literal["limit", "market", "stop_loss", "take_profit"]


class ExchangeStatus(StrEnum):
    """ccxt's unified order statuses (``closed`` is fully filled)."""

    OPEN = "open"
    CLOSED = "closed"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"


# The names follow ccxt's (``ccxt.OrderNotFound``, ``ccxt.ExchangeNotAvailable``) on purpose, so
# the mapping from ccxt's errors reads one to one; hence no ``Error`` suffix (N818).


class ExchangeError(Exception):
    """Base of every error an exchange adapter raises; the message names the order."""


class OrderRejected(ExchangeError):  # noqa: N818
    """The exchange refused the order; nothing was placed."""


class ExchangeUnavailable(ExchangeError):  # noqa: N818
    """No answer: whether the request took effect is unknown until asked again."""


class OrderNotFound(ExchangeError):  # noqa: N818
    """The exchange has no order with this client order id."""


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What to place. ``parent_client_order_id`` arms the order only once that order is fully
    filled, and siblings of one parent cancel each other when one fills (a bracket: the entry's
    stop-loss and take-profit, working from the entry's own bar as in the backtest)."""

    client_order_id: str
    symbol: str
    side: Side
    kind: OrderKind
    amount: float
    price: float | None = None
    post_only: bool = False
    trigger_price: float | None = None
    parent_client_order_id: str | None = None

    def __post_init__(self) -> None:
        if not self.client_order_id:
            raise ValueError("an order request needs a client order id")
        if not (math.isfinite(self.amount) and self.amount > 0):
            raise ValueError(f"order {self.client_order_id}: amount must be > 0, got {self.amount}")
        if self.kind == "limit" and not (self.price is not None and self.price > 0):
            raise ValueError(f"order {self.client_order_id}: a limit order needs a price > 0")
        if self.kind in ("stop_loss", "take_profit") and not (
            self.trigger_price is not None and self.trigger_price > 0
        ):
            raise ValueError(f"order {self.client_order_id}: a {self.kind} needs a trigger > 0")
        if self.kind != "limit" and self.post_only:
            raise ValueError(f"order {self.client_order_id}: only a limit order can be post-only")


@dataclass(frozen=True, slots=True)
class ExchangeOrder:
    """An order as the exchange reports it. ``filled`` is cumulative; ``average`` its price."""

    id: str
    client_order_id: str
    symbol: str
    side: Side
    kind: OrderKind
    amount: float
    price: float | None
    filled: float
    average: float | None
    status: ExchangeStatus
    post_only: bool = False
    trigger_price: float | None = None
    parent_client_order_id: str | None = None
    #: Why the exchange rejected or cancelled it, when it says.
    reason: str = ""
    ts_ms: int = 0

    @property
    def remaining(self) -> float:
        return max(self.amount - self.filled, 0.0)

    @property
    def is_done(self) -> bool:
        return self.status is not ExchangeStatus.OPEN


@dataclass(frozen=True, slots=True)
class ExchangeTrade:
    """One fill. ``id`` is unique per exchange: the idempotency key of our ``fills`` table."""

    id: str
    order_id: str
    client_order_id: str
    symbol: str
    side: Side
    price: float
    amount: float
    fee: float
    fee_currency: str
    is_maker: bool
    ts_ms: int


@runtime_checkable
class Exchange(Protocol):
    """What execution needs from a venue. Implementations: ``PaperExchange``, ``CcxtExchange``."""

    name: str

    def create_order(self, request: OrderRequest) -> ExchangeOrder:
        """Place ``request``. Placing a client id the exchange already has returns that order
        (never a second one). Raises ``OrderRejected`` or ``ExchangeUnavailable``."""
        ...

    def cancel_order(self, client_order_id: str, symbol: str) -> ExchangeOrder:
        """Cancel; cancelling a finished order returns it unchanged. ``OrderNotFound`` if none."""
        ...

    def fetch_order(self, client_order_id: str, symbol: str) -> ExchangeOrder:
        """The order as it stands. ``OrderNotFound`` if the exchange never received it."""
        ...

    def fetch_open_orders(self, symbol: str | None = None) -> list[ExchangeOrder]:
        """Every order still working (conditional ones included), oldest first."""
        ...

    def fetch_my_trades(self, symbol: str | None = None, since_ms: int = 0) -> list[ExchangeTrade]:
        """Our fills at or after ``since_ms``, oldest first."""
        ...

    def fetch_balance(self) -> dict[str, float]:
        """Total balance per currency (free plus reserved)."""
        ...
