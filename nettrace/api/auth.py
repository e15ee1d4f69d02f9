"""Bearer-token authentication: every request outside the public endpoints needs a region token.

It runs as an app-level ``before_request`` registered *before* Flask-Limiter's, so the limiter
can key its counters by the authenticated region (one budget per scout, however many IPs it
uses) and an unauthenticated request never costs a scout part of its budget.
"""

from __future__ import annotations

from typing import Final

from flask import g, request

from nettrace.api.errors import ApiError
from nettrace.api.state import api_state

#: Endpoints anyone may call (liveness probes and the API's own description).
PUBLIC_ENDPOINTS: Final = frozenset({"health.healthz", "health.readyz", "health.openapi", "static"})


def authenticate() -> None:
    """Set ``g.region`` from the bearer token, or answer 401."""
    endpoint = request.endpoint
    if endpoint is None or endpoint in PUBLIC_ENDPOINTS:
        return  # unknown routes fall through to a JSON 404/405
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401,
            "unauthorized",
            "missing bearer token (Authorization: Bearer <region token>)",
            headers={"WWW-Authenticate": 'Bearer realm="nettrace"'},
        )
    region = api_state().tokens.verify(token)
    if region is None:
        raise ApiError(
            401,
            "unauthorized",
            "unknown or revoked token",
            headers={"WWW-Authenticate": 'Bearer realm="nettrace", error="invalid_token"'},
        )
    g.region = region


def rate_limit_key() -> str:
    """Flask-Limiter key: the token's region, else (public endpoints) the client address."""
    region = g.get("region")
    if isinstance(region, str):
        return f"region:{region}"
    return f"addr:{request.remote_addr or 'unknown'}"
