"""``nettrace why`` as a user runs it: explain refused and taken decisions from the audit trail.

Decisions are written by a real ``GoalValidator`` into a ``DecisionStore`` (SQLite always, and
PostgreSQL when configured); the CLI then runs as a subprocess against the same database.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from nettrace.agents.agent_goals import GoalValidator, TradeDecision, TradeProposal
from nettrace.domain.types import Side
from nettrace.store.database import Database
from nettrace.store.decisions import DecisionStore
from nettrace.store.models import OrderRow
from nettrace.store.orders import OrderIntent, OrderStore

REFUSED_AT = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
TRADED_AT = datetime(2026, 11, 25, 14, 5, tzinfo=UTC)


def nettrace(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nettrace", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def decide(db: Database, at: datetime, proposal: TradeProposal) -> TradeDecision:
    validator = GoalValidator(recorder=DecisionStore(db, "ewr"), clock=lambda: at)
    return validator.evaluate(proposal)


@dataclass(frozen=True)
class History:
    env: dict[str, str]
    refused_id: str
    traded_id: str


@pytest.fixture
def history(migrated_db: Database, database_url: str, env: dict[str, str]) -> History:
    """A refused BUY at 14:00 (low confidence, one signal) and a taken BUY at 14:05 with one
    order; the environment points the CLI at the same database."""
    refused = decide(
        migrated_db,
        REFUSED_AT,
        TradeProposal(
            side="BUY",
            confidence=0.55,
            signal_count=1,
            regime="uptrend",
            symbol="BTC/USD",
            expected_move=0.02,
            context={"votes": {"trend": 0.8, "orderbook": -0.3}, "price": 91_000.5},
        ),
    )
    assert not refused.approved
    traded = decide(
        migrated_db,
        TRADED_AT,
        TradeProposal(
            side="BUY",
            confidence=0.86,
            signal_count=3,
            regime="uptrend",
            symbol="BTC/USD",
            expected_move=0.02,
            entry_price=90_500.0,
            context={
                "votes": {"trend": 0.9, "momentum": 0.75},
                "scouts": [
                    {
                        "id": "s1",
                        "source": "orderbook_imbalance",
                        "region": "lhr",
                        "exchange": "kraken",
                        "side": "BUY",
                        "confidence": 0.7,
                        "age_s": 4.25,
                    },
                ],
                "scouts_heard_at": TRADED_AT.isoformat(),
            },
        ),
    )
    assert traded.approved, traded.reasons
    OrderStore(migrated_db, "ewr", "ewr").create(
        OrderIntent(exchange="kraken", symbol="BTC/USD", side=Side.BUY, amount=0.25, price=90_500),
        traded.decision_id,
        "nt-why-0001",
    )
    return History(
        env={**env, "NETTRACE_DATABASE_URL": database_url},
        refused_id=refused.decision_id,
        traded_id=traded.decision_id,
    )


def test_explains_the_latest_decision_with_its_order(history: History) -> None:
    result = nettrace("why", "BTC/USD", env=history.env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # Approved, but its order has not filled: not "TRADED" (it used to say so).
    assert (
        "APPROVED BUY BTC/USD at 2026-11-25T14:05:00+00:00 in region ewr "
        "(approved; working, not filled yet)"
    ) in out
    assert history.traded_id in out
    # The scout vote it heard, with its region and age.
    assert "Scout votes heard" in out
    assert "lhr" in out
    assert "orderbook_imbalance" in out
    assert "4.2 s" in out
    assert ">= 0.70 (min_confidence)" in out
    assert ">= 2 (min_signal_count)" in out
    assert "0.8600" in out
    assert "2.0000%" in out  # expected move
    assert "approved the trade" in out
    # The approval binds the entry price: 90,500 x 1.02 / 1.009 (rule 2's hurdle from there).
    assert f"at or below {90_500 * 1.02 / 1.009:.8g}" in out
    # The order placed for it.
    assert "Orders placed" in out
    assert "nt-why-0001" in out
    assert "pending_submit" in out
    assert "90500" in out
    assert "0.25" in out
    # The votes the caller recorded.
    assert "Per-generator votes" in out
    assert "momentum" in out
    assert "+0.7500" in out
    assert "REFUSED" not in out


def test_at_picks_the_refused_decision_and_says_why(history: History) -> None:
    result = nettrace("why", "btc/usd", "--at", "2026-11-25T14:04:59", env=history.env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "REFUSED BUY BTC/USD at 2026-11-25T14:00:00+00:00 in region ewr" in out
    assert history.refused_id in out
    assert "latest at or before 2026-11-25T14:04:59+00:00" in out
    # Each refusal's message, its rule and code, and the thresholds it failed.
    assert "confidence 0.5500 is below 0.70 (rule 3, confidence_below_threshold)" in out
    assert "only 1 agreeing signal(s); 2 needed (rule 3, too_few_signals)" in out
    assert "FAIL" in out
    assert "trend" in out
    assert "-0.3000" in out
    assert "What the caller saw" in out
    assert "91000.5" in out
    assert "Orders placed" not in out
    assert "TRADED" not in out


def test_at_with_a_zone_is_converted_to_utc(history: History) -> None:
    # 15:05 at +01:00 is 14:05 UTC: the taken decision, exactly at its time.
    result = nettrace("why", "BTC/USD", "--at", "2026-11-25T15:05:00+01:00", env=history.env)
    assert result.returncode == 0, result.stderr
    assert "APPROVED BUY BTC/USD" in result.stdout


@pytest.mark.parametrize(
    ("state", "filled", "verdict", "outcome", "words"),
    [
        ("filled", 0.25, "TRADED", "filled", "(approved; filled)"),
        ("cancelled", 0.0, "APPROVED", "cancelled", "(approved; cancelled unfilled)"),
        ("rejected", 0.0, "APPROVED", "rejected", "(approved; rejected by the venue)"),
    ],
)
def test_the_verdict_follows_what_became_of_the_order(
    history: History,
    migrated_db: Database,
    state: str,
    filled: float,
    verdict: str,
    outcome: str,
    words: str,
) -> None:
    with migrated_db.session() as session:
        order = session.scalars(
            select(OrderRow).where(OrderRow.client_order_id == "nt-why-0001")
        ).one()
        order.state, order.filled = state, filled
    shown = nettrace("why", "BTC/USD", env=history.env)
    assert f"{verdict} BUY BTC/USD at 2026-11-25T14:05:00+00:00 in region ewr {words}" in (
        shown.stdout
    )
    decision = json.loads(nettrace("why", "BTC/USD", "--json", env=history.env).stdout)
    assert (decision["verdict"], decision["outcome"]) == (verdict, outcome)


def test_limit_lists_recent_decisions(history: History) -> None:
    result = nettrace("why", "BTC/USD", "--limit", "5", env=history.env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "2 latest decision(s)" in out
    assert out.index("2026-11-25T14:05:00+00:00") < out.index("2026-11-25T14:00:00+00:00")
    assert "nt-why-0001 pending_submit" in out
    assert "confidence 0.5500 is below 0.70" in out

    only_refused = nettrace(
        "why", "BTC/USD", "--limit", "5", "--at", "2026-11-25T14:01Z", env=history.env
    )
    assert only_refused.returncode == 0, only_refused.stderr
    assert "1 latest decision(s)" in only_refused.stdout
    assert "nt-why-0001" not in only_refused.stdout


def test_json_is_machine_readable(history: History) -> None:
    result = nettrace("why", "BTC/USD", "--json", env=history.env)
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    assert decision["id"] == history.traded_id
    assert decision["verdict"] == "APPROVED"
    assert decision["outcome"] == "open"
    assert decision["approved"] is True
    assert decision["decided_at"] == TRADED_AT.isoformat()
    assert decision["thresholds"]["min_confidence"] == pytest.approx(0.70)
    assert decision["inputs"]["context"]["votes"]["momentum"] == pytest.approx(0.75)
    [order] = decision["orders"]
    assert order["client_order_id"] == "nt-why-0001"
    assert order["state"] == "pending_submit"
    assert order["amount"] == pytest.approx(0.25)
    assert order["filled"] == 0

    listed = json.loads(
        nettrace("why", "BTC/USD", "--json", "--limit", "10", env=history.env).stdout
    )
    assert [d["verdict"] for d in listed] == ["APPROVED", "REFUSED"]
    refused = listed[1]
    assert refused["id"] == history.refused_id
    assert refused["orders"] == []
    assert {r["code"] for r in refused["refusals"]} == {
        "confidence_below_threshold",
        "too_few_signals",
    }
    assert all(r["rule"] == 3 for r in refused["refusals"])


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("BTC/USD", "--at", "yesterday"), "is not an ISO 8601 time"),
        (("BTC/USD", "--at", "2026-13-40"), "is not an ISO 8601 time"),
        (("BTC/USD", "--at", "0001-01-01T00:00+01:00"), "is not an ISO 8601 time"),
        (("BTC/USD", "--at", ""), "is not an ISO 8601 time"),
        (("bitcoin",), "is not a ccxt symbol"),
        (("BTC/USD", "--limit", "0"), "--limit"),
    ],
)
def test_bad_input_is_one_line_exit_2(history: History, args: tuple[str, ...], needle: str) -> None:
    result = nettrace("why", *args, env=history.env)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_no_decision_is_a_message_and_exit_1(history: History) -> None:
    unknown = nettrace("why", "ETH/USD", env=history.env)
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "nettrace: no decision recorded for ETH/USD"

    too_early = nettrace("why", "BTC/USD", "--at", "2026-11-25T13:00", env=history.env)
    assert too_early.returncode == 1
    assert "no decision recorded for BTC/USD at or before 2026-11-25T13:00:00+00:00" in (
        too_early.stderr
    )
    assert "the first is at 2026-11-25T14:00:00+00:00" in too_early.stderr
    assert "Traceback" not in too_early.stderr


def test_a_stop_loss_says_the_gate_was_not_applied(
    migrated_db: Database, database_url: str, env: dict[str, str]
) -> None:
    # A stop-loss at a loss with no signals: approved, because a risk exit skips the rules.
    decision = decide(
        migrated_db,
        TRADED_AT,
        TradeProposal(
            side="SELL",
            confidence=0.1,
            signal_count=0,
            regime="downtrend",
            symbol="ETH/USD",
            entry_price=3000.0,
            exit_price=2700.0,
            exit_reason="stop_loss",
            stop_price=2700.0,  # the stop stored with its entry (a stop is never self-declared)
        ),
    )
    assert decision.approved, decision.reasons
    result = nettrace("why", "ETH/USD", env={**env, "NETTRACE_DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    assert "APPROVED SELL ETH/USD" in result.stdout
    assert "(approved; no order placed)" in result.stdout
    assert "A stop_loss exit: a risk exit closes the position whatever the signals say" in (
        result.stdout
    )
    assert "n/a" in result.stdout
    assert "FAIL" not in result.stdout
    assert "No order has been placed for this decision." in result.stdout


def test_unmigrated_database_is_one_line_exit_2(env: dict[str, str]) -> None:
    result = nettrace("why", "BTC/USD", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "nettrace db upgrade" in result.stderr
