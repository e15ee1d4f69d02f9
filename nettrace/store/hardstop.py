"""The HARDSTOP latch (DESIGN §3): one row (id 1) every process reads, plus an append-only log.

Each raise and clear is one transaction that updates the latch and appends an event, so the
latch and its history never disagree. Raising while already raised keeps the first reason (the
cause the operator needs) but still logs the event. Only ``clear`` lowers it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nettrace.store.database import Database
from nettrace.store.models import HardstopEventRow, HardstopStateRow

_LATCH_ID = 1


@dataclass(frozen=True, slots=True)
class HardstopState:
    """The latch as read: active or not, and who raised / cleared it last."""

    active: bool
    source: str | None = None
    reason: str | None = None
    raised_at: datetime | None = None
    cleared_at: datetime | None = None
    cleared_by: str | None = None
    #: This raise asked for every position to be flattened at market (``--flatten``), over
    #: the configured ``NETTRACE_HARDSTOP_ACTION``.
    flatten: bool = False


@dataclass(frozen=True, slots=True)
class HardstopEvent:
    """One raise or clear from the append-only log."""

    id: int
    at: datetime
    action: str
    source: str
    reason: str


def _state(row: HardstopStateRow | None) -> HardstopState:
    if row is None:
        return HardstopState(active=False)
    return HardstopState(
        active=bool(row.active),
        source=row.source,
        reason=row.reason,
        raised_at=row.raised_at,
        cleared_at=row.cleared_at,
        cleared_by=row.cleared_by,
        flatten=bool(row.flatten),
    )


#: Longest ``source`` / ``cleared_by`` (the event log's source column is 32 characters).
MAX_SOURCE_LEN = 32


def _clean(value: str, what: str, max_len: int | None = None) -> str:
    text = value.strip()
    if not text:
        raise ValueError(f"{what} must not be empty")
    if max_len is not None and len(text) > max_len:
        raise ValueError(f"{what} is longer than {max_len} characters")
    return text


class HardstopLatch:
    """Reads, raises and clears the persisted HARDSTOP latch."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def _locked_row(self, session: Session) -> HardstopStateRow:
        """The singleton row, created on first use and locked for this transaction."""
        query = select(HardstopStateRow).where(HardstopStateRow.id == _LATCH_ID).with_for_update()
        row = session.scalars(query).one_or_none()
        if row is not None:
            return row
        try:
            with session.begin_nested():
                session.add(HardstopStateRow(id=_LATCH_ID, active=False))
        except IntegrityError:  # another process created it first
            pass
        return session.scalars(query).one()

    def state(self) -> HardstopState:
        with self._db.session() as session:
            return _state(session.get(HardstopStateRow, _LATCH_ID))

    def raise_(
        self, source: str, reason: str, *, now: datetime | None = None, flatten: bool = False
    ) -> HardstopState:
        """Raise the latch; if it is already raised, keep the first source and reason.

        ``flatten``: this raise also closes every position at market; a later raise may ask
        for it on a latch already up (flattening is never taken back by a raise)."""
        source = _clean(source, "source", MAX_SOURCE_LEN)
        reason = _clean(reason, "reason")
        at = now or datetime.now(UTC)
        with self._db.session() as session:
            row = self._locked_row(session)
            if not row.active:
                row.active = True
                row.source = source
                row.reason = reason
                row.raised_at = at
                row.flatten = flatten
            elif flatten:
                row.flatten = True
            session.add(HardstopEventRow(at=at, action="raise", source=source, reason=reason))
            session.flush()
            return _state(row)

    def clear(self, cleared_by: str, reason: str, *, now: datetime | None = None) -> HardstopState:
        """Lower the latch (the operator's act); returns the state that was cleared."""
        cleared_by = _clean(cleared_by, "cleared_by", MAX_SOURCE_LEN)
        reason = _clean(reason, "reason")
        at = now or datetime.now(UTC)
        with self._db.session() as session:
            row = self._locked_row(session)
            before = _state(row)
            row.active = False
            row.flatten = False
            row.cleared_at = at
            row.cleared_by = cleared_by
            session.add(HardstopEventRow(at=at, action="clear", source=cleared_by, reason=reason))
            session.flush()
            return before

    def events(self, limit: int = 10) -> list[HardstopEvent]:
        """The newest ``limit`` events, newest first."""
        query = select(HardstopEventRow).order_by(HardstopEventRow.id.desc()).limit(limit)
        with self._db.session() as session:
            return [
                HardstopEvent(id=r.id, at=r.at, action=r.action, source=r.source, reason=r.reason)
                for r in session.scalars(query)
            ]
