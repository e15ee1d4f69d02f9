"""JSON error bodies for every failure, so a client never has to parse an HTML error page.

Scouts decide retry-or-quarantine from the status code and log the body; an ``ErrorResponse``
with the offending field makes a refused batch diagnosable from the scout's log alone.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from nettrace.api.schemas import ErrorDetail, ErrorResponse, field_name
from nettrace.observability.log import get_logger

_log = get_logger(__name__)

#: Seconds a client should wait before retrying when the database is unavailable.
DB_RETRY_AFTER_S = 5


class ApiError(Exception):
    """An error the API answers deliberately: status, code, sentence and (optionally) field."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        field: str | None = None,
        details: list[ErrorDetail] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.field = field
        self.details = details
        self.headers = headers or {}


def json_error(
    status: int,
    error: str,
    message: str,
    field: str | None = None,
    details: list[ErrorDetail] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = ErrorResponse(error=error, message=message, field=field, details=details)
    response = Response(
        body.model_dump_json(exclude_none=True), status=status, mimetype="application/json"
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def validation_error(exc: ValidationError) -> ApiError:
    """A pydantic failure as 400 (not JSON at all) or 422 (JSON, but wrong), naming the field."""
    errors = exc.errors(include_url=False, include_input=False)
    if any(e["type"] == "json_invalid" for e in errors):
        first = errors[0]
        return ApiError(400, "malformed_json", f"body is not valid JSON: {first['msg']}", "body")
    details = [
        ErrorDetail(field=field_name(tuple(e["loc"])), message=str(e["msg"])) for e in errors[:20]
    ]
    first_detail = details[0]
    return ApiError(
        422,
        "validation_error",
        f"{first_detail.field}: {first_detail.message}",
        first_detail.field,
        details,
    )


def register_error_handlers(app: Flask) -> None:
    """Answer every HTTP error, validation error and unexpected exception with JSON."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return json_error(exc.status, exc.error, exc.message, exc.field, exc.details, exc.headers)

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError) -> Response:
        return _api_error(validation_error(exc))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        error = (exc.name or "error").lower().replace(" ", "_")
        message = exc.description or exc.name or "error"
        if status == 413:
            message = "request body too large"
        elif status == 429:
            message = f"rate limit of this region's token exceeded ({message})"
        headers: dict[str, Any] = {}
        original = exc.get_response()
        for name in ("Allow", "Retry-After", "WWW-Authenticate"):
            if name in original.headers:
                headers[name] = original.headers[name]
        return json_error(status, error, message, None, None, headers)

    @app.errorhandler(OperationalError)
    def _db_down(exc: OperationalError) -> Response:
        _log.error("api_database_unavailable", error=type(exc.orig).__name__)
        return json_error(
            503,
            "database_unavailable",
            "the database is unavailable; retry later",
            headers={"Retry-After": str(DB_RETRY_AFTER_S)},
        )

    @app.errorhandler(DBAPIError)
    def _db_error(exc: DBAPIError) -> Response:
        _log.error("api_database_error", error=type(exc.orig).__name__)
        return json_error(
            503,
            "database_error",
            "the database refused the request; retry later",
            headers={"Retry-After": str(DB_RETRY_AFTER_S)},
        )

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        _log.exception("api_internal_error", error=type(exc).__name__)
        return json_error(500, "internal_error", "internal error")
