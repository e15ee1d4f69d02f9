"""Orders and their history: one ``orders`` row per client order id, one transition row per change.

This is the storage half of the order state machine. It knows nothing of which moves are legal:
``nettrace.execution.orders`` (a layer above) decides that, and hands ``apply`` a planner that is
run against the order as it is *inside the writing transaction*. The write is a compare-and-set
on (state, filled, exchange order id), so two writers racing on one order can never both win:
the loser re-reads and is planned again. The new state and its ``OrderTransitionRow`` are written
in one transaction, so a state change without its history row cannot exist.

Creation is idempotent on the client order id (a retry returns the existing row, never a second
one) and refused unless an *approved* decision for the same symbol and side is stored and the
order respects the price that approval binds (``DecisionRow.price_bound``): a BUY at or below
it, a signal or take-profit SELL at or above it, a stop-loss exactly at the stop stored with
its entry's approval. A market order needs critical urgency, which only a stop-loss or a
HARDSTOP flatten may have. Whether the HARDSTOP latch allows the order is judged inside the
writing transaction: nothing may be stored while it is up except a protective stop (which may
be placed either way) and a HARDSTOP flatten (which may be placed only then). Writes are
refused outside the primary region, here as well as in the execution layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from sqlalchemy import CursorResult, Engine, Table, bindparam, exists, insert, select, update
from sqlalchemy import false as sa_false
from sqlalchemy import true as sa_true
from sqlalchemy.exc import IntegrityError

from nettrace.agents.agent_goals import FLOAT_TOLERANCE
from nettrace.domain.types import ExitReason, OrderState, Side, Urgency
from nettrace.store.compiled import CompiledInsert
from nettrace.store.database import Database
from nettrace.store.models import (
    DecisionRow,
    HardstopStateRow,
    OrderRow,
    OrderTransitionRow,
    utcnow,
)

#: How many times ``apply`` re-reads and re-plans after losing a race to another writer.
MAX_CAS_ATTEMPTS = 20

#: ``stop_loss`` / ``take_profit`` are the entry's bracket (conditional sells); for them ``price``
#: holds the trigger price, so the table needs no column that only brackets would use.
OrderType = Literal["limit", "market", "stop_loss", "take_profit"]
BRACKET_TYPES: frozenset[str] = frozenset({"stop_loss", "take_profit"})


class OrderStoreError(Exception):
    """An order could not be created or changed; the message names the order and the cause."""


class NotPrimaryRegionError(OrderStoreError):
    """Something tried to create or change an order outside the primary region."""

    def __init__(self, region: str, primary_region: str, action: str) -> None:
        super().__init__(
            f"refused to {action}: region {region!r} is not the primary region "
            f"{primary_region!r}; only the primary places orders"
        )
        self.region = region
        self.primary_region = primary_region
        self.action = action


class DecisionNotApprovedError(OrderStoreError):
    """No stored, approved decision backs this order (or it approved another symbol/side)."""


class PriceBoundError(DecisionNotApprovedError):
    """The order's price (or type, or urgency) lies outside what its approval allows."""


class HardstopActiveError(OrderStoreError):
    """The HARDSTOP latch was up when the order was to be stored: nothing was written."""


class ClientOrderIdConflictError(OrderStoreError):
    """A client order id already belongs to a different order (another decision or terms)."""


class OrderNotFoundError(OrderStoreError):
    """No order has this client order id."""


class ConcurrentUpdateError(OrderStoreError):
    """An order kept changing under us; ``apply`` gave up after ``MAX_CAS_ATTEMPTS``."""


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """What to place: validated on construction, so a malformed intent never reaches a table.

    ``amount`` is in base units, ``price`` in quote per base (``None`` only for market orders;
    the trigger price for a ``stop_loss`` / ``take_profit``, which are never post-only sells).
    """

    exchange: str
    symbol: str
    side: Side
    amount: float
    price: float | None
    order_type: OrderType = "limit"
    post_only: bool = True
    #: ``critical`` only for a risk exit (stop-loss, HARDSTOP flatten); only critical intents
    #: may be market orders.
    urgency: Urgency = Urgency.NORMAL

    def __post_init__(self) -> None:
        if not self.exchange or not self.symbol:
            raise ValueError("an order intent needs an exchange and a symbol")
        if not isinstance(self.side, Side):
            raise ValueError(f"side must be a Side, got {self.side!r}")
        if not _positive(self.amount):
            raise ValueError(f"amount must be a finite number > 0, got {self.amount!r}")
        if self.order_type in BRACKET_TYPES:
            if not _positive(self.price) or self.post_only or self.side is not Side.SELL:
                raise ValueError(
                    f"a {self.order_type} is a sell with a trigger price > 0 and not post-only"
                )
        elif self.order_type == "limit":
            if not _positive(self.price):
                raise ValueError(f"a limit order needs a finite price > 0, got {self.price!r}")
        elif self.order_type == "market":
            if self.price is not None or self.post_only:
                raise ValueError("a market order has no price and cannot be post-only")
            if self.urgency is not Urgency.CRITICAL:
                raise ValueError(
                    "a market order needs critical urgency (a stop-loss or HARDSTOP flatten); "
                    "be a maker otherwise"
                )
        else:
            raise ValueError(
                "order type must be 'limit', 'market', 'stop_loss' or 'take_profit', "
                f"got {self.order_type!r}"
            )
        if not isinstance(self.urgency, Urgency):
            raise ValueError(f"urgency must be an Urgency, got {self.urgency!r}")
        if self.urgency is Urgency.CRITICAL and self.side is not Side.SELL:
            raise ValueError("only a sell (a risk exit) can be critical")


def _positive(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """An order as it stands, handed to a planner inside the writing transaction."""

    client_order_id: str
    state: OrderState
    amount: float
    filled: float
    exchange_order_id: str | None


@dataclass(frozen=True, slots=True)
class OrderChange:
    """What a planner decided: the order's new state, cumulative fill and exchange id."""

    to_state: OrderState
    filled: float
    exchange_order_id: str | None
    detail: dict[str, Any] = field(default_factory=dict)


#: Decides the change for an order (``None``: nothing to do) or raises to refuse it.
Planner = Callable[[OrderFacts], OrderChange | None]


class _LostRaceError(Exception):
    pass


_ORDERS = cast(Table, OrderRow.__table__)
_DECISIONS = cast(Table, DecisionRow.__table__)
_TRANSITIONS = cast(Table, OrderTransitionRow.__table__)
_LATCH = cast(Table, HardstopStateRow.__table__)
_APPROVAL_COLUMNS = ("approved", "symbol", "side", "exit_reason", "price_bound", "stop_price",
                     "entry_decision_id")  # fmt: skip
_DECISION = select(*[_DECISIONS.c[name] for name in _APPROVAL_COLUMNS]).where(
    _DECISIONS.c.id == bindparam("id")
)

#: When an order may be stored, by the HARDSTOP latch: ``down`` (every entry and non-protective
#: exit), ``any`` (a protective stop: a position keeps it while halted), ``up`` (a flatten).
LatchRule = Literal["down", "any", "up"]


class _CompiledCreate:
    """The order-creation statements for one latch rule, compiled once for one engine
    (``store.compiled``)."""

    def __init__(self, engine: Engine, rule: LatchRule) -> None:
        self.decision = CompiledInsert(
            insert(_DECISIONS), engine, [c.key for c in _DECISIONS.columns]
        )
        # The order and its first transition are written only while the HARDSTOP latch allows
        # it, judged inside this transaction: an entry can never be stored (so never sent)
        # after the latch was raised, whatever the caller last read of it. The order records
        # the latch as it read it, for the audit.
        raised = exists().where(_LATCH.c.active.is_(True))  # one row: CHECK (id = 1)
        allowed = {"down": ~raised, "up": raised, "any": sa_true()}[rule]
        # What the latch was: known from the rule itself except for a stop (either way).
        latch_was = {"down": sa_false(), "up": sa_true(), "any": raised}[rule]
        order_columns = [c for c in _ORDERS.columns if c.key not in ("id", "hardstop_active")]
        self.order = CompiledInsert(
            insert(_ORDERS).from_select(
                [c.key for c in order_columns] + ["hardstop_active"],
                select(
                    *[bindparam(c.key, type_=c.type) for c in order_columns],
                    latch_was.label("hardstop_active"),
                ).where(allowed),
            ),
            engine,
            [c.key for c in order_columns],
        )
        # The first transition finds its order by client id rather than taking the id the
        # order's INSERT returns: no statement waits for another's answer, so PostgreSQL gets
        # the whole transaction in one round trip (``HeldConnection`` pipelines it).
        columns = _TRANSITIONS.c
        found = select(
            _ORDERS.c.id,
            bindparam("from_state", type_=columns.from_state.type),
            bindparam("to_state", type_=columns.to_state.type),
            bindparam("at", type_=columns.at.type),
            bindparam("detail", type_=columns.detail.type),
        ).where(_ORDERS.c.client_order_id == bindparam("client_order_id"), allowed)
        self.transition = CompiledInsert(
            insert(_TRANSITIONS)
            .from_select(["order_id", "from_state", "to_state", "at", "detail"], found)
            .returning(columns.order_id),
            engine,
            ["client_order_id", "from_state", "to_state", "at", "detail"],
        )


def _facts(row: OrderRow) -> OrderFacts:
    return OrderFacts(
        client_order_id=row.client_order_id,
        state=OrderState(row.state),
        amount=row.amount,
        filled=row.filled,
        exchange_order_id=row.exchange_order_id,
    )


class OrderStore:
    """The ``orders`` and ``order_transitions`` tables for the process in ``region``."""

    def __init__(self, database: Database, region: str, primary_region: str) -> None:
        self._db = database
        self._region = region
        self._primary = primary_region
        self._create_sql: dict[LatchRule, _CompiledCreate] = {}

    def _require_primary(self, action: str) -> None:
        if self._region != self._primary:
            raise NotPrimaryRegionError(self._region, self._primary, action)

    # --- Writes -------------------------------------------------------------------------------

    def create(
        self,
        intent: OrderIntent,
        decision_id: str,
        client_order_id: str,
        *,
        detail: dict[str, Any] | None = None,
        decisions: Sequence[Mapping[str, Any]] = (),
    ) -> OrderRow:
        """Store a new ``pending_submit`` order and its first transition, or return the same
        order if ``client_order_id`` already exists (a retry). Never writes a second row.

        ``decisions`` are audit rows not written yet (``decisions.decision_values`` of what
        ``decisions.PendingDecisions`` held): they are written first, in the same transaction,
        so the approval and the order it approves become durable together -- one commit on
        the decision path instead of two. The approval is checked before anything is written.
        """
        self._require_primary(f"create order {client_order_id}")
        now = utcnow()
        values: dict[str, Any] = {
            "client_order_id": client_order_id,
            "decision_id": decision_id,
            "region": self._region,
            "exchange": intent.exchange,
            "symbol": intent.symbol,
            "side": intent.side.value,
            "order_type": intent.order_type,
            "post_only": intent.post_only,
            "price": intent.price,
            "amount": float(intent.amount),
            "filled": 0.0,
            "state": OrderState.PENDING_SUBMIT.value,
            "exchange_order_id": None,
            "urgency": intent.urgency.value,
            "created_at": now,
            "updated_at": now,
        }
        # The approval is read before the transaction: a stored decision never changes.
        held = next((d for d in decisions if d["id"] == decision_id), None)
        rule = self._require_approved(decision_id, intent, client_order_id, held, decisions)
        sql = self._compiled(rule)
        creation = {
            "from_state": None,
            "to_state": OrderState.PENDING_SUBMIT.value,
            "at": now,
            "detail": {"reason": "created", "filled": 0.0, **(detail or {})},
        }

        def write(cursor: Any) -> int:
            if decisions:
                sql.decision.execute_many(cursor, decisions)
            sql.order.execute(cursor, values)
            created = sql.transition.execute(
                cursor, {"client_order_id": client_order_id, **creation}
            )
            row = created.fetchone()
            if row is None:  # the latch forbids it: nothing of this transaction may stay
                raise HardstopActiveError(
                    f"refused to create order {client_order_id}: HARDSTOP is raised"
                    if rule == "down"
                    else f"refused to create HARDSTOP flatten {client_order_id}: "
                    "HARDSTOP is not raised"
                )
            return int(row[0])

        try:
            # The driver's cursor, not a session or Core connection: this transaction is on
            # the trading tick's decision path (DESIGN §5); see ``store.compiled``.
            order_id = self._db.driver.run(write)
        except IntegrityError:
            # The client id is taken: a retry, or another writer got there first. Either way
            # the stored order is the order, if its terms are the same.
            existing = self.get(client_order_id)
            if existing is None:
                raise
            self._record_missing(decisions)  # the transaction that carried them rolled back
            return self._same_order(existing, intent, decision_id)
        if rule == "any":  # a stop (never on the entry's decision path): read what was stored
            stored = self.get(client_order_id)
            if stored is not None:
                return stored
        row = OrderRow(**values, hardstop_active=rule == "up")
        row.id = order_id
        return row

    def prepare(self) -> None:
        """Compile the creation statements now rather than inside the first order's decision
        path (measured: ~1.5 ms, the run's slowest tick-to-order when left to the first)."""
        for rule in ("down", "any", "up"):
            self._compiled(rule)

    def _compiled(self, rule: LatchRule) -> _CompiledCreate:
        sql = self._create_sql.get(rule)
        if sql is None:
            sql = self._create_sql[rule] = _CompiledCreate(self._db.engine, rule)
        return sql

    def _record_missing(self, decisions: Sequence[Mapping[str, Any]]) -> None:
        """Store those of ``decisions`` that are not stored yet (audit rows are never lost)."""
        if not decisions:
            return
        ids = [d["id"] for d in decisions]
        with self._db.session() as session:
            stored = set(session.scalars(select(DecisionRow.id).where(DecisionRow.id.in_(ids))))
            session.add_all([DecisionRow(**d) for d in decisions if d["id"] not in stored])

    def apply(self, client_order_id: str, plan: Planner) -> OrderRow:
        """Run ``plan`` on the order and store its change with one transition row, atomically.

        ``plan`` may run more than once if another writer changes the order meanwhile; it must
        be a pure function of the facts it is given. Returns the order as stored afterwards.
        """
        self._require_primary(f"change order {client_order_id}")
        for _ in range(MAX_CAS_ATTEMPTS):
            try:
                return self._apply_once(client_order_id, plan)
            except _LostRaceError:
                continue
        raise ConcurrentUpdateError(
            f"order {client_order_id}: kept changing under {MAX_CAS_ATTEMPTS} attempts; not changed"
        )

    def _apply_once(self, client_order_id: str, plan: Planner) -> OrderRow:
        with self._db.session() as session:
            row = session.scalar(
                select(OrderRow).where(OrderRow.client_order_id == client_order_id)
            )
            if row is None:
                raise OrderNotFoundError(f"order {client_order_id}: no such client order id")
            before = _facts(row)
            change = plan(before)
            if change is None:
                return row
            now = utcnow()
            same_exchange_id = (
                OrderRow.exchange_order_id.is_(None)
                if before.exchange_order_id is None
                else OrderRow.exchange_order_id == before.exchange_order_id
            )
            result = cast(
                CursorResult[Any],
                session.execute(
                    update(OrderRow)
                    .where(
                        OrderRow.id == row.id,
                        OrderRow.state == before.state.value,
                        OrderRow.filled == before.filled,
                        same_exchange_id,
                    )
                    .values(
                        state=change.to_state.value,
                        filled=change.filled,
                        exchange_order_id=change.exchange_order_id,
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False)
                ),
            )
            if result.rowcount != 1:
                raise _LostRaceError
            session.add(
                OrderTransitionRow(
                    order_id=row.id,
                    from_state=before.state.value,
                    to_state=change.to_state.value,
                    at=now,
                    detail={"filled": change.filled, **change.detail},
                )
            )
            session.flush()
            session.refresh(row)
            return row

    # --- Reads --------------------------------------------------------------------------------

    def get(self, client_order_id: str) -> OrderRow | None:
        with self._db.session() as session:
            return session.scalar(
                select(OrderRow).where(OrderRow.client_order_id == client_order_id)
            )

    def in_states(self, *states: OrderState) -> list[OrderRow]:
        """Orders in any of ``states``, oldest first."""
        query = (
            select(OrderRow)
            .where(OrderRow.state.in_([s.value for s in states]))
            .order_by(OrderRow.created_at, OrderRow.id)
        )
        with self._db.session() as session:
            return list(session.scalars(query))

    def creation_details(self) -> dict[str, dict[str, Any]]:
        """The detail of every order's first transition (what it was created with), by client
        id, in one query: a restart reads the plans of all orders at once."""
        query = (
            select(OrderRow.client_order_id, OrderTransitionRow.detail)
            .join(OrderTransitionRow, OrderTransitionRow.order_id == OrderRow.id)
            .where(OrderTransitionRow.from_state.is_(None))
        )
        with self._db.session() as session:
            return {cid: dict(detail or {}) for cid, detail in session.execute(query)}

    def history(self, client_order_id: str) -> list[OrderTransitionRow]:
        """Every transition of the order, in the order they happened (empty if no such order)."""
        query = (
            select(OrderTransitionRow)
            .join(OrderRow, OrderTransitionRow.order_id == OrderRow.id)
            .where(OrderRow.client_order_id == client_order_id)
            .order_by(OrderTransitionRow.id)
        )
        with self._db.session() as session:
            return list(session.scalars(query))

    # --- Checks -------------------------------------------------------------------------------

    def _decision(
        self, decision_id: str, held: Sequence[Mapping[str, Any]] = ()
    ) -> Mapping[str, Any] | None:
        """A stored (or about-to-be-stored, ``held``) decision's approval columns."""
        for row in held:
            if row["id"] == decision_id:
                return row
        with self._db.engine.connect() as conn:
            found = conn.execute(_DECISION, {"id": decision_id}).first()
        return dict(found._mapping) if found is not None else None

    def _require_approved(
        self,
        decision_id: str,
        intent: OrderIntent,
        client_id: str,
        held: Mapping[str, Any] | None = None,
        carried: Sequence[Mapping[str, Any]] = (),
    ) -> LatchRule:
        """Refuse unless an approved decision backs ``intent`` at its price; returns when the
        latch allows it to be stored. ``held``: the decision row about to be written with the
        order (no need to read it); ``carried``: every row written with it."""
        decision = held if held is not None else self._decision(decision_id)
        where = f"order {client_id}: decision {decision_id!r}"
        if decision is None:
            raise DecisionNotApprovedError(f"{where} is not recorded; no order without one")
        if not decision["approved"]:
            raise DecisionNotApprovedError(f"{where} was refused; no order for it")
        side, symbol = decision["side"], decision["symbol"]
        if symbol != intent.symbol or side != intent.side.value:
            raise DecisionNotApprovedError(
                f"{where} approved {side} {symbol}, not {intent.side.value} {intent.symbol}"
            )
        reason = decision.get("exit_reason")
        critical = intent.urgency is Urgency.CRITICAL
        if side == Side.SELL.value and reason in (ExitReason.STOP_LOSS, ExitReason.HARDSTOP):
            if reason == ExitReason.HARDSTOP:
                return "up"  # a flatten sells at any price, only while the latch is up
            self._require_stop(decision, intent, where, carried)
            return "any"  # a protective stop is placed whether or not the latch is up
        if critical:
            raise PriceBoundError(f"{where}: only a stop-loss or a HARDSTOP flatten is critical")
        bound = decision.get("price_bound")
        price = intent.price
        if bound is None or price is None:
            raise PriceBoundError(f"{where} binds no price; no order can respect it")
        slack = FLOAT_TOLERANCE * bound
        if side == Side.BUY.value and price > bound + slack:
            raise PriceBoundError(
                f"{where} approved a BUY at or below {bound:.10g}, not at {price:.10g}"
            )
        if side == Side.SELL.value and price < bound - slack:
            raise PriceBoundError(
                f"{where} approved a SELL at or above {bound:.10g} (break-even after fees), "
                f"not at {price:.10g}: a lower price needs a new decision"
            )
        return "down"

    def _require_stop(
        self,
        decision: Mapping[str, Any],
        intent: OrderIntent,
        where: str,
        carried: Sequence[Mapping[str, Any]],
    ) -> None:
        """A stop-loss order sits exactly at the stop stored with its entry's approval (or is
        a critical market order sent once that stop is hit)."""
        entry_id = decision.get("entry_decision_id")
        entry = self._decision(entry_id, carried) if entry_id else None
        if entry is None or not entry["approved"] or entry["side"] != Side.BUY.value:
            raise PriceBoundError(f"{where}: a stop-loss must name its entry's approved BUY")
        stop = entry.get("stop_price")
        if stop is None or decision.get("stop_price") != stop or entry["symbol"] != intent.symbol:
            raise PriceBoundError(
                f"{where}: its stop {decision.get('stop_price')!r} is not the stop {stop!r} "
                "the risk controller stored with the entry"
            )
        if intent.order_type == "market":
            if intent.urgency is not Urgency.CRITICAL:
                raise PriceBoundError(f"{where}: a market stop-loss must be critical")
            return
        if intent.order_type != "stop_loss" or intent.price is None:
            raise PriceBoundError(f"{where}: a stop-loss exit is a stop_loss order at its stop")
        if abs(intent.price - stop) > FLOAT_TOLERANCE * stop:
            raise PriceBoundError(
                f"{where}: a stop-loss at {intent.price:.10g} is not the stored stop {stop:.10g}"
            )

    @staticmethod
    def _same_order(row: OrderRow, intent: OrderIntent, decision_id: str) -> OrderRow:
        stored = (
            row.decision_id,
            row.exchange,
            row.symbol,
            row.side,
            row.order_type,
            row.post_only,
            row.price,
            row.amount,
        )
        wanted = (
            decision_id,
            intent.exchange,
            intent.symbol,
            intent.side.value,
            intent.order_type,
            intent.post_only,
            intent.price,
            float(intent.amount),
        )
        if stored != wanted:
            raise ClientOrderIdConflictError(
                f"order {row.client_order_id} exists with other terms {stored!r}; "
                f"a retry must repeat them exactly, got {wanted!r}"
            )
        return row
