"""Pure bookkeeping of a long-only spot account: cash, open lots, realised profit, round trips.

No database and no I/O: the engine feeds it every fill (``apply_fill``), and a restart rebuilds it
by replaying the stored fills in order (``Portfolio.from_fills``), so live state and replayed
state are the same by construction. Equity snapshots for the HARDSTOP monitor come from here too.

Units: prices are quote per base, amounts base, cash, cost, fees and profit quote. A position is
one *lot*: it opens with the first buy after being flat and closes when sells bring it back to
zero; only a closed lot is a ``RoundTrip``, so round trips match the backtest's trades.

The round trip's profit is computed with the backtest kernel's own formula, in its order of
operations (``gross - exit_fee - amount * entry_price - entry_fee``), and a lot of one buy fill
and one sell fill uses the fill prices themselves rather than ``cost / amount``: the live system
then reproduces a backtest's trade profits bit for bit, and any difference is a real difference.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from types import MappingProxyType
from typing import Protocol

from nettrace.domain.fills import Fill
from nettrace.domain.portfolio import Holding, PortfolioSnapshot
from nettrace.domain.types import Side

__all__ = [
    "FLAT_TOLERANCE",
    "OVERSELL_TOLERANCE",
    "Fill",
    "Portfolio",
    "Position",
    "ReasonedFill",
    "RoundTrip",
    "split_symbol",
]

#: A sell may exceed the position by this fraction (float dust from the exchange's rounding);
#: more than that means our books and the exchange disagree, which must stop, not be absorbed.
OVERSELL_TOLERANCE = 1e-9

#: A lot whose remaining amount is at most this fraction of what was bought is flat (closed).
FLAT_TOLERANCE = 1e-12


class ReasonedFill(Fill, Protocol):
    """A fill that carries the reason it was booked with (``store.fills.StoredFill``)."""

    @property
    def reason(self) -> str: ...


def split_symbol(symbol: str) -> tuple[str, str]:
    """``'BTC/USD'`` -> ``('BTC', 'USD')``; a ccxt settle suffix (``':USD'``) is ignored."""
    base, sep, rest = symbol.partition("/")
    quote = rest.partition(":")[0]
    if not sep or not base or not quote:
        raise ValueError(f"symbol {symbol!r} is not BASE/QUOTE")
    return base, quote


def _usable_price(price: float | None) -> bool:
    return price is not None and math.isfinite(price) and price > 0


@dataclass
class Position:
    """One symbol's open lot and its lifetime totals.

    ``cost`` and ``entry_fees`` cover what is still held: a partial sell removes its share of
    both, so ``cost + entry_fees`` is always what the held amount cost in cash.
    ``realised_pnl`` and ``fees_paid`` accumulate over every lot of the symbol.
    """

    symbol: str
    amount: float = 0.0
    cost: float = 0.0
    entry_fees: float = 0.0
    realised_pnl: float = 0.0
    fees_paid: float = 0.0
    #: When the open lot's first buy filled (epoch ms); the last lot's, once flat.
    opened_ms: int = 0

    @property
    def avg_entry_price(self) -> float:
        """Cost per unit held (quote per base), NaN when flat."""
        return self.cost / self.amount if self.amount > 0 else math.nan

    @property
    def entry_fee_rate(self) -> float:
        """Entry fees as a fraction of cost: what a SELL proposal's ``entry_fee_rate`` needs so the
        validator judges the exit against the fee really paid. NaN when nothing is held at cost."""
        return self.entry_fees / self.cost if self.cost > 0 else math.nan

    @property
    def is_flat(self) -> bool:
        return self.amount == 0.0


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """A closed lot, in the backtest's trade terms: ``amount`` is all that was bought,
    ``entry_price``/``exit_price`` the volume-weighted fill prices, ``fee`` entry plus exit fees
    (quote), ``profit`` net of every fee (quote), ``reason`` why the closing fill was placed."""

    symbol: str
    entry_ms: int
    exit_ms: int
    entry_price: float
    exit_price: float
    amount: float
    fee: float
    profit: float
    reason: str


@dataclass(slots=True)
class _Lot:
    """Totals of the open lot, unreduced by partial sells: what the round trip is computed from."""

    bought_amount: float = 0.0
    bought_cost: float = 0.0
    entry_fees: float = 0.0
    buy_count: int = 0
    first_buy_price: float = 0.0
    sold_amount: float = 0.0
    sold_gross: float = 0.0
    exit_fees: float = 0.0
    sell_count: int = 0
    first_sell_price: float = 0.0
    #: The position's realised P&L before this lot opened: on close it becomes this plus the
    #: round trip's profit, so ``realised_pnl`` agrees exactly with the sum of round trips.
    realised_before: float = 0.0


class Portfolio:
    """Cash in ``quote_currency`` and the positions bought with it, long only.

    Every symbol must be quoted in ``quote_currency``: a fill in another quote would move a cash
    balance this portfolio does not keep, so it is refused rather than booked wrongly.
    """

    def __init__(self, quote_currency: str, cash: float) -> None:
        if not quote_currency:
            raise ValueError("a portfolio needs a quote currency")
        if not math.isfinite(cash):
            raise ValueError(f"initial cash must be finite, got {cash!r}")
        self._quote = quote_currency
        self._cash = float(cash)
        self._positions: dict[str, Position] = {}
        self._lots: dict[str, _Lot] = {}

    # --- State --------------------------------------------------------------------------------

    @property
    def quote_currency(self) -> str:
        return self._quote

    @property
    def cash(self) -> float:
        """Free cash (quote)."""
        return self._cash

    @property
    def positions(self) -> Mapping[str, Position]:
        """Open (non-flat) positions by symbol; copies, so callers cannot edit the books."""
        return MappingProxyType(
            {symbol: replace(p) for symbol, p in self._positions.items() if not p.is_flat}
        )

    def position(self, symbol: str) -> Position | None:
        """A copy of ``symbol``'s position, flat ones included (for their lifetime totals)."""
        found = self._positions.get(symbol)
        return None if found is None else replace(found)

    @property
    def realised_pnl(self) -> float:
        """Realised profit of every symbol, net of fees (quote)."""
        return sum(p.realised_pnl for p in self._positions.values())

    @property
    def fees_paid(self) -> float:
        """Every fee paid, in quote (base-currency fees valued at their fill price)."""
        return sum(p.fees_paid for p in self._positions.values())

    # --- Changes ------------------------------------------------------------------------------

    def apply_fill(self, trade: Fill, reason: str = "signal") -> RoundTrip | None:
        """Book one fill; return the ``RoundTrip`` if it closed the lot, else ``None``.

        ``reason`` is why the order was placed (``ExitReason`` value for sells); it only labels
        the round trip. Raises ``ValueError`` (and changes nothing) for a malformed fill, a fill
        in another quote currency, or a sell of more than is held.
        """
        base = self._check_fill(trade)
        fee_quote = self._fee_in_quote(trade, base)
        if trade.side is Side.BUY:
            self._buy(trade, base, fee_quote)
            return None
        if trade.side is Side.SELL:
            return self._sell(trade, fee_quote, reason)
        raise ValueError(f"fill on {trade.symbol}: unknown side {trade.side!r}")

    def adopt(self, symbol: str, amount: float, price: float, ts_ms: int) -> None:
        """Take on a holding the exchange shows but no stored fill explains (reconciliation).

        It joins the open lot at cost ``price * amount`` with no fee and no cash change: the
        cash that bought it was never ours to track, so charging it would invent a loss.
        """
        split_symbol(symbol)
        if not (math.isfinite(amount) and amount > 0):
            raise ValueError(f"adopt {symbol}: amount must be finite and > 0, got {amount!r}")
        if not _usable_price(price):
            raise ValueError(f"adopt {symbol}: price must be finite and > 0, got {price!r}")
        self._add_to_lot(symbol, amount, price, price * amount, 0.0, ts_ms)

    # --- Valuation ----------------------------------------------------------------------------

    def unrealised_pnl(self, prices: Mapping[str, float | None]) -> float:
        """What selling every position at ``prices`` (by symbol) would realise before exit fees:
        ``amount * price - cost - entry_fees``. NaN if a held symbol has no usable price, so a
        missing quote can never read as a loss."""
        total = 0.0
        for symbol, position in self._positions.items():
            if position.is_flat:
                continue
            price = prices.get(symbol)
            if price is None or not _usable_price(price):
                return math.nan
            total += position.amount * price - position.cost - position.entry_fees
        return total

    def equity(self, prices: Mapping[str, float | None]) -> float:
        """Cash plus every position at ``prices`` (quote); NaN on any missing price."""
        total = self._cash
        for symbol, position in self._positions.items():
            if position.is_flat:
                continue
            price = prices.get(symbol)
            if price is None or not _usable_price(price):
                return math.nan
            total += position.amount * price
        return total

    def snapshot(
        self, ts: datetime, prices: Mapping[str, float | None], region: str
    ) -> PortfolioSnapshot:
        """The mark-to-market snapshot for the HARDSTOP monitor, holdings by base asset.

        A missing price is passed on as ``None`` (never 0): ``SnapshotStore`` then refuses the
        snapshot as a data fault instead of recording a fake crash.
        """
        holdings = tuple(
            Holding(split_symbol(symbol)[0], position.amount, prices.get(symbol))
            for symbol, position in sorted(self._positions.items())
            if not position.is_flat
        )
        return PortfolioSnapshot(
            ts=ts,
            cash=self._cash,
            holdings=holdings,
            quote_currency=self._quote,
            region=region,
            meta={"realised_pnl": self.realised_pnl, "fees_paid": self.fees_paid},
        )

    # --- Replay -------------------------------------------------------------------------------

    @classmethod
    def from_fills(
        cls,
        quote_currency: str,
        initial_cash: float,
        fills: Iterable[tuple[Fill, str] | ReasonedFill],
    ) -> tuple[Portfolio, list[RoundTrip]]:
        """Rebuild the books by replaying ``fills`` oldest first; returns the round trips too.

        Each item is a ``(fill, reason)`` pair or a fill carrying its own ``reason``. Replay is
        deterministic: the same fills in the same order give bit-identical state, so a restart
        resumes exactly where the crashed process stood.
        """
        portfolio = cls(quote_currency, initial_cash)
        trips: list[RoundTrip] = []
        for item in fills:
            if isinstance(item, tuple):
                fill, reason = item
            else:
                fill, reason = item, item.reason
            trip = portfolio.apply_fill(fill, reason)
            if trip is not None:
                trips.append(trip)
        return portfolio, trips

    # --- Internals ----------------------------------------------------------------------------

    def _check_fill(self, trade: Fill) -> str:
        base, quote = split_symbol(trade.symbol)
        where = f"fill on {trade.symbol}"
        if quote != self._quote:
            raise ValueError(f"{where}: quoted in {quote}, this portfolio keeps {self._quote}")
        if not _usable_price(trade.price):
            raise ValueError(f"{where}: price must be finite and > 0, got {trade.price!r}")
        if not (math.isfinite(trade.amount) and trade.amount > 0):
            raise ValueError(f"{where}: amount must be finite and > 0, got {trade.amount!r}")
        if not (math.isfinite(trade.fee) and trade.fee >= 0):
            raise ValueError(f"{where}: fee must be finite and >= 0, got {trade.fee!r}")
        return base

    def _fee_in_quote(self, trade: Fill, base: str) -> float:
        """The fee in quote. A base-currency fee is worth ``fee * price``; a fee in any third
        currency (an exchange token) cannot be valued here and is refused, not ignored."""
        if trade.fee == 0 or trade.fee_currency == self._quote:
            return trade.fee
        if trade.fee_currency == base:
            return trade.fee * trade.price
        raise ValueError(
            f"fill on {trade.symbol}: fee {trade.fee!r} in {trade.fee_currency!r} is neither "
            f"{base} nor {self._quote}; it cannot be booked"
        )

    def _buy(self, trade: Fill, base: str, fee_quote: float) -> None:
        if trade.fee != 0 and trade.fee_currency == base and trade.fee_currency != self._quote:
            # The fee was taken from what we bought: fewer units arrive, all paid for in cash.
            received = trade.amount - trade.fee
            if not received > 0:
                raise ValueError(
                    f"fill on {trade.symbol}: base fee {trade.fee!r} leaves nothing of "
                    f"{trade.amount!r} bought"
                )
            cash_out = trade.price * trade.amount
            cost = trade.price * received
        else:
            received = trade.amount
            cost = trade.price * trade.amount
            cash_out = cost + fee_quote
        self._add_to_lot(trade.symbol, received, trade.price, cost, fee_quote, trade.ts_ms)
        self._cash -= cash_out

    def _add_to_lot(
        self, symbol: str, amount: float, price: float, cost: float, fee: float, ts_ms: int
    ) -> None:
        position = self._positions.setdefault(symbol, Position(symbol))
        lot = self._lots.get(symbol)
        if lot is None:
            lot = self._lots[symbol] = _Lot(realised_before=position.realised_pnl)
            position.opened_ms = ts_ms
        if lot.buy_count == 0:
            lot.first_buy_price = price
        lot.buy_count += 1
        lot.bought_amount += amount
        lot.bought_cost += cost
        lot.entry_fees += fee
        position.amount += amount
        position.cost += cost
        position.entry_fees += fee
        position.fees_paid += fee

    def _sell(self, trade: Fill, fee_quote: float, reason: str) -> RoundTrip | None:
        position = self._positions.get(trade.symbol)
        lot = self._lots.get(trade.symbol)
        held = 0.0 if position is None else position.amount
        if position is None or lot is None or trade.amount > held * (1.0 + OVERSELL_TOLERANCE):
            raise ValueError(
                f"fill on {trade.symbol}: sells {trade.amount!r} but only {held!r} is held; "
                "a long-only book cannot go short (books and exchange disagree)"
            )
        gross = trade.price * trade.amount
        self._cash += gross - fee_quote
        if lot.sell_count == 0:
            lot.first_sell_price = trade.price
        lot.sell_count += 1
        lot.sold_amount += trade.amount
        lot.sold_gross += gross
        lot.exit_fees += fee_quote
        position.fees_paid += fee_quote
        remaining = held - trade.amount
        if remaining > FLAT_TOLERANCE * lot.bought_amount:
            share = trade.amount / held
            cost_sold = position.cost * share
            fees_sold = position.entry_fees * share
            position.realised_pnl += gross - fee_quote - cost_sold - fees_sold
            position.amount = remaining
            position.cost -= cost_sold
            position.entry_fees -= fees_sold
            return None
        return self._close(position, lot, trade.ts_ms, reason)

    def _close(self, position: Position, lot: _Lot, exit_ms: int, reason: str) -> RoundTrip:
        amount = lot.bought_amount
        entry_price = lot.first_buy_price if lot.buy_count == 1 else lot.bought_cost / amount
        exit_price = (
            lot.first_sell_price if lot.sell_count == 1 else lot.sold_gross / lot.sold_amount
        )
        entry_fee = lot.entry_fees
        exit_fee = lot.exit_fees
        # The kernel's formula in the kernel's order. With one buy and one sell of the same
        # amount, ``sold_gross`` (price * amount) is bit for bit ``amount * exit_price``:
        # IEEE multiplication commutes, so this is literally the kernel's expression.
        gross = lot.sold_gross
        profit = gross - exit_fee - amount * entry_price - entry_fee
        trip = RoundTrip(
            symbol=position.symbol,
            entry_ms=position.opened_ms,
            exit_ms=exit_ms,
            entry_price=entry_price,
            exit_price=exit_price,
            amount=amount,
            fee=entry_fee + exit_fee,
            profit=profit,
            reason=reason,
        )
        position.realised_pnl = lot.realised_before + profit
        position.amount = 0.0
        position.cost = 0.0
        position.entry_fees = 0.0
        del self._lots[position.symbol]
        return trip
