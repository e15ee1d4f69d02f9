"""``CcxtExchange``: the ``Exchange`` protocol over a synchronous ccxt client (DESIGN §3, §4).

Everything here is keyed by *our* client order id, because after a crash that id is all the
engine knows (``execution.client_ids``). ccxt carries it to the venue and back, but each venue
names the field differently and de-duplicates differently; ``VENUE_CLIENT_ID`` records what we
rely on per venue (facts from ``/work/shared/reference/ccxt_emulation.md`` §5, ccxt 4.5.90).

Error mapping (each decides what the engine may do next, see ``execution.exchange``):

* ``ccxt.OrderNotFound`` -> ``OrderNotFound`` (checked first: it is an ``InvalidOrder``);
* on a placement, ``ccxt.InvalidOrder`` (incl. ``OrderImmediatelyFillable``),
  ``InsufficientFunds``, ``BadRequest``/``BadSymbol``, ``NotSupported`` -> ``OrderRejected``:
  the venue (or ccxt, before sending) said no. On a lookup or cancel the same errors are the
  base ``ExchangeError``: a query that went wrong must never mark an order rejected;
* ``ccxt.OperationFailed`` (``NetworkError``, ``RequestTimeout``, ``ExchangeNotAvailable``,
  ``DDoSProtection``, ``RateLimitExceeded``, ``InvalidNonce``) -> ``ExchangeUnavailable``:
  no usable answer, so the outcome of a submit is *unknown* until ``fetch_order`` says;
* any other ccxt error (authentication, permissions, unmapped venue codes) -> the base
  ``ExchangeError``: the venue answered, but not with anything the engine can act on alone.

Idempotent create: Binance refuses a reused client id only while the first order is *open*
(``-2010 "Duplicate order sent."``); once it is filled or cancelled the same id places a second
order. So for such venues ``create_order`` first asks whether the id exists and returns that
order if so; a duplicate answer from the venue (a race with that check) is also resolved by
fetching the existing order. The price is one extra lookup per placement (a signed
``GET /api/v3/order`` on Binance, request weight 4); venues that de-duplicate for good
(Coinbase) skip it.

Brackets: spot venues have no "armed after the parent fills" order, so a request with
``parent_client_order_id`` is refused with ``OrderRejected``; when trading live the engine
places the stop-loss / take-profit children itself once it has seen the parent filled.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import ccxt

from nettrace.domain.types import Side
from nettrace.execution.exchange import (
    ExchangeError,
    ExchangeOrder,
    ExchangeStatus,
    ExchangeTrade,
    ExchangeUnavailable,
    OrderKind,
    OrderNotFound,
    OrderRejected,
    OrderRequest,
)

__all__ = ["VENUE_CLIENT_ID", "CcxtExchange", "VenueClientId"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class VenueClientId:
    """How one venue carries our client order id through ccxt.

    ``create_param``: the ``create_order`` param ccxt sends as the venue's client id field.
    ``lookup_param``: the ``fetch_order``/``cancel_order`` param that selects the order by client
    id (``None``: ccxt has no such lookup; the order is found by scanning the venue's orders).
    ``duplicates_open_only``: the venue refuses a reused id only while the first order is open,
    so ``create_order`` must look the id up before placing (see the module docstring).
    """

    create_param: str
    lookup_param: str | None
    duplicates_open_only: bool


#: Per-venue client id handling (reference ``ccxt_emulation.md`` §5, "Idempotent placement"):
#:
#: * binance: ``clientOrderId`` is sent as ``newClientOrderId``; lookups send
#:   ``origClientOrderId`` (ccxt accepts that name directly); duplicates refused only among open
#:   orders (``-2010``), so look before placing. Verified against the loopback fake in tests.
#: * coinbase: ccxt silently drops the unified ``clientOrderId`` on create, the raw
#:   ``client_order_id`` works; there is no lookup by client id; a resent id returns the
#:   original order, so no look-before-place is needed. Not exercised by our tests.
#:
#: Any other venue gets ``_DEFAULT_CLIENT_ID``: ccxt's unified ``clientOrderId`` both ways (okx,
#: bybit, kucoin map it) and the cautious look-before-place.
VENUE_CLIENT_ID: Mapping[str, VenueClientId] = {
    "binance": VenueClientId("clientOrderId", "origClientOrderId", duplicates_open_only=True),
    "coinbase": VenueClientId("client_order_id", None, duplicates_open_only=False),
}
_DEFAULT_CLIENT_ID = VenueClientId("clientOrderId", "clientOrderId", duplicates_open_only=True)

_STATUSES: Mapping[str, ExchangeStatus] = {
    "open": ExchangeStatus.OPEN,
    # still cancellable and may still fill: not done yet
    "canceling": ExchangeStatus.OPEN,
    "closed": ExchangeStatus.CLOSED,
    "canceled": ExchangeStatus.CANCELED,
    "cancelled": ExchangeStatus.CANCELED,
    "rejected": ExchangeStatus.REJECTED,
    "expired": ExchangeStatus.EXPIRED,
}

#: Messages that mean "this client id is already in use" on venues ccxt maps to a plain
#: ``InvalidOrder`` (Binance ``-2010 "Duplicate order sent."``).
_DUPLICATE_MARKERS = ("duplicate order", "duplicate client", "duplicated")
#: Coinbase answers a crossing post-only order with a plain ``ExchangeError`` (reference §5).
_POST_ONLY_MARKERS = ("INVALID_LIMIT_PRICE_POST_ONLY",)


def _num(value: object) -> float | None:
    """A finite float from a ccxt number/string, else ``None`` (ccxt leaves gaps as ``None``)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _reason(info: object) -> str:
    """The venue's own words for a reject/cancel, where its raw answer has them (ccxt has no
    unified field for it)."""
    if not isinstance(info, dict):
        return ""
    for key in ("reason", "rejectReason", "cancel_message", "reject_message"):
        if info.get(key):
            return str(info[key])
    return ""


class CcxtExchange:
    """The ``Exchange`` protocol over a synchronous ccxt instance (with keys, markets optional).

    ``exchange`` is a ccxt ``Exchange`` (e.g. ``ccxt.binance({...})``); tests point its
    ``urls['api']`` at a loopback emulator. ``symbols`` are the markets the engine trades: they
    are walked by ``fetch_my_trades(None)`` on venues that only list trades per symbol
    (Binance). ``trades_page_limit`` is the page size asked of ``fetch_my_trades``.
    ``look_before_create`` overrides the venue's ``duplicates_open_only`` (tests use it to reach
    the venue's own duplicate answer).
    """

    def __init__(
        self,
        exchange: Any,
        *,
        symbols: Sequence[str] = (),
        trades_page_limit: int = 1000,
        look_before_create: bool | None = None,
    ) -> None:
        self._ex = exchange
        self.name: str = str(exchange.id)
        self._venue = VENUE_CLIENT_ID.get(self.name, _DEFAULT_CLIENT_ID)
        self._look_first = (
            self._venue.duplicates_open_only if look_before_create is None else look_before_create
        )
        self._symbols = tuple(symbols)
        self._page = trades_page_limit
        # The engine reconciles every open order at start: Binance otherwise refuses
        # fetch_open_orders() without a symbol locally (it only warns about its rate weight).
        exchange.options["warnOnFetchOpenOrdersWithoutSymbol"] = False
        # venue order id -> our client id, for trades (Binance's myTrades has no client id)
        self._client_ids: dict[str, str] = {}
        # our client id -> what we asked for, to name conditional orders the venue reports as
        # plain "market" ones (Binance spot STOP_LOSS / TAKE_PROFIT parse as type "market")
        self._requests: dict[str, OrderRequest] = {}

    # -- the protocol -----------------------------------------------------------------------

    def create_order(self, request: OrderRequest) -> ExchangeOrder:
        """Place ``request`` once: a client id the venue already has returns that order."""
        cid = request.client_order_id
        if request.parent_client_order_id is not None:
            raise OrderRejected(
                f"{self.name}: order {cid} is armed after {request.parent_client_order_id} fills;"
                " spot venues have no such order, the engine must place it after the fill"
            )
        self._check_supported(request)
        self._requests[cid] = request
        if self._look_first:
            try:
                existing = self.fetch_order(cid, request.symbol)
            except OrderNotFound:
                pass
            except ExchangeError as exc:
                if isinstance(exc, ExchangeUnavailable | OrderRejected) or not isinstance(
                    exc.__cause__, ccxt.BadSymbol
                ):
                    raise
                # an unknown market: the placement itself would be refused
                raise OrderRejected(str(exc)) from exc
            else:
                return self._same_order(existing, request)
        ccxt_type, price, params = self._ccxt_args(request)
        try:
            raw = self._call(
                f"create {cid}",
                self._ex.create_order,
                request.symbol,
                ccxt_type,
                request.side.value.lower(),
                request.amount,
                price,
                params,
                placing=True,
            )
        except OrderRejected as exc:
            duplicate = isinstance(exc.__cause__, ccxt.DuplicateOrderId) or any(
                marker in str(exc).lower() for marker in _DUPLICATE_MARKERS
            )
            if not duplicate:
                raise
            # The id is taken (a race with the lookup above, or a venue without it): the
            # order that holds it is the answer, never a second one.
            return self._same_order(self.fetch_order(cid, request.symbol), request)
        return self._to_order(raw, request)

    def cancel_order(self, client_order_id: str, symbol: str) -> ExchangeOrder:
        """Cancel by client id; a finished order comes back unchanged, ``OrderNotFound`` if
        the venue never had it."""
        try:
            if self._venue.lookup_param is None:
                order = self._scan(client_order_id, symbol)
                if order.is_done:
                    return order
                raw = self._call(
                    f"cancel {client_order_id}", self._ex.cancel_order, order.id, symbol
                )
            else:
                raw = self._call(
                    f"cancel {client_order_id}",
                    self._ex.cancel_order,
                    "",
                    symbol,
                    {self._venue.lookup_param: client_order_id},
                )
        except OrderNotFound:
            # Binance answers "Unknown order sent." for an order that is already filled or
            # cancelled, not only for one it never had: ask which it is.
            order = self.fetch_order(client_order_id, symbol)
            if not order.is_done:
                raise ExchangeUnavailable(
                    f"{self.name}: cancel of {client_order_id} said unknown order, yet the"
                    " order is still open; outcome unknown, ask again"
                ) from None
            return order
        if not isinstance(raw, dict) or raw.get("status") is None:
            # venues that answer a cancel with the id only (Coinbase): read the order back
            return self.fetch_order(client_order_id, symbol)
        return self._to_order(raw, None, client_order_id)

    def fetch_order(self, client_order_id: str, symbol: str) -> ExchangeOrder:
        """The order holding ``client_order_id`` as the venue reports it now."""
        if self._venue.lookup_param is None:
            return self._scan(client_order_id, symbol)
        raw = self._call(
            f"fetch {client_order_id}",
            self._ex.fetch_order,
            "",
            symbol,
            {self._venue.lookup_param: client_order_id},
        )
        return self._to_order(raw, None, client_order_id)

    def fetch_open_orders(self, symbol: str | None = None) -> list[ExchangeOrder]:
        """Every working order (the venue's conditional ones included), oldest first."""
        raws = self._call("fetch open orders", self._ex.fetch_open_orders, symbol)
        orders = [self._to_order(raw) for raw in raws]
        return sorted(orders, key=lambda order: (order.ts_ms, order.id))

    def fetch_my_trades(self, symbol: str | None = None, since_ms: int = 0) -> list[ExchangeTrade]:
        """Our fills at or after ``since_ms``, oldest first, each with our client order id.

        Pages forward from ``since_ms`` until a page adds nothing new (trades sharing the
        boundary millisecond are fetched twice and de-duplicated by id). Venues that only list
        trades per symbol are walked over ``symbols`` when ``symbol`` is ``None``.
        """
        if symbol is not None:
            trades = self._trades_of(symbol, since_ms)
        else:
            try:
                trades = self._trades_of(None, since_ms)
            except ExchangeError as exc:
                if not isinstance(exc.__cause__, ccxt.ArgumentsRequired):
                    raise
                if not self._symbols:
                    raise ExchangeError(
                        f"{self.name} lists trades per symbol only: pass symbol, or construct"
                        " CcxtExchange with symbols=[...]"
                    ) from exc
                trades = [t for s in self._symbols for t in self._trades_of(s, since_ms)]
        return sorted(trades, key=lambda trade: (trade.ts_ms, trade.id))

    def fetch_balance(self) -> dict[str, float]:
        """Total (free + reserved) per currency; currencies holding nothing are left out."""
        raw = self._call("fetch balance", self._ex.fetch_balance)
        totals = raw.get("total") or {}
        balance: dict[str, float] = {}
        for currency, value in totals.items():
            amount = _num(value)
            if amount:
                balance[str(currency)] = amount
        return balance

    # -- helpers -----------------------------------------------------------------------------

    def _call(self, what: str, func: Callable[..., T], *args: Any, placing: bool = False) -> T:
        """Run one ccxt call, turning its errors into the protocol's (module docstring).

        Only a placement can be *rejected*; the same ccxt errors on a lookup or a cancel (a
        bad symbol, a malformed request) are plain ``ExchangeError``s, so the engine never
        marks an order rejected because a query about it went wrong.
        """
        try:
            return func(*args)
        except ccxt.OrderNotFound as exc:
            raise OrderNotFound(f"{self.name}: {what}: {exc}") from exc
        except (
            ccxt.InvalidOrder,
            ccxt.InsufficientFunds,
            ccxt.BadRequest,
            ccxt.NotSupported,
        ) as exc:
            if placing:
                raise OrderRejected(f"{self.name}: {what}: {exc}") from exc
            raise ExchangeError(f"{self.name}: {what}: {type(exc).__name__}: {exc}") from exc
        except ccxt.OperationFailed as exc:
            raise ExchangeUnavailable(
                f"{self.name}: {what}: no answer ({type(exc).__name__}: {exc}); outcome unknown"
            ) from exc
        except ccxt.BaseError as exc:
            message = str(exc)
            if placing and any(marker in message for marker in _POST_ONLY_MARKERS):
                raise OrderRejected(f"{self.name}: {what}: {message}") from exc
            raise ExchangeError(f"{self.name}: {what}: {type(exc).__name__}: {message}") from exc

    def _fail(self, message: str) -> NoReturn:
        raise OrderRejected(f"{self.name}: {message}")

    def _check_supported(self, request: OrderRequest) -> None:
        """Refuse, before sending anything, what ccxt says this venue cannot do."""
        has = self._ex.has
        cid = request.client_order_id
        if request.kind == "stop_loss" and has.get("createStopLossOrder") is False:
            self._fail(f"order {cid}: stop-loss orders are not supported through ccxt")
        if request.kind == "take_profit" and has.get("createTakeProfitOrder") is False:
            self._fail(f"order {cid}: take-profit orders are not supported through ccxt")
        if request.post_only and has.get("createPostOnlyOrder") is False:
            self._fail(f"order {cid}: post-only orders are not supported through ccxt")

    def _ccxt_args(self, request: OrderRequest) -> tuple[str, float | None, dict[str, Any]]:
        """ccxt's ``(type, price, params)`` for ``request``: unified params only, plus the
        venue's client id field."""
        params: dict[str, Any] = {self._venue.create_param: request.client_order_id}
        if request.kind == "limit":
            if request.post_only:
                params["postOnly"] = True
            return "limit", request.price, params
        if request.kind == "stop_loss":
            params["stopLossPrice"] = request.trigger_price
        elif request.kind == "take_profit":
            params["takeProfitPrice"] = request.trigger_price
        return "market", None, params

    def _same_order(self, order: ExchangeOrder, request: OrderRequest) -> ExchangeOrder:
        """``order`` already holds ``request``'s client id: it is the answer only if it is the
        same order; anything else means two decisions share an id (a bug), so refuse."""
        if order.symbol != request.symbol or order.side is not request.side:
            self._fail(
                f"client id {request.client_order_id} is already used by a {order.side} order on"
                f" {order.symbol} ({order.id}); refusing to place {request.side} {request.symbol}"
            )
        return order

    def _scan(self, client_order_id: str, symbol: str) -> ExchangeOrder:
        """Find an order by client id on venues ccxt cannot ask directly (Coinbase)."""
        fetchers = [self._ex.fetch_open_orders]
        if self._ex.has.get("fetchClosedOrders"):
            fetchers.append(self._ex.fetch_closed_orders)
        elif self._ex.has.get("fetchOrders"):
            fetchers.append(self._ex.fetch_orders)
        for fetch in fetchers:
            for raw in self._call(f"find {client_order_id}", fetch, symbol):
                if raw.get("clientOrderId") == client_order_id:
                    return self._to_order(raw, None, client_order_id)
        raise OrderNotFound(f"{self.name}: no order with client id {client_order_id} on {symbol}")

    def _kind(self, raw: Mapping[str, Any], client_order_id: str) -> OrderKind:
        """Our order kind: what we asked for if we know, else read from ccxt's fields."""
        known = self._requests.get(client_order_id)
        if known is not None:
            return known.kind
        if raw.get("takeProfitPrice") is not None:
            return "take_profit"
        if raw.get("stopLossPrice") is not None or raw.get("triggerPrice") is not None:
            return "stop_loss"
        kind = str(raw.get("type") or "").lower()
        if "take_profit" in kind:
            return "take_profit"
        if "stop" in kind:
            return "stop_loss"
        return "market" if kind == "market" else "limit"

    def _to_order(
        self,
        raw: Mapping[str, Any],
        request: OrderRequest | None = None,
        client_order_id: str = "",
    ) -> ExchangeOrder:
        """An ``ExchangeOrder`` from a ccxt order dict. Fields the venue left out (Coinbase's
        create answer is the id only) come from ``request``: an accepted order is open."""
        if request is not None:
            client_order_id = request.client_order_id
        cid = str(raw.get("clientOrderId") or client_order_id)
        order_id = str(raw.get("id") or "")
        if not order_id:
            raise ExchangeError(f"{self.name}: order {cid}: the venue's answer has no order id")
        if cid:
            self._client_ids[order_id] = cid
        status_text = str(raw.get("status") or "open").lower()
        status = _STATUSES.get(status_text)
        if status is None:
            raise ExchangeError(f"{self.name}: order {cid}: unknown status {status_text!r}")
        side_text = str(raw.get("side") or (request.side.value if request else "")).upper()
        if side_text not in Side.__members__:
            raise ExchangeError(f"{self.name}: order {cid}: unknown side {side_text!r}")
        amount = _num(raw.get("amount"))
        if amount is None:
            amount = request.amount if request is not None else 0.0
        price = _num(raw.get("price")) or (request.price if request is not None else None)
        trigger = _num(raw.get("triggerPrice"))
        for key in ("stopLossPrice", "takeProfitPrice", "stopPrice"):
            trigger = trigger or _num(raw.get(key))
        if trigger is None and request is not None:
            trigger = request.trigger_price
        post_only = bool(raw.get("postOnly")) or raw.get("timeInForce") == "PO"
        if request is not None and raw.get("postOnly") is None:
            post_only = request.post_only
        ts = raw.get("timestamp") or raw.get("lastTradeTimestamp") or 0
        known = self._requests.get(cid)
        return ExchangeOrder(
            id=order_id,
            client_order_id=cid,
            symbol=str(raw.get("symbol") or (request.symbol if request else "")),
            side=Side(side_text),
            kind=self._kind(raw, cid),
            amount=amount,
            price=price if price else None,
            filled=_num(raw.get("filled")) or 0.0,
            average=_num(raw.get("average")) or None,
            status=status,
            post_only=post_only,
            trigger_price=trigger,
            parent_client_order_id=known.parent_client_order_id if known else None,
            reason=_reason(raw.get("info")),
            ts_ms=int(ts),
        )

    def _trades_of(self, symbol: str | None, since_ms: int) -> list[ExchangeTrade]:
        """Every trade of ``symbol`` (or all, if the venue allows) from ``since_ms`` on."""
        seen: dict[str, ExchangeTrade] = {}
        cursor = since_ms
        while True:
            raws = self._call(
                "fetch my trades", self._ex.fetch_my_trades, symbol, cursor, self._page
            )
            fresh = [self._to_trade(raw) for raw in raws if str(raw.get("id")) not in seen]
            fresh = [trade for trade in fresh if trade.ts_ms >= since_ms]
            if not fresh:
                break
            for trade in fresh:
                seen[trade.id] = trade
            newest = max(trade.ts_ms for trade in fresh)
            if len(raws) < self._page:
                break
            cursor = newest  # a full page: ask again from its newest millisecond
        return list(seen.values())

    def _to_trade(self, raw: Mapping[str, Any]) -> ExchangeTrade:
        """An ``ExchangeTrade``; the client id comes from the trade, else from the order (asked
        of the venue once per order id we have not seen)."""
        order_id = str(raw.get("order") or "")
        symbol = str(raw.get("symbol") or "")
        cid = str(raw.get("clientOrderId") or self._client_ids.get(order_id) or "")
        if not cid and order_id:
            order_raw = self._call(
                f"fetch order {order_id}", self._ex.fetch_order, order_id, symbol
            )
            cid = str(order_raw.get("clientOrderId") or "")
            self._client_ids[order_id] = cid
        fee = raw.get("fee") or {}
        if not fee and raw.get("fees"):
            fee = raw["fees"][0] or {}
        price, amount = _num(raw.get("price")), _num(raw.get("amount"))
        if price is None or amount is None:
            raise ExchangeError(f"{self.name}: trade {raw.get('id')}: no price or amount")
        return ExchangeTrade(
            id=str(raw.get("id")),
            order_id=order_id,
            client_order_id=cid,
            symbol=symbol,
            side=Side(str(raw.get("side") or "").upper()),
            price=price,
            amount=amount,
            fee=_num(fee.get("cost")) or 0.0,
            fee_currency=str(fee.get("currency") or ""),
            is_maker=raw.get("takerOrMaker") == "maker",
            ts_ms=int(raw.get("timestamp") or 0),
        )
