"""The push endpoint's refusals: who may push, what may be pushed, how much and how often."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from nettrace.store.signals import SignalStore


def test_missing_or_wrong_token_is_401(api: Any, signal_factory: Any) -> None:
    body = {"signals": [signal_factory("lhr")]}
    for headers in (
        {},
        {"Authorization": "Bearer ntq_not-a-real-token"},
        {"Authorization": "Basic x"},
    ):
        response = api.http.post(api.base_url + "/api/v1/signals/push", json=body, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    response = api.http.get(api.base_url + "/api/v1/signals/cross-region")
    assert response.status_code == 401
    assert SignalStore(api.db).count() == 0


def test_token_pushes_only_for_its_own_region(api: Any, signal_factory: Any) -> None:
    lhr = api.token("lhr")
    spoofed = api.push(lhr, {"signals": [signal_factory("lhr"), signal_factory("nrt")]})
    assert spoofed.status_code == 403
    assert spoofed.json()["field"] == "signals[1].source_region"
    heartbeat = api.push(lhr, {"signals": [], "heartbeat": {"source_region": "nrt"}})
    assert heartbeat.status_code == 403
    assert heartbeat.json()["field"] == "heartbeat.source_region"
    assert SignalStore(api.db).count() == 0  # nothing of the spoofed batch was stored
    assert api.push(api.token("nrt"), {"signals": [signal_factory("nrt")]}).status_code == 200


def test_oversize_body_is_413(start_server: Any, signal_factory: Any) -> None:
    api = start_server(api_max_body_bytes=4096)
    token = api.token("lhr")
    body = {"signals": [signal_factory("lhr", meta={"pad": "x" * 1000}) for _ in range(8)]}
    response = api.push(token, body)
    assert response.status_code == 413
    assert response.json()["error"] == "request_entity_too_large"
    assert api.push(token, {"signals": body["signals"][:1]}).status_code == 200


def test_batch_larger_than_the_limit_is_422(start_server: Any, signal_factory: Any) -> None:
    api = start_server(api_max_batch=3)
    response = api.push(api.token("lhr"), {"signals": [signal_factory("lhr") for _ in range(4)]})
    assert response.status_code == 422
    assert response.json()["field"] == "signals"


BAD_CONFIDENCES = ["NaN", "Infinity", "-Infinity", "1.5", "-0.1", '"0.5"', "true", "null"]

#: (override, field the 422 must name). One server for all cases: a database per case is slow.
INVALID_FIELDS: list[tuple[dict[str, Any], str]] = [
    ({"side": "LONG"}, "signals[0].side"),
    ({"side": "buy"}, "signals[0].side"),
    ({"ts": "2026-01-01T00:00:00"}, "signals[0].ts"),  # naive
    ({"ts": "yesterday"}, "signals[0].ts"),
    ({"ts": 1_700_000_000}, "signals[0].ts"),
    ({"ttl_s": 0}, "signals[0].ttl_s"),
    ({"ttl_s": 10**9}, "signals[0].ttl_s"),
    ({"symbol": "BTCUSD"}, "signals[0].symbol"),
    ({"source_region": "LHR1"}, "signals[0].source_region"),
    ({"meta": {"blob": "x" * 5000}}, "signals[0].meta"),
    ({"meta": [1, 2]}, "signals[0].meta"),
    ({"id": ""}, "signals[0].id"),
    ({"surprise": 1}, "signals[0].surprise"),
]


def test_bad_confidence_is_422_naming_the_field(api: Any, signal_factory: Any) -> None:
    token = api.token("lhr")
    for raw_value in BAD_CONFIDENCES:
        signal = signal_factory("lhr", confidence="__C__")
        raw = json.dumps({"signals": [signal]}).replace('"__C__"', raw_value)
        response = api.push(token, raw)
        assert response.status_code == 422, (raw_value, response.text)
        assert response.json()["field"] == "signals[0].confidence", raw_value
        assert "signals[0].confidence" in response.json()["message"]
    assert SignalStore(api.db).count() == 0


def test_invalid_fields_are_422_naming_the_field(api: Any, signal_factory: Any) -> None:
    token = api.token("lhr")
    for overrides, field in INVALID_FIELDS:
        response = api.push(token, {"signals": [signal_factory("lhr", **overrides)]})
        assert response.status_code == 422, (overrides, response.text)
        assert response.json()["field"] == field, overrides
    # The error names the failing signal in a batch, not just "signals".
    batch = [signal_factory("lhr"), signal_factory("lhr", side="SIDEWAYS")]
    assert api.push(token, {"signals": batch}).json()["field"] == "signals[1].side"
    assert SignalStore(api.db).count() == 0


def test_missing_field_and_future_timestamp_are_422(api: Any, signal_factory: Any) -> None:
    token = api.token("lhr")
    signal = signal_factory("lhr")
    del signal["symbol"]
    missing = api.push(token, {"signals": [signal]})
    assert missing.status_code == 422
    assert missing.json()["field"] == "signals[0].symbol"
    future = (datetime.now(UTC) + timedelta(seconds=api.settings.api_clock_skew_s + 30)).isoformat()
    response = api.push(token, {"signals": [signal_factory("lhr", ts=future)]})
    assert response.status_code == 422
    assert response.json()["field"] == "signals[0].ts"
    near = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()
    assert api.push(token, {"signals": [signal_factory("lhr", ts=near)]}).status_code == 200


MALFORMED: list[tuple[str | bytes, int]] = [
    ("{not json", 400),
    ("", 400),
    ('"\\ud800"', 400),  # a lone surrogate is not valid JSON text
    (b"\xff\xfe\x00", 400),
    ('{"signals": [{"id": "\\udfff"}]}', 400),
    ("[]", 422),
    ("null", 422),
    ('{"signals": 5}', 422),
    ('{"signals": [null]}', 422),
    ('{"signals": [], "heartbeat": {"source_region": "lhr", "pending": -1}}', 422),
    ("[" * 5000 + "]" * 5000, 400),
]


def test_malformed_bodies_are_4xx_json_never_500(api: Any) -> None:
    token = api.token("lhr")
    for raw, status in MALFORMED:
        response = api.push(token, raw)
        assert response.status_code == status, (raw[:40], response.text)
        assert response.headers["Content-Type"] == "application/json"
        assert response.json()["error"]


def test_wrong_content_type_is_415(api: Any, signal_factory: Any) -> None:
    body = json.dumps({"signals": [signal_factory("lhr")]})
    response = api.push(api.token("lhr"), body, headers={"Content-Type": "text/plain"})
    assert response.status_code == 415


def test_unknown_route_and_method_answer_json(api: Any) -> None:
    missing = api.http.get(api.base_url + "/api/v1/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    wrong = api.http.get(api.base_url + "/api/v1/signals/push")
    assert wrong.status_code == 405
    assert "POST" in wrong.headers["Allow"]
    assert wrong.json()["error"] == "method_not_allowed"


def test_rate_limit_is_per_region_token_with_retry_after(
    start_server: Any, signal_factory: Any
) -> None:
    api = start_server(api_rate_limit="3/minute")
    lhr, nrt = api.token("lhr"), api.token("nrt")
    statuses = [api.push(lhr, {"signals": [signal_factory("lhr")]}).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    limited = api.push(lhr, {"signals": [signal_factory("lhr")]})
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert limited.json()["error"] == "too_many_requests"
    # Another region's token has its own budget; health checks have none.
    assert api.push(nrt, {"signals": [signal_factory("nrt")]}).status_code == 200
    assert all(api.http.get(api.base_url + "/healthz").status_code == 200 for _ in range(5))
    assert SignalStore(api.db).count() == 4


def test_heartbeat_alone_marks_the_region_heard(api: Any) -> None:
    token = api.token("sin")
    response = api.push(
        token,
        {
            "signals": [],
            "heartbeat": {
                "source_region": "sin",
                "scout_id": "sin-1",
                "ts": datetime.now(UTC).isoformat(),
                "last_seq": 41,
                "pending": 0,
                "quarantined": 0,
                "dropped_expired": 2,
            },
        },
    )
    assert response.status_code == 200
    assert response.json() == {"region": "sin", "accepted": 0, "duplicates": 0}
    view = api.cross(api.reader()).json()
    assert view["regions"]["sin"]["stale"] is False
    assert view["regions"]["sin"]["signals"] == []


def test_duplicate_json_keys_are_refused_naming_the_key(api: Any, signal_factory: Any) -> None:
    """Duplicate keys are 400 with the key named, never "the last one wins" (nothing stored)."""
    token = api.token("lhr")
    first, second = signal_factory("lhr"), signal_factory("lhr")
    batch = json.dumps([first])
    top = f'{{"signals": {batch}, "signals": {json.dumps([second])}}}'
    inner = json.dumps({"signals": [first]}).replace(
        '"side": "BUY"', '"side": "BUY", "side": "SELL"'
    )
    assert '"side": "SELL"' in inner
    nested = json.dumps({"signals": [{**first, "meta": {"a": 1}}]}).replace(
        '{"a": 1}', '{"a": 1, "a": 2}'
    )
    for body, key in ((top, "signals"), (inner, "side"), (nested, "a")):
        answer = api.push(token, body)
        assert answer.status_code == 400, body
        assert answer.headers["Content-Type"].startswith("application/json")
        error = answer.json()
        assert error["error"] == "duplicate_key"
        assert error["field"] == key
        assert repr(key) in error["message"]
    assert SignalStore(api.db).count() == 0
    # Not JSON at all is still the malformed-JSON answer, and a clean body is stored.
    assert api.push(token, '{"signals": [').json()["error"] == "malformed_json"
    assert api.push(token, {"signals": [first, second]}).json()["accepted"] == 2


def test_integral_floats_are_integers_as_the_document_says(api: Any) -> None:
    """JSON Schema's ``integer`` includes 5.0: the heartbeat counters take it; 5.5 stays refused."""
    token = api.token("lhr")
    beat = {"source_region": "lhr", "pending": 5.0, "last_seq": 7, "quarantined": 0.0}
    answer = api.push(token, json.dumps({"signals": [], "heartbeat": beat}))
    assert answer.status_code == 200, answer.text
    with api.db.engine.connect() as conn:
        detail = conn.execute(text("SELECT detail FROM region_heartbeats")).scalar_one()
    detail = json.loads(detail) if isinstance(detail, str) else detail
    assert detail["pending"] == 5
    assert isinstance(detail["pending"], int)
    for bad in (5.5, "5", True, -1.0):
        body = {"signals": [], "heartbeat": {**beat, "pending": bad}}
        refused = api.push(token, json.dumps(body))
        assert refused.status_code == 422, bad
        assert refused.json()["field"] == "heartbeat.pending"
