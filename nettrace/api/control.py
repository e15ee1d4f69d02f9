"""``/api/v1/control/hardstop``: read (any region token), raise and clear (operator token).

``GET`` answers every valid region token, so a scout learns the cluster is HALTED. ``POST``
(raise) and ``DELETE`` (clear) need the operator token (``NETTRACE_OPERATOR_TOKEN``), compared in
constant time; when none is configured they answer 503, since nobody could be the operator.

Which endpoint takes which token is decided in one place, ``nettrace.api.auth``.
"""

from __future__ import annotations

from flask import Blueprint, Response, request
from pydantic import ValidationError

from nettrace.api.errors import ApiError, validation_error
from nettrace.api.jsonbody import reject_duplicate_keys
from nettrace.api.schemas import HardstopClearQuery, HardstopRequest, HardstopResponse
from nettrace.api.state import api_state
from nettrace.observability.log import get_logger
from nettrace.store.hardstop import HardstopLatch, HardstopState

_log = get_logger(__name__)

blueprint = Blueprint("control", __name__, url_prefix="/api/v1/control")

OPERATOR = "operator"


def _answer(current: HardstopState, status: int = 200) -> Response:
    body = HardstopResponse(
        active=current.active,
        status="HALTED" if current.active else "TRADING",
        source=current.source,
        reason=current.reason,
        raised_at=current.raised_at,
        cleared_at=current.cleared_at,
        cleared_by=current.cleared_by,
        flatten=current.flatten,
    )
    return Response(body.model_dump_json(), status=status, mimetype="application/json")


def _reason(*, required: bool = True) -> str:
    """The reason from the JSON body; for a clear (``required=False``) the body is optional and
    ``?reason=`` (validated the same way) or a default stands in for it."""
    return _request(required=required)[0]


def _request(*, required: bool = True) -> tuple[str, bool]:
    """The reason and the ``flatten`` flag of the JSON body (see ``_reason``)."""
    if not required:
        try:
            query = HardstopClearQuery.model_validate(request.args.to_dict())
        except ValidationError as exc:
            raise validation_error(exc) from None
        if not request.get_data(cache=True):
            return (query.reason or "").strip() or "cleared by the operator via the API", False
    if not request.mimetype or not (
        request.mimetype == "application/json" or request.mimetype.endswith("+json")
    ):
        raise ApiError(415, "unsupported_media_type", "send the body as application/json", "body")
    raw = request.get_data(cache=False)
    reject_duplicate_keys(raw)
    try:
        body = HardstopRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_error(exc) from None
    reason = body.reason.strip()
    if not reason:  # pragma: no cover - the model refuses blank reasons already
        raise ApiError(422, "validation_error", "reason: must not be blank", "reason")
    return reason, body.flatten


@blueprint.get("/hardstop")
def hardstop_status() -> Response:
    return _answer(HardstopLatch(api_state().database).state())


@blueprint.post("/hardstop")
def raise_hardstop() -> Response:
    reason, flatten = _request()
    current = HardstopLatch(api_state().database).raise_(OPERATOR, reason, flatten=flatten)
    _log.critical("hardstop_raised", source=OPERATOR, reason=reason, flatten=flatten, via="api")
    return _answer(current)


@blueprint.delete("/hardstop")
def clear_hardstop() -> Response:
    reason = _reason(required=False)
    latch = HardstopLatch(api_state().database)
    cleared = latch.clear(OPERATOR, reason)
    _log.warning("hardstop_cleared", by=OPERATOR, reason=reason, was=cleared.reason, via="api")
    return _answer(latch.state())
