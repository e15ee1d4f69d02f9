"""The persisted order state machine on SQLite and PostgreSQL.

Orders only from stored, approved decisions; idempotent creation (also under two threads);
nothing written outside the primary region; every change one transition row, in order; UNKNOWN
resolved only from the exchange; no illegal state, fill or history ever persisted.
"""

from __future__ import annotations

import itertools
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from nettrace.agents.agent_goals import GoalValidator, MemoryDecisionRecorder, TradeProposal
from nettrace.config.settings import Settings
from nettrace.domain.types import ExitReason, OrderState, Side, Urgency
from nettrace.execution.client_ids import client_order_id
from nettrace.execution.orders import (
    ALLOWED_TRANSITIONS,
    FillError,
    IllegalTransitionError,
    NotPrimaryRegionError,
    OrderBook,
    OrderIntent,
    TransitionSource,
)
from nettrace.store.database import Database
from nettrace.store.decisions import DecisionStore, decision_values
from nettrace.store.hardstop import HardstopLatch
from nettrace.store.models import DecisionRow, OrderRow, OrderTransitionRow
from nettrace.store.orders import (
    ClientOrderIdConflictError,
    DecisionNotApprovedError,
    HardstopActiveError,
    OrderNotFoundError,
    OrderStore,
    PriceBoundError,
)

S = OrderState
EXCHANGE = TransitionSource.EXCHANGE
_REGION_VARS = ("FLY_REGION", "NETTRACE_REGION", "PRIMARY_REGION", "NETTRACE_PRIMARY_REGION")
_symbols = itertools.count()


@pytest.fixture(autouse=True)
def _no_region_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The environment beats init values in Settings; tests choose the region themselves.
    for name in _REGION_VARS:
        monkeypatch.delenv(name, raising=False)


def region_settings(region: str = "ewr", primary: str = "ewr") -> Settings:
    return Settings(region=region, primary_region=primary)


@pytest.fixture
def book(migrated_db: Database) -> OrderBook:
    return OrderBook(migrated_db, region_settings())


def decide(db: Database, symbol: str, side: str = "BUY", approved: bool = True) -> str:
    validator = GoalValidator(recorder=DecisionStore(db, region="ewr"))
    proposal = TradeProposal(
        side=side,
        confidence=0.9,
        signal_count=3 if approved else 1,
        regime="uptrend",
        symbol=symbol,
        expected_move=0.02,
        entry_price=100.0,
        exit_price=110.0,
    )
    decision = validator.evaluate(proposal)
    assert decision.approved is approved, decision.reasons
    return decision.decision_id


def intent(symbol: str = "BTC/USD", amount: float = 2.0, side: Side = Side.BUY) -> OrderIntent:
    return OrderIntent("coinbase", symbol, side, amount, price=100.0)


def counts(db: Database) -> tuple[int, int]:
    with db.session() as session:
        orders = session.scalar(select(func.count()).select_from(OrderRow))
        transitions = session.scalar(select(func.count()).select_from(OrderTransitionRow))
    return int(orders or 0), int(transitions or 0)


def test_create_is_idempotent_on_the_client_order_id(
    migrated_db: Database, book: OrderBook
) -> None:
    decision_id = decide(migrated_db, "BTC/USD")
    first = book.create(intent(), decision_id)
    again = book.create(intent(), decision_id)
    assert first.id == again.id
    assert first.client_order_id == client_order_id(decision_id, 0)
    assert first.state == S.PENDING_SUBMIT.value
    assert first.region == "ewr"
    assert counts(migrated_db) == (1, 1)
    reprice = book.create(intent(), decision_id, attempt=1)
    assert reprice.client_order_id != first.client_order_id
    assert counts(migrated_db) == (2, 2)
    with pytest.raises(ClientOrderIdConflictError, match=first.client_order_id):
        book.create(intent(amount=3.0), decision_id)
    assert counts(migrated_db) == (2, 2)


def test_two_threads_creating_the_same_order_make_one_row(migrated_db: Database) -> None:
    decision_id = decide(migrated_db, "ETH/USD")
    barrier = threading.Barrier(2)
    results: list[int] = []
    errors: list[BaseException] = []

    def create() -> None:
        try:
            own = OrderBook(Database(migrated_db.url), region_settings())
            barrier.wait(timeout=30)
            results.append(own.create(intent("ETH/USD"), decision_id).id)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(results) == 2
    assert results[0] == results[1]
    assert counts(migrated_db) == (1, 1)


def test_a_non_primary_region_raises_and_writes_nothing(migrated_db: Database) -> None:
    decision_id = decide(migrated_db, "BTC/USD")
    primary = OrderBook(migrated_db, region_settings())
    placed = primary.create(intent(), decision_id)
    scout = OrderBook(migrated_db, region_settings(region="lhr", primary="ewr"))
    with pytest.raises(NotPrimaryRegionError, match="'lhr' is not the primary region"):
        scout.create(intent(), decision_id, attempt=1)
    with pytest.raises(NotPrimaryRegionError):
        scout.transition(placed.client_order_id, S.OPEN, reason="scout")
    # The store refuses as well (same error class), for a caller that skips this layer.
    store = OrderStore(migrated_db, region="lhr", primary_region="ewr")
    with pytest.raises(NotPrimaryRegionError):
        store.create(intent(), decision_id, client_order_id(decision_id, 2))
    assert counts(migrated_db) == (1, 1)
    assert scout.history(placed.client_order_id)[-1].to_state == S.PENDING_SUBMIT.value


def test_an_order_without_an_approved_decision_is_refused(
    migrated_db: Database, book: OrderBook
) -> None:
    refused = decide(migrated_db, "BTC/USD", approved=False)
    with pytest.raises(DecisionNotApprovedError, match="was refused"):
        book.create(intent(), refused)
    with pytest.raises(DecisionNotApprovedError, match="is not recorded"):
        book.create(intent(), "never-recorded")
    approved = decide(migrated_db, "BTC/USD")
    with pytest.raises(DecisionNotApprovedError, match="approved BUY BTC/USD"):
        book.create(intent("ETH/USD"), approved)
    with pytest.raises(DecisionNotApprovedError, match="approved BUY BTC/USD"):
        book.create(intent(side=Side.SELL), approved)
    assert counts(migrated_db) == (0, 0)


def test_decisions_carried_by_an_order_are_stored_with_it_and_kept_on_a_retry(
    migrated_db: Database, book: OrderBook
) -> None:
    # The engine's way: decisions are held in memory and written in the order's transaction.
    held = MemoryDecisionRecorder()
    validator = GoalValidator(recorder=held)
    refused = validator.evaluate(
        TradeProposal(side="BUY", confidence=0.2, signal_count=1, regime="uptrend", symbol="X/USD")
    )
    approved = validator.evaluate(
        TradeProposal(
            side="BUY", confidence=0.9, signal_count=3, regime="uptrend", symbol="BTC/USD",
            expected_move=0.02, entry_price=100.0,
            context={"bar": "2024-01-01T00:00:00+00:00", "votes": {"rsi": 1}},
        )
    )  # fmt: skip
    assert approved.approved
    assert not refused.approved
    rows = [decision_values(d, "ewr") for d in held.decisions]
    order = book.create(intent(), approved.decision_id, decisions=rows)
    assert counts(migrated_db) == (1, 1)
    with migrated_db.session() as session:
        stored = {row.id: row for row in session.scalars(select(DecisionRow))}
    assert set(stored) == {approved.decision_id, refused.decision_id}
    assert stored[approved.decision_id].approved is True
    assert stored[approved.decision_id].inputs["context"]["votes"] == {"rsi": 1}
    assert stored[approved.decision_id].decided_at == approved.decided_at
    assert stored[approved.decision_id].refusals == []
    assert stored[refused.decision_id].refusals == refused.to_record()["refusals"] != []
    # A retry of the same order that carries a new decision: the same order, and the new
    # audit row is not lost with the transaction that found the order already there.
    later = validator.evaluate(
        TradeProposal(side="SELL", confidence=0.1, signal_count=0, regime="down", symbol="X/USD")
    )
    again = book.create(intent(), approved.decision_id, decisions=[decision_values(later, "ewr")])
    assert again.id == order.id
    assert counts(migrated_db) == (1, 1)
    with migrated_db.session() as session:
        assert session.get(DecisionRow, later.decision_id) is not None


def test_an_order_whose_carried_decision_refused_writes_nothing(
    migrated_db: Database, book: OrderBook
) -> None:
    held = MemoryDecisionRecorder()
    refused = GoalValidator(recorder=held).evaluate(
        TradeProposal(side="BUY", confidence=0.2, signal_count=1, regime="up", symbol="BTC/USD")
    )
    with pytest.raises(DecisionNotApprovedError, match="was refused"):
        book.create(intent(), refused.decision_id, decisions=[decision_values(refused, "ewr")])
    assert counts(migrated_db) == (0, 0)


def test_no_order_is_stored_while_hardstop_is_raised_whatever_the_caller_read(
    migrated_db: Database, book: OrderBook
) -> None:
    placed = book.create(intent(), decide(migrated_db, "BTC/USD"))
    held = MemoryDecisionRecorder()
    approved = GoalValidator(recorder=held).evaluate(
        TradeProposal(side="BUY", confidence=0.9, signal_count=3, regime="uptrend",
                      symbol="BTC/USD", expected_move=0.02, entry_price=100.0)
    )  # fmt: skip
    HardstopLatch(migrated_db).raise_("operator", "exchange incident")
    with pytest.raises(HardstopActiveError, match="HARDSTOP is raised"):
        book.create(intent(), approved.decision_id, decisions=[decision_values(approved, "ewr")])
    # A retry of an order stored before the raise is refused too, and adds no history.
    with pytest.raises(HardstopActiveError):
        book.create(intent(), placed.decision_id)
    assert counts(migrated_db) == (1, 1)
    with migrated_db.session() as session:  # the whole transaction went, decisions included
        assert session.get(DecisionRow, approved.decision_id) is None
    HardstopLatch(migrated_db).clear("operator", "incident over")
    rows = [decision_values(approved, "ewr")]
    again = book.create(intent(), approved.decision_id, decisions=rows)
    assert again.state == S.PENDING_SUBMIT.value
    assert counts(migrated_db) == (2, 2)


def test_unknown_is_resolved_only_by_the_exchange(migrated_db: Database, book: OrderBook) -> None:
    decision_id = decide(migrated_db, "BTC/USD")
    cid = book.create(intent(), decision_id).client_order_id
    book.transition(cid, S.UNKNOWN, reason="submit timed out")
    assert [o.client_order_id for o in book.unknown_orders()] == [cid]
    assert book.open_orders() == []
    with pytest.raises(IllegalTransitionError, match=r"unknown -> cancelled"):
        book.transition(cid, S.CANCELLED, reason="guessing")
    resolved = book.transition(
        cid,
        S.PARTIALLY_FILLED,
        filled=0.5,
        exchange_order_id="EX-1",
        source=EXCHANGE,
        reason="fetch_order by client id",
    )
    assert resolved.state == S.PARTIALLY_FILLED.value
    assert resolved.exchange_order_id == "EX-1"
    assert book.unknown_orders() == []
    assert [o.client_order_id for o in book.open_orders()] == [cid]
    book.transition(cid, S.FILLED, source=EXCHANGE, reason="filled")
    with pytest.raises(IllegalTransitionError, match="terminal"):
        book.transition(cid, S.CANCELLED, reason="late cancel")
    history = book.history(cid)
    assert [(h.from_state, h.to_state) for h in history] == [
        (None, "pending_submit"),
        ("pending_submit", "unknown"),
        ("unknown", "partially_filled"),
        ("partially_filled", "filled"),
    ]
    assert history[2].detail["source"] == "exchange"
    assert history[2].detail["reason"] == "fetch_order by client id"
    assert history[3].detail["filled"] == 2.0
    with pytest.raises(OrderNotFoundError):
        book.transition("nt-missing", S.OPEN, reason="x")


events = st.tuples(
    st.sampled_from(list(OrderState)),
    st.one_of(st.none(), st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, -1.0])),
    st.sampled_from(list(TransitionSource)),
    st.one_of(st.none(), st.sampled_from(["X1", "X2"])),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(sequence=st.lists(events, max_size=12))
def test_random_event_sequences_persist_only_legal_history(
    migrated_db: Database,
    sequence: list[tuple[OrderState, float | None, TransitionSource, str | None]],
) -> None:
    symbol = f"P{next(_symbols)}/USD"
    book = OrderBook(migrated_db, region_settings())
    cid = book.create(intent(symbol), decide(migrated_db, symbol)).client_order_id
    expected = [S.PENDING_SUBMIT]
    for to, filled, source, exchange_id in sequence:
        before = book.get(cid)
        assert before is not None
        try:
            after = book.transition(
                cid, to, filled=filled, source=source, exchange_order_id=exchange_id, reason="p"
            )
        except (IllegalTransitionError, FillError):
            unchanged = book.get(cid)
            assert unchanged is not None
            assert (unchanged.state, unchanged.filled) == (before.state, before.filled)
            continue
        if (after.state, after.filled, after.exchange_order_id) != (
            before.state,
            before.filled,
            before.exchange_order_id,
        ):
            expected.append(S(after.state))
        assert before.filled <= after.filled <= after.amount
    history = book.history(cid)
    assert [S(h.to_state) for h in history] == expected
    assert history[0].from_state is None
    for prev, row in itertools.pairwise(history):
        assert row.from_state == prev.to_state
        assert S(row.to_state) in ALLOWED_TRANSITIONS[S(prev.to_state)]
        assert prev.detail["filled"] <= row.detail["filled"] <= 2.0
        assert prev.id < row.id
    final = book.get(cid)
    assert final is not None
    assert final.state == history[-1].to_state
    assert final.filled == history[-1].detail["filled"]


def test_racing_transitions_keep_one_consistent_history(migrated_db: Database) -> None:
    decision_id = decide(migrated_db, "SOL/USD")
    cid = OrderBook(migrated_db, region_settings()).create(intent("SOL/USD"), decision_id)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def fill(amount: float) -> None:
        own = OrderBook(Database(migrated_db.url), region_settings())
        barrier.wait(timeout=30)
        for _ in range(5):
            try:
                own.transition(
                    cid.client_order_id, S.PARTIALLY_FILLED, filled=amount, reason="race"
                )
            except IllegalTransitionError:
                pass  # the other writer got further: a decrease is refused, never stored
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

    threads = [threading.Thread(target=fill, args=(a,)) for a in (0.5, 1.0)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    history = OrderBook(migrated_db, region_settings()).history(cid.client_order_id)
    fills = [h.detail["filled"] for h in history]
    assert fills == sorted(fills)
    assert fills[-1] == 1.0
    assert len(fills) == len(set(fills))  # no change recorded twice


# --- Price-bound approvals (issue 10): the store refuses what the approval does not allow --------


def _judge(db: Database, **fields: object) -> tuple[str, dict[str, object]]:
    """A decision judged by the real validator and stored; its id and its bound."""
    validator = GoalValidator(recorder=DecisionStore(db, region="ewr"))
    base: dict[str, object] = {"confidence": 0.9, "signal_count": 3, "regime": "uptrend",
                               "symbol": "BTC/USD"}  # fmt: skip
    decision = validator.evaluate(TradeProposal(**{**base, **fields}))  # type: ignore[arg-type]
    assert decision.approved, decision.reasons
    return decision.decision_id, {"bound": decision.price_bound}


def test_a_buy_above_its_bound_is_refused_also_as_a_retry(
    migrated_db: Database, book: OrderBook
) -> None:
    decision_id, judged = _judge(migrated_db, side="BUY", expected_move=0.02, entry_price=100.0)
    bound = judged["bound"]
    assert bound == pytest.approx(100.0 * 1.02 / 1.009)
    book.create(OrderIntent("coinbase", "BTC/USD", Side.BUY, 1.0, price=100.0), decision_id)
    with pytest.raises(PriceBoundError, match="at or below"):
        book.create(OrderIntent("coinbase", "BTC/USD", Side.BUY, 1.0, price=101.5), decision_id, 1)
    assert counts(migrated_db) == (1, 1)


def test_a_signal_exit_repriced_below_break_even_is_refused(
    migrated_db: Database, book: OrderBook
) -> None:
    """The reproducer: approved at 101.5 after an entry at 100, re-posted at 98.6."""
    decision_id, judged = _judge(
        migrated_db, side="SELL", entry_price=100.0, exit_price=101.5, entry_fee_rate=0.004
    )
    breakeven = 100.0 * 1.004 / 0.996
    assert judged["bound"] == pytest.approx(breakeven)
    sell = Side.SELL
    book.create(OrderIntent("coinbase", "BTC/USD", sell, 1.0, price=101.5), decision_id)
    book.create(OrderIntent("coinbase", "BTC/USD", sell, 1.0, price=breakeven), decision_id, 1)
    with pytest.raises(PriceBoundError, match="break-even"):
        book.create(OrderIntent("coinbase", "BTC/USD", sell, 1.0, price=98.6), decision_id, 2)
    with pytest.raises(ValueError, match="critical"):  # and never as a market order
        OrderIntent("coinbase", "BTC/USD", sell, 1.0, None, "market", post_only=False)
    assert counts(migrated_db) == (2, 2)


def test_a_stop_is_only_the_stop_stored_with_its_entry(
    migrated_db: Database, book: OrderBook
) -> None:
    entry_id, _ = _judge(
        migrated_db, side="BUY", expected_move=0.02, entry_price=100.0, stop_price=96.0
    )
    stop_id, judged = _judge(
        migrated_db, side="SELL", exit_reason=ExitReason.STOP_LOSS, exit_price=96.0,
        stop_price=96.0, entry_price=100.0, context={"entry_decision_id": entry_id},
    )  # fmt: skip
    assert judged["bound"] == 96.0
    stop = OrderIntent("coinbase", "BTC/USD", Side.SELL, 1.0, 96.0, "stop_loss", post_only=False)
    HardstopLatch(migrated_db).raise_("operator", "halt, keep the stops")
    placed = book.create(stop, stop_id)  # a protective stop is placed while halted too
    assert placed.hardstop_active is True
    lower = OrderIntent("coinbase", "BTC/USD", Side.SELL, 1.0, 1.0, "stop_loss", post_only=False)
    with pytest.raises(PriceBoundError, match="not the stored stop"):
        book.create(lower, stop_id, 1)
    # A stop whose decision claims another stop than the entry's is refused too.
    liar_id, _ = _judge(
        migrated_db, side="SELL", exit_reason=ExitReason.STOP_LOSS, exit_price=1.0,
        stop_price=1.0, entry_price=100.0, context={"entry_decision_id": entry_id},
    )  # fmt: skip
    with pytest.raises(PriceBoundError, match="not the stop 96"):
        book.create(lower, liar_id)
    orphan_id, _ = _judge(
        migrated_db, side="SELL", exit_reason=ExitReason.STOP_LOSS, exit_price=96.0,
        stop_price=96.0, entry_price=100.0,
    )  # fmt: skip
    with pytest.raises(PriceBoundError, match="name its entry"):
        book.create(stop, orphan_id)
    assert counts(migrated_db) == (1, 1)


def test_a_hardstop_flatten_is_stored_only_while_the_latch_is_up(
    migrated_db: Database, book: OrderBook
) -> None:
    flatten_id, judged = _judge(
        migrated_db, side="SELL", exit_reason=ExitReason.HARDSTOP, hardstop_active=True,
        entry_price=100.0, exit_price=60.0,
    )  # fmt: skip
    assert judged["bound"] is None
    market = OrderIntent("coinbase", "BTC/USD", Side.SELL, 1.0, None, "market", post_only=False,
                         urgency=Urgency.CRITICAL)  # fmt: skip
    with pytest.raises(HardstopActiveError, match="not raised"):
        book.create(market, flatten_id)
    latch = HardstopLatch(migrated_db)
    latch.raise_("operator", "flatten")
    assert book.create(market, flatten_id).hardstop_active is True
    # A normal exit may not borrow critical urgency.
    signal_id, _ = _judge(migrated_db, side="SELL", entry_price=100.0, exit_price=101.5)
    latch.clear("operator", "done")
    critical = OrderIntent("coinbase", "BTC/USD", Side.SELL, 1.0, 101.5, urgency=Urgency.CRITICAL)
    with pytest.raises(PriceBoundError, match="critical"):
        book.create(critical, signal_id)
    assert counts(migrated_db) == (1, 1)
