"""Duplicate JSON keys are refused, never resolved by the last one silently winning.

``{"signals": [...], "signals": [...]}`` is valid JSON syntax, but its meaning depends on the
parser (most keep the last value, some the first): a proxy, a log line and this server could
each read a different batch. Every JSON body the API parses goes through ``reject_duplicate_keys``
first, which answers 400 naming the key. The body is then validated by pydantic from the same
bytes as before; anything that is not JSON at all is left to that validation to report.
"""

from __future__ import annotations

import json
from typing import Any

from nettrace.api.errors import ApiError


class _DuplicateKeyError(Exception):  # deliberately not a ValueError: json.loads must not mask it
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKeyError(key)
        found[key] = value
    return found


def reject_duplicate_keys(raw: bytes | str) -> None:
    """Raise a 400 ``ApiError`` naming the first key repeated within one JSON object of ``raw``."""
    try:
        json.loads(raw, object_pairs_hook=_pairs)
    except _DuplicateKeyError as exc:
        raise ApiError(
            400,
            "duplicate_key",
            f"body repeats the key {exc.key!r} within one object; send each key once",
            exc.key,
        ) from None
    except (ValueError, RecursionError):
        return  # not JSON (or not decodable): pydantic's validation names the fault
