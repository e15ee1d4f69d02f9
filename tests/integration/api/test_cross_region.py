"""The cross-region view: fresh signals by region, filters, and stale regions failing closed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from nettrace.agents.agent_goals import GoalValidator
from nettrace.store.signals import CrossRegionView, agreeing_sources, live_signals

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _at(api: Any, when: datetime) -> None:
    api.set_clock(lambda: when)


def test_stale_region_is_excluded_from_the_agreeing_count(api: Any, signal_factory: Any) -> None:
    lhr, nrt = api.token("lhr"), api.token("nrt")
    stale_after = api.settings.api_stale_after_s

    # lhr last spoke 5 minutes ago; its signal is still within its one-hour ttl.
    _at(api, T0 - timedelta(seconds=stale_after + 180))
    old_ts = (T0 - timedelta(seconds=stale_after + 180)).isoformat()
    lhr_signal = signal_factory("lhr", source="orderbook", ts=old_ts, ttl_s=3600)
    assert api.push(lhr, {"signals": [lhr_signal]}).status_code == 200
    # nrt speaks now.
    _at(api, T0)
    nrt_signal = signal_factory("nrt", source="latency", ts=T0.isoformat(), ttl_s=3600)
    assert api.push(nrt, {"signals": [nrt_signal]}).status_code == 200

    body = api.cross(api.reader()).json()
    assert body["regions"]["lhr"]["stale"] is True
    assert body["regions"]["lhr"]["age_s"] > stale_after
    assert body["regions"]["nrt"]["stale"] is False
    # The stale region's signal is still shown (for the operator), but never counted.
    assert [s["id"] for s in body["regions"]["lhr"]["signals"]] == [lhr_signal["id"]]

    view = CrossRegionView.from_json(body)
    assert {s.id for s in live_signals(view)} == {nrt_signal["id"]}
    sources = agreeing_sources(view, "BTC/USD", "BUY")
    assert sources == {"latency"}
    assert GoalValidator.should_trade(0.9, len(sources), "BUY", "neutral") is False

    # lhr comes back (a heartbeat is enough): its signal counts again, and now two agree.
    beat = {"signals": [], "heartbeat": {"source_region": "lhr"}}
    assert api.push(lhr, beat).status_code == 200
    view = CrossRegionView.from_json(api.cross(api.reader()).json())
    sources = agreeing_sources(view, "BTC/USD", "BUY")
    assert sources == {"latency", "orderbook"}
    assert GoalValidator.should_trade(0.9, len(sources), "BUY", "neutral") is True

    # Judged later, with nobody heard since, both regions go stale: nothing counts.
    later = T0 + timedelta(seconds=stale_after + 1)
    assert agreeing_sources(view, "BTC/USD", "BUY", now=later) == set()


def test_only_fresh_signals_and_filters(api: Any, signal_factory: Any) -> None:
    token, reader = api.token("sin"), api.reader()
    _at(api, T0)
    fresh = signal_factory("sin", ts=(T0 - timedelta(seconds=10)).isoformat(), ttl_s=60)
    expired = signal_factory("sin", ts=(T0 - timedelta(seconds=120)).isoformat(), ttl_s=60)
    eth = signal_factory("sin", symbol="ETH/USD", exchange="bitstamp", ts=T0.isoformat())
    old_but_long = signal_factory("sin", ts=(T0 - timedelta(hours=2)).isoformat(), ttl_s=86_400)
    for signal in (fresh, expired, eth, old_but_long):
        assert api.push(token, {"signals": [signal]}).status_code == 200

    def ids(**params: Any) -> set[str]:
        body = api.cross(reader, **params).json()
        return {s["id"] for region in body["regions"].values() for s in region["signals"]}

    assert ids() == {fresh["id"], eth["id"], old_but_long["id"]}
    assert ids(symbol="ETH/USD") == {eth["id"]}
    assert ids(exchange="kraken") == {fresh["id"], old_but_long["id"]}
    assert ids(since=(T0 - timedelta(minutes=1)).isoformat()) == {fresh["id"], eth["id"]}
    assert len(ids(limit=1)) == 1

    naive = api.cross(reader, since="2026-11-25T11:00:00")
    assert naive.status_code == 422
    assert naive.json()["field"] == "since"
    assert api.cross(reader, limit=0).status_code == 422
    assert api.cross(reader, symbol="not a symbol").json()["field"] == "symbol"


def test_never_heard_region_is_stale() -> None:
    """A view naming a region with no last-heard time counts none of its signals."""
    view = CrossRegionView.from_json(
        {
            "as_of": T0.isoformat(),
            "stale_after_s": 120,
            "regions": {
                "fra": {
                    "region": "fra",
                    "last_heard_at": None,
                    "age_s": None,
                    "stale": False,  # even if a buggy server said otherwise
                    "signals": [
                        {
                            "id": "x",
                            "source": "trend",
                            "source_region": "fra",
                            "exchange": "kraken",
                            "symbol": "BTC/USD",
                            "side": "BUY",
                            "confidence": 0.9,
                            "ts": T0.isoformat(),
                            "ttl_s": 60,
                            "meta": {},
                            "received_at": T0.isoformat(),
                        }
                    ],
                }
            },
        }
    )
    assert live_signals(view) == []


def test_only_the_primary_and_the_operator_read_cross_region(
    start_server: Any, signal_factory: Any
) -> None:
    """A scout's token may push for its region but not read every region's signals (403 JSON)."""
    api = start_server(operator_token="operator-cross-7d1e")
    lhr = api.token("lhr")
    assert api.push(lhr, {"signals": [signal_factory("lhr")]}).status_code == 200
    for scout in ("lhr", "nrt"):
        refused = api.cross(api.token(scout))
        assert refused.status_code == 403
        assert refused.headers["Content-Type"].startswith("application/json")
        body = refused.json()
        assert body["error"] == "forbidden_region"
        assert "'ewr'" in body["message"]
        assert "regions" not in body
    primary = api.cross(api.reader())
    assert primary.status_code == 200
    assert set(primary.json()["regions"]) == {"lhr"}
    operator = api.cross("operator-cross-7d1e")
    assert operator.status_code == 200
    ids = [s["id"] for s in operator.json()["regions"]["lhr"]["signals"]]
    assert ids == [s["id"] for s in primary.json()["regions"]["lhr"]["signals"]]
    assert api.cross("ntq_unknown").status_code == 401


def test_primary_region_comes_from_settings(start_server: Any, signal_factory: Any) -> None:
    api = start_server(primary_region="lhr")
    assert api.cross(api.token("ewr")).status_code == 403
    assert api.cross(api.token("lhr")).status_code == 200


def test_since_must_be_an_rfc3339_date_time(api: Any, signal_factory: Any) -> None:
    """The document says ``format: date-time``: a number (a Unix time to a lax parser), a date
    alone or a trailing newline is refused with the field named, as JSON."""
    reader = api.reader()
    for bad in ("0.5", "1733140800", "2026-11-25", "2026-11-25T11:00:00Z\n", "now"):
        answer = api.cross(reader, since=bad)
        assert answer.status_code == 422, bad
        assert answer.json()["field"] == "since"
    for good in ("2026-11-25T11:00:00Z", "2026-11-25t11:00:00.5+01:00"):
        assert api.cross(reader, since=good).status_code == 200, good
