"""``/api/v1/control/hardstop``: region tokens read, only the operator token raises and clears."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from nettrace.app import create_app
from nettrace.config.settings import Settings
from nettrace.store.database import Database
from nettrace.store.hardstop import HardstopLatch
from nettrace.store.tokens import TokenStore

URL = "/api/v1/control/hardstop"
OPERATOR = "operator-secret-7a6b5c"


def client(db: Database, **overrides: Any) -> FlaskClient:
    values: dict[str, Any] = {"api_rate_limit": "100000/second"}
    values.update(overrides)
    return create_app(Settings(**values), db).test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def region_token(migrated_db: Database) -> str:
    token, _ = TokenStore(migrated_db).issue("lhr", label="test")
    return token


def test_operator_raises_and_clears_and_scouts_see_it(
    migrated_db: Database, region_token: str
) -> None:
    http = client(migrated_db, operator_token=OPERATOR)
    seen = http.get(URL, headers=bearer(region_token))
    assert seen.status_code == 200
    assert (seen.json["active"], seen.json["status"]) == (False, "TRADING")

    raised = http.post(URL, json={"reason": "exchange incident"}, headers=bearer(OPERATOR))
    assert raised.status_code == 200, raised.json
    assert raised.json["active"] is True
    assert raised.json["source"] == "operator"
    assert HardstopLatch(migrated_db).state().reason == "exchange incident"

    scout = http.get(URL, headers=bearer(region_token)).json
    assert (scout["status"], scout["reason"]) == ("HALTED", "exchange incident")

    cleared = http.delete(URL, json={"reason": "incident over"}, headers=bearer(OPERATOR))
    assert cleared.status_code == 200, cleared.json
    assert cleared.json["active"] is False
    assert cleared.json["cleared_by"] == "operator"
    assert HardstopLatch(migrated_db).state().active is False
    assert [e.action for e in HardstopLatch(migrated_db).events()] == ["clear", "raise"]


def test_a_region_token_or_no_token_cannot_raise_or_clear(
    migrated_db: Database, region_token: str
) -> None:
    http = client(migrated_db, operator_token=OPERATOR)
    for headers in ({}, bearer(region_token), bearer(OPERATOR + "x")):
        assert http.post(URL, json={"reason": "x"}, headers=headers).status_code == 401
        assert http.delete(URL, json={"reason": "x"}, headers=headers).status_code == 401
    assert HardstopLatch(migrated_db).events() == []
    assert http.get(URL).status_code == 401
    assert http.get(URL, headers=bearer("not-a-token")).status_code == 401


def test_no_operator_token_configured_is_503(migrated_db: Database, region_token: str) -> None:
    http = client(migrated_db)
    answer = http.post(URL, json={"reason": "x"}, headers=bearer(region_token))
    assert answer.status_code == 503
    assert answer.json["error"] == "operator_token_not_configured"
    assert "NETTRACE_OPERATOR_TOKEN" in answer.json["message"]
    assert http.delete(URL, headers=bearer("anything")).status_code == 503
    assert http.get(URL, headers=bearer(region_token)).status_code == 200


def test_raise_needs_a_reason_and_clear_is_operator_only_in_the_latch(
    migrated_db: Database,
) -> None:
    http = client(migrated_db, operator_token=OPERATOR)
    assert http.post(URL, json={}, headers=bearer(OPERATOR)).status_code == 422
    assert http.post(URL, json={"reason": "  "}, headers=bearer(OPERATOR)).status_code == 422
    assert http.post(URL, data="nope", headers=bearer(OPERATOR)).status_code == 415
    HardstopLatch(migrated_db).raise_("daily_loss", "down 6%")
    # The operator may read too; a DELETE without a body clears with a default reason.
    assert http.get(URL, headers=bearer(OPERATOR)).json["source"] == "daily_loss"
    cleared = http.delete(URL, headers=bearer(OPERATOR))
    assert cleared.status_code == 200
    assert cleared.json["active"] is False


def test_reasons_are_validated_as_the_document_says(migrated_db: Database) -> None:
    http = client(migrated_db, operator_token=OPERATOR)
    nul = http.post(URL, json={"reason": "a\x00b"}, headers=bearer(OPERATOR))
    assert nul.status_code == 422  # PostgreSQL text cannot hold NUL: refused, never a 5xx
    assert nul.json["field"] == "reason"
    assert "NUL" in nul.json["message"]
    too_long = http.post(URL, json={"reason": "x" * 2001}, headers=bearer(OPERATOR))
    assert too_long.status_code == 422
    extra = http.post(URL, json={"reason": "x", "by": "me"}, headers=bearer(OPERATOR))
    assert extra.status_code == 422
    assert HardstopLatch(migrated_db).events() == []

    # A clear takes its reason from ?reason= when there is no body, validated the same way.
    HardstopLatch(migrated_db).raise_("daily_loss", "down 6%")
    for bad in ({"reason": "   "}, {"reason": "a\x00"}, {"reson": "typo"}):
        refused = http.delete(URL, query_string=bad, headers=bearer(OPERATOR))
        assert refused.status_code == 422, bad
    assert HardstopLatch(migrated_db).state().active is True
    cleared = http.delete(URL, query_string={"reason": "loss reviewed"}, headers=bearer(OPERATOR))
    assert cleared.status_code == 200, cleared.json
    assert cleared.json["status"] == "TRADING"
    assert HardstopLatch(migrated_db).events(1)[0].reason == "loss reviewed"


def test_the_operator_can_ask_a_raise_to_flatten(migrated_db: Database) -> None:
    """``{"flatten": true}`` is the API's ``nettrace hardstop raise --flatten`` (issue 10): the
    latch carries it until the clear, and only a JSON boolean is taken for it."""
    http = client(migrated_db, operator_token=OPERATOR)
    wrong = http.post(URL, json={"reason": "x", "flatten": "yes"}, headers=bearer(OPERATOR))
    assert wrong.status_code == 422
    assert not HardstopLatch(migrated_db).state().active
    raised = http.post(URL, json={"reason": "sell it all", "flatten": True},
                       headers=bearer(OPERATOR))  # fmt: skip
    assert raised.status_code == 200, raised.json
    assert raised.json["flatten"] is True
    assert HardstopLatch(migrated_db).state().flatten is True
    cleared = http.delete(URL, json={"reason": "done"}, headers=bearer(OPERATOR))
    assert cleared.status_code == 200
    assert HardstopLatch(migrated_db).state().flatten is False


def test_duplicate_keys_in_a_hardstop_body_are_refused(migrated_db: Database) -> None:
    http = client(migrated_db, operator_token=OPERATOR)
    headers = {**bearer(OPERATOR), "Content-Type": "application/json"}
    body = '{"reason": "incident", "flatten": false, "flatten": true}'
    answer = http.post(URL, data=body, headers=headers)
    assert answer.status_code == 400
    assert answer.json is not None
    assert answer.json["error"] == "duplicate_key"
    assert answer.json["field"] == "flatten"
    assert http.get(URL, headers=bearer(OPERATOR)).json["active"] is False  # nothing raised
    cleared = http.delete(URL, data='{"reason": "a", "reason": "b"}', headers=headers)
    assert cleared.status_code == 400
    assert cleared.json is not None
    assert cleared.json["field"] == "reason"
