"""The sniper's scout join: one vote per scout generator and venue, the newest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nettrace.agents.scout_source import ScoutClock
from nettrace.agents.sniper import _newest_opinions, _per_generator
from nettrace.store.signals import SignalRecord

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def record(
    sid: str,
    side: str,
    seconds: float,
    *,
    region: str = "lhr",
    exchange: str = "kraken",
    source: str = "orderbook_imbalance",
    confidence: float = 0.6,
) -> SignalRecord:
    return SignalRecord(
        id=sid, source=source, source_region=region, exchange=exchange, symbol="BTC/USD",
        side=side, confidence=confidence, ts=T0 + timedelta(seconds=seconds), ttl_s=60,
        meta={}, received_at=T0 + timedelta(seconds=seconds),
    )  # fmt: skip


def test_an_older_poll_of_the_same_generator_and_venue_does_not_vote_again() -> None:
    heard = _newest_opinions(
        [
            record("a", "BUY", 0),
            record("b", "SELL", 5),  # the same generator on the same venue, newer: it counts
            record("c", "BUY", 1, exchange="bitstamp"),  # another venue: its own vote
            record("d", "BUY", 2, region="nrt"),  # another region: its own vote
            record("e", "HOLD", 3, source="latency_anomaly", confidence=0.0),  # no opinion
        ]
    )
    assert sorted(s.id for s in heard) == ["b", "c", "d"]


def test_equal_times_keep_the_lowest_id_whatever_the_order() -> None:
    first = _newest_opinions([record("z", "BUY", 0), record("m", "SELL", 0)])
    second = _newest_opinions([record("m", "SELL", 0), record("z", "BUY", 0)])
    assert [s.id for s in first] == [s.id for s in second] == ["m"]


def test_the_scout_clock_maps_bar_closes_to_moments() -> None:
    clock = ScoutClock(anchor_s=1_000.0, origin_ms=3_600_000, speed=60.0)
    assert clock.epoch_s(3_600_000) == 1_000.0
    assert clock.epoch_s(3_600_000 + 3_600_000) == 1_060.0  # an hour of market in a minute
    assert ScoutClock.at_bar_close().at(3_600_000) == datetime(1970, 1, 1, 1, tzinfo=UTC)


def test_one_generator_is_one_vote_however_many_venues_report_it() -> None:
    votes, holds = _per_generator(
        [
            record("a", "BUY", 0, confidence=0.9),
            record("b", "SELL", 0, exchange="bitstamp", confidence=0.3),
            record("c", "HOLD", 0, source="latency_anomaly", confidence=0.4),
            record("d", "HOLD", 0, source="latency_anomaly", exchange="x", confidence=0.7),
        ]
    )
    assert votes == {"orderbook_imbalance": pytest.approx((0.9 - 0.3) / 2)}
    assert holds == {"latency_anomaly": 0.7}  # the most cautious venue's
