"""Fills as the exchange reported them: the record a restart replays to rebuild the portfolio.

One ``fills`` row per (order, exchange trade id). Recording is idempotent on that pair, because
the same trade arrives more than once (a websocket push, then the reconciliation poll, then a
retry after a crash), and booking it twice would double a position.

The store sits below execution and must not import it, so it takes any object shaped like an
exchange trade (``ExchangeFill``) and hands back its own ``StoredFill``, which has the attributes
``execution.portfolio.Portfolio.from_fills`` reads.

Why each fill was placed (its exit reason) has no column: it is derived on read from the order,
so replay labels round trips the same way the live engine does, without a schema change: a
``stop_loss`` or ``take_profit`` order's fills carry that reason, a HARDSTOP flatten's
``hardstop`` (``fill_reason``), every other fill ``signal``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nettrace.domain.fills import ExchangeFill
from nettrace.domain.types import ExitReason, Side
from nettrace.store.database import Database
from nettrace.store.models import FillRow, OrderRow
from nettrace.store.orders import OrderNotFoundError

__all__ = ["ExchangeFill", "FillStore", "StoredFill", "datetime_from_ms", "ms_from_datetime"]

_log = structlog.get_logger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)

#: Order types that are themselves the reason their fills happened.
_REASON_BY_ORDER_TYPE = {
    ExitReason.STOP_LOSS.value: ExitReason.STOP_LOSS.value,
    ExitReason.TAKE_PROFIT.value: ExitReason.TAKE_PROFIT.value,
}


def datetime_from_ms(ts_ms: int) -> datetime:
    """Epoch milliseconds -> aware UTC datetime, exactly (integer arithmetic, no float seconds)."""
    return _EPOCH + timedelta(milliseconds=ts_ms)


def ms_from_datetime(ts: datetime) -> int:
    """Aware datetime -> epoch milliseconds; the exact inverse of ``datetime_from_ms``."""
    return (ts.astimezone(UTC) - _EPOCH) // _ONE_MS


@dataclass(frozen=True, slots=True)
class StoredFill:
    """A stored fill with what ``ExchangeTrade`` carries, plus the reason derived from its order.

    ``order_id`` is the exchange's order id as the order row knows it (empty if never learned):
    the fills table does not repeat it. ``row_id`` is the table's id, the replay order.
    """

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
    reason: str
    row_id: int


class FillStore:
    """Writes fills idempotently and reads them back in the order they were recorded."""

    def __init__(self, database: Database) -> None:
        self._db = database

    # --- Writes -------------------------------------------------------------------------------

    def record(self, client_order_id: str, trade: ExchangeFill, reason: str = "signal") -> bool:
        """Store ``trade`` as a fill of the order ``client_order_id``; ``False`` if it is stored
        already (nothing written), ``True`` if this call stored it.

        Raises ``OrderNotFoundError`` for an unknown order and ``ValueError`` for a trade that
        cannot belong to it (other symbol, side or client id) or has impossible values.
        ``reason`` is not stored: replay derives it from the order (module docstring), so a
        reason that derivation would not reproduce is logged, because the replayed round trip
        would then carry a different label than the live one.
        """
        self._check_values(client_order_id, trade)
        with self._db.session() as session:
            order = self._order(session, client_order_id)
            self._check_belongs(order, trade)
            if self._exists(session, order.id, trade.id):
                return False
            derived = self._reason(order)
            order_id = order.id
        if reason != derived:
            _log.warning(
                "fill_reason_not_reproducible",
                client_order_id=client_order_id,
                trade_id=trade.id,
                reason=reason,
                replayed_reason=derived,
            )
        try:
            with self._db.session() as session:
                session.add(
                    FillRow(
                        order_id=order_id,
                        exchange_trade_id=trade.id,
                        price=float(trade.price),
                        amount=float(trade.amount),
                        fee=float(trade.fee),
                        fee_currency=trade.fee_currency,
                        is_maker=bool(trade.is_maker),
                        ts=datetime_from_ms(trade.ts_ms),
                    )
                )
        except IntegrityError:
            # Another writer stored the same trade between our check and our insert.
            with self._db.session() as session:
                if self._exists(session, order_id, trade.id):
                    return False
            raise
        return True

    # --- Reads --------------------------------------------------------------------------------

    def all_fills(self) -> list[StoredFill]:
        """Every fill, oldest first (by row id: the order they were recorded in)."""
        return self._read(None)

    def for_order(self, client_order_id: str) -> list[StoredFill]:
        """The fills of one order, oldest first; empty if there is no such order."""
        return self._read(client_order_id)

    def trade_ids(self) -> set[str]:
        """Every stored exchange trade id: what reconciliation compares the exchange's list to."""
        with self._db.session() as session:
            return set(session.scalars(select(FillRow.exchange_trade_id)))

    # --- Internals ----------------------------------------------------------------------------

    def _read(self, client_order_id: str | None) -> list[StoredFill]:
        query = (
            select(FillRow, OrderRow)
            .join(OrderRow, FillRow.order_id == OrderRow.id)
            .order_by(FillRow.id)
        )
        if client_order_id is not None:
            query = query.where(OrderRow.client_order_id == client_order_id)
        with self._db.session() as session:
            rows = session.execute(query).all()
            return [
                StoredFill(
                    id=fill.exchange_trade_id,
                    order_id=order.exchange_order_id or "",
                    client_order_id=order.client_order_id,
                    symbol=order.symbol,
                    side=Side(order.side),
                    price=fill.price,
                    amount=fill.amount,
                    fee=fill.fee,
                    fee_currency=fill.fee_currency,
                    is_maker=fill.is_maker,
                    ts_ms=ms_from_datetime(fill.ts),
                    reason=self._reason(order),
                    row_id=fill.id,
                )
                for fill, order in rows
            ]

    @staticmethod
    def _reason(order: OrderRow) -> str:
        return fill_reason(order)

    @staticmethod
    def _order(session: Session, client_order_id: str) -> OrderRow:
        order = session.scalar(select(OrderRow).where(OrderRow.client_order_id == client_order_id))
        if order is None:
            raise OrderNotFoundError(
                f"fill for order {client_order_id}: no such client order id; "
                "a fill is stored only against a known order"
            )
        return order

    @staticmethod
    def _exists(session: Session, order_id: int, trade_id: str) -> bool:
        found = session.scalar(
            select(FillRow.id).where(
                FillRow.order_id == order_id, FillRow.exchange_trade_id == trade_id
            )
        )
        return found is not None

    @staticmethod
    def _check_values(client_order_id: str, trade: ExchangeFill) -> None:
        where = f"fill {trade.id!r} of order {client_order_id}"
        if not trade.id:
            raise ValueError(f"{where}: the exchange trade id is the idempotency key; it is empty")
        if not (math.isfinite(trade.price) and trade.price > 0):
            raise ValueError(f"{where}: price must be finite and > 0, got {trade.price!r}")
        if not (math.isfinite(trade.amount) and trade.amount > 0):
            raise ValueError(f"{where}: amount must be finite and > 0, got {trade.amount!r}")
        if not (math.isfinite(trade.fee) and trade.fee >= 0):
            raise ValueError(f"{where}: fee must be finite and >= 0, got {trade.fee!r}")
        if trade.client_order_id and trade.client_order_id != client_order_id:
            raise ValueError(f"{where}: the trade names order {trade.client_order_id!r}")

    @staticmethod
    def _check_belongs(order: OrderRow, trade: ExchangeFill) -> None:
        if order.symbol != trade.symbol or order.side != Side(trade.side).value:
            raise ValueError(
                f"fill {trade.id!r} of order {order.client_order_id}: the trade is "
                f"{trade.side} {trade.symbol}, the order {order.side} {order.symbol}"
            )


def fill_reason(order: OrderRow) -> str:
    """Why an order's fills happened, from the order alone (so replay and live agree): its
    bracket type, a HARDSTOP flatten for a critical market sell stored while the latch was up
    (a critical market sell otherwise is a stop the engine watched), else a signal."""
    if order.order_type == "market" and order.urgency == "critical":
        return (ExitReason.HARDSTOP if order.hardstop_active else ExitReason.STOP_LOSS).value
    return _REASON_BY_ORDER_TYPE.get(order.order_type, ExitReason.SIGNAL.value)
