"""Client order ids: deterministic, short, exchange-safe, and distinct per decision and attempt."""

from __future__ import annotations

import base64
import hashlib
import re
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nettrace.execution.client_ids import (
    CLIENT_ORDER_ID_LENGTH,
    MAX_ATTEMPT,
    ClientOrderIdError,
    attempt_of,
    client_order_id,
    client_order_uuid,
    is_client_order_id,
)

decision_ids = st.text(min_size=1, max_size=64).filter(lambda s: s.strip() != "")
attempts = st.integers(min_value=0, max_value=MAX_ATTEMPT)
# OKX clOrdId, the tightest common limit: up to 32 letters and digits.
OKX = re.compile(r"[A-Za-z0-9]{1,32}")


def test_a_known_decision_has_a_known_id() -> None:
    # Pinned: changing the derivation would double every order retried across an upgrade.
    assert client_order_id("0123456789abcdef0123456789abcdef") == (
        "nto4p3dtkgs7futpd234gdia4jm3f000"
    )
    assert client_order_id("d1", 7) == "ntkjp4blgjvffdjg3niui4cc2jx5g007"


@given(decision_ids, attempts)
def test_ids_follow_the_documented_derivation(decision_id: str, attempt: int) -> None:
    # "nt" + the first 27 base32 characters of SHA-256 over the decision id + the attempt.
    digest = hashlib.sha256(f"nettrace-order\x00{decision_id}".encode()).digest()
    expected = f"nt{base64.b32encode(digest).decode().lower()[:27]}{attempt:03d}"
    assert client_order_id(decision_id, attempt) == expected


@given(decision_ids, attempts)
def test_ids_are_stable_short_and_safe(decision_id: str, attempt: int) -> None:
    cid = client_order_id(decision_id, attempt)
    assert cid == client_order_id(decision_id, attempt)
    assert len(cid) == CLIENT_ORDER_ID_LENGTH
    assert OKX.fullmatch(cid)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", cid)
    assert is_client_order_id(cid)
    assert attempt_of(cid) == attempt


@given(decision_ids, decision_ids, attempts, attempts)
def test_different_decisions_or_attempts_give_different_ids(
    a: str, b: str, attempt_a: int, attempt_b: int
) -> None:
    same = (a, attempt_a) == (b, attempt_b)
    assert (client_order_id(a, attempt_a) == client_order_id(b, attempt_b)) is same


@given(decision_ids, attempts)
def test_uuid_form_is_a_deterministic_uuid(decision_id: str, attempt: int) -> None:
    value = client_order_uuid(decision_id, attempt)
    assert value == client_order_uuid(decision_id, attempt)
    assert len(value) == 36
    assert str(uuid.UUID(value)) == value
    if attempt < MAX_ATTEMPT:
        assert client_order_uuid(decision_id, attempt + 1) != value


@pytest.mark.parametrize(
    ("decision_id", "attempt"),
    [("", 0), ("  ", 0), (None, 0), ("d", -1), ("d", MAX_ATTEMPT + 1), ("d", True), ("d", 1.0)],
)
def test_bad_inputs_are_refused(decision_id: object, attempt: object) -> None:
    with pytest.raises(ClientOrderIdError):
        client_order_id(decision_id, attempt)  # type: ignore[arg-type]


def test_foreign_ids_are_not_ours() -> None:
    assert not is_client_order_id("nt-1")
    assert not is_client_order_id(None)
    with pytest.raises(ClientOrderIdError):
        attempt_of("x" * 32)
