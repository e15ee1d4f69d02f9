"""``POST /api/v1/signals/push`` and ``GET /api/v1/signals/cross-region`` (DESIGN §3, Signals).

Push: the body is parsed and validated in one step by pydantic straight from the raw bytes
(NaN/infinity, naive or far-future timestamps, unknown sides and fields are refused with the
field named), every signal and the heartbeat must claim the token's own region (else 403, so a
leaked lhr token cannot impersonate nrt), then the batch is stored in one transaction, idempotent
on ``id``. The answer ``{"accepted", "duplicates"}`` always sums to the batch length: that sum is
what a scout's outbox treats as the acknowledgement that lets it delete the batch.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, g, request
from pydantic import ValidationError

from nettrace.api.errors import ApiError, validation_error
from nettrace.api.jsonbody import reject_duplicate_keys
from nettrace.api.schemas import CrossRegionQuery, PushContext, PushRequest, PushResponse
from nettrace.api.state import api_state
from nettrace.observability.log import get_logger
from nettrace.store.signals import records

_log = get_logger(__name__)

blueprint = Blueprint("signals", __name__, url_prefix="/api/v1/signals")


def _json(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="application/json")


@blueprint.post("/push")
def push() -> Response:
    state = api_state()
    settings = state.settings
    if not request.mimetype or not (
        request.mimetype == "application/json" or request.mimetype.endswith("+json")
    ):
        raise ApiError(415, "unsupported_media_type", "send the body as application/json", "body")
    now = state.clock()
    context = PushContext(
        now=now,
        clock_skew_s=settings.api_clock_skew_s,
        max_ttl_s=settings.api_max_ttl_s,
        max_batch=settings.api_max_batch,
    )
    raw = request.get_data(cache=False)  # 413 beyond MAX_CONTENT_LENGTH
    reject_duplicate_keys(raw)
    try:
        body = PushRequest.model_validate_json(raw, context={"push": context})
    except ValidationError as exc:
        raise validation_error(exc) from None

    region: str = g.region
    for index, signal in enumerate(body.signals):
        if signal.source_region != region:
            _log.warning(
                "api_region_spoof_refused", token_region=region, claimed=signal.source_region
            )
            raise ApiError(
                403,
                "forbidden_region",
                f"this token pushes for {region!r} only, not {signal.source_region!r}",
                f"signals[{index}].source_region",
            )
    if body.heartbeat is not None and body.heartbeat.source_region != region:
        raise ApiError(
            403,
            "forbidden_region",
            f"this token reports for {region!r} only, not {body.heartbeat.source_region!r}",
            "heartbeat.source_region",
        )

    rows: list[dict[str, Any]] = [signal.model_dump() for signal in body.signals]
    heartbeat = body.heartbeat.model_dump(mode="json") if body.heartbeat is not None else None
    counts = state.signals.push(region, rows, received_at=now, heartbeat=heartbeat)
    answer = PushResponse(region=region, accepted=counts.accepted, duplicates=counts.duplicates)
    return _json(answer.model_dump_json())


@blueprint.get("/cross-region")
def cross_region() -> Response:
    state = api_state()
    settings = state.settings
    try:
        query = CrossRegionQuery.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise validation_error(exc) from None
    now = state.clock()
    view = state.signals.cross_region(
        now=now,
        stale_after_s=settings.api_stale_after_s,
        max_ttl_s=settings.api_max_ttl_s,
        symbol=query.symbol,
        exchange=query.exchange,
        since=query.since,
        limit=query.limit,
    )
    regions: dict[str, Any] = {}
    for name, region in view.regions.items():
        heard = region.last_heard_at
        regions[name] = {
            "region": name,
            "last_heard_at": heard.isoformat() if heard is not None else None,
            "age_s": (now - heard).total_seconds() if heard is not None else None,
            "stale": region.stale,
            "signals": [
                {**row, "ts": row["ts"].isoformat(), "received_at": row["received_at"].isoformat()}
                for row in records(region.signals)
            ],
        }
    body = {
        "as_of": now.isoformat(),
        "stale_after_s": view.stale_after_s,
        "regions": regions,
    }
    return _json(json.dumps(body, allow_nan=False, separators=(",", ":")))
