"""Fail-closed counting: a stale region's signals never reach the sniper's agreeing count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from nettrace.store.signals import (
    CrossRegionView,
    RegionView,
    SignalRecord,
    agreeing_sources,
    is_stale,
    live_signals,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
STALE_AFTER = 120.0
REGIONS = ["lhr", "nrt", "sin", "fra"]
SOURCES = ["trend", "momentum", "orderbook", "latency", "divergence"]


def _signal(region: str, source: str, n: int, age_s: float = 0.0) -> SignalRecord:
    return SignalRecord(
        id=f"{region}-{source}-{n}",
        source=source,
        source_region=region,
        exchange="kraken",
        symbol="BTC/USD",
        side="BUY",
        confidence=0.9,
        ts=NOW - timedelta(seconds=age_s),
        ttl_s=3600,
        meta={},
        received_at=NOW,
    )


region_state = st.tuples(
    st.one_of(st.none(), st.floats(min_value=0, max_value=1000)),  # seconds since heard
    st.lists(st.sampled_from(SOURCES), max_size=4),
)


@given(st.dictionaries(st.sampled_from(REGIONS), region_state, max_size=4))
def test_stale_regions_never_contribute(states: dict[str, tuple[float | None, list[str]]]) -> None:
    regions = {}
    for name, (silent_for, sources) in states.items():
        heard = None if silent_for is None else NOW - timedelta(seconds=silent_for)
        regions[name] = RegionView(
            region=name,
            last_heard_at=heard,
            stale=is_stale(heard, NOW, STALE_AFTER),
            signals=tuple(_signal(name, s, i) for i, s in enumerate(sources)),
        )
    view = CrossRegionView(as_of=NOW, stale_after_s=STALE_AFTER, regions=regions)
    live = live_signals(view)
    fresh_regions = {
        name for name, (silent, _) in states.items() if silent is not None and silent <= STALE_AFTER
    }
    assert {s.source_region for s in live} <= fresh_regions
    expected = {s for name in fresh_regions for s in states[name][1]}
    assert agreeing_sources(view, "BTC/USD", "buy") == expected


def test_expired_signals_and_other_sides_or_symbols_do_not_count() -> None:
    expired = _signal("lhr", "trend", 1, age_s=4000)
    sell = SignalRecord(**{**_signal("lhr", "momentum", 2).__dict__, "side": "SELL"})
    eth = SignalRecord(**{**_signal("lhr", "volume", 3).__dict__, "symbol": "ETH/USD"})
    fresh = _signal("lhr", "orderbook", 4)
    view = CrossRegionView(
        as_of=NOW,
        stale_after_s=STALE_AFTER,
        regions={"lhr": RegionView("lhr", NOW, False, (expired, sell, eth, fresh))},
    )
    assert agreeing_sources(view, "BTC/USD", "BUY") == {"orderbook"}
    assert agreeing_sources(view, "BTC/USD", "SELL") == {"momentum"}
    # Re-judged later, the region itself has gone stale.
    assert live_signals(view, now=NOW + timedelta(seconds=STALE_AFTER + 1)) == []
