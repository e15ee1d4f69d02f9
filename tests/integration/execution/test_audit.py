"""The ledger audit on a real migrated database (SQLite always, PostgreSQL when configured).

A clean history -- entries with their brackets, a profitable signal exit, a stop filled worse
than its stop, a HARDSTOP flatten -- passes. Then each kind of breach is planted *directly* in
the tables (bypassing ``OrderStore``, which would refuse every one of them), and the audit must
name exactly that breach: each test asserts the full list of kinds found, so a check that stays
silent, or one that fires on the wrong thing, fails.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from nettrace.domain.audit import AuditReport, BreachKind
from nettrace.execution.audit import audit_ledger
from nettrace.store.database import Database
from nettrace.store.models import DecisionRow, FillRow, OrderRow, OrderTransitionRow

PRIMARY = "ewr"
T0 = datetime(2026, 3, 1, tzinfo=UTC)
_clock = itertools.count(1)
_ids = itertools.count(1)


def _next_time() -> datetime:
    """Strictly increasing times, so fills replay in the order the test writes them."""
    return T0 + timedelta(minutes=next(_clock))


def decision(
    db: Database,
    side: str | None,
    *,
    symbol: str = "BTC/USD",
    approved: bool = True,
    exit_reason: str | None = None,
    price_bound: float | None = None,
    stop_price: float | None = None,
    entry_decision_id: str | None = None,
) -> str:
    decision_id = uuid.uuid4().hex
    with db.session() as session:
        session.add(
            DecisionRow(
                id=decision_id,
                decided_at=_next_time(),
                region=PRIMARY,
                symbol=symbol,
                side=side,
                approved=approved,
                refusals=[] if approved else [{"code": "low_confidence", "message": "0.5 < 0.7"}],
                exit_reason=exit_reason,
                price_bound=price_bound,
                stop_price=stop_price,
                entry_decision_id=entry_decision_id,
            )
        )
    return decision_id


def order(
    db: Database,
    decision_id: str,
    side: str,
    price: float | None,
    *,
    symbol: str = "BTC/USD",
    order_type: str = "limit",
    urgency: str = "normal",
    hardstop_active: bool = False,
    region: str = PRIMARY,
    amount: float = 1.0,
    parent: str | None = None,
) -> str:
    """An order row and its first transition, written as they are stored (no checks)."""
    client_id = f"nt-{next(_ids):04d}-{uuid.uuid4().hex[:8]}"
    detail = {"reason": "created"} | ({"parent_client_order_id": parent} if parent else {})
    created = _next_time()
    with db.session() as session:
        row = OrderRow(
            client_order_id=client_id,
            decision_id=decision_id,
            region=region,
            exchange="paper",
            symbol=symbol,
            side=side,
            order_type=order_type,
            post_only=order_type == "limit",
            price=price,
            amount=amount,
            filled=0.0,
            state="open",
            urgency=urgency,
            hardstop_active=hardstop_active,
            created_at=created,
            updated_at=created,
        )
        session.add(row)
        session.flush()
        session.add(
            OrderTransitionRow(
                order_id=row.id, from_state=None, to_state="open", at=created, detail=detail
            )
        )
    return client_id


def fill(db: Database, client_id: str, price: float, amount: float = 1.0) -> None:
    """A fill at the maker fee (0.40%, in quote)."""
    with db.session() as session:
        order_id = session.scalar(select(OrderRow.id).where(OrderRow.client_order_id == client_id))
        assert order_id is not None
        session.add(
            FillRow(
                order_id=order_id,
                exchange_trade_id=f"t-{next(_ids)}",
                price=price,
                amount=amount,
                fee=price * amount * 0.004,
                fee_currency="USD",
                is_maker=True,
                ts=_next_time(),
            )
        )


@dataclass(frozen=True)
class Entry:
    decision_id: str
    client_id: str


def entry(db: Database, *, symbol: str = "BTC/USD", price: float = 100.0, stop: float = 95.0,
          filled: bool = True) -> Entry:  # fmt: skip
    """An approved BUY (bound 101, the given stop) and its limit order, filled at ``price``."""
    buy = decision(db, "BUY", symbol=symbol, price_bound=101.0, stop_price=stop)
    client_id = order(db, buy, "BUY", price, symbol=symbol)
    if filled:
        fill(db, client_id, price)
    return Entry(buy, client_id)


def stop_decision(db: Database, of: Entry, *, judged_at: float = 95.0,
                  symbol: str = "BTC/USD") -> str:  # fmt: skip
    return decision(db, "SELL", symbol=symbol, exit_reason="stop_loss", price_bound=judged_at,
                    stop_price=judged_at, entry_decision_id=of.decision_id)  # fmt: skip


def stop_order(db: Database, of: Entry, *, trigger: float = 95.0, judged_at: float = 95.0,
               hardstop_active: bool = False) -> str:  # fmt: skip
    return order(db, stop_decision(db, of, judged_at=judged_at), "SELL", trigger,
                 order_type="stop_loss", urgency="critical", hardstop_active=hardstop_active,
                 parent=of.client_id)  # fmt: skip


def signal_sell(db: Database, price: float, *, bound: float = 100.81, symbol: str = "BTC/USD",
                urgency: str = "normal", reason: str = "signal") -> str:  # fmt: skip
    sell = decision(db, "SELL", symbol=symbol, exit_reason=reason, price_bound=bound)
    return order(db, sell, "SELL", price, symbol=symbol, urgency=urgency)


def flatten(db: Database, *, hardstop_active: bool = True, order_type: str = "market",
            price: float | None = None) -> str:  # fmt: skip
    sell = decision(db, "SELL", exit_reason="hardstop")
    return order(db, sell, "SELL", price, order_type=order_type, urgency="critical",
                 hardstop_active=hardstop_active)  # fmt: skip


def audit(db: Database) -> AuditReport:
    return audit_ledger(db, primary_region=PRIMARY)


def kinds(report: AuditReport) -> list[BreachKind]:
    return [b.kind for b in report.breaches]


@pytest.fixture
def ledger(migrated_db: Database) -> Database:
    """A clean history of three round trips: a profitable signal exit, a stop filled below its
    stop on a gap, and a HARDSTOP flatten at a loss (with a protective stop placed while
    halted). Every order has its approval; every loss is a stop or a flatten."""
    db = migrated_db
    first = entry(db)
    stop_order(db, first)
    tp_sell = decision(db, "SELL", exit_reason="take_profit", price_bound=100.81,
                       entry_decision_id=first.decision_id)  # fmt: skip
    order(db, tp_sell, "SELL", 110.0, order_type="take_profit", parent=first.client_id)
    fill(db, signal_sell(db, 105.0), 105.0)

    second = entry(db)
    fill(db, stop_order(db, second), 94.5)  # a gap through the stop: filled worse, allowed

    third = entry(db)
    stop_order(db, third, hardstop_active=True)  # a position keeps its stop while halted
    fill(db, flatten(db), 90.0)
    return db


def test_a_clean_ledger_passes_and_says_what_it_checked(ledger: Database) -> None:
    report = audit(ledger)
    assert report.breaches == ()
    assert report.clean
    assert report.verdict == "clean"
    assert (report.orders_checked, report.decisions_checked) == (9, 9)
    assert report.round_trips_checked == 3
    assert report.fills_checked == 6
    assert report.summary() == "ledger clean: 9 orders, 9 decisions, 3 round trips checked"


def test_an_empty_ledger_is_clean(migrated_db: Database) -> None:
    report = audit(migrated_db)
    assert report.clean
    assert (report.orders_checked, report.decisions_checked, report.round_trips_checked) == (
        0,
        0,
        0,
    )


def test_an_order_without_a_recorded_decision(ledger: Database) -> None:
    # The foreign key forbids this; a hand edit or a bypassing writer is exactly what the audit
    # is for, so the constraint is lifted for this one insert.
    with ledger.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        else:
            conn.exec_driver_sql(
                "ALTER TABLE orders DROP CONSTRAINT fk_orders_decision_id_decisions"
            )
        conn.execute(
            insert(OrderRow).values(
                client_order_id="nt-ghost", decision_id="no-such-decision", region=PRIMARY,
                exchange="paper", symbol="BTC/USD", side="BUY", order_type="limit",
                post_only=True, price=100.0, amount=1.0, filled=0.0, state="open",
                urgency="normal", hardstop_active=False, created_at=T0, updated_at=T0,
            )
        )  # fmt: skip
        conn.commit()
    ledger.engine.dispose()  # no pooled connection keeps foreign keys off
    report = audit(ledger)
    assert kinds(report) == [BreachKind.ORDER_WITHOUT_DECISION]
    assert report.breaches[0].subject == "order nt-ghost"
    assert "no-such-decision" in report.breaches[0].message


def test_an_order_for_a_refused_decision(ledger: Database) -> None:
    refused = decision(ledger, "BUY", approved=False, price_bound=101.0, stop_price=95.0)
    client_id = order(ledger, refused, "BUY", 100.0)
    report = audit(ledger)
    assert kinds(report) == [BreachKind.DECISION_REFUSED]
    assert report.breaches[0].subject == f"order {client_id}"
    assert "0.5 < 0.7" in report.breaches[0].message


@pytest.mark.parametrize(
    ("decision_side", "decision_symbol"),
    [("BUY", "ETH/USD"), ("SELL", "BTC/USD")],
    ids=["other-symbol", "other-side"],
)
def test_an_order_for_another_side_or_symbol(
    ledger: Database, decision_side: str, decision_symbol: str
) -> None:
    other = decision(ledger, decision_side, symbol=decision_symbol, price_bound=101.0,
                     exit_reason="signal" if decision_side == "SELL" else None)  # fmt: skip
    client_id = order(ledger, other, "BUY", 100.0)
    report = audit(ledger)
    assert kinds(report) == [BreachKind.DECISION_MISMATCH]
    assert f"approved {decision_side} {decision_symbol}" in report.breaches[0].message
    assert report.breaches[0].subject == f"order {client_id}"


def test_a_buy_above_its_bound(ledger: Database) -> None:
    buy = decision(ledger, "BUY", price_bound=101.0, stop_price=95.0)
    order(ledger, buy, "BUY", 101.5)
    report = audit(ledger)
    assert kinds(report) == [BreachKind.BUY_ABOVE_BOUND]
    assert "101.5 above 101" in report.breaches[0].message


def test_a_buy_filled_above_its_bound(ledger: Database) -> None:
    buy = decision(ledger, "BUY", price_bound=101.0, stop_price=95.0)
    client_id = order(ledger, buy, "BUY", 101.0)  # the order respects it, the fill does not
    fill(ledger, client_id, 101.2)
    report = audit(ledger)
    assert kinds(report) == [BreachKind.BUY_ABOVE_BOUND]
    assert report.breaches[0].subject.endswith(f"of order {client_id}")
    assert "filled at 101.2" in report.breaches[0].message


def test_a_bound_within_float_noise_is_not_a_breach(ledger: Database) -> None:
    buy = decision(ledger, "BUY", price_bound=101.0, stop_price=95.0)
    order(ledger, buy, "BUY", 101.0 * (1 + 1e-12))
    assert audit(ledger).clean


def test_a_signal_sell_below_its_bound(ledger: Database) -> None:
    client_id = signal_sell(ledger, 100.5, bound=100.81)
    report = audit(ledger)
    assert kinds(report) == [BreachKind.SELL_BELOW_BOUND]
    assert report.breaches[0].subject == f"order {client_id}"
    assert "100.5 below 100.81" in report.breaches[0].message


@pytest.mark.parametrize(
    ("trigger", "judged_at"), [(96.0, 95.0), (96.0, 96.0)], ids=["trigger", "judged-stop"]
)
def test_a_stop_loss_not_at_the_stored_stop(
    ledger: Database, trigger: float, judged_at: float
) -> None:
    position = entry(ledger, stop=95.0, filled=False)
    client_id = stop_order(ledger, position, trigger=trigger, judged_at=judged_at)
    report = audit(ledger)
    assert kinds(report) == [BreachKind.STOP_MISMATCH]
    assert report.breaches[0].subject == f"order {client_id}"
    assert "95" in report.breaches[0].message


def test_a_stop_loss_naming_no_approved_entry(ledger: Database) -> None:
    refused = decision(ledger, "BUY", approved=False, price_bound=101.0, stop_price=95.0)
    stop = decision(ledger, "SELL", exit_reason="stop_loss", price_bound=95.0, stop_price=95.0,
                    entry_decision_id=refused)  # fmt: skip
    order(ledger, stop, "SELL", 95.0, order_type="stop_loss", urgency="critical")
    report = audit(ledger)
    assert kinds(report) == [BreachKind.STOP_MISMATCH]
    assert "not an approved BUY" in report.breaches[0].message


def test_a_market_order_that_is_not_critical(ledger: Database) -> None:
    position = entry(ledger, filled=False)
    client_id = order(ledger, stop_decision(ledger, position), "SELL", None,
                      order_type="market", urgency="normal")  # fmt: skip
    report = audit(ledger)
    assert kinds(report) == [BreachKind.MARKET_NOT_CRITICAL]
    assert report.breaches[0].subject == f"order {client_id}"


def test_a_critical_order_that_is_no_risk_exit(ledger: Database) -> None:
    client_id = signal_sell(ledger, 105.0, urgency="critical")
    report = audit(ledger)
    assert kinds(report) == [BreachKind.CRITICAL_NOT_RISK_EXIT]
    assert report.breaches[0].subject == f"order {client_id}"
    assert "'signal'" in report.breaches[0].message


def test_an_entry_stored_while_hardstop_was_up(ledger: Database) -> None:
    buy = decision(ledger, "BUY", price_bound=101.0, stop_price=95.0)
    client_id = order(ledger, buy, "BUY", 100.0, hardstop_active=True)
    report = audit(ledger)
    assert kinds(report) == [BreachKind.STORED_DURING_HARDSTOP]
    assert report.breaches[0].subject == f"order {client_id}"


def test_a_flatten_stored_while_hardstop_was_down(ledger: Database) -> None:
    client_id = flatten(ledger, hardstop_active=False)
    report = audit(ledger)
    assert kinds(report) == [BreachKind.FLATTEN_WITHOUT_HARDSTOP]
    assert report.breaches[0].subject == f"order {client_id}"


def test_an_order_outside_the_primary_region(ledger: Database) -> None:
    buy = decision(ledger, "BUY", price_bound=101.0, stop_price=95.0)
    client_id = order(ledger, buy, "BUY", 100.0, region="lhr")
    report = audit(ledger)
    assert kinds(report) == [BreachKind.OUTSIDE_PRIMARY_REGION]
    assert report.breaches[0].subject == f"order {client_id}"
    assert "'lhr'" in report.breaches[0].message
    # The primary is a setting, not a literal: the same row is clean where lhr is primary.
    elsewhere = audit_ledger(ledger, primary_region="lhr")
    assert BreachKind.OUTSIDE_PRIMARY_REGION in kinds(elsewhere)  # now the ewr ones are outside
    assert f"order {client_id}" not in {b.subject for b in elsewhere.breaches}


def test_a_signal_round_trip_at_a_loss(ledger: Database) -> None:
    # The exit's bound was computed wrongly (97, below the real break-even), so every order
    # and fill respects its approval: only the round trip shows the loss.
    position = entry(ledger, symbol="ETH/USD", price=100.0)
    exit_id = signal_sell(ledger, 98.0, bound=97.0, symbol="ETH/USD")
    fill(ledger, exit_id, 98.0)
    report = audit(ledger)
    assert kinds(report) == [BreachKind.LOSING_SIGNAL_EXIT]
    [breach] = report.breaches
    assert breach.subject.startswith("round trip ETH/USD ")
    assert breach.subject.endswith(f"closed by order {exit_id}")
    assert "entry 100, exit 98" in breach.message
    profit = 98.0 * 0.996 - 100.0 * 1.004
    assert f"profit {profit:.10g}" in breach.message
    assert position.client_id not in breach.subject
    assert report.round_trips_checked == 4


def test_a_take_profit_round_trip_at_a_loss(ledger: Database) -> None:
    entry(ledger, symbol="ETH/USD", price=100.0)
    tp = decision(ledger, "SELL", symbol="ETH/USD", exit_reason="take_profit", price_bound=99.0)
    exit_id = order(ledger, tp, "SELL", 99.5, symbol="ETH/USD", order_type="take_profit")
    fill(ledger, exit_id, 99.5)
    report = audit(ledger)
    assert kinds(report) == [BreachKind.LOSING_SIGNAL_EXIT]
    assert "a take_profit exit realised a loss" in report.breaches[0].message


def test_a_loss_taken_by_a_stop_that_filled_above_its_stop(ledger: Database) -> None:
    # The stop order is exactly at the stored stop; its fill at 98 is not a stop being hit
    # at 95: the loss was taken early, and is no stop.
    position = entry(ledger)
    stop_id = stop_order(ledger, position)
    fill(ledger, stop_id, 98.0)
    report = audit(ledger)
    assert kinds(report) == [BreachKind.LOSS_NOT_A_STOP]
    [breach] = report.breaches
    assert breach.subject.endswith(f"closed by order {stop_id}")
    assert "at 98 is above its stored stop 95" in breach.message


def test_a_loss_taken_by_a_stop_not_at_the_stored_stop(ledger: Database) -> None:
    position = entry(ledger)
    stop_id = stop_order(ledger, position, trigger=98.0)
    fill(ledger, stop_id, 98.0)
    report = audit(ledger)
    assert kinds(report) == [BreachKind.STOP_MISMATCH, BreachKind.LOSS_NOT_A_STOP]
    assert "trigger 98 is not the stored stop 95" in report.breaches[1].message


def test_the_closing_reason_comes_from_the_closing_orders_decision(ledger: Database) -> None:
    # A flatten placed as a limit order: the fill store labels its fills "signal" (by order
    # type), but its decision says hardstop, so the loss is a flatten's, not a signal's.
    entry(ledger)
    fill(ledger, flatten(ledger, order_type="limit", price=92.0), 92.0)
    assert audit(ledger).clean


def test_a_sell_of_more_than_is_held_is_reported(ledger: Database) -> None:
    fill(ledger, signal_sell(ledger, 105.0), 105.0)  # no position left to sell
    report = audit(ledger)
    assert kinds(report) == [BreachKind.LEDGER_INCONSISTENT]
    assert "only 0" in report.breaches[0].message


def test_a_bracket_protecting_another_entry(ledger: Database) -> None:
    mine, other = entry(ledger, filled=False), entry(ledger, filled=False)
    stop = stop_decision(ledger, mine)
    client_id = order(ledger, stop, "SELL", 95.0, order_type="stop_loss", urgency="critical",
                      parent=other.client_id)  # fmt: skip
    report = audit(ledger)
    assert kinds(report) == [BreachKind.BRACKET_MISMATCH]
    assert report.breaches[0].subject == f"order {client_id}"


def test_the_report_serialises(ledger: Database) -> None:
    import json

    signal_sell(ledger, 100.0, bound=100.81)
    body = json.loads(audit(ledger).to_json())
    assert body["verdict"] == "breached"
    assert body["clean"] is False
    assert body["checked"]["orders"] == 10
    assert [b["kind"] for b in body["breaches"]] == ["sell_below_bound"]
