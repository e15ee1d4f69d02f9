"""Client order ids derived from the decision, so a retry never doubles an order (DESIGN §3).

The id is a pure function of ``(decision_id, attempt)``: the same decision and attempt give the
same id in every process, after every restart, so a resubmitted order is recognised by the
exchange (and by our own ``orders`` table, where the id is unique) instead of placed twice.
``attempt`` counts reprices of one decision: a reprice is a new order and needs a new id.

Shape: ``nt`` + 27 characters of base32 (lower case) of SHA-256 over the decision id + the
attempt as three digits = **32 characters, letters and digits only**. That fits the tightest
common limits we know of:

* OKX ``clOrdId``: up to 32 case-sensitive letters and digits (no ``-``/``_``), the tightest;
* Binance ``newClientOrderId``: up to 36 of ``[.A-Za-z0-9:/_-]``;
* Bybit ``orderLinkId``: up to 36 of letters, digits, ``-``, ``_``;
* KuCoin ``clientOid``: up to 40; Bitfinex/Gate and others take at least 32.

Venues that want a UUID (Coinbase Advanced ``client_order_id``, Kraken ``cl_ord_id``) get
``client_order_uuid``: a UUIDv5 of the same pair, 36 characters, also deterministic. Gate.io's
``text`` needs a ``t-`` prefix and at most 30 characters after it; the adapter for such a venue
must map the id, this module does not guess at venue quirks.

27 base32 characters keep 135 bits of the digest: two decisions colliding is not a real risk.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid

#: Every id starts with this, so our orders are recognisable on the exchange.
PREFIX = "nt"
#: Reprices of one decision: attempts 0..MAX_ATTEMPT (three digits in the id).
MAX_ATTEMPT = 999
#: The length of every id from ``client_order_id``.
CLIENT_ORDER_ID_LENGTH = 32
_DIGEST_CHARS = CLIENT_ORDER_ID_LENGTH - len(PREFIX) - 3
#: Whole 5-byte base32 groups covering ``_DIGEST_CHARS`` characters (8 characters a group).
_DIGEST_BYTES = 5 * -(-_DIGEST_CHARS // 8)
_ID_PATTERN = re.compile(rf"{PREFIX}[a-z2-7]{{{_DIGEST_CHARS}}}[0-9]{{3}}")
#: The namespace of ``client_order_uuid`` (a fixed UUIDv5 of the project's name).
_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://nettrace.invalid/client-order-id")


class ClientOrderIdError(ValueError):
    """A decision id or attempt number that cannot make a client order id."""


def _check(decision_id: object, attempt: object) -> tuple[str, int]:
    if not isinstance(decision_id, str) or not decision_id.strip():
        raise ClientOrderIdError(f"decision id must be a non-empty string, got {decision_id!r}")
    if isinstance(attempt, bool) or not isinstance(attempt, int):
        raise ClientOrderIdError(f"attempt must be an int, got {attempt!r}")
    if not 0 <= attempt <= MAX_ATTEMPT:
        raise ClientOrderIdError(f"attempt must be in 0..{MAX_ATTEMPT}, got {attempt}")
    return decision_id, attempt


def client_order_id(decision_id: str, attempt: int = 0) -> str:
    """The client order id of ``attempt`` (0 = first placement) of ``decision_id``.

    32 characters of ``[a-z0-9]``; the same inputs always give the same id.
    """
    decision_id, attempt = _check(decision_id, attempt)
    digest = hashlib.sha256(f"nettrace-order\x00{decision_id}".encode()).digest()
    # Only the bytes the kept characters come from (5 bits each): the same characters as
    # encoding the whole digest, for a fraction of the pure-Python encoder's time (this runs
    # on the decision path).
    body = base64.b32encode(digest[:_DIGEST_BYTES]).decode("ascii").lower()[:_DIGEST_CHARS]
    return f"{PREFIX}{body}{attempt:03d}"


def client_order_uuid(decision_id: str, attempt: int = 0) -> str:
    """A deterministic UUID (v5, 36 characters) for venues that require UUID client ids."""
    decision_id, attempt = _check(decision_id, attempt)
    return str(uuid.uuid5(_UUID_NAMESPACE, f"{decision_id}\x00{attempt}"))


def is_client_order_id(value: object) -> bool:
    """Whether ``value`` has the shape of an id made by ``client_order_id``."""
    return isinstance(value, str) and _ID_PATTERN.fullmatch(value) is not None


def attempt_of(value: str) -> int:
    """The attempt number inside an id made by ``client_order_id``."""
    if not is_client_order_id(value):
        raise ClientOrderIdError(f"{value!r} is not a NetTrace client order id")
    return int(value[-3:])
