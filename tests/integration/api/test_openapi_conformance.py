"""Schemathesis against the served OpenAPI document: no 5xx, nothing that contradicts the schema.

Schemathesis generates valid and invalid requests from the document the server publishes, sends
them over HTTP with a real token, and checks each answer: no server error, a documented status
code and content type, a body matching the documented schema, and invalid input refused.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from nettrace.store.hardstop import HardstopLatch
from nettrace.store.signals import SignalStore

EXAMPLES = 25
OPERATOR_TOKEN = "operator-conformance-3f9c1e"
#: Operations that take the operator token (security scheme ``operatorAuth``), not a region's.
OPERATOR_OPERATIONS = {"POST /api/v1/control/hardstop", "DELETE /api/v1/control/hardstop"}


@pytest.fixture
def served(start_server: Any, signal_factory: Any) -> tuple[Any, str]:
    # An operator token is configured so that raise and clear are exercised too (this test's
    # database is its own: whatever HARDSTOP state the fuzzing leaves dies with it).
    api = start_server(operator_token=OPERATOR_TOKEN)
    token = api.token("lhr")
    # Some stored signals and a stale region, so the read side has something to serialise.
    assert api.push(token, {"signals": [signal_factory("lhr") for _ in range(3)]}).ok
    return api, token


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_to_its_openapi_document(served: tuple[Any, str], mode: Any) -> None:
    """Every operation, valid and invalid requests (bounded examples, deterministic).

    Driven through hypothesis directly: schemathesis' pytest plugin (``from_fixture``) does not
    run under this pytest version.
    """
    api, token = served
    primary_token = api.reader()  # cross-region answers the primary's token only
    schema = schemathesis.openapi.from_url(api.base_url + "/api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {op.label for op in operations}
    assert {"POST /api/v1/signals/push", "GET /api/v1/signals/cross-region"} <= labels
    assert {"GET /api/v1/control/hardstop", *OPERATOR_OPERATIONS} <= labels
    for operation in operations:
        takes_input = "/signals/" in operation.path or operation.label in OPERATOR_OPERATIONS
        if mode == GenerationMode.NEGATIVE and not takes_input:
            continue  # the probes take no input: there is nothing to make invalid
        bearer = OPERATOR_TOKEN if operation.label in OPERATOR_OPERATIONS else token
        if operation.path.endswith("/cross-region"):
            bearer = primary_token
        _fuzz(schema, operation, mode, api.base_url, bearer)
    if mode == GenerationMode.POSITIVE:
        # Valid raises and clears were really applied, not just answered.
        actions = {event.action for event in HardstopLatch(api.db).events(1000)}
        assert actions == {"raise", "clear"}


def _fuzz(schema: Any, operation: Any, mode: Any, base_url: str, token: str) -> None:
    # A push may be schema-valid and still refused: ts beyond the clock skew ("now" cannot be
    # written in JSON Schema) or another region (403). Those rules have their own tests; every
    # other check, and positive-data acceptance for the read side and HARDSTOP control, stays on.
    excluded = [positive_data_acceptance] if operation.path.endswith("/signals/push") else []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case: Any) -> None:
        # Negative cases that drop the token must be sent without it (and get 401).
        negated = schema.is_security_param_negated(case)
        case.call_and_validate(
            base_url=base_url,
            headers={} if negated else {"Authorization": f"Bearer {token}"},
            excluded_checks=excluded,
        )

    check()


def test_document_describes_the_real_limits(start_server: Any) -> None:
    api = start_server(api_max_batch=7, api_max_ttl_s=600)
    doc = api.http.get(api.base_url + "/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    schemas = doc["components"]["schemas"]
    assert schemas["PushRequest"]["properties"]["signals"]["maxItems"] == 7
    assert schemas["SignalIn"]["properties"]["ttl_s"]["maximum"] == 600
    assert schemas["SignalIn"]["properties"]["side"]["enum"] == ["BUY", "SELL", "HOLD"]
    push = doc["paths"]["/api/v1/signals/push"]["post"]
    assert {"200", "400", "401", "403", "413", "422", "429"} <= set(push["responses"])
    assert SignalStore(api.db).count() == 0


def test_document_describes_hardstop_control_with_operator_auth(start_server: Any) -> None:
    api = start_server()
    doc = api.http.get(api.base_url + "/api/v1/openapi.json").json()
    control = doc["paths"]["/api/v1/control/hardstop"]
    assert set(control) == {"get", "post", "delete"}
    assert doc["components"]["securitySchemes"]["operatorAuth"]["scheme"] == "bearer"
    for method in ("post", "delete"):
        operation = control[method]
        assert operation["security"] == [{"operatorAuth": []}]
        assert {"200", "401", "415", "422", "503"} <= set(operation["responses"])
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/HardstopRequest"}
    assert control["post"]["requestBody"]["required"] is True
    assert control["delete"]["requestBody"]["required"] is False
    assert [p["name"] for p in control["delete"]["parameters"]] == ["reason"]
    reason = doc["components"]["schemas"]["HardstopRequest"]["properties"]["reason"]
    assert (reason["minLength"], reason["maxLength"]) == (1, 2000)
    assert doc["components"]["schemas"]["HardstopResponse"]["properties"]["status"]["enum"] == [
        "HALTED",
        "TRADING",
    ]
    # The read side takes a region token or the operator's.
    assert control["get"]["security"] == [{"bearerAuth": []}, {"operatorAuth": []}]
