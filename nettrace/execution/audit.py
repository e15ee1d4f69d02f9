"""The ledger audit: read every stored order, fill and decision and check the money invariants.

The order store refuses, at write time, every order these invariants forbid (``store.orders``).
This audit is the independent second look: it trusts no writer, so it also finds what a bug, a
migration, a hand edit or a process that bypassed ``OrderStore`` left behind, and it checks what
no single write can see -- the round trips the fills add up to. It only reads.

Invariants (DESIGN §3, GoalValidator / Orders / HARDSTOP), each breach naming its
``BreachKind``, the order, decision or round trip, and the numbers:

1. every order has a recorded, approved decision of the same side and symbol;
2. its price respects the approval's bound: a BUY at or below ``price_bound``, a signal or
   take-profit SELL at or above it (orders *and* their fills), a stop-loss exactly at the stop
   stored with its entry's approval, a HARDSTOP flatten at any price;
3. no round trip closed by a signal or a take-profit loses money after fees;
4. every losing round trip is a stop-loss filled at or below its stored stop, or a HARDSTOP
   flatten stored while the latch was up;
5. only critical orders are market orders, and only stop-losses and flattens are critical;
6. nothing but a protective stop or a flatten is stored while HARDSTOP is up, and every flatten
   is stored while it is up;
7. no order was stored outside the primary region.

Round trips are rebuilt per (exchange, symbol) by replaying the fills through
``Portfolio.apply_fill`` one at a time, exactly as ``Portfolio.from_fills`` does, so the fill that
closes each lot is known without adding anything to ``RoundTrip``: the closing fill names its
order, the order its decision, and the decision's ``exit_reason`` is the round trip's reason
(falling back to the reason the fill store derives from the order type).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from nettrace.domain.audit import AuditReport, Breach, BreachKind
from nettrace.domain.types import ExitReason, Side, Urgency
from nettrace.execution.portfolio import Portfolio, RoundTrip, split_symbol
from nettrace.store.database import Database
from nettrace.store.fills import FillStore, StoredFill, ms_from_datetime
from nettrace.store.models import AdoptionRow, DecisionRow, OrderRow, OrderTransitionRow

__all__ = ["PRICE_TOLERANCE", "PROFIT_TOLERANCE", "audit_ledger"]

#: Relative slack on every price comparison. Prices make a round trip through double-precision
#: columns (and PostgreSQL's text protocol, and JSON for the inputs), and the bound is computed
#: from fees in floats: a few ulps of drift (~1e-16 relative) must not read as a breach. The
#: order store's own ``FLOAT_TOLERANCE`` (1e-12) is tighter than storage guarantees everywhere;
#: 1e-9 is still a millionth of a basis point, far below any exchange's price tick, so no real
#: breach hides inside it.
PRICE_TOLERANCE = 1e-9
#: A round trip "loses" when its profit is below ``-PROFIT_TOLERANCE * entry notional``: the
#: profit is a difference of products of stored floats, so an exact break-even exit may come
#: back a few ulps under zero.
PROFIT_TOLERANCE = 1e-9

_RISK_EXITS = frozenset({ExitReason.STOP_LOSS.value, ExitReason.HARDSTOP.value})
_PROFIT_EXITS = frozenset({ExitReason.SIGNAL.value, ExitReason.TAKE_PROFIT.value})
_BUY, _SELL = Side.BUY.value, Side.SELL.value
_CRITICAL = Urgency.CRITICAL.value

#: ``breach(kind, message)``: a breach about the one subject being checked.
_MakeBreach = Callable[[BreachKind, str], Breach]


@dataclass(frozen=True, slots=True)
class _Ledger:
    """Everything the audit reads, read once (see ``_read`` for the order it is read in)."""

    orders: Sequence[OrderRow]
    orders_by_cid: Mapping[str, OrderRow]
    decisions: Mapping[str, DecisionRow]
    #: The first transition's detail of each order, by order row id.
    created: Mapping[int, Mapping[str, Any]]
    fills: Sequence[StoredFill]
    fills_by_cid: Mapping[str, Sequence[StoredFill]]
    adoptions: Sequence[AdoptionRow]


@dataclass(frozen=True, slots=True)
class _ClosedTrip:
    """A round trip with the fills of its lot; the last of them closed it."""

    trip: RoundTrip
    fills: tuple[StoredFill, ...]

    @property
    def closing(self) -> StoredFill:
        return self.fills[-1]


def audit_ledger(
    database: Database, *, primary_region: str, quote_currency: str | None = None
) -> AuditReport:
    """Check every money invariant over the stored orders, fills and decisions.

    ``primary_region`` is the only region allowed to have placed orders (``Settings``).
    ``quote_currency``: the cash currency of the books; when given, a fill quoted in another
    currency is reported (the engine could not have booked it). When ``None`` each symbol is
    replayed in its own quote (``BASE/QUOTE``): round trips of one symbol do not depend on cash.
    """
    ledger = _read(database)
    breaches: list[Breach] = []
    for order in ledger.orders:
        breaches.extend(_check_order(order, ledger, primary_region))
    trips = list(_replay(ledger, quote_currency, breaches))
    for closed in trips:
        breaches.extend(_check_round_trip(closed, ledger))
    return AuditReport(
        breaches=tuple(breaches),
        orders_checked=len(ledger.orders),
        decisions_checked=len(ledger.decisions),
        round_trips_checked=len(trips),
        fills_checked=len(ledger.fills),
        scope="ledger",
    )


# --- Reading ------------------------------------------------------------------------------------


def _read(database: Database) -> _Ledger:
    """Read fills, then orders, then their first transitions, then decisions, then adoptions.

    The order matters while a trading process keeps writing: a decision is committed before (or
    with) its order and an order before its fills, so reading the later tables first means
    every fill read has its order read, and every order read has its decision read -- a
    concurrent writer can add rows the audit does not see, never rows that look orphaned.
    """
    fills = FillStore(database).all_fills()
    with database.session() as session:
        orders = list(session.scalars(select(OrderRow).order_by(OrderRow.id)))
        ids = {order.id for order in orders}
        created: dict[int, Mapping[str, Any]] = {}
        first = select(OrderTransitionRow).where(OrderTransitionRow.from_state.is_(None))
        for row in session.scalars(first.order_by(OrderTransitionRow.id)):
            if row.order_id in ids and row.order_id not in created:
                created[row.order_id] = dict(row.detail or {})
        decisions = {d.id: d for d in session.scalars(select(DecisionRow))}
        adoptions = list(session.scalars(select(AdoptionRow).order_by(AdoptionRow.id)))
    fills_by_cid: dict[str, list[StoredFill]] = defaultdict(list)
    for fill in fills:
        fills_by_cid[fill.client_order_id].append(fill)
    return _Ledger(
        orders=orders,
        orders_by_cid={order.client_order_id: order for order in orders},
        decisions=decisions,
        created=created,
        fills=fills,
        fills_by_cid=fills_by_cid,
        adoptions=adoptions,
    )


# --- Orders (invariants 1, 2, 5, 6, 7) ------------------------------------------------------------


def _check_order(order: OrderRow, ledger: _Ledger, primary_region: str) -> Iterator[Breach]:
    subject = f"order {order.client_order_id}"

    def breach(kind: BreachKind, message: str) -> Breach:
        return Breach(kind, subject, message)

    if order.region != primary_region:
        yield breach(
            BreachKind.OUTSIDE_PRIMARY_REGION,
            f"stored by region {order.region!r}; only the primary {primary_region!r} "
            "may place orders",
        )
    decision = ledger.decisions.get(order.decision_id)
    if decision is None:
        yield breach(
            BreachKind.ORDER_WITHOUT_DECISION,
            f"{order.side} {order.symbol}: its decision {order.decision_id!r} is not recorded",
        )
    else:
        yield from _check_approval(order, decision, breach)
    # The decision's reason counts only if it is a SELL decision: a BUY has none.
    reason = decision.exit_reason if decision is not None and decision.side == _SELL else None
    risk_exit = order.side == _SELL and reason in _RISK_EXITS
    yield from _check_urgency(order, reason, risk_exit, breach)
    yield from _check_latch(order, reason, risk_exit, breach)
    if decision is not None:
        yield from _check_bound(order, decision, reason, ledger, breach)
        yield from _check_fills(order, decision, reason, ledger)
    yield from _check_bracket(order, decision, ledger, breach)


def _check_approval(
    order: OrderRow, decision: DecisionRow, breach: _MakeBreach
) -> Iterator[Breach]:
    if not decision.approved:
        refusals = "; ".join(_refusal_texts(decision.refusals)) or "no reason recorded"
        yield breach(
            BreachKind.DECISION_REFUSED,
            f"{order.side} {order.symbol}: its decision {decision.id} was refused ({refusals})",
        )
    if decision.side != order.side or decision.symbol != order.symbol:
        yield breach(
            BreachKind.DECISION_MISMATCH,
            f"the order is {order.side} {order.symbol}; its decision {decision.id} approved "
            f"{decision.side} {decision.symbol}",
        )


def _check_urgency(
    order: OrderRow, reason: str | None, risk_exit: bool, breach: _MakeBreach
) -> Iterator[Breach]:
    if order.order_type == "market" and order.urgency != _CRITICAL:
        yield breach(
            BreachKind.MARKET_NOT_CRITICAL,
            f"a market {order.side} with urgency {order.urgency!r}: only a critical order "
            "(a stop-loss or a HARDSTOP flatten) may take liquidity",
        )
    if order.urgency == _CRITICAL and not risk_exit:
        yield breach(
            BreachKind.CRITICAL_NOT_RISK_EXIT,
            f"a critical {order.side} ({order.order_type}) whose decision's exit reason is "
            f"{reason!r}: only a stop-loss or a HARDSTOP flatten is critical",
        )


def _check_latch(
    order: OrderRow, reason: str | None, risk_exit: bool, breach: _MakeBreach
) -> Iterator[Breach]:
    if order.hardstop_active and not risk_exit:
        yield breach(
            BreachKind.STORED_DURING_HARDSTOP,
            f"a {order.side} {order.order_type} ({_reason_text(order, reason)}) stored at "
            f"{_iso(order.created_at)} while HARDSTOP was up: only a protective stop or a "
            "flatten may be",
        )
    if order.side == _SELL and reason == ExitReason.HARDSTOP.value and not order.hardstop_active:
        yield breach(
            BreachKind.FLATTEN_WITHOUT_HARDSTOP,
            f"a HARDSTOP flatten ({order.order_type}) stored at {_iso(order.created_at)} while "
            "the latch was down: a flatten sells at any price, so only under a raised HARDSTOP",
        )


def _check_bound(
    order: OrderRow, decision: DecisionRow, reason: str | None, ledger: _Ledger, breach: _MakeBreach
) -> Iterator[Breach]:
    """Invariant 2 on the order's own price (its fills are ``_check_fills``)."""
    if order.side == _BUY:
        if order.order_type not in ("limit", "market"):
            yield breach(
                BreachKind.WRONG_ORDER_TYPE,
                f"a BUY {order.order_type}: entries are limit orders (a bracket is a SELL)",
            )
            return
        if order.order_type == "limit":
            yield from _at_most(order.price, decision.price_bound, decision, breach)
        return
    if order.side != _SELL or reason == ExitReason.HARDSTOP.value:
        return  # a flatten sells at any price (its latch is ``_check_latch``)
    if reason == ExitReason.STOP_LOSS.value:
        yield from _check_stop_order(order, decision, ledger, breach)
        return
    if order.order_type == "stop_loss":
        yield breach(
            BreachKind.WRONG_ORDER_TYPE,
            f"a stop_loss order for a {reason or 'signal'} exit: only a stop-loss decision "
            "places a stop",
        )
        return
    if order.order_type in ("limit", "take_profit"):
        yield from _at_least(order.price, decision.price_bound, decision, breach)


def _at_most(
    price: float | None, bound: float | None, decision: DecisionRow, breach: _MakeBreach
) -> Iterator[Breach]:
    if price is None or bound is None:
        yield _no_bound(price, bound, decision, breach)
    elif price > bound * (1.0 + PRICE_TOLERANCE):
        yield breach(
            BreachKind.BUY_ABOVE_BOUND,
            f"BUY at {_num(price)} above {_num(bound)}, the highest entry its decision "
            f"{decision.id} approved (+{_pct(price / bound - 1.0)})",
        )


def _at_least(
    price: float | None, bound: float | None, decision: DecisionRow, breach: _MakeBreach
) -> Iterator[Breach]:
    if price is None or bound is None:
        yield _no_bound(price, bound, decision, breach)
    elif price < bound * (1.0 - PRICE_TOLERANCE):
        yield breach(
            BreachKind.SELL_BELOW_BOUND,
            f"SELL ({decision.exit_reason or 'signal'}) at {_num(price)} below {_num(bound)}, "
            f"the break-even after fees its decision {decision.id} approved "
            f"(-{_pct(1.0 - price / bound)})",
        )


def _no_bound(
    price: float | None, bound: float | None, decision: DecisionRow, breach: _MakeBreach
) -> Breach:
    missing = "the order has no price" if price is None else f"decision {decision.id} binds none"
    return breach(BreachKind.NO_PRICE_BOUND, f"no price bound can be checked: {missing}")


def _check_stop_order(
    order: OrderRow, decision: DecisionRow, ledger: _Ledger, breach: _MakeBreach
) -> Iterator[Breach]:
    """A stop-loss names its entry's approved BUY, judged at the stop stored with that entry,
    and (unless it is the critical market order sent once the stop is hit) triggers there."""
    problems = _stop_problems(order, decision, ledger)
    wrong_type = order.order_type not in ("stop_loss", "market")
    if wrong_type:
        yield breach(
            BreachKind.WRONG_ORDER_TYPE,
            f"a stop-loss exit placed as a {order.order_type} order: a stop-loss is a "
            "stop_loss order at its stored stop (or a critical market order once hit)",
        )
    if problems:
        yield breach(BreachKind.STOP_MISMATCH, "; ".join(problems))


def _stop_problems(order: OrderRow, decision: DecisionRow, ledger: _Ledger) -> list[str]:
    """What is wrong with ``order`` as a stop-loss at the stored stop; empty if nothing."""
    problems: list[str] = []
    stored = _stored_stop(decision, order.symbol, ledger, problems)
    judged = decision.stop_price
    if judged is None:
        problems.append(f"its decision {decision.id} records no stop it was judged at")
    elif stored is not None and not _same_price(judged, stored):
        problems.append(
            f"its decision {decision.id} was judged at stop {_num(judged)}, not the stop "
            f"{_num(stored)} stored with the entry"
        )
    if order.order_type == "stop_loss":
        trigger = order.price
        reference = stored if stored is not None else judged
        if trigger is None:
            problems.append("the stop_loss order has no trigger price")
        elif reference is not None and not _same_price(trigger, reference):
            problems.append(f"its trigger {_num(trigger)} is not the stored stop {_num(reference)}")
    return problems


def _stored_stop(
    decision: DecisionRow, symbol: str, ledger: _Ledger, problems: list[str]
) -> float | None:
    """The stop the risk controller stored with the entry ``decision`` closes, or ``None``
    (with the reason appended to ``problems``)."""
    entry_id = decision.entry_decision_id
    entry = ledger.decisions.get(entry_id) if entry_id else None
    if entry is None:
        problems.append(
            f"its decision {decision.id} names no recorded entry decision ({entry_id!r})"
        )
        return None
    if not entry.approved or entry.side != _BUY or entry.symbol != symbol:
        state = "approved" if entry.approved else "refused"
        problems.append(
            f"its entry decision {entry.id} is a {state} {entry.side} {entry.symbol}, not an "
            f"approved BUY {symbol}"
        )
        return None
    if entry.stop_price is None:
        problems.append(f"its entry decision {entry.id} stored no stop")
    return entry.stop_price


def _check_fills(
    order: OrderRow, decision: DecisionRow, reason: str | None, ledger: _Ledger
) -> Iterator[Breach]:
    """Invariant 2 on what really happened: an approval binds the fill price, not only the
    order's (a BUY at or below the bound, a signal or take-profit SELL at or above it)."""
    bound = decision.price_bound
    if bound is None or (order.side == _SELL and reason in _RISK_EXITS):
        return
    for fill in ledger.fills_by_cid.get(order.client_order_id, ()):
        subject = f"fill {fill.id} of order {order.client_order_id}"
        if order.side == _BUY and fill.price > bound * (1.0 + PRICE_TOLERANCE):
            yield Breach(
                BreachKind.BUY_ABOVE_BOUND,
                subject,
                f"BUY filled at {_num(fill.price)} above {_num(bound)}, the highest entry its "
                f"decision {decision.id} approved",
            )
        if order.side == _SELL and fill.price < bound * (1.0 - PRICE_TOLERANCE):
            yield Breach(
                BreachKind.SELL_BELOW_BOUND,
                subject,
                f"SELL ({reason or 'signal'}) filled at {_num(fill.price)} below "
                f"{_num(bound)}, the break-even after fees its decision {decision.id} approved",
            )


def _check_bracket(
    order: OrderRow, decision: DecisionRow | None, ledger: _Ledger, breach: _MakeBreach
) -> Iterator[Breach]:
    """A bracket child (its creation names a parent) protects that parent entry: the parent is
    a stored BUY of the same symbol and is the entry the child's decision names."""
    parent_id = ledger.created.get(order.id, {}).get("parent_client_order_id")
    if not parent_id:
        return
    parent = ledger.orders_by_cid.get(str(parent_id))
    if parent is None:
        yield breach(BreachKind.BRACKET_MISMATCH, f"its parent entry {parent_id} is not stored")
        return
    if parent.side != _BUY or parent.symbol != order.symbol:
        yield breach(
            BreachKind.BRACKET_MISMATCH,
            f"its parent {parent_id} is a {parent.side} {parent.symbol}, not a BUY {order.symbol}",
        )
    named = decision.entry_decision_id if decision is not None else None
    if named and named != parent.decision_id:
        yield breach(
            BreachKind.BRACKET_MISMATCH,
            f"its decision names entry {named}, but its parent {parent_id} was placed for "
            f"decision {parent.decision_id}",
        )


# --- Round trips (invariants 3 and 4) ---------------------------------------------------------


def _replay(
    ledger: _Ledger, quote_currency: str | None, breaches: list[Breach]
) -> Iterator[_ClosedTrip]:
    """The round trips the fills add up to, per (exchange, symbol), in the order recorded.

    Adoptions (holdings reconciliation took on) join the books before the first later fill,
    as they joined the live books. A fill the portfolio cannot book (a sell of more than is
    held, a fee in a third currency) is a breach, and that symbol's later fills are not
    replayed: books that already disagree would only produce invented round trips.
    """
    streams: dict[tuple[str, str], list[StoredFill]] = defaultdict(list)
    for fill in ledger.fills:
        order = ledger.orders_by_cid.get(fill.client_order_id)
        streams[(order.exchange if order is not None else "", fill.symbol)].append(fill)
    adopted: dict[tuple[str, str], list[AdoptionRow]] = defaultdict(list)
    for adoption in ledger.adoptions:
        adopted[(adoption.exchange, adoption.symbol)].append(adoption)
    for key in sorted(streams.keys() | adopted.keys()):
        yield from _replay_one(key, streams.get(key, []), adopted.get(key, []),
                               quote_currency, ledger, breaches)  # fmt: skip


def _replay_one(
    key: tuple[str, str],
    fills: Sequence[StoredFill],
    adoptions: Sequence[AdoptionRow],
    quote_currency: str | None,
    ledger: _Ledger,
    breaches: list[Breach],
) -> Iterator[_ClosedTrip]:
    exchange, symbol = key
    where = f"{symbol} on {exchange or 'an unknown exchange'}"
    try:
        portfolio = Portfolio(quote_currency or split_symbol(symbol)[1], 0.0)
    except ValueError as exc:
        breaches.append(Breach(BreachKind.LEDGER_INCONSISTENT, where, f"cannot book: {exc}"))
        return
    pending = sorted(adoptions, key=lambda a: (a.ts, a.id))
    lot: list[StoredFill] = []
    for index, fill in enumerate(fills):
        try:
            while pending and ms_from_datetime(pending[0].ts) <= fill.ts_ms:
                adoption = pending.pop(0)
                portfolio.adopt(symbol, adoption.amount, adoption.price,
                                ms_from_datetime(adoption.ts))  # fmt: skip
            trip = portfolio.apply_fill(fill, _trip_reason(fill, ledger))
        except ValueError as exc:
            left = len(fills) - index - 1
            breaches.append(
                Breach(
                    BreachKind.LEDGER_INCONSISTENT,
                    f"fill {fill.id} of order {fill.client_order_id}",
                    f"{exc}; {left} later {'fill' if left == 1 else 'fills'} of {where} "
                    "not replayed",
                )
            )
            return
        lot.append(fill)
        if trip is not None:
            yield _ClosedTrip(trip, tuple(lot))
            lot = []


def _trip_reason(fill: StoredFill, ledger: _Ledger) -> str:
    """Why the fill was placed: its order's SELL decision's exit reason, else the store's."""
    order = ledger.orders_by_cid.get(fill.client_order_id)
    decision = ledger.decisions.get(order.decision_id) if order is not None else None
    if decision is not None and decision.side == _SELL and decision.exit_reason:
        return decision.exit_reason
    return fill.reason


def _check_round_trip(closed: _ClosedTrip, ledger: _Ledger) -> Iterator[Breach]:
    trip = closed.trip
    notional = trip.entry_price * trip.amount
    if not trip.profit < -PROFIT_TOLERANCE * notional:
        return
    closing = closed.closing
    subject = (
        f"round trip {trip.symbol} {_iso_ms(trip.entry_ms)} -> {_iso_ms(trip.exit_ms)} "
        f"closed by order {closing.client_order_id}"
    )
    numbers = (
        f"entry {_num(trip.entry_price)}, exit {_num(trip.exit_price)}, amount "
        f"{_num(trip.amount)}, fees {_num(trip.fee)}: profit {_num(trip.profit)} after fees"
    )
    reason = trip.reason
    if reason in _PROFIT_EXITS:
        yield Breach(
            BreachKind.LOSING_SIGNAL_EXIT,
            subject,
            f"a {reason} exit realised a loss ({numbers}); rule 1 allows a loss only to a "
            "stop-loss or a HARDSTOP flatten",
        )
        return
    order = ledger.orders_by_cid.get(closing.client_order_id)
    decision = ledger.decisions.get(order.decision_id) if order is not None else None
    problems = _loss_problems(reason, order, decision, closed, ledger)
    if problems:
        yield Breach(
            BreachKind.LOSS_NOT_A_STOP,
            subject,
            f"a loss ({numbers}) closed as {reason!r} that is no stored stop or flatten: "
            + "; ".join(problems),
        )


def _loss_problems(
    reason: str,
    order: OrderRow | None,
    decision: DecisionRow | None,
    closed: _ClosedTrip,
    ledger: _Ledger,
) -> list[str]:
    """Why a losing close is not a valid stop-loss or flatten; empty if it is one."""
    if order is None or decision is None:
        return ["its closing order or decision is not recorded"]
    if reason == ExitReason.HARDSTOP.value:
        if order.hardstop_active:
            return []
        return ["the 'flatten' was stored while HARDSTOP was down"]
    if reason != ExitReason.STOP_LOSS.value:
        return [f"{reason!r} is not an exit reason that may lose"]
    if order.order_type not in ("stop_loss", "market"):
        return [f"it closed through a {order.order_type} order, not a stop"]
    problems = _stop_problems(order, decision, ledger)
    stored = _stored_stop(decision, order.symbol, ledger, [])
    stop = stored if stored is not None else decision.stop_price
    if stop is not None:
        for fill in closed.fills:
            if fill.client_order_id == order.client_order_id and fill.price > stop * (
                1.0 + PRICE_TOLERANCE
            ):
                problems.append(
                    f"fill {fill.id} at {_num(fill.price)} is above its stored stop "
                    f"{_num(stop)}: the loss was taken before the stop was hit"
                )
    return problems


# --- Formatting ---------------------------------------------------------------------------------


def _refusal_texts(refusals: Iterable[Any]) -> list[str]:
    texts = []
    for refusal in refusals or ():
        if isinstance(refusal, Mapping):
            texts.append(str(refusal.get("message") or refusal.get("code") or refusal))
        else:
            texts.append(str(refusal))
    return texts


def _reason_text(order: OrderRow, reason: str | None) -> str:
    if order.side == _BUY:
        return "an entry"
    return f"exit reason {reason or 'signal'}"


def _same_price(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=PRICE_TOLERANCE, abs_tol=0.0)


def _num(value: float) -> str:
    return format(value, ".10g")


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.4g}%"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _iso_ms(ts_ms: int) -> str:
    return _iso(datetime.fromtimestamp(ts_ms / 1000, UTC))
