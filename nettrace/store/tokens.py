"""Per-region bearer tokens for the signals API: issue, verify, revoke, list.

A token is 256 random bits (``secrets.token_urlsafe(32)``) shown once, at issue; the database
keeps only its SHA-256 digest. Why SHA-256 and not bcrypt/argon2: those slow hashes protect
low-entropy *passwords* from offline guessing; a 256-bit random token cannot be guessed, and a
slow hash would add milliseconds to every push. Verification looks the digest up by its unique
index and then confirms it with ``hmac.compare_digest``: any timing the index lookup leaks is
about the digest, which says nothing usable about the token (SHA-256 is preimage-resistant).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import select, update

from nettrace.store.database import Database
from nettrace.store.models import ApiTokenRow, utcnow

TOKEN_PREFIX: Final = "ntq_"  # noqa: S105 - a marker, not a secret
_REGION_CODE: Final = re.compile(r"[a-z]{3}")


def hash_token(token: str) -> str:
    """The hex SHA-256 digest stored for ``token``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    """A token's record without its secret: what ``nettrace tokens list`` may show.

    ``fingerprint`` is the first 8 hex digits of the digest, enough to tell tokens apart in logs
    and listings and useless for recovering the token.
    """

    id: int
    region: str
    label: str
    fingerprint: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _info(row: ApiTokenRow) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        region=row.region,
        label=row.label,
        fingerprint=row.token_sha256[:8],
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


class TokenStore:
    """The ``api_tokens`` table."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def issue(self, region: str, label: str = "") -> tuple[str, TokenInfo]:
        """Create a token for ``region``; returns the plain token (never stored) and its record."""
        region = region.strip().lower()
        if not _REGION_CODE.fullmatch(region):
            raise ValueError(f"region must be a three-letter code such as lhr, not {region!r}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = ApiTokenRow(region=region, token_sha256=hash_token(token), label=label[:128])
        with self._db.session() as session:
            session.add(row)
            session.flush()
            info = _info(row)
        return token, info

    def verify(self, token: str) -> str | None:
        """The region ``token`` may push for, or ``None`` if it is unknown or revoked."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 256:
            return None
        digest = hash_token(token)
        with self._db.engine.connect() as conn:
            found = conn.execute(
                select(ApiTokenRow.token_sha256, ApiTokenRow.region).where(
                    ApiTokenRow.token_sha256 == digest, ApiTokenRow.revoked_at.is_(None)
                )
            ).first()
        if found is None or not hmac.compare_digest(found[0], digest):
            return None
        return str(found[1])

    def revoke(self, *, region: str | None = None, token_id: int | None = None) -> int:
        """Revoke every active token of ``region``, or the token ``token_id``; returns how many."""
        if (region is None) == (token_id is None):
            raise ValueError("revoke by region or by id, not both or neither")
        query = update(ApiTokenRow).where(ApiTokenRow.revoked_at.is_(None))
        if region is not None:
            query = query.where(ApiTokenRow.region == region.strip().lower())
        else:
            query = query.where(ApiTokenRow.id == token_id)
        with self._db.session() as session:
            result = session.execute(query.values(revoked_at=utcnow()))
            return int(getattr(result, "rowcount", 0) or 0)

    def list(self) -> list[TokenInfo]:
        """Every token ever issued, oldest first, without secrets."""
        with self._db.session() as session:
            rows = session.scalars(select(ApiTokenRow).order_by(ApiTokenRow.id))
            return [_info(row) for row in rows]
