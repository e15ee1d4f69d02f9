"""``/healthz`` (the process answers), ``/readyz`` (it can do its job) and the OpenAPI document.

``/readyz`` is what a load balancer or Fly health check should gate traffic on: a primary whose
database is unreachable, or whose schema is behind the code, would answer every push with an
error, so it reports 503 and the scouts keep their outboxes until it is ready.
"""

from __future__ import annotations

import json

from alembic.runtime.migration import MigrationContext
from flask import Blueprint, Response, current_app
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from nettrace.api.schemas import HealthResponse, ReadyResponse
from nettrace.api.state import api_state

blueprint = Blueprint("health", __name__)

OPENAPI_KEY = "nettrace.openapi"


def _json(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="application/json")


@blueprint.get("/healthz")
def healthz() -> Response:
    return _json(HealthResponse(status="ok").model_dump_json())


@blueprint.get("/readyz")
def readyz() -> Response:
    state = api_state()
    try:
        with state.database.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            revision = MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        body = ReadyResponse(status="unavailable", database=f"unreachable ({type(exc).__name__})")
        return _json(body.model_dump_json(), 503)
    if revision != state.head_revision:
        body = ReadyResponse(
            status="unavailable",
            database="migrations pending: run `nettrace db upgrade`",
            revision=revision,
            head=state.head_revision,
        )
        return _json(body.model_dump_json(), 503)
    body = ReadyResponse(status="ok", database="ok", revision=revision, head=state.head_revision)
    return _json(body.model_dump_json())


@blueprint.get("/api/v1/openapi.json")
def openapi() -> Response:
    return _json(json.dumps(current_app.extensions[OPENAPI_KEY]))
