"""Sending orders: the stored order first, then the exchange, then the answer -- in that order.

The sequence is what makes a crash harmless. ``submit`` stores the order as ``pending_submit``
(refused without a stored approval, refused outside the primary region) *before* it is sent,
under a client order id derived from the decision; only then does the exchange see it. A crash
at any point leaves either an order the exchange never received (``pending_submit``, resolved at
start by ``fetch_order`` -> not found -> cancelled) or one whose answer was lost (``unknown``,
resolved the same way). Nothing is ever sent twice: the exchange recognises the client id, and
``OrderBook.create`` returns the stored order for a repeated decision and attempt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nettrace.domain.types import OrderState
from nettrace.execution.exchange import (
    Exchange,
    ExchangeOrder,
    ExchangeStatus,
    ExchangeUnavailable,
    OrderNotFound,
    OrderRejected,
    OrderRequest,
)
from nettrace.execution.orders import TERMINAL_STATES, OrderBook, OrderIntent, TransitionSource
from nettrace.observability.log import get_logger
from nettrace.store.models import OrderRow

_log = get_logger(__name__)


def state_of(order: ExchangeOrder) -> OrderState:
    """Our state for what the exchange reports."""
    if order.status is ExchangeStatus.OPEN:
        return OrderState.PARTIALLY_FILLED if order.filled > 0 else OrderState.OPEN
    if order.status is ExchangeStatus.CLOSED:
        return OrderState.FILLED
    if order.status is ExchangeStatus.REJECTED and order.filled == 0:
        return OrderState.REJECTED
    return OrderState.CANCELLED  # canceled, expired (or rejected after a partial fill)


class OrderRouter:
    """Places, refreshes and cancels orders, keeping the stored state machine in step."""

    def __init__(self, book: OrderBook, exchange: Exchange) -> None:
        self.book = book
        self.exchange = exchange

    def submit(
        self,
        intent: OrderIntent,
        decision_id: str,
        attempt: int = 0,
        *,
        parent_client_order_id: str | None = None,
        detail: dict[str, Any] | None = None,
        decisions: Sequence[Mapping[str, Any]] = (),
    ) -> OrderRow:
        """Store, send and record the answer; returns the order as stored afterwards.

        ``decisions``: audit rows not yet written, stored in the order's own transaction.
        """
        self.book.guard.check(f"submit an order for decision {decision_id}")
        extra = dict(detail or {})
        if parent_client_order_id is not None:
            extra["parent_client_order_id"] = parent_client_order_id
        row = self.book.create(intent, decision_id, attempt, detail=extra, decisions=decisions)
        if OrderState(row.state) is not OrderState.PENDING_SUBMIT:
            return row  # a retry of an order already sent: never send it twice
        bracket = intent.order_type in ("stop_loss", "take_profit")
        request = OrderRequest(
            client_order_id=row.client_order_id,
            symbol=intent.symbol,
            side=intent.side,
            kind=intent.order_type,
            amount=intent.amount,
            price=None if bracket else intent.price,
            post_only=intent.post_only,
            trigger_price=intent.price if bracket else None,
            parent_client_order_id=parent_client_order_id,
        )
        try:
            answer = self.exchange.create_order(request)
        except OrderRejected as exc:
            return self.book.transition(
                row.client_order_id,
                OrderState.REJECTED,
                reason=f"exchange rejected: {exc}",
                source=TransitionSource.EXCHANGE,
            )
        except ExchangeUnavailable as exc:
            _log.warning("order_unknown", client_order_id=row.client_order_id, error=str(exc))
            return self.book.transition(
                row.client_order_id, OrderState.UNKNOWN, reason=f"no answer: {exc}"
            )
        return self.apply(row.client_order_id, answer, reason="submitted")

    def apply(self, client_order_id: str, answer: ExchangeOrder, *, reason: str) -> OrderRow:
        """Move the stored order to what the exchange reports (a no-op when it already is)."""
        return self.book.transition(
            client_order_id,
            state_of(answer),
            filled=answer.filled,
            exchange_order_id=answer.id,
            reason=f"{reason}: {answer.reason}" if answer.reason else reason,
            source=TransitionSource.EXCHANGE,
        )

    def refresh(self, row: OrderRow) -> OrderRow:
        """Ask the exchange about one order and store its answer.

        An order the exchange does not know was never received: a ``pending_submit`` or
        ``unknown`` one is closed as cancelled (never placed); anything else is an error the
        caller reports, because the exchange lost an order it had acknowledged.
        """
        try:
            answer = self.exchange.fetch_order(row.client_order_id, row.symbol)
        except OrderNotFound:
            state = OrderState(row.state)
            if state in (OrderState.PENDING_SUBMIT, OrderState.UNKNOWN):
                return self.book.transition(
                    row.client_order_id,
                    OrderState.CANCELLED,
                    reason="the exchange never received it",
                    source=TransitionSource.EXCHANGE,
                )
            raise
        return self.apply(row.client_order_id, answer, reason="refreshed")

    def cancel(self, row: OrderRow, reason: str) -> OrderRow:
        """Cancel on the exchange (if it is there) and store the outcome."""
        if OrderState(row.state) in TERMINAL_STATES:
            return row
        try:
            answer = self.exchange.cancel_order(row.client_order_id, row.symbol)
        except OrderNotFound:
            return self.refresh(row)
        return self.apply(row.client_order_id, answer, reason=reason)
