"""The fills table on SQLite and PostgreSQL: idempotent per (order, trade), exact round trips.

A restart rebuilds the portfolio from these rows, so every value must come back exactly as the
exchange reported it, each trade must be stored once however often it is reported, and the
reason a fill happened must be recoverable from its order.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from nettrace.domain.types import Side, Urgency
from nettrace.execution.exchange import ExchangeTrade
from nettrace.execution.portfolio import Portfolio
from nettrace.store.database import Database
from nettrace.store.fills import FillStore, StoredFill, datetime_from_ms, ms_from_datetime
from nettrace.store.hardstop import HardstopLatch
from nettrace.store.models import DecisionRow, FillRow, OrderRow
from nettrace.store.orders import OrderIntent, OrderNotFoundError, OrderStore

#: 2026-01-01T00:00:00.123Z: odd milliseconds, to catch float-seconds rounding.
TS = 1_767_225_600_123
_trade_ids = itertools.count()


def decision(db: Database, symbol: str, side: Side, exit_reason: str = "signal") -> str:
    """An approved decision row, as the validator would have written it."""
    decision_id = uuid.uuid4().hex
    with db.session() as session:
        session.add(
            DecisionRow(
                id=decision_id,
                decided_at=datetime.now(UTC),
                region="ewr",
                symbol=symbol,
                side=side.value,
                approved=True,
                inputs={"side": side.value, "symbol": symbol, "exit_reason": exit_reason},
                exit_reason=exit_reason if side is Side.SELL else None,
                price_bound=100.0,
            )
        )
    return decision_id


def order(
    db: Database,
    symbol: str = "BTC/USD",
    side: Side = Side.BUY,
    *,
    order_type: str = "limit",
    exit_reason: str = "signal",
) -> str:
    """A stored order; limit and market orders go through ``OrderStore``, conditional ones
    (stop-loss, take-profit) are written directly, as the bracket code stores them."""
    decision_id = decision(db, symbol, side, exit_reason)
    client_id = f"c-{uuid.uuid4().hex[:16]}"
    if order_type in ("limit", "market"):
        market = order_type == "market"
        intent = OrderIntent(
            "paper",
            symbol,
            side,
            1.0,
            price=None if market else 100.0,
            order_type="market" if market else "limit",
            post_only=not market,
            urgency=Urgency.CRITICAL if market else Urgency.NORMAL,
        )
        latch = HardstopLatch(db)
        if market:  # a market order is a HARDSTOP flatten: stored only while the latch is up
            latch.raise_("operator", "flatten for the test")
        OrderStore(db, region="ewr", primary_region="ewr").create(intent, decision_id, client_id)
        if market:
            latch.clear("operator", "test done")
        return client_id
    with db.session() as session:
        session.add(
            OrderRow(
                client_order_id=client_id,
                decision_id=decision_id,
                region="ewr",
                exchange="paper",
                symbol=symbol,
                side=side.value,
                order_type=order_type,
                post_only=False,
                price=None,
                amount=1.0,
                exchange_order_id="x-42",
            )
        )
    return client_id


def trade(
    client_id: str,
    side: Side = Side.BUY,
    *,
    price: float = 101.25,
    amount: float = 0.123456789,
    fee: float = 0.05,
    symbol: str = "BTC/USD",
    trade_id: str | None = None,
    ts_ms: int = TS,
) -> ExchangeTrade:
    return ExchangeTrade(
        id=trade_id or f"t{next(_trade_ids)}",
        order_id="x-42",
        client_order_id=client_id,
        symbol=symbol,
        side=side,
        price=price,
        amount=amount,
        fee=fee,
        fee_currency="USD",
        is_maker=False,
        ts_ms=ts_ms,
    )


def fill_count(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(FillRow)) or 0)


def test_ms_conversion_is_exact() -> None:
    for ts in (0, 1, TS, 4_102_444_799_999):
        assert ms_from_datetime(datetime_from_ms(ts)) == ts
    assert datetime_from_ms(TS) == datetime(2026, 1, 1, 0, 0, 0, 123_000, tzinfo=UTC)


def test_a_fill_is_stored_and_read_back_exactly(migrated_db: Database) -> None:
    store = FillStore(migrated_db)
    client_id = order(migrated_db)
    reported = trade(client_id, price=0.1 + 0.2, amount=1 / 3, fee=1e-7)
    assert store.record(client_id, reported) is True
    [stored] = store.all_fills()
    assert stored == StoredFill(
        id=reported.id,
        order_id="",  # the order row never learned the exchange's order id
        client_order_id=client_id,
        symbol="BTC/USD",
        side=Side.BUY,
        price=0.1 + 0.2,
        amount=1 / 3,
        fee=1e-7,
        fee_currency="USD",
        is_maker=False,
        ts_ms=TS,
        reason="signal",
        row_id=stored.row_id,
    )
    with migrated_db.session() as session:
        row = session.scalars(select(FillRow)).one()
        assert row.ts == datetime_from_ms(TS)
        assert row.ts.tzinfo is not None


def test_a_duplicate_trade_writes_nothing(migrated_db: Database) -> None:
    store = FillStore(migrated_db)
    client_id = order(migrated_db)
    reported = trade(client_id)
    assert store.record(client_id, reported) is True
    assert store.record(client_id, reported) is False
    assert store.record(client_id, reported, reason="signal") is False
    assert fill_count(migrated_db) == 1
    assert store.trade_ids() == {reported.id}


def test_two_writers_racing_on_one_trade_store_it_once(migrated_db: Database) -> None:
    client_id = order(migrated_db)
    reported = trade(client_id)
    barrier = threading.Barrier(2)
    results: list[bool] = []
    errors: list[BaseException] = []

    def record() -> None:
        own = Database(migrated_db.url)
        try:
            barrier.wait(timeout=30)
            results.append(FillStore(own).record(client_id, reported))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=record) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(results) == [False, True]
    assert fill_count(migrated_db) == 1


def test_a_fill_for_an_unknown_order_is_refused(migrated_db: Database) -> None:
    store = FillStore(migrated_db)
    with pytest.raises(OrderNotFoundError, match="no-such-order"):
        store.record("no-such-order", trade("no-such-order"))
    assert fill_count(migrated_db) == 0


def test_a_trade_that_cannot_belong_to_the_order_is_refused(migrated_db: Database) -> None:
    store = FillStore(migrated_db)
    client_id = order(migrated_db)
    with pytest.raises(ValueError, match=r"ETH/USD"):
        store.record(client_id, trade(client_id, symbol="ETH/USD"))
    with pytest.raises(ValueError, match="SELL"):
        store.record(client_id, trade(client_id, Side.SELL))
    with pytest.raises(ValueError, match="names order 'other'"):
        store.record(client_id, trade("other"))
    with pytest.raises(ValueError, match="amount"):
        store.record(client_id, trade(client_id, amount=0.0))
    assert fill_count(migrated_db) == 0


def test_reasons_come_from_the_order(migrated_db: Database) -> None:
    store = FillStore(migrated_db)
    entry = order(migrated_db)
    stop = order(migrated_db, side=Side.SELL, order_type="stop_loss")
    target = order(migrated_db, side=Side.SELL, order_type="take_profit")
    halt = order(migrated_db, side=Side.SELL, order_type="market", exit_reason="hardstop")
    exit_ = order(migrated_db, side=Side.SELL)
    for client_id, side in (
        (entry, Side.BUY),
        (stop, Side.SELL),
        (target, Side.SELL),
        (halt, Side.SELL),
        (exit_, Side.SELL),
    ):
        assert store.record(client_id, trade(client_id, side)) is True
    # The engine labels fills from the order alone, so replay and live agree: a critical market
    # sell stored while HARDSTOP was up is a flatten (it was "signal" before issue 10, which
    # hid every HARDSTOP loss among the signal exits).
    assert [f.reason for f in store.all_fills()] == [
        "signal",
        "stop_loss",
        "take_profit",
        "hardstop",
        "signal",
    ]
    [stop_fill] = store.for_order(stop)
    assert stop_fill.order_id == "x-42"
    assert store.for_order("no-such-order") == []


def test_the_same_trade_id_on_two_orders_is_two_fills(migrated_db: Database) -> None:
    store = FillStore(migrated_db)
    first, second = order(migrated_db), order(migrated_db)
    assert store.record(first, trade(first, trade_id="shared")) is True
    assert store.record(second, trade(second, trade_id="shared")) is True
    assert fill_count(migrated_db) == 2
    assert store.trade_ids() == {"shared"}


def test_replaying_stored_fills_rebuilds_the_portfolio(migrated_db: Database) -> None:
    store = FillStore(migrated_db)
    entry = order(migrated_db)
    stop = order(migrated_db, side=Side.SELL, order_type="stop_loss")
    live = Portfolio("USD", 1_000.0)
    fills = [
        (entry, trade(entry, price=100.0, amount=0.6, fee=0.24, ts_ms=TS), "signal"),
        (entry, trade(entry, price=101.0, amount=0.4, fee=0.1616, ts_ms=TS + 5), "signal"),
        (
            stop,
            trade(stop, Side.SELL, price=95.0, amount=1.0, fee=0.57, ts_ms=TS + 60_000),
            "stop_loss",
        ),
    ]
    live_trips = []
    for client_id, reported, reason in fills:
        assert store.record(client_id, reported, reason) is True
        trip = live.apply_fill(reported, reason)
        if trip is not None:
            live_trips.append(trip)

    replayed, trips = Portfolio.from_fills("USD", 1_000.0, store.all_fills())
    assert trips == live_trips
    assert replayed.cash == live.cash
    assert [t.reason for t in trips] == ["stop_loss"]
    assert trips[0].entry_ms == TS
    assert trips[0].exit_ms == TS + 60_000


def test_losing_the_insert_race_returns_false(
    migrated_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other writer inserts between our check and our insert: the unique constraint stops
    the second row and the loser reports a duplicate instead of failing."""
    store = FillStore(migrated_db)
    client_id = order(migrated_db)
    reported = trade(client_id)
    assert store.record(client_id, reported) is True
    real_exists = FillStore._exists
    calls: list[int] = []

    def blind_first(session: object, order_id: int, trade_id: str) -> bool:
        calls.append(order_id)
        return False if len(calls) == 1 else real_exists(session, order_id, trade_id)  # type: ignore[arg-type]

    monkeypatch.setattr(FillStore, "_exists", staticmethod(blind_first))
    assert store.record(client_id, reported) is False
    assert len(calls) == 2
    assert fill_count(migrated_db) == 1
