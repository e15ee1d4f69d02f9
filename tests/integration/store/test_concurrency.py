"""Two processes writing the same database at once lose no rows."""

from __future__ import annotations

import multiprocessing as mp
from multiprocessing.synchronize import Barrier

from nettrace.agents.agent_goals import GoalValidator, TradeProposal
from nettrace.store.database import Database
from nettrace.store.decisions import DecisionStore

ROWS_PER_WRITER = 250


def _writer(url: str, region: str, barrier: Barrier, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    db = Database(url)
    validator = GoalValidator(recorder=DecisionStore(db, region=region))
    ids: list[str] = []
    barrier.wait(timeout=60)
    for i in range(ROWS_PER_WRITER):
        decision = validator.evaluate(
            TradeProposal(
                side="BUY",
                confidence=0.5 + (i % 50) / 100,
                signal_count=i % 4,
                regime="uptrend",
                symbol=f"{region}/{i}",
                expected_move=0.02,
            )
        )
        if any(code.value == "audit_unavailable" for code in decision.codes):
            queue.put(f"{region}: write {i} failed: {decision.reasons[-1]}")
            return
        ids.append(decision.decision_id)
    db.dispose()
    queue.put(ids)


def test_two_concurrent_writers_lose_no_rows(migrated_db: Database) -> None:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    queue = ctx.Queue()
    writers = [
        ctx.Process(target=_writer, args=(migrated_db.url, region, barrier, queue))
        for region in ("ewr", "lhr")
    ]
    for process in writers:
        process.start()
    written = [queue.get(timeout=120) for _ in writers]
    for process in writers:
        process.join(timeout=60)
        assert process.exitcode == 0
    errors = [result for result in written if isinstance(result, str)]
    assert errors == []
    expected = {decision_id for ids in written for decision_id in ids}
    assert len(expected) == 2 * ROWS_PER_WRITER
    store = DecisionStore(migrated_db, region="ewr")
    assert store.count() == 2 * ROWS_PER_WRITER
    stored = {row.id for row in store.latest(limit=10 * ROWS_PER_WRITER)}
    assert stored == expected
