"""Reconciliation: make our books agree with the exchange before any new order (DESIGN §3).

Run at start and periodically. The exchange is the truth for what happened to an order; the
database is the truth for what we *meant* (which decision, which client id). In order:

1. every order we have not seen finish -- ``pending_submit``, ``unknown``, ``open``,
   ``partially_filled`` -- is asked about by client id and moved to what the exchange says
   (an order it never received is closed as cancelled: it was never placed);
2. every fill of ours the exchange reports and we have not stored is stored (idempotent on the
   exchange's trade id);
3. open orders on the exchange carrying one of *our* client ids that the database does not have
   are orphans -- from a lost database or a foreign process -- and are cancelled and reported;
   orders that are not ours (the operator's own) are reported and left alone;
4. balances are compared with the positions our fills imply: a holding the exchange shows and
   we lack is *adopted* (reported, then managed like any position); a holding smaller than ours
   is reported as a mismatch, and the engine only reduces until the operator looks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from nettrace.domain.types import OrderState
from nettrace.execution.client_ids import is_client_order_id
from nettrace.execution.exchange import ExchangeTrade, OrderNotFound
from nettrace.execution.portfolio import Portfolio, split_symbol
from nettrace.execution.router import OrderRouter
from nettrace.observability.log import get_logger
from nettrace.store.adoptions import Adoption, AdoptionStore
from nettrace.store.fills import FillStore

_log = get_logger(__name__)

#: Relative difference between our position and the exchange's balance that is float dust.
BALANCE_TOLERANCE = 1e-9

#: The states whose outcome the exchange still has to tell us.
UNSETTLED = (
    OrderState.PENDING_SUBMIT,
    OrderState.UNKNOWN,
    OrderState.OPEN,
    OrderState.PARTIALLY_FILLED,
)


@dataclass
class ReconcileReport:
    """What reconciliation changed or found; empty lists mean the books agreed."""

    resolved: list[str] = field(default_factory=list)
    fills_added: int = 0
    orphans_cancelled: list[str] = field(default_factory=list)
    foreign_orders: list[str] = field(default_factory=list)
    foreign_fills: list[str] = field(default_factory=list)
    adopted: dict[str, float] = field(default_factory=dict)
    short: dict[str, float] = field(default_factory=dict)
    #: Entries whose stop-loss / take-profit were missing after a crash and were placed again.
    brackets_restored: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.orphans_cancelled or self.adopted or self.short or self.foreign_fills)


def settle_orders(router: OrderRouter, report: ReconcileReport) -> None:
    """Step 1: ask the exchange about every order still unsettled in our books."""
    for row in router.book.in_states(*UNSETTLED):
        before = row.state
        try:
            after = router.refresh(row)
        except OrderNotFound:
            _log.error("order_lost_by_exchange", client_order_id=row.client_order_id)
            continue
        if after.state != before:
            report.resolved.append(f"{row.client_order_id}: {before} -> {after.state}")


def import_fills(
    fills: FillStore,
    known_client_ids: set[str],
    trades: Iterable[ExchangeTrade],
    report: ReconcileReport,
    reason_of: dict[str, str],
) -> list[ExchangeTrade]:
    """Step 2: store the fills of our orders not stored yet; returns the new ones, in order."""
    added: list[ExchangeTrade] = []
    for trade in trades:
        if trade.client_order_id not in known_client_ids:
            if trade.id not in report.foreign_fills:
                report.foreign_fills.append(trade.id)
            continue
        if fills.record(
            trade.client_order_id, trade, reason_of.get(trade.client_order_id, "signal")
        ):
            added.append(trade)
    report.fills_added += len(added)
    return added


def cancel_orphans(router: OrderRouter, report: ReconcileReport) -> None:
    """Step 3: cancel exchange orders with our id shape that the database does not have."""
    for order in router.exchange.fetch_open_orders():
        if router.book.get(order.client_order_id) is not None:
            continue
        if is_client_order_id(order.client_order_id):
            router.exchange.cancel_order(order.client_order_id, order.symbol)
            report.orphans_cancelled.append(order.client_order_id)
            _log.error("orphan_order_cancelled", client_order_id=order.client_order_id)
        else:
            report.foreign_orders.append(order.client_order_id or order.id)


def compare_balances(
    portfolio: Portfolio,
    balances: dict[str, float],
    symbols: Iterable[str],
    prices: dict[str, float],
    ts_ms: int,
    report: ReconcileReport,
    adoptions: AdoptionStore | None = None,
    exchange: str = "",
) -> None:
    """Step 4: adopt holdings we lack (recorded, so a restart does not adopt them again);
    report holdings smaller than ours."""
    for symbol in symbols:
        base, _ = split_symbol(symbol)
        held = balances.get(base, 0.0)
        position = portfolio.position(symbol)
        ours = position.amount if position is not None else 0.0
        slack = BALANCE_TOLERANCE * max(held, ours, 1e-12)
        if held > ours + slack:
            price = prices.get(symbol, math.nan)
            if not (math.isfinite(price) and price > 0):
                report.short[symbol] = ours - held  # cannot value it yet: treat as a mismatch
                continue
            portfolio.adopt(symbol, held - ours, price, ts_ms)
            if adoptions is not None:
                adoptions.record(Adoption(exchange, symbol, held - ours, price, ts_ms))
            report.adopted[symbol] = held - ours
            _log.warning("position_adopted", symbol=symbol, amount=held - ours, price=price)
        elif held < ours - slack:
            report.short[symbol] = ours - held
            _log.error("position_mismatch", symbol=symbol, ours=ours, exchange=held)
