"""The decision audit trail: every GoalValidator verdict, taken or refused, one row each.

``DecisionStore`` is a ``DecisionRecorder``: hand it to ``GoalValidator`` and every evaluation is
written before the validator returns, so an approval without its audit row cannot exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from nettrace.agents.agent_goals import TradeDecision
from nettrace.domain.numbers import finite_float, strict_int
from nettrace.domain.types import Side, parse_regime, parse_side
from nettrace.store.database import Database
from nettrace.store.models import DecisionRow, OrderRow


def decision_values(decision: TradeDecision, region: str) -> dict[str, Any]:
    """The audit row of ``decision`` as column values: what ``OrderStore.create`` writes with
    the order it approves (a plain mapping, not an ORM object: it is built on the decision
    path, where constructing the instrumented row cost more than writing it)."""
    record = decision.to_record()
    proposal = decision.proposal
    side = parse_side(proposal.side)
    regime = parse_regime(proposal.regime)
    reason = proposal.exit_reason if side is Side.SELL else None
    entry_id = (proposal.context or {}).get("entry_decision_id")
    return {
        "id": decision.decision_id,
        "decided_at": decision.decided_at,
        "region": region,
        "symbol": proposal.symbol,
        "side": side.value if side else None,
        "regime": regime.value if regime else None,
        "confidence": finite_float(proposal.confidence),
        "signal_count": strict_int(proposal.signal_count),
        "approved": decision.approved,
        "refusals": record["refusals"],
        "inputs": record["inputs"],
        "thresholds": record["thresholds"],
        "fees": record["fees"],
        "exit_reason": str(reason) if isinstance(reason, str) else None,
        "price_bound": decision.price_bound,
        "stop_price": finite_float(proposal.stop_price),
        "entry_decision_id": entry_id if isinstance(entry_id, str) else None,
    }


def decision_row(decision: TradeDecision, region: str) -> DecisionRow:
    """The audit row of ``decision`` (what ``record`` writes)."""
    return DecisionRow(**decision_values(decision, region))


class PendingDecisions:
    """A ``DecisionRecorder`` that holds decisions until they are written.

    The trading tick is on the decision path (DESIGN §5: tick to order request under a
    millisecond), and a transaction per decision plus one per order was most of it. With this
    recorder an approval is written *in the same transaction as the order it approves*
    (``OrderStore.create(decisions=...)``), still before the order is sent, so an order without
    its recorded approval cannot exist; the tick's remaining decisions (refusals) are written
    together at its end by ``flush``.
    """

    def __init__(self, store: DecisionStore) -> None:
        self._store = store
        self._pending: list[TradeDecision] = []

    @property
    def region(self) -> str:
        return self._store.region

    def record(self, decision: TradeDecision) -> None:
        self._pending.append(decision)

    def take(self) -> list[TradeDecision]:
        """The held decisions, handed over to be written by the caller."""
        taken, self._pending = self._pending, []
        return taken

    def flush(self) -> None:
        self._store.record_many(self.take())


class DecisionStore:
    """Writes and reads decision audit rows for one region."""

    def __init__(self, database: Database, region: str) -> None:
        self._db = database
        self._region = region

    @property
    def region(self) -> str:
        return self._region

    def record(self, decision: TradeDecision) -> None:
        with self._db.session() as session:
            session.add(decision_row(decision, self._region))

    def record_many(self, decisions: Sequence[TradeDecision]) -> None:
        """Write several decisions in one transaction (a tick's refusals)."""
        if not decisions:
            return
        with self._db.session() as session:
            session.add_all([decision_row(d, self._region) for d in decisions])

    def price_bound(self, decision_id: str) -> float | None:
        """The price a stored approval binds (``None``: none, or no such decision)."""
        return self._column(DecisionRow.price_bound, decision_id)

    def stop_price(self, decision_id: str) -> float | None:
        """The stop stored with an approval (an entry's: where its stop-loss must sit)."""
        return self._column(DecisionRow.stop_price, decision_id)

    def _column(self, column: Any, decision_id: str) -> float | None:
        with self._db.session() as session:
            value = session.scalar(select(column).where(DecisionRow.id == decision_id))
        return None if value is None else float(value)

    def latest(self, symbol: str | None = None, limit: int = 20) -> list[DecisionRow]:
        """The newest decisions first, optionally for one symbol."""
        query = select(DecisionRow).order_by(DecisionRow.decided_at.desc()).limit(limit)
        if symbol is not None:
            query = query.where(DecisionRow.symbol == symbol)
        with self._db.session() as session:
            return list(session.scalars(query))

    def count(self) -> int:
        with self._db.session() as session:
            return int(session.scalar(select(func.count()).select_from(DecisionRow)) or 0)

    # --- Reads for ``nettrace why`` -----------------------------------------------------------

    def at_or_before(self, symbol: str, at: datetime, limit: int = 1) -> list[DecisionRow]:
        """The ``limit`` newest decisions for ``symbol`` decided at or before ``at``, newest first.

        Every region's decisions are read (the table is shared); ``region`` tells them apart.
        """
        query = (
            select(DecisionRow)
            .where(DecisionRow.symbol == symbol, DecisionRow.decided_at <= at)
            .order_by(DecisionRow.decided_at.desc(), DecisionRow.id.desc())
            .limit(limit)
        )
        with self._db.session() as session:
            return list(session.scalars(query))

    def span(self, symbol: str) -> tuple[datetime, datetime] | None:
        """The first and last decision time for ``symbol``; ``None`` if it has no decision."""
        query = select(func.min(DecisionRow.decided_at), func.max(DecisionRow.decided_at)).where(
            DecisionRow.symbol == symbol
        )
        with self._db.session() as session:
            first, last = session.execute(query).one()
        if first is None or last is None:
            return None
        # Aggregates bypass the column type on SQLite: read them back through the model's type.
        return _aware(first), _aware(last)

    def orders_for(self, decision_ids: Sequence[str]) -> dict[str, list[OrderRow]]:
        """The orders placed for each decision (oldest first); decisions with none are absent."""
        if not decision_ids:
            return {}
        query = (
            select(OrderRow)
            .where(OrderRow.decision_id.in_(list(decision_ids)))
            .order_by(OrderRow.created_at, OrderRow.id)
        )
        found: dict[str, list[OrderRow]] = {}
        with self._db.session() as session:
            for row in session.scalars(query):
                found.setdefault(row.decision_id, []).append(row)
        return found


def _aware(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
