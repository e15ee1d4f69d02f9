"""The outbox against a real loopback HTTP primary: nothing leaves without an ack, nothing is
lost while the primary is down, 429s wait as told, stale signals are dropped, refusals are
quarantined. Time is a fake clock, so backoff is checked exactly and nothing sleeps."""

from __future__ import annotations

import json
import random
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from nettrace.scouts.outbox import Outbox, OutboxPusher
from nettrace.scouts.signal import ScoutSignal

TOKEN = "lhr-token-123"


def make_signal(clock: Any, n: int = 0, ttl_s: int = 60, **overrides: Any) -> ScoutSignal:
    fields: dict[str, Any] = {
        "source": "orderbook_imbalance",
        "source_region": "lhr",
        "exchange": "kraken",
        "symbol": "BTC/USD",
        "side": "BUY",
        "confidence": 0.5,
        "ts": datetime.fromtimestamp(clock(), UTC),
        "ttl_s": ttl_s,
        "meta": {"n": n},
        "id": f"sig-{n}",
    }
    fields.update(overrides)
    return ScoutSignal(**fields)


def open_outbox(path: Path, url: str, clock: Any, **kwargs: Any) -> Outbox:
    session = requests.Session()
    session.trust_env = False
    kwargs.setdefault("rng", random.Random(7))
    return Outbox(
        path, region="lhr", push_url=url, token=TOKEN, session=session, clock=clock,
        timeout_s=2.0, **kwargs,
    )  # fmt: skip


@pytest.fixture
def outbox(tmp_path: Path, primary: Any, clock: Any) -> Outbox:
    return open_outbox(tmp_path / "outbox-lhr.db", primary.url, clock)


def test_a_signal_leaves_only_after_the_primary_acknowledged_it(
    outbox: Outbox, primary: Any, clock: Any
) -> None:
    for n in range(3):
        assert outbox.put(make_signal(clock, n)) == n + 1  # sequence numbers 1, 2, 3
    primary.failures.append((500, {"error": "boom"}, {}))
    result = outbox.push_once()
    assert (result.outcome, result.status, result.sent) == ("retry", 500, 3)
    assert [s["id"] for s in outbox.pending()] == ["sig-0", "sig-1", "sig-2"]

    # a 2xx that does not account for the whole batch is not an acknowledgement either
    clock.advance(result.retry_in_s)
    primary.failures.append((200, {"accepted": 2, "duplicates": 0}, {}))
    assert outbox.push_once().outcome == "retry"
    assert len(outbox.pending()) == 3

    clock.advance(5)
    result = outbox.push_once()
    assert (result.outcome, result.accepted, result.duplicates) == ("acked", 3, 0)
    assert outbox.pending() == []
    assert outbox.stats().acked == 3
    sent = primary.signal_requests[-1]["signals"]
    assert [s["meta"]["seq"] for s in sent] == [1, 2, 3]
    assert sent[0]["meta"]["n"] == 0
    assert sent[0]["ts"].endswith("Z")
    assert set(sent[0]) == {"id", "source", "source_region", "exchange", "symbol", "side",
                            "confidence", "ts", "ttl_s", "meta"}  # fmt: skip
    assert primary.auth == [f"Bearer {TOKEN}"] * 3


def test_with_the_primary_down_nothing_is_lost_across_a_restart(
    tmp_path: Path, primary: Any, clock: Any
) -> None:
    path = tmp_path / "outbox-lhr.db"
    box = open_outbox(path, primary.url, clock)
    primary.down()
    for n in range(5):
        box.put(make_signal(clock, n, ttl_s=3600))
    delays = []
    for _ in range(4):
        result = box.push_once()
        assert result.outcome == "retry"
        assert "ConnectionError" in result.error
        delays.append(result.retry_in_s)
        assert box.push_once().outcome == "waiting"  # backing off: no request in between
        clock.advance(result.retry_in_s)
    # exponential with jitter: each delay within [0.5, 1] x 0.5 s x 2^attempt
    for attempt, delay in enumerate(delays):
        assert 0.25 * 2**attempt <= delay <= 0.5 * 2**attempt
    box.close()  # the scout process dies ...

    box = open_outbox(path, primary.url, clock)  # ... and comes back
    box.put(make_signal(clock, 5, ttl_s=3600))
    assert len(box.pending()) == 6
    primary.up()
    assert box.push_once().outcome == "acked"
    assert sorted(primary.stored) == [f"sig-{n}" for n in range(6)]
    assert [s["meta"]["seq"] for s in primary.signal_requests[0]["signals"]] == list(range(1, 7))
    assert box.pending() == []


def test_a_lost_ack_resends_and_the_primary_reports_duplicates(
    outbox: Outbox, primary: Any, clock: Any
) -> None:
    outbox.put(make_signal(clock, 1))
    primary.stored["sig-1"] = {}  # stored on an earlier attempt whose answer never arrived
    result = outbox.push_once()
    assert (result.outcome, result.accepted, result.duplicates) == ("acked", 0, 1)
    assert outbox.pending() == []


def test_a_429_waits_exactly_as_long_as_retry_after_says(
    outbox: Outbox, primary: Any, clock: Any
) -> None:
    outbox.put(make_signal(clock, 1))
    primary.failures.append((429, {"error": "slow down"}, {"Retry-After": "7"}))
    result = outbox.push_once()
    assert (result.outcome, result.status, result.retry_in_s) == ("retry", 429, 7.0)
    clock.advance(6.9)
    assert outbox.push_once().outcome == "waiting"
    assert len(primary.requests) == 1  # nothing was sent while waiting
    clock.advance(0.1)
    assert outbox.push_once().outcome == "acked"
    assert len(primary.requests) == 2


def test_retry_after_zero_still_waits_the_outboxs_own_backoff(
    outbox: Outbox, primary: Any, clock: Any
) -> None:
    # issue 11: a primary answering every push with 429 + "Retry-After: 0" got 87 POSTs in
    # under a second. Over one (fake) second of calls every 10 ms, the outbox may only send
    # on its exponential schedule: 0.25-0.5 s, then 0.5-1 s after that, ...
    outbox.put(make_signal(clock, 1))
    primary.failures.extend([(429, {"error": "slow down"}, {"Retry-After": "0"})] * 200)
    delays = []
    for _ in range(100):
        result = outbox.push_once()
        if result.outcome == "retry":
            delays.append(result.retry_in_s)
        clock.advance(0.01)
    assert 1 <= len(primary.requests) <= 3
    assert len(delays) == len(primary.requests)
    for attempt, delay in enumerate(delays):
        assert 0.25 * 2**attempt <= delay <= 0.5 * 2**attempt
    assert len(outbox.pending()) == 1


def test_a_pusher_against_retry_after_zero_does_not_hammer_the_primary(
    tmp_path: Path, primary: Any
) -> None:
    # The same over a short real window, with the real clock and the pusher thread's sleeps.
    box = open_outbox(tmp_path / "o.db", primary.url, time.time, backoff_base_s=0.1)
    box.put(make_signal(time.time, 1))
    primary.failures.extend([(503, {}, {"Retry-After": "0"})] * 1000)
    pusher = OutboxPusher(box)
    pusher.start()
    time.sleep(0.4)
    pusher.stop()
    # backoff 0.05-0.1 s, 0.1-0.2 s, 0.2-0.4 s: at most 3 requests start within 0.4 s
    assert 1 <= len(primary.requests) <= 3
    box.close()


def test_retry_after_as_an_http_date_is_honoured(outbox: Outbox, primary: Any, clock: Any) -> None:
    outbox.put(make_signal(clock, 1))
    when = datetime.fromtimestamp(clock() + 30, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    primary.failures.append((503, {}, {"Retry-After": when}))
    assert outbox.push_once().retry_in_s == pytest.approx(30.0)


def test_expired_signals_are_dropped_and_counted_never_sent(
    outbox: Outbox, primary: Any, clock: Any
) -> None:
    outbox.put(make_signal(clock, 1, ttl_s=10))
    outbox.put(make_signal(clock, 2, ttl_s=100))
    stale = make_signal(clock, 3, ttl_s=5, ts=datetime.fromtimestamp(clock() - 6, UTC))
    assert outbox.put(stale) is None  # already stale when measured
    clock.advance(10)
    result = outbox.push_once()
    assert (result.outcome, result.dropped_expired, result.sent) == ("acked", 1, 1)
    assert list(primary.stored) == ["sig-2"]
    assert outbox.stats().dropped_expired == 2


def test_a_refused_batch_is_quarantined_not_retried(
    outbox: Outbox, primary: Any, clock: Any
) -> None:
    outbox.put(make_signal(clock, 1))
    primary.failures.append((422, {"error": "confidence: must be <= 1"}, {}))
    result = outbox.push_once()
    assert (result.outcome, result.status) == ("quarantined", 422)
    assert outbox.pending() == []
    [(signal, reason)] = outbox.quarantined()
    assert signal["id"] == "sig-1"
    assert "422" in reason
    assert "confidence" in reason
    # the next calls do not send it again (the refusal counted as contact: no heartbeat due)
    assert outbox.push_once().outcome == "idle"
    clock.advance(15)
    assert outbox.push_once().outcome == "heartbeat"
    assert len(primary.signal_requests) == 1
    # once the operator fixed the cause, it can be sent again
    assert outbox.requeue_quarantined() == 1
    assert outbox.push_once().outcome == "acked"
    assert list(primary.stored) == ["sig-1"]


def test_heartbeats_when_idle_on_an_interval(outbox: Outbox, primary: Any, clock: Any) -> None:
    assert outbox.push_once().outcome == "heartbeat"
    assert primary.requests[0]["signals"] == []
    beat = primary.requests[0]["heartbeat"]
    assert beat["source_region"] == "lhr"
    assert beat["scout_id"] == "scout-lhr"
    assert (beat["last_seq"], beat["pending"], beat["dropped_expired"]) == (0, 0, 0)
    assert beat["ts"].endswith("Z")
    clock.advance(14)
    assert outbox.push_once().outcome == "idle"
    clock.advance(1)
    assert outbox.push_once().outcome == "heartbeat"
    assert len(primary.heartbeats) == 2
    assert primary.auth[-1] == f"Bearer {TOKEN}"


def test_a_failed_heartbeat_backs_off_like_a_batch(
    outbox: Outbox, primary: Any, clock: Any
) -> None:
    primary.down()
    result = outbox.push_once()
    assert result.outcome == "retry"
    assert outbox.push_once().outcome == "waiting"


def test_the_same_signal_id_is_stored_once_and_the_file_is_wal(
    tmp_path: Path, outbox: Outbox, clock: Any
) -> None:
    signal = make_signal(clock, 1)
    assert outbox.put(signal) == outbox.put(signal) == 1
    assert len(outbox.pending()) == 1
    mode = sqlite3.connect(tmp_path / "outbox-lhr.db").execute("PRAGMA journal_mode").fetchone()
    assert mode == ("wal",)


def test_sequence_numbers_are_never_reused_after_acks(
    outbox: Outbox, primary: Any, clock: Any
) -> None:
    outbox.put(make_signal(clock, 1))
    outbox.push_once()
    assert outbox.put(make_signal(clock, 2)) == 2
    assert outbox.stats().last_seq == 2


def test_backoff_is_capped(tmp_path: Path, clock: Any) -> None:
    # a port nobody listens on: every attempt is a connection error
    box = open_outbox(
        tmp_path / "o.db", "http://127.0.0.1:9/api/v1/signals/push", clock, backoff_max_s=4.0
    )
    box.put(make_signal(clock, 1))
    delays = []
    for _ in range(8):
        result = box.push_once()
        delays.append(result.retry_in_s)
        clock.advance(result.retry_in_s)
    assert max(delays) <= 4.0
    assert min(delays[4:]) >= 2.0  # at the cap, jitter keeps at least half
    assert len(box.pending()) == 1


def test_signals_json_round_trips_through_the_file(outbox: Outbox, clock: Any) -> None:
    outbox.put(make_signal(clock, 1, meta={"reason": "é", "depth": [1.5, 2]}))
    stored = outbox.pending()[0]
    assert stored["meta"] == {"reason": "é", "depth": [1.5, 2], "seq": 1}
    assert json.loads(json.dumps(stored)) == stored
