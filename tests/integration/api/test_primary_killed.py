"""The primary is SIGKILLed and restarted while a scout pushes: nothing lost, nothing doubled.

Real processes on loopback: the primary is ``nettrace serve`` (its own process, killed with
SIGKILL twice, restarted on the same port); the scout side is the real durable outbox and its
pusher thread. Every signal put into the outbox must end up stored exactly once.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from nettrace.scouts.outbox import PUSH_PATH, Outbox, OutboxPusher
from nettrace.scouts.signal import ScoutSignal
from nettrace.store.database import Database
from nettrace.store.models import SignalRow
from nettrace.store.tokens import TokenStore

SIGNALS = 2_000
KILLS = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Primary:
    """``nettrace serve`` as a subprocess that can be SIGKILLed and started again."""

    def __init__(self, database_url: str, home: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not (k.startswith("NETTRACE_") or k in {"FLY_REGION", "DATABASE_URL"})
        }
        self.env.update(
            DATABASE_URL=database_url,
            NETTRACE_DATA_DIR=str(home),
            NETTRACE_API_RATE_LIMIT="100000/second",
            NETTRACE_LOG_LEVEL="WARNING",
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nettrace", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            assert self.process.poll() is None, "the primary exited while starting"
            time.sleep(0.05)
        raise AssertionError("the primary did not come up within 30 s")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def primary(migrated_db: Database, tmp_path: Path) -> Iterator[Primary]:
    process = Primary(migrated_db.url, tmp_path / "primary-home")
    process.start()
    yield process
    process.stop()


def test_every_signal_arrives_exactly_once_across_sigkills(
    primary: Primary, migrated_db: Database, tmp_path: Path
) -> None:
    token, _ = TokenStore(migrated_db).issue("lhr", label="scout")
    outbox = Outbox(
        tmp_path / "outbox-lhr.db",
        region="lhr",
        push_url=primary.url + PUSH_PATH,
        token=token,
        batch_size=50,
        timeout_s=2.0,
        backoff_base_s=0.05,
        backoff_max_s=0.5,
        heartbeat_interval_s=3600.0,
    )
    pusher = OutboxPusher(outbox, idle_s=0.02)
    put_ids: list[str] = []

    def produce() -> None:
        for i in range(SIGNALS):
            scout_signal = ScoutSignal(
                source="orderbook_imbalance",
                source_region="lhr",
                exchange="kraken",
                symbol="BTC/USD",
                side="BUY" if i % 2 else "SELL",
                confidence=0.75,
                ts=datetime.now(UTC),
                ttl_s=3600,
            )
            assert outbox.put(scout_signal) is not None
            put_ids.append(scout_signal.id)
            time.sleep(0.001)

    producer = threading.Thread(target=produce)
    producer.start()
    pusher.start()
    try:
        for _ in range(KILLS):
            _wait_for(lambda: outbox.stats().acked > 0, 30, "no signal was acknowledged")
            acked_before = outbox.stats().acked
            primary.kill()  # mid-stream: batches in flight are cut off
            time.sleep(0.3)  # the scout keeps producing and retrying into a dead port
            primary.start()
            _wait_for(lambda a=acked_before: outbox.stats().acked > a, 30, "no ack after a restart")
        producer.join(timeout=60)
        _wait_for(lambda: outbox.stats().pending == 0, 60, "the outbox did not drain")
    finally:
        pusher.stop()
        producer.join(timeout=10)

    stats = outbox.stats()
    outbox.close()
    assert stats.quarantined == 0
    assert stats.dropped_expired == 0
    with migrated_db.session() as session:
        stored = session.scalars(select(SignalRow.id).where(SignalRow.source_region == "lhr")).all()
    assert len(put_ids) == SIGNALS
    assert len(stored) == len(set(stored)) == SIGNALS  # each one, once
    assert set(stored) == set(put_ids)


def _wait_for(condition: Callable[[], bool], seconds: float, message: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(message)
