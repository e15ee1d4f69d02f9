"""Portfolio bookkeeping: cash, lots, fees, round trips, valuation and replay.

Values are computed by hand in the comments; the round-trip profit is also checked bit for bit
against the backtest kernel's own close, because live and backtest must agree exactly.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nettrace.backtest.kernel import POS_COLUMNS, TRADE_COLUMNS, _close_position
from nettrace.domain.types import Side
from nettrace.execution.exchange import ExchangeTrade
from nettrace.execution.portfolio import Portfolio, Position, RoundTrip, split_symbol
from nettrace.store.snapshots import snapshot_faults

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_ids = itertools.count()


def fill(
    side: Side,
    price: float,
    amount: float,
    fee: float = 0.0,
    *,
    symbol: str = "BTC/USD",
    fee_currency: str = "USD",
    ts_ms: int = 1_000,
) -> ExchangeTrade:
    n = next(_ids)
    return ExchangeTrade(
        id=f"t{n}",
        order_id=f"o{n}",
        client_order_id=f"c{n}",
        symbol=symbol,
        side=side,
        price=price,
        amount=amount,
        fee=fee,
        fee_currency=fee_currency,
        is_maker=True,
        ts_ms=ts_ms,
    )


def buy(
    price: float,
    amount: float,
    fee: float = 0.0,
    *,
    symbol: str = "BTC/USD",
    fee_currency: str = "USD",
    ts_ms: int = 1_000,
) -> ExchangeTrade:
    return fill(Side.BUY, price, amount, fee, symbol=symbol, fee_currency=fee_currency, ts_ms=ts_ms)


def sell(
    price: float,
    amount: float,
    fee: float = 0.0,
    *,
    symbol: str = "BTC/USD",
    ts_ms: int = 1_000,
) -> ExchangeTrade:
    return fill(Side.SELL, price, amount, fee, symbol=symbol, ts_ms=ts_ms)


# --- One lot ----------------------------------------------------------------------------------


def test_buy_then_sell_books_cash_and_a_round_trip() -> None:
    book = Portfolio("USD", 1_000.0)
    assert book.apply_fill(buy(100.0, 1.0, 0.4, ts_ms=1_000)) is None
    # 1000 - (100 + 0.4)
    assert book.cash == pytest.approx(899.6)
    position = book.positions["BTC/USD"]
    assert (position.amount, position.cost, position.entry_fees) == (1.0, 100.0, 0.4)
    assert position.avg_entry_price == 100.0
    assert position.entry_fee_rate == pytest.approx(0.004)
    assert position.opened_ms == 1_000

    trip = book.apply_fill(sell(110.0, 1.0, 0.44, ts_ms=2_000), reason="take_profit")
    # 899.6 + 110 - 0.44; profit 110 - 0.44 - 100 - 0.4
    assert book.cash == pytest.approx(1_009.16)
    assert trip == RoundTrip(
        symbol="BTC/USD",
        entry_ms=1_000,
        exit_ms=2_000,
        entry_price=100.0,
        exit_price=110.0,
        amount=1.0,
        fee=0.4 + 0.44,
        profit=1.0 * 110.0 - 0.44 - 1.0 * 100.0 - 0.4,
        reason="take_profit",
    )
    assert trip.profit == pytest.approx(9.16)
    assert book.positions == {}
    assert book.realised_pnl == trip.profit
    assert book.fees_paid == pytest.approx(0.84)
    assert book.cash == pytest.approx(1_000.0 + trip.profit)


@settings(max_examples=200, deadline=None)
@given(
    entry=st.floats(0.01, 1e6),
    exit_=st.floats(0.01, 1e6),
    notional=st.floats(1.0, 1e6),
    entry_rate=st.sampled_from([0.0, 0.001, 0.004, 0.006]),
    exit_rate=st.sampled_from([0.0, 0.001, 0.004, 0.006]),
)
def test_one_buy_one_sell_reproduces_the_backtest_kernel_bit_for_bit(
    entry: float, exit_: float, notional: float, entry_rate: float, exit_rate: float
) -> None:
    # The kernel's entry: amount = notional / price, entry fee = notional * rate.
    amount = notional / entry
    entry_fee = notional * entry_rate
    cash = np.array([0.0])
    pos = np.full((1, POS_COLUMNS), np.nan)
    pos[0, :3] = (amount, entry, entry_fee)
    trades_f = np.zeros((1, TRADE_COLUMNS))  # the kernel's own widths: numba checks no bounds
    trades_i = np.zeros((1, 4), dtype=np.int64)
    n_trades = np.zeros(1, dtype=np.int64)
    _close_position(
        0, 1, exit_, exit_rate, 0, cash, pos, np.zeros(1, np.int64), trades_f, trades_i, n_trades
    )
    book = Portfolio("USD", 1e9)
    book.apply_fill(buy(entry, amount, entry_fee))
    trip = book.apply_fill(sell(exit_, amount, (amount * exit_) * exit_rate))
    assert trip is not None
    k_entry, k_exit, k_amount, k_fee, k_profit = (float(v) for v in trades_f[0, :5])
    assert (trip.entry_price, trip.exit_price, trip.amount) == (k_entry, k_exit, k_amount)
    assert trip.fee == k_fee
    assert trip.profit == k_profit


def test_partial_buys_average_the_cost() -> None:
    book = Portfolio("USD", 1_000.0)
    book.apply_fill(buy(100.0, 1.0, 0.4, ts_ms=1_000))
    book.apply_fill(buy(120.0, 3.0, 1.44, ts_ms=5_000))
    position = book.positions["BTC/USD"]
    # cost 100 + 360 = 460 over 4 units; fees 0.4 + 1.44
    assert position.amount == 4.0
    assert position.cost == 460.0
    assert position.avg_entry_price == 115.0
    assert position.entry_fees == pytest.approx(1.84)
    assert position.entry_fee_rate == pytest.approx(0.004)
    assert position.opened_ms == 1_000  # the lot's first buy
    assert book.cash == pytest.approx(1_000.0 - 460.0 - 1.84)


def test_partial_sells_realise_a_share_and_the_last_closes_the_whole_lot() -> None:
    book = Portfolio("USD", 1_000.0)
    book.apply_fill(buy(100.0, 1.0, 0.4, ts_ms=1_000))
    book.apply_fill(buy(120.0, 3.0, 1.44, ts_ms=2_000))

    assert book.apply_fill(sell(130.0, 1.0, 0.52, ts_ms=3_000)) is None
    position = book.positions["BTC/USD"]
    # a quarter of cost (115) and of entry fees (0.46) leaves with the unit sold
    assert position.amount == 3.0
    assert position.cost == pytest.approx(345.0)
    assert position.entry_fees == pytest.approx(1.38)
    assert position.avg_entry_price == pytest.approx(115.0)
    # 130 - 0.52 - 115 - 0.46
    assert position.realised_pnl == pytest.approx(14.02)

    trip = book.apply_fill(sell(140.0, 3.0, 1.68, ts_ms=4_000), reason="signal")
    assert trip is not None
    assert trip.amount == 4.0
    assert trip.entry_price == 115.0
    assert trip.exit_price == 137.5  # (130 + 420) / 4
    assert trip.fee == pytest.approx(1.84 + 0.52 + 1.68)
    # gross 550 - exit fees 2.2 - cost 460 - entry fees 1.84
    assert trip.profit == pytest.approx(85.96)
    assert (trip.entry_ms, trip.exit_ms) == (1_000, 4_000)
    assert book.positions == {}
    assert book.realised_pnl == trip.profit
    assert book.cash == pytest.approx(1_000.0 + 85.96)


def test_a_base_currency_buy_fee_reduces_the_amount_received() -> None:
    book = Portfolio("USD", 1_000.0)
    book.apply_fill(buy(100.0, 2.0, 0.01, fee_currency="BTC"))
    position = book.positions["BTC/USD"]
    # 2 BTC paid for (200 USD, no USD fee); 0.01 BTC kept as fee, worth 1 USD
    assert book.cash == 800.0
    assert position.amount == pytest.approx(1.99)
    assert position.cost == pytest.approx(199.0)
    assert position.entry_fees == pytest.approx(1.0)
    assert position.avg_entry_price == pytest.approx(100.0)
    trip = book.apply_fill(sell(100.0, position.amount))
    assert trip is not None
    # sold at cost: the fee is the whole loss
    assert trip.profit == pytest.approx(-1.0)
    assert book.cash == pytest.approx(999.0)


def test_a_fee_in_a_third_currency_is_refused() -> None:
    book = Portfolio("USD", 1_000.0)
    with pytest.raises(ValueError, match="BNB"):
        book.apply_fill(buy(100.0, 1.0, 0.01, fee_currency="BNB"))
    assert book.cash == 1_000.0
    assert book.positions == {}


def test_a_fill_in_another_quote_currency_is_refused() -> None:
    book = Portfolio("USD", 1_000.0)
    with pytest.raises(ValueError, match="USDT"):
        book.apply_fill(buy(100.0, 1.0, symbol="BTC/USDT"))


@pytest.mark.parametrize(
    ("price", "amount", "fee"), [(0.0, 1.0, 0.0), (100.0, 0.0, 0.0), (100.0, 1.0, -1.0)]
)
def test_malformed_fills_are_refused(price: float, amount: float, fee: float) -> None:
    book = Portfolio("USD", 1_000.0)
    with pytest.raises(ValueError, match="BTC/USD"):
        book.apply_fill(buy(price, amount, fee))
    assert book.cash == 1_000.0


def test_overselling_raises_and_changes_nothing() -> None:
    book = Portfolio("USD", 1_000.0)
    with pytest.raises(ValueError, match=r"BTC/USD.*0\.5.*0\.0"):
        book.apply_fill(sell(100.0, 0.5))
    book.apply_fill(buy(100.0, 1.0))
    with pytest.raises(ValueError, match=r"BTC/USD: sells 1\.001 but only 1\.0 is held"):
        book.apply_fill(sell(100.0, 1.001))
    assert book.cash == 900.0
    assert book.positions["BTC/USD"].amount == 1.0


def test_a_sell_within_the_dust_tolerance_closes_the_lot() -> None:
    book = Portfolio("USD", 1_000.0)
    book.apply_fill(buy(100.0, 1.0))
    trip = book.apply_fill(sell(100.0, 1.0 + 1e-11))
    assert trip is not None
    assert book.positions == {}


def test_realised_pnl_and_fees_accumulate_over_lots() -> None:
    book = Portfolio("USD", 1_000.0)
    book.apply_fill(buy(100.0, 1.0, 1.0))
    first = book.apply_fill(sell(110.0, 1.0, 1.0))  # +8
    book.apply_fill(buy(100.0, 1.0, 1.0, ts_ms=9_000))
    second = book.apply_fill(sell(95.0, 1.0, 1.0))  # -7
    assert first is not None
    assert second is not None
    assert (first.profit, second.profit) == (8.0, -7.0)
    assert second.entry_ms == 9_000
    assert book.realised_pnl == 1.0
    assert book.fees_paid == 4.0
    assert book.cash == 1_001.0
    flat = book.position("BTC/USD")
    assert flat is not None
    assert flat.amount == 0.0
    assert math.isnan(flat.avg_entry_price)


def test_positions_are_copies() -> None:
    book = Portfolio("USD", 1_000.0)
    book.apply_fill(buy(100.0, 1.0))
    book.positions["BTC/USD"].amount = 50.0
    assert book.positions["BTC/USD"].amount == 1.0


def test_adopt_adds_a_holding_at_cost_without_cash_or_fee() -> None:
    book = Portfolio("USD", 1_000.0)
    book.adopt("ETH/USD", 2.0, 50.0, ts_ms=7_000)
    position = book.positions["ETH/USD"]
    assert (position.amount, position.cost, position.entry_fees) == (2.0, 100.0, 0.0)
    assert position.opened_ms == 7_000
    assert book.cash == 1_000.0
    assert book.fees_paid == 0.0
    trip = book.apply_fill(sell(60.0, 2.0, symbol="ETH/USD"))
    assert trip is not None
    assert trip.profit == 20.0
    with pytest.raises(ValueError, match="adopt ETH/USD: amount"):
        book.adopt("ETH/USD", -1.0, 50.0, ts_ms=0)


# --- Valuation --------------------------------------------------------------------------------


def test_equity_and_unrealised_pnl_at_prices() -> None:
    book = Portfolio("USD", 1_000.0)
    book.apply_fill(buy(100.0, 2.0, 0.8))
    book.adopt("ETH/USD", 1.0, 10.0, ts_ms=0)
    prices = {"BTC/USD": 110.0, "ETH/USD": 12.0}
    # cash 1000 - 200.8 = 799.2; holdings 220 + 12
    assert book.equity(prices) == pytest.approx(1_031.2)
    # (220 - 200 - 0.8) + (12 - 10)
    assert book.unrealised_pnl(prices) == pytest.approx(21.2)


@pytest.mark.parametrize("missing", [None, math.nan, 0.0, -1.0, math.inf])
def test_equity_is_nan_when_a_held_symbol_has_no_usable_price(missing: float | None) -> None:
    book = Portfolio("USD", 1_000.0)
    book.apply_fill(buy(100.0, 1.0))
    assert math.isnan(book.equity({"BTC/USD": missing}))
    assert math.isnan(book.unrealised_pnl({"BTC/USD": missing}))
    assert math.isnan(book.equity({}))
    # a flat book needs no prices
    book.apply_fill(sell(100.0, 1.0))
    assert book.equity({}) == 1_000.0
    assert book.unrealised_pnl({}) == 0.0


def test_snapshot_values_holdings_by_base_asset() -> None:
    book = Portfolio("USD", 1_000.0)
    book.apply_fill(buy(100.0, 2.0))
    snap = book.snapshot(T0, {"BTC/USD": 150.0}, region="ewr")
    assert snap.ts == T0
    assert snap.region == "ewr"
    assert snap.quote_currency == "USD"
    assert [(h.asset, h.amount, h.price) for h in snap.holdings] == [("BTC", 2.0, 150.0)]
    assert snap.cash == 800.0
    assert snap.total_equity == 1_100.0 == book.equity({"BTC/USD": 150.0})
    assert snapshot_faults(snap) == []


def test_a_snapshot_with_a_missing_price_is_refused_by_the_guard() -> None:
    book = Portfolio("USD", 1_000.0)
    book.apply_fill(buy(100.0, 2.0))
    snap = book.snapshot(T0, {}, region="ewr")
    assert snap.holdings[0].price is None  # never 0: that would be a fake loss
    assert snapshot_faults(snap) == ["BTC: missing price (got None)"]


def test_split_symbol() -> None:
    assert split_symbol("BTC/USD") == ("BTC", "USD")
    assert split_symbol("BTC/USDT:USDT") == ("BTC", "USDT")
    with pytest.raises(ValueError, match="BASE/QUOTE"):
        split_symbol("BTCUSD")


# --- Replay -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Reasoned:
    """A fill carrying its reason, as the store's ``StoredFill`` does."""

    symbol: str
    side: Side
    price: float
    amount: float
    fee: float
    fee_currency: str
    ts_ms: int
    reason: str


def test_from_fills_takes_pairs_or_fills_with_a_reason() -> None:
    pairs = [(buy(100.0, 1.0, 0.4), "signal"), (sell(90.0, 1.0, 0.36), "stop_loss")]
    book, trips = Portfolio.from_fills("USD", 1_000.0, pairs)
    assert [t.reason for t in trips] == ["stop_loss"]
    assert trips[0].profit == pytest.approx(90.0 - 0.36 - 100.0 - 0.4)
    reasoned = [
        _Reasoned("BTC/USD", t.side, t.price, t.amount, t.fee, t.fee_currency, t.ts_ms, r)
        for t, r in pairs
    ]
    again, trips_again = Portfolio.from_fills("USD", 1_000.0, reasoned)
    assert trips_again == trips
    assert again.cash == book.cash


# A random life of a book: buys, partial sells and full closes on two symbols, never overselling.
_SYMBOLS = ("BTC/USD", "ETH/USD")
_step = st.tuples(
    st.sampled_from(_SYMBOLS),
    st.sampled_from(["buy", "sell_part", "sell_all"]),
    st.floats(1.0, 1_000.0),  # price
    st.floats(0.001, 10.0),  # amount bought
    st.floats(0.05, 0.95),  # fraction sold
    st.sampled_from([0.0, 0.001, 0.004]),  # fee rate
    st.booleans(),  # buy fee in base currency
)


Step = tuple[str, str, float, float, float, float, bool]


def _play(steps: list[Step]) -> list[tuple[ExchangeTrade, str]]:
    """Turn random steps into fills that never oversell, then close every position.

    A partial sell that would leave less than a millionth of the lot sells all of it instead,
    so a long run of partial sells cannot wander into the portfolio's flat tolerance.
    """
    held = dict.fromkeys(_SYMBOLS, 0.0)
    bought = dict.fromkeys(_SYMBOLS, 0.0)
    fills: list[tuple[ExchangeTrade, str]] = []
    for ts, (symbol, action, price, amount, fraction, rate, base_fee) in enumerate(steps):
        if action == "buy":
            base = symbol.split("/")[0]
            if base_fee:
                fee, currency, received = amount * rate, base, amount - amount * rate
            else:
                fee, currency, received = price * amount * rate, "USD", amount
            trade = fill(
                Side.BUY, price, amount, fee, symbol=symbol, fee_currency=currency, ts_ms=ts
            )
            fills.append((trade, "signal"))
            held[symbol] += received
            bought[symbol] += received
        elif held[symbol] > 0:
            qty = held[symbol] * fraction
            if action == "sell_all" or held[symbol] - qty < 1e-6 * bought[symbol]:
                qty = held[symbol]
            fee = price * qty * rate
            fills.append((fill(Side.SELL, price, qty, fee, symbol=symbol, ts_ms=ts), action))
            held[symbol] -= qty
            if held[symbol] == 0.0:
                bought[symbol] = 0.0
    for symbol in _SYMBOLS:
        if held[symbol] > 0:
            fills.append((fill(Side.SELL, 500.0, held[symbol], symbol=symbol, ts_ms=10**6), "end"))
    return fills


@settings(max_examples=150, deadline=None)
@given(st.lists(_step, max_size=30))
def test_cash_ends_at_initial_plus_round_trip_profits_and_replay_is_identical(
    steps: list[Step],
) -> None:
    fills = _play(steps)
    book = Portfolio("USD", 10_000.0)
    trips: list[RoundTrip] = []
    scale = 10_000.0
    for trade, reason in fills:
        scale += trade.price * trade.amount
        trip = book.apply_fill(trade, reason)
        if trip is not None:
            trips.append(trip)
        # Mid-life: equity = initial + realised + unrealised (no adopted holdings here).
        prices = {s: 200.0 for s in _SYMBOLS}
        assert book.equity(prices) == pytest.approx(
            10_000.0 + book.realised_pnl + book.unrealised_pnl(prices), rel=0, abs=1e-9 * scale
        )
    assert book.positions == {}
    assert book.cash == pytest.approx(
        10_000.0 + sum(t.profit for t in trips), rel=0, abs=1e-9 * scale
    )
    assert book.realised_pnl == pytest.approx(sum(t.profit for t in trips), rel=0, abs=1e-9 * scale)

    replayed, replayed_trips = Portfolio.from_fills("USD", 10_000.0, fills)
    assert replayed_trips == trips
    assert replayed.cash == book.cash
    for symbol in _SYMBOLS:
        assert replayed.position(symbol) == book.position(symbol)


def test_position_defaults_are_flat() -> None:
    position = Position("BTC/USD")
    assert position.is_flat
    assert math.isnan(position.avg_entry_price)
    assert math.isnan(position.entry_fee_rate)
