"""The push request model: exactly what the published schema allows, nothing coerced."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from nettrace.api.errors import validation_error
from nettrace.api.openapi import build_openapi
from nettrace.api.schemas import (
    HardstopClearQuery,
    HardstopRequest,
    PushContext,
    PushRequest,
    field_name,
)
from nettrace.config.settings import Settings

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CTX = {"push": PushContext(now=NOW, clock_skew_s=60, max_ttl_s=3600, max_batch=10)}


def _signal(**overrides: Any) -> dict[str, Any]:
    signal: dict[str, Any] = {
        "id": "abc-1",
        "source": "trend",
        "source_region": "lhr",
        "exchange": "kraken",
        "symbol": "BTC/USD",
        "side": "SELL",
        "confidence": 0.5,
        "ts": NOW.isoformat(),
        "ttl_s": 60,
        "meta": {},
    }
    signal.update(overrides)
    return signal


def _parse(*signals: dict[str, Any]) -> PushRequest:
    return PushRequest.model_validate_json(json.dumps({"signals": list(signals)}), context=CTX)


def _field(raw: str | bytes) -> tuple[int, str | None]:
    with pytest.raises(ValidationError) as caught:
        PushRequest.model_validate_json(raw, context=CTX)
    error = validation_error(caught.value)
    return error.status, error.field


@given(st.floats(min_value=0.0, max_value=1.0))
def test_any_confidence_in_the_unit_interval_is_accepted(confidence: float) -> None:
    assert _parse(_signal(confidence=confidence)).signals[0].confidence == confidence


@given(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not (0.0 <= x <= 1.0)),
    )
)
def test_any_confidence_outside_it_is_refused_naming_the_field(confidence: float) -> None:
    raw = json.dumps({"signals": [_signal(confidence=confidence)]})  # NaN/Infinity literals
    assert _field(raw) == (422, "signals[0].confidence")


def test_timestamps_must_be_aware_utc_convertible_and_not_in_the_future() -> None:
    ok = _parse(_signal(ts=(NOW + timedelta(seconds=59)).isoformat(), ttl_s=1))
    assert ok.signals[0].ts.tzinfo is not None
    shifted = _parse(_signal(ts="2026-11-25T13:00:00+01:00")).signals[0].ts
    assert shifted == NOW
    assert shifted.utcoffset() == timedelta(0)
    for bad in (
        (NOW + timedelta(seconds=61)).isoformat(),
        "2026-11-25T12:00:00",
        "0001-01-01T00:30:00+01:00",
        "not a time",
    ):
        assert _field(json.dumps({"signals": [_signal(ts=bad)]})) == (422, "signals[0].ts")


def test_settings_limits_apply_through_the_context() -> None:
    assert _field(json.dumps({"signals": [_signal(ttl_s=3601)]})) == (422, "signals[0].ttl_s")
    too_many = json.dumps({"signals": [_signal(id=f"s{i}") for i in range(11)]})
    assert _field(too_many) == (422, "signals")


def test_not_json_is_400_and_wrong_shape_is_422() -> None:
    assert _field(b"{") == (400, "body")
    assert _field(b"[]")[0] == 422
    assert _field(json.dumps({"signals": [_signal(meta={"x": math.pi}, extra=1)]})) == (
        422,
        "signals[0].extra",
    )


def test_field_name_renders_paths() -> None:
    assert field_name(("signals", 3, "confidence")) == "signals[3].confidence"
    assert field_name(()) == "body"
    assert field_name(("heartbeat", "source_region")) == "heartbeat.source_region"


def test_openapi_document_is_built_from_the_models() -> None:
    doc = build_openapi(Settings(api_max_batch=5))
    assert doc["openapi"] == "3.1.0"
    schemas = doc["components"]["schemas"]
    assert {"PushRequest", "SignalIn", "PushResponse", "ErrorResponse"} <= set(schemas)
    assert schemas["PushRequest"]["properties"]["signals"]["maxItems"] == 5
    assert schemas["SignalIn"]["additionalProperties"] is False
    refs = json.dumps(doc).count('"$ref": "#/components/schemas/')
    assert refs > 5
    for ref in _refs(doc):
        assert ref.removeprefix("#/components/schemas/") in schemas


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


@given(st.text(max_size=40))
def test_hardstop_reason_model_agrees_with_its_published_pattern(reason: str) -> None:
    """What the document's pattern (checked with Python's re, as schemathesis does) accepts is
    exactly what the server accepts, and an accepted reason is never blank once stripped."""
    schema = build_openapi(Settings())["components"]["schemas"]["HardstopRequest"]
    pattern = schema["properties"]["reason"]["pattern"]
    documented = bool(reason) and re.search(pattern, reason) is not None
    try:
        HardstopRequest(reason=reason)
    except ValidationError:
        accepted = False
    else:
        accepted = True
    assert accepted == documented
    if accepted:
        assert reason.strip()
        assert "\x00" not in reason
    clear = HardstopClearQuery.model_validate({"reason": reason}) if accepted else None
    assert clear is None or clear.reason == reason


@pytest.mark.parametrize("reason", ["", " ", "\t\n", "\x1c", "\u00a0", "ok\x00"])
def test_blank_or_nul_reasons_are_refused(reason: str) -> None:
    with pytest.raises(ValidationError):
        HardstopRequest(reason=reason)
    with pytest.raises(ValidationError):
        HardstopClearQuery(reason=reason)
