"""The paper exchange: an in-process venue behind the same ``Exchange`` interface as ccxt.

Why hand-written: no maintained library offers a spot matching model that (a) follows a candle
feed, (b) keeps post-only, maker/taker fees and bracket orders, and (c) fills *exactly* as our
backtest kernel does -- and (c) is the point: a paper replay of a candle file must make the same
trades as ``nettrace backtest --fill maker`` on it (DESIGN §3, "the same trades").

The matching model, per bar of a symbol (the kernel's order, ``backtest/kernel.py``):

1. An order placed between bars reaches the book at the next bar's open. Post-only is judged
   there: a buy limit at or above the open (a sell at or below it) would take liquidity and is
   cancelled by the venue (reason ``post-only``). A limit fills at its price only when the bar
   trades *through* it (buy: low < limit; sell: high > limit) -- touching is not enough, the
   queue ahead of us is unknown. Sells first, so their cash funds buys. Market orders fill at
   the open, at the taker fee.
2. Then brackets: a ``stop_loss`` armed (its parent fully filled, this bar included) triggers when
   the low reaches it and fills at the trigger, or at the open if the bar gapped through it (the
   worse price), at the taker fee; else a ``take_profit`` fills once the high passes it, at the
   target or a better open, at the maker fee. The stop is checked first (the pessimistic order)
   and a fill cancels its siblings (one-cancels-other).
3. ``max_volume_share`` (optional) caps each fill at that share of the bar's volume: the rest
   stays working (a partial fill). ``None`` is the backtest's unlimited liquidity.

A sell needs the base it sells and a buy the quote it spends (fee included); otherwise it is
cancelled as ``insufficient balance``. The account -- balances, orders, fills -- is saved to a
JSON file after every change (write-and-rename, so a killed process leaves the old or the new
file, never half of one), and a restart continues the same account.
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nettrace.domain.fees import FeeSchedule
from nettrace.domain.types import Side
from nettrace.execution.exchange import (
    ExchangeOrder,
    ExchangeStatus,
    ExchangeTrade,
    OrderNotFound,
    OrderRejected,
    OrderRequest,
)

__all__ = ["Bar", "PaperExchange"]

#: Relative slack for balance checks (float sums of fills).
_BALANCE_TOLERANCE = 1e-9


@dataclass(frozen=True, slots=True)
class Bar:
    """One closed candle of ``symbol``; ``ts_ms`` is its open time (epoch ms, UTC)."""

    symbol: str
    ts_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass
class _Order:
    id: str
    client_order_id: str
    symbol: str
    side: str
    kind: str
    amount: float
    price: float | None
    post_only: bool
    trigger_price: float | None
    parent_client_order_id: str | None
    status: str = ExchangeStatus.OPEN.value
    filled: float = 0.0
    cost: float = 0.0
    reason: str = ""
    ts_ms: int = 0
    #: Has it met a bar yet? (post-only and market orders are judged at the first one)
    arrived: bool = False
    #: Brackets only: armed once the parent is fully filled.
    armed: bool = False

    def view(self) -> ExchangeOrder:
        return ExchangeOrder(
            id=self.id,
            client_order_id=self.client_order_id,
            symbol=self.symbol,
            side=Side(self.side),
            kind=self.kind,  # type: ignore[arg-type]
            amount=self.amount,
            price=self.price,
            filled=self.filled,
            average=self.cost / self.filled if self.filled > 0 else None,
            status=ExchangeStatus(self.status),
            post_only=self.post_only,
            trigger_price=self.trigger_price,
            parent_client_order_id=self.parent_client_order_id,
            reason=self.reason,
            ts_ms=self.ts_ms,
        )

    @property
    def working(self) -> bool:
        return self.status == ExchangeStatus.OPEN.value

    @property
    def remaining(self) -> float:
        return max(self.amount - self.filled, 0.0)


@dataclass
class _Account:
    balances: dict[str, float]
    orders: dict[str, _Order] = field(default_factory=dict)
    trades: list[dict[str, Any]] = field(default_factory=list)
    order_seq: int = 0
    trade_seq: int = 0
    #: The open time of the newest bar matched, per symbol: a bar is matched once, so a feed
    #: that repeats bars after a restart cannot fill an order twice.
    last_bar_ms: dict[str, int] = field(default_factory=dict)


class PaperExchange:
    """A simulated spot venue (see the module docstring for the matching model)."""

    def __init__(
        self,
        *,
        name: str = "paper",
        fees: FeeSchedule | None = None,
        initial_balances: Mapping[str, float] | None = None,
        state_path: Path | None = None,
        max_volume_share: float | None = None,
        kill_after_orders: int | None = None,
    ) -> None:
        if max_volume_share is not None and not (0.0 < max_volume_share <= 1.0):
            raise ValueError(f"max_volume_share must be in (0, 1], got {max_volume_share!r}")
        self.name = name
        self.fees = fees or FeeSchedule()
        self.max_volume_share = max_volume_share
        self._path = state_path
        #: Fault injection (DESIGN §4): after accepting this many new orders the process is
        #: killed (SIGKILL) -- after the order is saved, before the caller hears back: the
        #: crash "between submit and acknowledgement" that reconciliation must survive.
        self._kill_after = kill_after_orders
        self._lock = threading.RLock()
        self._last: dict[str, Bar] = {}
        loaded = self._load() if state_path is not None else None
        self._account = loaded or _Account(balances=dict(initial_balances or {}))
        # Indexes over the account's orders: scanning every order ever placed on each call made
        # the venue slower the longer it ran (it is called several times per tick).
        self._open: dict[str, _Order] = {}
        self._kids: dict[str, list[_Order]] = {}
        for order in self._account.orders.values():
            self._index(order)
        if loaded is None:
            self._save()

    # --- The Exchange interface -------------------------------------------------------------

    def create_order(self, request: OrderRequest) -> ExchangeOrder:
        with self._lock:
            existing = self._account.orders.get(request.client_order_id)
            if existing is not None:
                return existing.view()  # the same client id again: the same order
            _currencies(request.symbol)  # OrderRejected now, not out of a later bar
            if request.parent_client_order_id is not None:
                parent = self._account.orders.get(request.parent_client_order_id)
                if parent is None:
                    raise OrderRejected(
                        f"order {request.client_order_id}: parent "
                        f"{request.parent_client_order_id} is unknown"
                    )
            self._account.order_seq += 1
            order = _Order(
                id=f"P{self._account.order_seq}",
                client_order_id=request.client_order_id,
                symbol=request.symbol,
                side=request.side.value,
                kind=request.kind,
                amount=float(request.amount),
                price=request.price,
                post_only=request.post_only,
                trigger_price=request.trigger_price,
                parent_client_order_id=request.parent_client_order_id,
                ts_ms=self._now_ms(request.symbol),
                armed=request.parent_client_order_id is None,
            )
            self._account.orders[order.client_order_id] = order
            self._index(order)
            if request.parent_client_order_id is not None:
                self._arm_children(self._account.orders[request.parent_client_order_id])
            self._save()
            if self._kill_after is not None:
                self._kill_after -= 1
                if self._kill_after <= 0:
                    os.kill(os.getpid(), signal.SIGKILL)
            return order.view()

    def cancel_order(self, client_order_id: str, symbol: str) -> ExchangeOrder:
        with self._lock:
            order = self._get(client_order_id)
            if order.working:
                order.status = ExchangeStatus.CANCELED.value
                order.reason = "cancelled on request"
                if order.filled > 0:
                    self._arm_children(order)  # the part that filled keeps its protection
                else:
                    self._cancel_children(order, "parent cancelled before it filled")
                self._save()
            return order.view()

    def fetch_order(self, client_order_id: str, symbol: str) -> ExchangeOrder:
        with self._lock:
            return self._get(client_order_id).view()

    def fetch_open_orders(self, symbol: str | None = None) -> list[ExchangeOrder]:
        with self._lock:
            return [o.view() for o in self._live(symbol)]

    def fetch_my_trades(self, symbol: str | None = None, since_ms: int = 0) -> list[ExchangeTrade]:
        with self._lock:
            return [
                _trade(t)
                for t in self._account.trades
                if t["ts_ms"] >= since_ms and (symbol is None or t["symbol"] == symbol)
            ]

    def fetch_balance(self) -> dict[str, float]:
        with self._lock:
            return dict(self._account.balances)

    # --- The feed -----------------------------------------------------------------------------

    def last_bar(self, symbol: str) -> Bar | None:
        return self._last.get(symbol)

    def last_bar_ms(self, symbol: str) -> int | None:
        """The open time of the newest bar of ``symbol`` matched (persisted), if any."""
        return self._account.last_bar_ms.get(symbol)

    def on_bar(self, bar: Bar) -> list[ExchangeTrade]:
        """Match every working order of ``bar.symbol`` against the bar; returns the new fills.

        A bar at or before the newest one already matched is ignored (returns no fills).
        """
        with self._lock:
            self._last[bar.symbol] = bar
            seen = self._account.last_bar_ms.get(bar.symbol)
            if seen is not None and bar.ts_ms <= seen:
                return []
            self._account.last_bar_ms[bar.symbol] = bar.ts_ms
            before = len(self._account.trades)
            changed = False
            mine = self._live(bar.symbol)
            plain = [o for o in mine if o.working and o.kind in ("limit", "market")]
            for side in (Side.SELL.value, Side.BUY.value):
                for order in plain:
                    if order.side == side and order.working:
                        changed |= self._match_plain(order, bar)
            brackets = [
                o for o in mine if o.working and o.armed and o.kind in ("stop_loss", "take_profit")
            ]
            for kind in ("stop_loss", "take_profit"):
                for order in brackets:
                    if order.kind == kind and order.working:
                        changed |= self._match_bracket(order, bar)
            if changed or seen is None:
                self._save()
            return [_trade(t) for t in self._account.trades[before:]]

    # --- Matching -----------------------------------------------------------------------------

    def _match_plain(self, order: _Order, bar: Bar) -> bool:
        first = not order.arrived
        order.arrived = True
        if order.kind == "market":
            self._fill(order, bar, bar.open, order.remaining, maker=False)
            return True
        limit = order.price if order.price is not None else math.nan  # validated on create
        buy = order.side == Side.BUY.value
        crosses = bar.open <= limit if buy else bar.open >= limit
        if first and crosses and not order.post_only:
            # A plain limit that is marketable on arrival takes liquidity: at the open, taker.
            self._fill(order, bar, bar.open, order.remaining, maker=False)
            return True
        if first and order.post_only and crosses:
            # Accepted, then cancelled by the venue when it reached the book (as Kraken and
            # Coinbase report a post-only that would take): status canceled, with the reason.
            order.status = ExchangeStatus.CANCELED.value
            order.reason = "post-only: the order would have crossed the book at the open"
            self._cancel_children(order, "parent cancelled: post-only")
            return True
        through = bar.low < limit if buy else bar.high > limit
        if through:
            self._fill(order, bar, limit, order.remaining, maker=True)
        return first or through

    def _match_bracket(self, order: _Order, bar: Bar) -> bool:
        trigger = order.trigger_price if order.trigger_price is not None else math.nan
        if order.kind == "stop_loss":
            if not bar.low <= trigger:
                return False
            price = bar.open if bar.open < trigger else trigger
            maker = False
        else:
            if not bar.high > trigger:
                return False
            price = bar.open if bar.open > trigger else trigger
            maker = True
        self._fill(order, bar, price, order.remaining, maker=maker)
        if not order.working:
            self._cancel_siblings(order)
        return True

    def _fill(self, order: _Order, bar: Bar, price: float, wanted: float, *, maker: bool) -> None:
        amount = wanted
        if self.max_volume_share is not None:
            amount = min(amount, self.max_volume_share * bar.volume)
        if not amount > 0:
            return
        base, quote = _currencies(order.symbol)
        rate = self.fees.maker if maker else self.fees.taker
        notional = amount * price
        fee = notional * rate
        balances = self._account.balances
        if order.side == Side.BUY.value:
            if notional + fee > balances.get(quote, 0.0) * (1 + _BALANCE_TOLERANCE):
                self._insufficient(order, f"needs {notional + fee:.8g} {quote}")
                return
            # Within the float slack of the check, spending "all" must not leave dust below 0.
            balances[quote] = max(balances.get(quote, 0.0) - notional - fee, 0.0)
            balances[base] = balances.get(base, 0.0) + amount
        else:
            held = balances.get(base, 0.0)
            if amount > held * (1 + _BALANCE_TOLERANCE):
                self._insufficient(order, f"needs {amount:.8g} {base}, holds {held:.8g}")
                return
            balances[base] = max(held - amount, 0.0)
            balances[quote] = balances.get(quote, 0.0) + notional - fee
        order.filled += amount
        order.cost += notional
        if order.remaining <= order.amount * 1e-12:
            order.filled = order.amount
            order.status = ExchangeStatus.CLOSED.value
        self._account.trade_seq += 1
        self._account.trades.append(
            {
                "id": f"T{self._account.trade_seq}",
                "order_id": order.id,
                "client_order_id": order.client_order_id,
                "symbol": order.symbol,
                "side": order.side,
                "price": price,
                "amount": amount,
                "fee": fee,
                "fee_currency": quote,
                "is_maker": maker,
                "ts_ms": bar.ts_ms,
            }
        )
        if order.side == Side.BUY.value and not order.working:
            self._arm_children(order)
        if order.side == Side.SELL.value:
            self._cancel_uncovered(order.symbol)

    def _insufficient(self, order: _Order, detail: str) -> None:
        order.status = ExchangeStatus.CANCELED.value
        order.reason = f"insufficient balance: {detail}"
        if order.filled > 0:
            self._arm_children(order)  # the part that filled keeps its protection
        else:
            self._cancel_children(order, "parent cancelled: insufficient balance")

    def _arm_children(self, parent: _Order) -> None:
        if parent.working or parent.filled <= 0:
            return
        for child in self._children(parent):
            if child.working and not child.armed:
                child.armed = True
                child.amount = min(child.amount, parent.filled)

    def _children(self, parent: _Order) -> list[_Order]:
        return self._kids.get(parent.client_order_id, [])

    def _cancel_children(self, parent: _Order, reason: str) -> None:
        for child in self._children(parent):
            if child.working:
                child.status = ExchangeStatus.CANCELED.value
                child.reason = reason

    def _cancel_siblings(self, filled: _Order) -> None:
        if filled.parent_client_order_id is None:
            return
        parent = self._account.orders[filled.parent_client_order_id]
        for sibling in self._children(parent):
            if sibling is not filled and sibling.working:
                sibling.status = ExchangeStatus.CANCELED.value
                sibling.reason = f"one-cancels-other: {filled.client_order_id} filled"

    def _cancel_uncovered(self, symbol: str) -> None:
        """Armed brackets whose amount the account no longer holds are cancelled."""
        base, _ = _currencies(symbol)
        held = self._account.balances.get(base, 0.0)
        for order in self._live(symbol):
            if (
                order.working
                and order.armed
                and order.kind in ("stop_loss", "take_profit")
                and order.remaining > held * (1 + _BALANCE_TOLERANCE)
            ):
                order.status = ExchangeStatus.CANCELED.value
                order.reason = "position closed"

    # --- Indexes ------------------------------------------------------------------------------

    def _index(self, order: _Order) -> None:
        if order.working:
            self._open[order.client_order_id] = order
        if order.parent_client_order_id is not None:
            self._kids.setdefault(order.parent_client_order_id, []).append(order)

    def _live(self, symbol: str | None) -> list[_Order]:
        """The working orders (of ``symbol``), oldest first. An order never returns to
        working, so the ones that stopped are dropped from the index here, lazily."""
        for cid in [cid for cid, o in self._open.items() if not o.working]:
            del self._open[cid]
        return [o for o in self._open.values() if symbol is None or o.symbol == symbol]

    # --- Persistence --------------------------------------------------------------------------

    def _get(self, client_order_id: str) -> _Order:
        order = self._account.orders.get(client_order_id)
        if order is None:
            raise OrderNotFound(f"paper exchange has no order {client_order_id}")
        return order

    def _now_ms(self, symbol: str) -> int:
        bar = self._last.get(symbol)
        return bar.ts_ms if bar is not None else 0

    def _load(self) -> _Account | None:
        if self._path is None or not self._path.exists():
            return None
        data = json.loads(self._path.read_text())
        return _Account(
            balances={k: float(v) for k, v in data["balances"].items()},
            orders={o["client_order_id"]: _Order(**o) for o in data["orders"]},
            trades=list(data["trades"]),
            order_seq=int(data["order_seq"]),
            trade_seq=int(data["trade_seq"]),
            last_bar_ms={k: int(v) for k, v in data.get("last_bar_ms", {}).items()},
        )

    def flush(self) -> None:
        """Persist the account now, including the newest bar matched (saved lazily per bar:
        only a change writes the file, so a run ending quietly would leave it behind)."""
        with self._lock:
            self._save()

    def _save(self) -> None:
        if self._path is None:
            return
        account = self._account
        data = {
            "balances": account.balances,
            "orders": [asdict(o) for o in account.orders.values()],
            "trades": account.trades,
            "order_seq": account.order_seq,
            "trade_seq": account.trade_seq,
            "last_bar_ms": account.last_bar_ms,
        }
        tmp = self._path.with_name(self._path.name + ".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self._path)


def _currencies(symbol: str) -> tuple[str, str]:
    base, _, quote = symbol.partition("/")
    if not base or not quote:
        raise OrderRejected(f"symbol {symbol!r} is not BASE/QUOTE")
    return base, quote.split(":")[0]


def _trade(raw: Mapping[str, Any]) -> ExchangeTrade:
    return ExchangeTrade(
        id=raw["id"],
        order_id=raw["order_id"],
        client_order_id=raw["client_order_id"],
        symbol=raw["symbol"],
        side=Side(raw["side"]),
        price=float(raw["price"]),
        amount=float(raw["amount"]),
        fee=float(raw["fee"]),
        fee_currency=raw["fee_currency"],
        is_maker=bool(raw["is_maker"]),
        ts_ms=int(raw["ts_ms"]),
    )
