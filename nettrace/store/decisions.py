"""The decision audit trail: every GoalValidator verdict, taken or refused, one row each.

``DecisionStore`` is a ``DecisionRecorder``: hand it to ``GoalValidator`` and every evaluation is
written before the validator returns, so an approval without its audit row cannot exist.
"""

from __future__ import annotations

from sqlalchemy import func, select

from nettrace.agents.agent_goals import TradeDecision
from nettrace.domain.numbers import finite_float, strict_int
from nettrace.domain.types import parse_regime, parse_side
from nettrace.store.database import Database
from nettrace.store.models import DecisionRow


class DecisionStore:
    """Writes and reads decision audit rows for one region."""

    def __init__(self, database: Database, region: str) -> None:
        self._db = database
        self._region = region

    def record(self, decision: TradeDecision) -> None:
        record = decision.to_record()
        proposal = decision.proposal
        side = parse_side(proposal.side)
        regime = parse_regime(proposal.regime)
        with self._db.session() as session:
            session.add(
                DecisionRow(
                    id=decision.decision_id,
                    decided_at=decision.decided_at,
                    region=self._region,
                    symbol=proposal.symbol,
                    side=side.value if side else None,
                    regime=regime.value if regime else None,
                    confidence=finite_float(proposal.confidence),
                    signal_count=strict_int(proposal.signal_count),
                    approved=decision.approved,
                    refusals=record["refusals"],
                    inputs=record["inputs"],
                    thresholds=record["thresholds"],
                    fees=record["fees"],
                )
            )

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
