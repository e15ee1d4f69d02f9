"""Bearer-token authentication: every request outside the public endpoints needs a region token.

The operator's control endpoints (raise and clear HARDSTOP) take the operator token instead
(``NETTRACE_OPERATOR_TOKEN``, compared in constant time; 503 when none is configured, since then
nobody can be the operator); the operator may also read the HARDSTOP state.

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
#: Endpoints that need the operator token instead of a region token.
OPERATOR_ENDPOINTS: Final = frozenset({"control.raise_hardstop", "control.clear_hardstop"})
#: Endpoints the operator token may read as well as any region token.
OPERATOR_READABLE: Final = frozenset({"control.hardstop_status"})
#: Endpoints only the primary region's token (``settings.primary_region``) or the operator token
#: may call: the cross-region view is the primary's input, and a scout reading every other
#: scout's signals would be a leaked lhr token reading the whole cluster (403 for a scout).
PRIMARY_ONLY: Final = frozenset({"signals.cross_region"})


def authenticate() -> None:
    """Set ``g.region`` from the bearer token, or answer 401."""
    endpoint = request.endpoint
    if endpoint is None or endpoint in PUBLIC_ENDPOINTS:
        return  # unknown routes fall through to a JSON 404/405
    token = _bearer()
    if endpoint in OPERATOR_ENDPOINTS:
        _authenticate_operator(token)
        return
    if (endpoint in OPERATOR_READABLE or endpoint in PRIMARY_ONLY) and _is_operator(token):
        g.operator = True
        return
    if not token:
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
    if endpoint in PRIMARY_ONLY:
        primary = api_state().settings.primary_region
        if region != primary:
            raise ApiError(
                403,
                "forbidden_region",
                f"only the primary region's token ({primary!r}) or the operator token may read "
                f"this; the token is {region!r}'s",
            )


def _bearer() -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _is_operator(token: str) -> bool:
    return api_state().settings.is_operator_token(token)


def _authenticate_operator(token: str) -> None:
    if api_state().settings.operator_token is None:
        raise ApiError(
            503,
            "operator_token_not_configured",
            "no operator token is configured (set NETTRACE_OPERATOR_TOKEN); "
            "HARDSTOP cannot be raised or cleared over the API",
        )
    if not _is_operator(token):
        raise ApiError(
            401,
            "unauthorized",
            "this endpoint needs the operator token (Authorization: Bearer <operator token>)",
            headers={"WWW-Authenticate": 'Bearer realm="nettrace-operator"'},
        )
    g.operator = True


def rate_limit_key() -> str:
    """Flask-Limiter key: the token's region, else (public endpoints) the client address."""
    region = g.get("region")
    if isinstance(region, str):
        return f"region:{region}"
    return f"addr:{request.remote_addr or 'unknown'}"
