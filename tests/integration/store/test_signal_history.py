"""``signals_known_at``: what the primary knew at a moment, judged from the signals' own times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from nettrace.store.database import Database
from nettrace.store.signal_history import signals_known_at
from nettrace.store.signals import SignalStore

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def push(db: Database, region: str, sid: str, *, ts: float, received: float, ttl: float = 60,
         symbol: str = "BTC/USD") -> None:  # fmt: skip
    signal: dict[str, Any] = {
        "id": sid, "source": "orderbook_imbalance", "source_region": region,
        "exchange": "kraken", "symbol": symbol, "side": "BUY", "confidence": 0.7,
        "ts": T0 + timedelta(seconds=ts), "ttl_s": ttl, "meta": {},
    }  # fmt: skip
    SignalStore(db).push(region, [signal], received_at=T0 + timedelta(seconds=received))


def known(db: Database, at: float) -> list[str]:
    found = signals_known_at(
        db, symbol="BTC/USD", now=T0 + timedelta(seconds=at), stale_after_s=120, max_ttl_s=3600
    )
    return [s.id for s in found]


def test_a_signal_is_heard_from_its_receipt_until_its_ttl_ends(migrated_db: Database) -> None:
    push(migrated_db, "lhr", "late", ts=0, received=10)  # in flight for ten seconds
    assert known(migrated_db, 5) == []  # not received yet: a replay must not hear it either
    assert known(migrated_db, 10) == ["late"]
    assert known(migrated_db, 59) == ["late"]
    assert known(migrated_db, 60) == []  # ts + ttl: expired


def test_a_region_silent_past_the_limit_is_not_heard_even_within_ttl(
    migrated_db: Database,
) -> None:
    push(migrated_db, "nrt", "long", ts=0, received=0, ttl=3600)
    push(migrated_db, "lhr", "lhr-1", ts=0, received=0, ttl=3600)
    push(migrated_db, "lhr", "lhr-2", ts=200, received=200, symbol="ETH/USD")  # lhr speaks on
    push(migrated_db, "lhr", "lhr-3", ts=240, received=240)
    assert known(migrated_db, 100) == ["lhr-1", "long"]
    # At 150 both regions' newest word is 150 s old (lhr's ETH/USD is not out yet): stale.
    assert known(migrated_db, 150) == []
    # At 250 lhr is live again (it spoke at 200 and 240), nrt is not; lhr-1 and long, issued
    # 250 s ago, are older than the staleness limit themselves, whatever their ttl says.
    assert known(migrated_db, 250) == ["lhr-3"]
