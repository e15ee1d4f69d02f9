"""``nettrace audit`` (and the audit line of ``nettrace backtest``) as a user runs them.

The CLI runs as a subprocess against a migrated database (SQLite always, PostgreSQL when
configured); breaches are planted straight into the tables, as a bug or a hand edit would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nettrace.agents.agent_goals import GoalValidator, TradeProposal
from nettrace.domain.types import Side
from nettrace.store.database import Database
from nettrace.store.decisions import DecisionStore
from nettrace.store.models import DecisionRow, OrderRow
from nettrace.store.orders import OrderIntent, OrderStore

AT = datetime(2026, 11, 25, 14, 5, tzinfo=UTC)


def nettrace(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nettrace", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


@pytest.fixture
def db_env(migrated_db: Database, database_url: str, env: dict[str, str]) -> dict[str, str]:
    return {**env, "NETTRACE_DATABASE_URL": database_url}


def plant_order_outside_the_primary(db: Database) -> str:
    """An approved BUY and an order for it stored by the lhr scout: the store would refuse it."""
    decision_id = uuid.uuid4().hex
    client_id = "nt-from-lhr-0001"
    with db.session() as session:
        session.add(
            DecisionRow(
                id=decision_id, decided_at=AT, region="ewr", symbol="BTC/USD", side="BUY",
                approved=True, price_bound=101.0, stop_price=95.0,
            )
        )  # fmt: skip
        session.flush()
        session.add(
            OrderRow(
                client_order_id=client_id, decision_id=decision_id, region="lhr",
                exchange="paper", symbol="BTC/USD", side="BUY", order_type="limit",
                post_only=True, price=100.0, amount=1.0, state="open",
            )
        )  # fmt: skip
    return client_id


def test_an_empty_ledger_is_clean_exit_0(db_env: dict[str, str]) -> None:
    result = nettrace("audit", env=db_env)
    assert result.returncode == 0, result.stderr
    assert "ledger clean: 0 orders, 0 decisions, 0 round trips checked" in result.stdout


def test_an_order_the_store_wrote_is_clean(migrated_db: Database, db_env: dict[str, str]) -> None:
    # What the real validator and order store write must pass the audit: the two agree.
    validator = GoalValidator(recorder=DecisionStore(migrated_db, "ewr"), clock=lambda: AT)
    decision = validator.evaluate(
        TradeProposal(
            side="BUY", confidence=0.86, signal_count=3, regime="uptrend", symbol="BTC/USD",
            expected_move=0.02, entry_price=90_500.0,
        )
    )  # fmt: skip
    assert decision.approved, decision.reasons
    assert decision.price_bound is not None
    OrderStore(migrated_db, "ewr", "ewr").create(
        OrderIntent("paper", "BTC/USD", Side.BUY, 0.25, price=90_500.0),
        decision.decision_id,
        "nt-audit-0001",
    )
    result = nettrace("audit", env=db_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ledger clean: 1 order, 1 decision, 0 round trips checked" in result.stdout


def test_a_planted_breach_exits_1_and_is_named(
    migrated_db: Database, db_env: dict[str, str]
) -> None:
    client_id = plant_order_outside_the_primary(migrated_db)
    result = nettrace("audit", env=db_env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ledger BREACHED: 1 breach in 1 order, 1 decision, 0 round trips checked" in (
        result.stdout
    )
    assert "outside_primary_region" in result.stdout
    assert client_id in result.stdout
    assert "'lhr'" in result.stdout


def test_json_is_a_parseable_body_with_the_same_verdict(
    migrated_db: Database, db_env: dict[str, str]
) -> None:
    clean = nettrace("audit", "--json", env=db_env)
    assert clean.returncode == 0, clean.stderr
    body = json.loads(clean.stdout)
    assert (body["verdict"], body["clean"], body["breaches"]) == ("clean", True, [])

    client_id = plant_order_outside_the_primary(migrated_db)
    breached = nettrace("audit", "--json", env=db_env)
    assert breached.returncode == 1, breached.stderr
    body = json.loads(breached.stdout)
    assert body["verdict"] == "breached"
    assert body["checked"] == {"orders": 1, "decisions": 1, "round_trips": 0, "fills": 0}
    [breach] = body["breaches"]
    assert breach["kind"] == "outside_primary_region"
    assert breach["subject"] == f"order {client_id}"


def test_the_primary_region_is_the_setting(migrated_db: Database, db_env: dict[str, str]) -> None:
    plant_order_outside_the_primary(migrated_db)
    result = nettrace("audit", "--json", env={**db_env, "PRIMARY_REGION": "lhr"})
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_unmigrated_database_is_one_line_exit_2(env: dict[str, str]) -> None:
    result = nettrace("audit", env=env)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "nettrace db upgrade" in line


def test_help_teaches_the_invariants_and_exit_codes(env: dict[str, str]) -> None:
    result = nettrace("audit", "--help", env=env)
    assert result.returncode == 0
    for phrase in ("approved decision", "HARDSTOP", "primary region", "--json", "Exit code 0"):
        assert phrase in result.stdout


def test_backtest_prints_its_own_audit(env: dict[str, str]) -> None:
    made = nettrace("data", "synth", "--pairs", "BTC/USD", "--timeframe", "1h", "--bars",
                    "3000", "--seed", "7", env=env)  # fmt: skip
    assert made.returncode == 0, made.stderr
    args = ("--exchange", "synthetic", "--pairs", "BTC/USD", "--timeframe", "1h")
    gated = nettrace("backtest", "--strategy", "sniper", *args, env=env)
    assert gated.returncode == 0, gated.stdout + gated.stderr
    lines = gated.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("trade fingerprint:"))
    assert lines[at + 1].startswith("backtest sniper clean: ")

    baseline = nettrace("backtest", "--strategy", "ema_cross", *args, env=env)
    assert baseline.returncode == 0, baseline.stdout + baseline.stderr
    assert "backtest ema_cross not gated: " in baseline.stdout
    assert "can never be promoted past COLD" in baseline.stdout
