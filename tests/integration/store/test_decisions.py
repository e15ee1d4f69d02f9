"""The audit trail: every GoalValidator call is a row, and no order exists without one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError

from nettrace.agents.agent_goals import GoalValidator, TradeProposal
from nettrace.store.database import Database
from nettrace.store.decisions import DecisionStore
from nettrace.store.models import OrderRow


def test_taken_and_refused_decisions_are_stored_with_reasons(migrated_db: Database) -> None:
    store = DecisionStore(migrated_db, region="ewr")
    validator = GoalValidator(recorder=store)
    taken = validator.evaluate(
        TradeProposal(
            side="BUY",
            confidence=0.9,
            signal_count=3,
            regime="uptrend",
            symbol="BTC/USD",
            expected_move=0.02,
        )
    )
    refused = validator.evaluate(
        TradeProposal(
            side="buy",
            confidence=float("nan"),
            signal_count=1,
            regime="bear",
            symbol="BTC/USD",
            expected_move=0.02,
        )
    )
    rows = {row.id: row for row in store.latest("BTC/USD")}
    assert store.count() == 2
    assert rows[taken.decision_id].approved is True
    assert rows[taken.decision_id].refusals == []
    refused_row = rows[refused.decision_id]
    assert refused_row.approved is False
    assert refused_row.side == "BUY"
    assert refused_row.regime == "downtrend"
    assert refused_row.confidence is None  # NaN is not stored as a number...
    assert refused_row.inputs["confidence"] == "nan"  # ...but the raw input is kept
    assert {r["code"] for r in refused_row.refusals} == {
        "invalid_confidence",
        "too_few_signals",
        "buy_in_downtrend",
    }
    assert refused_row.thresholds["min_confidence"] == 0.70
    assert refused_row.decided_at.tzinfo is not None


def test_an_order_without_a_recorded_decision_is_refused_by_the_database(
    migrated_db: Database,
) -> None:
    now = datetime.now(UTC)
    with pytest.raises(IntegrityError), migrated_db.session() as session:
        session.add(
            OrderRow(
                client_order_id="nt-1",
                decision_id="never-recorded",
                region="ewr",
                exchange="coinbase",
                symbol="BTC/USD",
                side="BUY",
                order_type="limit",
                post_only=True,
                price=100.0,
                amount=1.0,
                created_at=now,
                updated_at=now,
            )
        )
