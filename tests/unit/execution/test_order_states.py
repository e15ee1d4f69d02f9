"""The pure order state machine: legal moves, fill rules, terminal states, UNKNOWN, primary only."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nettrace.domain.types import OrderState, Side, Urgency
from nettrace.execution.orders import (
    ALLOWED_TRANSITIONS,
    TERMINAL_STATES,
    FillError,
    IllegalTransitionError,
    NotPrimaryRegionError,
    OrderIntent,
    PrimaryOnly,
    TransitionSource,
    plan_transition,
)
from nettrace.store.orders import OrderFacts

S = OrderState
AMOUNT = 2.0


def facts(state: OrderState, filled: float = 0.0, exchange_id: str | None = None) -> OrderFacts:
    return OrderFacts("ntorder", state, AMOUNT, filled, exchange_id)


def fill_for(state: OrderState) -> float | None:
    """A fill that fits ``state`` on its own, so only the state rule is under test."""
    return {S.PARTIALLY_FILLED: 1.0, S.FILLED: AMOUNT}.get(state)


def test_the_table_covers_every_state_and_terminal_states_are_final() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(OrderState)
    assert {S.FILLED, S.CANCELLED, S.REJECTED} == TERMINAL_STATES
    for state in TERMINAL_STATES:
        assert ALLOWED_TRANSITIONS[state] == frozenset()
    assert S.UNKNOWN in ALLOWED_TRANSITIONS[S.PENDING_SUBMIT]
    assert S.PENDING_SUBMIT not in set().union(*ALLOWED_TRANSITIONS.values())


@pytest.mark.parametrize(("frm", "to"), list(itertools.product(OrderState, OrderState)))
def test_every_pair_is_allowed_exactly_when_the_table_says(frm: OrderState, to: OrderState) -> None:
    start = facts(frm, filled=1.0 if frm is S.PARTIALLY_FILLED else 0.0)
    if frm is S.FILLED:
        start = replace(start, filled=AMOUNT)
    fill = fill_for(to)
    if frm is to is S.PARTIALLY_FILLED:
        fill = 1.5
    if to not in ALLOWED_TRANSITIONS[frm] and to is not frm:
        with pytest.raises(IllegalTransitionError, match=rf"ntorder: illegal move {frm} -> {to}"):
            plan_transition(start, to, filled=fill, source=TransitionSource.EXCHANGE)
        return
    change = plan_transition(start, to, filled=fill, source=TransitionSource.EXCHANGE)
    if frm is to and frm is not S.PARTIALLY_FILLED:
        assert change is None  # a repeated answer
    else:
        assert change is not None
        assert change.to_state is to


def test_unknown_resolves_only_from_an_exchange_answer() -> None:
    with pytest.raises(IllegalTransitionError, match="only by asking the exchange"):
        plan_transition(facts(S.UNKNOWN), S.CANCELLED, reason="gave up")
    change = plan_transition(
        facts(S.UNKNOWN),
        S.OPEN,
        exchange_order_id="X1",
        source=TransitionSource.EXCHANGE,
        reason="fetch_order says open",
    )
    assert change is not None
    assert change.exchange_order_id == "X1"
    assert change.detail["source"] == "exchange"
    assert plan_transition(facts(S.UNKNOWN), S.UNKNOWN) is None


@pytest.mark.parametrize(
    ("state", "to", "filled", "match"),
    [
        (S.PARTIALLY_FILLED, S.PARTIALLY_FILLED, 0.5, "decrease"),
        (S.OPEN, S.PARTIALLY_FILLED, 2.5, "exceeds"),
        (S.OPEN, S.FILLED, 1.0, "less than the amount"),
        (S.OPEN, S.PARTIALLY_FILLED, AMOUNT, "partially filled needs"),
        (S.OPEN, S.PARTIALLY_FILLED, 0.0, "partially filled needs"),
        (S.PENDING_SUBMIT, S.OPEN, 0.5, "cannot have a fill"),
        (S.PENDING_SUBMIT, S.REJECTED, 0.5, "cannot have a fill"),
        (S.OPEN, S.CANCELLED, float("nan"), "finite"),
        (S.OPEN, S.CANCELLED, -1.0, "finite"),
    ],
)
def test_bad_fills_are_refused(
    state: OrderState, to: OrderState, filled: float, match: str
) -> None:
    start = facts(state, filled=1.0 if state is S.PARTIALLY_FILLED else 0.0)
    with pytest.raises(FillError, match=match):
        plan_transition(start, to, filled=filled, source=TransitionSource.EXCHANGE)


def test_filled_stores_the_amount_and_cancel_keeps_a_partial_fill() -> None:
    done = plan_transition(facts(S.OPEN), S.FILLED, filled=AMOUNT * (1 - 1e-12))
    assert done is not None
    assert done.filled == AMOUNT
    cancelled = plan_transition(facts(S.PARTIALLY_FILLED, 1.0), S.CANCELLED)
    assert cancelled is not None
    assert cancelled.filled == 1.0


def test_the_exchange_order_id_is_set_once() -> None:
    start = facts(S.OPEN, exchange_id="X1")
    with pytest.raises(IllegalTransitionError, match="refusing to replace"):
        plan_transition(start, S.CANCELLED, exchange_order_id="X2")
    assert plan_transition(start, S.OPEN, exchange_order_id="X1") is None
    with pytest.raises(IllegalTransitionError, match="only the fill may change"):
        plan_transition(facts(S.OPEN), S.OPEN, exchange_order_id="X3")


events = st.tuples(
    st.sampled_from(list(OrderState)),
    st.one_of(
        st.none(),
        st.sampled_from([0.0, 0.5, 1.0, 1.5, AMOUNT, 2.5, -1.0]),
        st.floats(min_value=0, max_value=3),
    ),
    st.sampled_from(list(TransitionSource)),
    st.one_of(st.none(), st.sampled_from(["X1", "X2"])),
)


@settings(max_examples=400)
@given(st.lists(events, max_size=30))
def test_random_event_sequences_never_break_the_rules(
    sequence: list[tuple[OrderState, float | None, TransitionSource, str | None]],
) -> None:
    order = facts(S.PENDING_SUBMIT)
    for to, filled, source, exchange_id in sequence:
        before = order
        try:
            change = plan_transition(
                order, to, filled=filled, source=source, exchange_order_id=exchange_id
            )
        except IllegalTransitionError:
            continue
        if change is None:
            assert to is before.state
            continue
        assert before.state not in TERMINAL_STATES
        assert change.to_state in ALLOWED_TRANSITIONS[before.state]
        if before.state is S.UNKNOWN:
            assert source is TransitionSource.EXCHANGE
        assert before.filled <= change.filled <= AMOUNT
        if change.to_state is S.FILLED:
            assert change.filled == AMOUNT
        if before.exchange_order_id is not None:
            assert change.exchange_order_id == before.exchange_order_id
        order = OrderFacts(
            order.client_order_id, change.to_state, AMOUNT, change.filled, change.exchange_order_id
        )


def test_primary_only_refuses_other_regions() -> None:
    PrimaryOnly("ewr", "ewr").check("place")
    guard = PrimaryOnly("lhr", "ewr")
    assert not guard.is_primary
    with pytest.raises(NotPrimaryRegionError, match="'lhr' is not the primary region 'ewr'"):
        guard.check("place order nt1")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"amount": 0.0},
        {"amount": float("inf")},
        {"price": None},
        {"price": -1.0},
        {"order_type": "stop"},
        {"order_type": "market"},  # keeps the price and post-only: refused
        {"symbol": ""},
    ],
)
def test_malformed_intents_are_refused(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {
        "exchange": "coinbase",
        "symbol": "BTC/USD",
        "side": Side.BUY,
        "amount": 1.0,
        "price": 100.0,
    }
    with pytest.raises(ValueError, match=r"."):
        OrderIntent(**{**base, **kwargs})  # type: ignore[arg-type]
    market = OrderIntent(
        "coinbase", "BTC/USD", Side.SELL, 1.0, None, "market", post_only=False,
        urgency=Urgency.CRITICAL,
    )  # fmt: skip
    assert market.price is None


def test_only_a_critical_sell_may_be_a_market_order() -> None:
    """Be a maker: a market order is a risk exit's, never a normal intent's (DESIGN §3)."""
    with pytest.raises(ValueError, match="critical urgency"):
        OrderIntent("coinbase", "BTC/USD", Side.SELL, 1.0, None, "market", post_only=False)
    with pytest.raises(ValueError, match="only a sell"):
        OrderIntent("coinbase", "BTC/USD", Side.BUY, 1.0, None, "market", post_only=False,
                    urgency=Urgency.CRITICAL)  # fmt: skip
