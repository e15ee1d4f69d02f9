"""The OpenAPI 3.1 document served at ``/api/v1/openapi.json``, built from the pydantic models.

Why by hand from ``model_json_schema`` and not a library (flask-smorest, spectree, apiflask):
the request models *are* the validators, so their JSON Schema is by construction what the API
accepts; a library would add a second description layer (marshmallow or decorators) that can
drift, plus a dependency. OpenAPI 3.1 is used because its schema dialect is the JSON Schema
2020-12 that pydantic emits, so nothing needs translating. Settings-dependent limits (batch
size, longest ttl) are written into the document when the app is built, so the document states
the limits this very server enforces; schemathesis checks the two agree.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from nettrace import __version__
from nettrace.api.schemas import (
    MAX_REASON_LEN,
    REASON_PATTERN,
    CrossRegionQuery,
    CrossRegionResponse,
    ErrorResponse,
    HardstopRequest,
    HardstopResponse,
    HealthResponse,
    PushRequest,
    PushResponse,
    ReadyResponse,
)
from nettrace.config.settings import Settings

_REF = "#/components/schemas/{model}"


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model="ErrorResponse")}}},
    }
    if headers:
        response["headers"] = headers
    return response


def _ok(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}},
    }


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "string"},
        "required": True,
    }
}


def _common_errors(*, with_body: bool) -> dict[str, Any]:
    responses = {
        "401": _error("Missing, unknown or revoked bearer token."),
        "429": _error("Rate limit of this region's token exceeded.", _RETRY_AFTER),
        "503": _error("Database unavailable; retry later.", _RETRY_AFTER),
    }
    if with_body:
        responses.update(
            {
                "400": _error("Body is not valid JSON, or repeats a key within one object."),
                "403": _error("A signal or heartbeat claims a region other than the token's."),
                "413": _error("Body larger than the configured limit."),
                "415": _error("Body is not application/json."),
                "422": _error("Valid JSON that breaks the schema; `field` names the culprit."),
            }
        )
    else:
        responses["422"] = _error("Invalid query parameter; `field` names it.")
    return responses


def _hardstop_paths(
    bearer: list[dict[str, list[str]]], operator: list[dict[str, list[str]]]
) -> dict[str, Any]:
    """HARDSTOP control: read with any region token (or the operator's), raise and clear with
    the operator token only."""
    body = {
        "application/json": {"schema": {"$ref": _REF.format(model="HardstopRequest")}},
    }
    operator_errors = {
        "400": _error("Body is not valid JSON, or repeats a key within one object."),
        "401": _error("Missing or wrong operator token (a region token is not enough)."),
        "413": _error("Body larger than the configured limit."),
        "415": _error("Body is not application/json."),
        "422": _error("A blank, missing or over-long reason, or an unknown field."),
        "429": _error("Rate limit exceeded.", _RETRY_AFTER),
        "503": _error(
            "No operator token is configured on the server (NETTRACE_OPERATOR_TOKEN), or the "
            "database is unavailable; `error` tells which.",
        ),
    }
    return {
        "get": {
            "operationId": "hardstopStatus",
            "summary": "The HARDSTOP latch (HALTED or TRADING).",
            "security": [*bearer, *operator],
            "responses": {
                "200": _ok(HardstopResponse, "The latch."),
                "401": _error("Missing, unknown or revoked bearer token."),
                "429": _error("Rate limit exceeded.", _RETRY_AFTER),
                "503": _error("Database unavailable; retry later.", _RETRY_AFTER),
            },
        },
        "post": {
            "operationId": "raiseHardstop",
            "summary": "Raise HARDSTOP (operator only): no new orders in any region.",
            "description": (
                "Raising while already raised keeps the first source and reason and logs the "
                "raise. Cleared only by the operator (DELETE or `nettrace hardstop clear`)."
            ),
            "security": operator,
            "requestBody": {"required": True, "content": body},
            "responses": {
                "200": _ok(HardstopResponse, "The latch after the raise (HALTED)."),
                **operator_errors,
            },
        },
        "delete": {
            "operationId": "clearHardstop",
            "summary": "Clear HARDSTOP (operator only): trading may resume.",
            "description": (
                "The reason comes from the JSON body, else from `?reason=`, else a default. "
                "Clearing an inactive latch is logged and answers the (unchanged) latch."
            ),
            "security": operator,
            "parameters": [
                {
                    "name": "reason",
                    "in": "query",
                    "required": False,
                    "description": "Why it is safe to trade again, when no body is sent.",
                    "schema": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_REASON_LEN,
                        "pattern": REASON_PATTERN,
                    },
                }
            ],
            "requestBody": {"required": False, "content": body},
            "responses": {
                "200": _ok(HardstopResponse, "The latch after the clear (TRADING)."),
                **operator_errors,
            },
        },
    }


def build_openapi(settings: Settings) -> dict[str, Any]:
    """The document for a server running with ``settings``."""
    models: list[tuple[type[BaseModel], Any]] = [
        (PushRequest, "validation"),
        (PushResponse, "serialization"),
        (CrossRegionResponse, "serialization"),
        (ErrorResponse, "serialization"),
        (HealthResponse, "serialization"),
        (ReadyResponse, "serialization"),
        (HardstopRequest, "validation"),
        (HardstopResponse, "serialization"),
    ]
    _, top = models_json_schema(models, ref_template=_REF)
    schemas: dict[str, Any] = top.get("$defs", {})
    signal = schemas["SignalIn"]["properties"]
    signal["ttl_s"]["maximum"] = settings.api_max_ttl_s
    signal["ts"]["description"] += (
        f" At most {settings.api_clock_skew_s:g} s ahead of the server clock."
    )
    schemas["PushRequest"]["properties"]["signals"]["maxItems"] = settings.api_max_batch

    query_schema = CrossRegionQuery.model_json_schema()["properties"]
    parameters = []
    for name, schema in query_schema.items():
        # Every query parameter is optional; describe the non-null alternative only.
        variants = [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
        clean = {k: v for k, v in variants[0].items() if k != "title"}
        if "default" in schema and schema["default"] is not None:
            clean["default"] = schema["default"]
        parameters.append(
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": schema.get("description", ""),
                "schema": clean,
            }
        )

    bearer: list[dict[str, list[str]]] = [{"bearerAuth": []}]
    operator: list[dict[str, list[str]]] = [{"operatorAuth": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "NetTrace Quant signals API",
            "version": __version__,
            "description": (
                "Scouts push signals to the primary; the primary reads them back across regions "
                "(DESIGN §3). Every error body is an ErrorResponse."
            ),
        },
        "servers": [{"url": "/"}],
        "paths": {
            "/api/v1/signals/push": {
                "post": {
                    "operationId": "pushSignals",
                    "summary": "Push a batch of signals (idempotent on id) and/or a heartbeat.",
                    "security": bearer,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": _REF.format(model="PushRequest")}
                            }
                        },
                    },
                    "responses": {
                        "200": _ok(PushResponse, "Batch stored (or acknowledged as duplicate)."),
                        **_common_errors(with_body=True),
                    },
                }
            },
            "/api/v1/signals/cross-region": {
                "get": {
                    "operationId": "crossRegionSignals",
                    "summary": "Fresh signals (within ttl) grouped by region, with staleness.",
                    "security": bearer,
                    "parameters": parameters,
                    "responses": {
                        "200": _ok(CrossRegionResponse, "Fresh signals by region."),
                        **_common_errors(with_body=False),
                    },
                }
            },
            "/api/v1/control/hardstop": _hardstop_paths(bearer, operator),
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "The process is alive.",
                    "security": [],
                    "responses": {"200": _ok(HealthResponse, "Alive.")},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "Database reachable and migrations current.",
                    "security": [],
                    "responses": {
                        "200": _ok(ReadyResponse, "Ready."),
                        "503": _ok(ReadyResponse, "Not ready: database down or not migrated."),
                    },
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document.",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A region token from `nettrace tokens issue --region XXX`.",
                },
                "operatorAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "The operator token (NETTRACE_OPERATOR_TOKEN on the server): raises and "
                        "clears HARDSTOP, and may read it."
                    ),
                },
            },
        },
    }
