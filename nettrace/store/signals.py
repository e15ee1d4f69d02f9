"""Signals from every region: idempotent batch ingestion, region liveness, the cross-region view.

Ingestion is one transaction per batch: ``INSERT ... ON CONFLICT (source_region, id) DO NOTHING
RETURNING id`` (PostgreSQL and SQLite both speak it, through SQLAlchemy's dialect inserts; on
PostgreSQL the rows travel as one array per column, see ``_pg_bulk_insert``), so a retried push
is acknowledged without storing anything twice, and the returned ids tell accepted from
duplicate. An id is unique per source region only (each region's scout picks its own), so the
same id from two regions is two signals. Keys ``(source_region, id)`` are deduplicated and
sorted before the insert: two concurrent batches that share keys then take their row locks in
the same order and cannot deadlock on PostgreSQL. The region's last-heard
time is written after the batch, in its own short transaction, at most once a second.

The consumer side is fail-closed: ``live_signals`` and ``agreeing_sources`` drop every signal of a
region that has been silent past its staleness limit (or was never heard from), so a scout that
died with signals still inside their ttl never supplies one of the sniper's >= 2 agreeing votes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    Float,
    String,
    Text,
    bindparam,
    cast,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY

from nettrace.store.database import Database
from nettrace.store.models import RegionHeartbeatRow, SignalRow

#: How finely a region's last-heard time is kept (s). Staleness limits are minutes, so one
#: write per second per region and process is plenty, and keeps pushes off the heartbeat row.
HEARD_RESOLUTION_S = 1.0

_SIGNALS = SignalRow.__table__
#: What makes a signal unique (the primary key): an id is the idempotency key of its region.
SIGNAL_KEY = ("source_region", "id")
_HEARTBEATS = RegionHeartbeatRow.__table__


@dataclass(frozen=True)
class SignalRecord:
    """A stored signal. ``confidence`` is a fraction in [0, 1]; ``ts`` is UTC; ``ttl_s`` seconds."""

    id: str
    source: str
    source_region: str
    exchange: str
    symbol: str
    side: str
    confidence: float
    ts: datetime
    ttl_s: float
    meta: dict[str, Any]
    received_at: datetime

    @property
    def expires_at(self) -> datetime:
        return self.ts + timedelta(seconds=self.ttl_s)

    def is_fresh(self, now: datetime) -> bool:
        return self.expires_at > now


@dataclass(frozen=True)
class RegionView:
    """One region in the cross-region view: when it was last heard from and its fresh signals."""

    region: str
    last_heard_at: datetime | None
    stale: bool
    signals: tuple[SignalRecord, ...] = ()


@dataclass(frozen=True)
class CrossRegionView:
    """Fresh signals grouped by region at ``as_of``, with each region's staleness."""

    as_of: datetime
    stale_after_s: float
    regions: dict[str, RegionView] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CrossRegionView:
        """Rebuild a view from ``GET /api/v1/signals/cross-region``'s JSON (for remote readers).

        Anything missing or malformed raises ``KeyError``/``ValueError``/``TypeError``; a caller
        that cannot parse the view must count no cross-region signal at all (fail closed).
        """
        regions: dict[str, RegionView] = {}
        for name, region in dict(data["regions"]).items():
            heard = region.get("last_heard_at")
            regions[str(name)] = RegionView(
                region=str(name),
                last_heard_at=_aware(heard) if heard is not None else None,
                stale=bool(region["stale"]),
                signals=tuple(
                    SignalRecord(
                        id=str(s["id"]),
                        source=str(s["source"]),
                        source_region=str(s["source_region"]),
                        exchange=str(s["exchange"]),
                        symbol=str(s["symbol"]),
                        side=str(s["side"]),
                        confidence=float(s["confidence"]),
                        ts=_aware(s["ts"]),
                        ttl_s=float(s["ttl_s"]),
                        meta=dict(s.get("meta") or {}),
                        received_at=_aware(s["received_at"]),
                    )
                    for s in region["signals"]
                ),
            )
        return cls(
            as_of=_aware(data["as_of"]),
            stale_after_s=float(data["stale_after_s"]),
            regions=regions,
        )


def _aware(value: Any) -> datetime:
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError(f"naive timestamp {value!r} in a cross-region view")
    return parsed


@dataclass(frozen=True)
class PushCounts:
    """``accepted`` newly stored, ``duplicates`` already stored or repeated within the batch."""

    accepted: int
    duplicates: int


def is_stale(last_heard_at: datetime | None, now: datetime, stale_after_s: float) -> bool:
    """A region never heard from, or silent longer than ``stale_after_s``, is stale."""
    if last_heard_at is None:
        return True
    return (now - last_heard_at).total_seconds() > stale_after_s


def live_signals(view: CrossRegionView, now: datetime | None = None) -> list[SignalRecord]:
    """The view's signals from regions that are not stale, newest first.

    With ``now`` the staleness and the ttl are judged again at ``now`` (a view held for a while
    must not keep a region alive that has since gone silent); without it, at ``view.as_of``.
    """
    at = view.as_of if now is None else now
    found: list[SignalRecord] = []
    for region in view.regions.values():
        if region.stale or is_stale(region.last_heard_at, at, view.stale_after_s):
            continue
        found.extend(s for s in region.signals if s.is_fresh(at))
    found.sort(key=lambda s: s.ts, reverse=True)
    return found


def agreeing_sources(
    view: CrossRegionView, symbol: str, side: str, now: datetime | None = None
) -> set[str]:
    """The distinct generators (``source``) of live signals for ``symbol`` on ``side``.

    ``len()`` of this is the cross-region part of the sniper's ``signal_count``; stale regions
    never contribute (see ``live_signals``).
    """
    side = side.upper()
    return {s.source for s in live_signals(view, now) if s.symbol == symbol and s.side == side}


def _insert_for(conn: Connection, table: Any) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(
        f"signals ingestion supports PostgreSQL and SQLite, not {conn.dialect.name}"
    )


_COLUMNS = (
    "id",
    "source",
    "source_region",
    "exchange",
    "symbol",
    "side",
    "confidence",
    "ts",
    "ttl_s",
    "meta",
    "received_at",
)


def _pg_bulk_insert() -> Any:
    """``INSERT INTO signals SELECT * FROM unnest(<one array per column>) ON CONFLICT DO NOTHING``.

    Why not the generic multi-row VALUES: a batch of 500 becomes 5,500 bind parameters whose
    statement text psycopg re-parses on every call (milliseconds per batch, the largest cost
    in the push path); eleven array parameters keep the statement constant and cached, and
    PostgreSQL unpacks them server-side. Still the dialect insert with ``on_conflict_do_nothing``.
    """
    types: dict[str, Any] = {
        "confidence": Float(),
        "ttl_s": Float(),
        "ts": DateTime(timezone=True),
        "received_at": DateTime(timezone=True),
        "meta": Text(),
    }
    arrays = (
        func.unnest(
            *(bindparam(f"a_{name}", type_=ARRAY(types.get(name, String()))) for name in _COLUMNS)
        )
        .table_valued(*_COLUMNS)
        .render_derived(name="batch")
    )
    source = select(*(cast(arrays.c.meta, JSON) if c == "meta" else arrays.c[c] for c in _COLUMNS))
    return (
        postgresql.insert(SignalRow)
        .from_select(list(_COLUMNS), source)
        .on_conflict_do_nothing(index_elements=list(SIGNAL_KEY))
        .returning(_SIGNALS.c.id)
    )


_PG_BULK_INSERT = _pg_bulk_insert()


def _as_arrays(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    arrays: dict[str, list[Any]] = {f"a_{name}": [] for name in _COLUMNS}
    for row in rows:
        for name in _COLUMNS:
            value = row[name]
            if name == "meta":
                value = json.dumps(value, allow_nan=False, separators=(",", ":"))
            elif name in ("ts", "received_at"):
                if value.tzinfo is None:
                    raise ValueError(f"naive datetime {value!r}: store timezone-aware UTC only")
                value = value.astimezone(UTC)
            arrays[f"a_{name}"].append(value)
    return arrays


class SignalStore:
    """The ``signals`` and ``region_heartbeats`` tables."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._heard_lock = threading.Lock()
        self._heard_written: dict[str, datetime] = {}

    def push(
        self,
        region: str,
        signals: Sequence[Mapping[str, Any]],
        *,
        received_at: datetime,
        heartbeat: Mapping[str, Any] | None = None,
    ) -> PushCounts:
        """Store a batch from ``region`` (validated by the caller) and mark the region heard.

        Each mapping has the ``SignalRow`` columns except ``received_at``. One transaction: the
        batch is stored whole or not at all.
        """
        unique: dict[tuple[str, str], dict[str, Any]] = {}
        for signal in signals:
            key = (str(signal["source_region"]), str(signal["id"]))
            unique.setdefault(key, {**signal, "received_at": received_at})
        rows = [unique[key] for key in sorted(unique)]
        accepted = 0
        if rows:
            with self._db.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    accepted = len(conn.execute(_PG_BULK_INSERT, _as_arrays(rows)).all())
                else:
                    stmt = _insert_for(conn, _SIGNALS).on_conflict_do_nothing(
                        index_elements=list(SIGNAL_KEY)
                    )
                    accepted = len(conn.execute(stmt.returning(_SIGNALS.c.id), rows).all())
        if heartbeat is not None or self._due(region, received_at):
            # Its own short transaction, after the batch committed: every push of a region in
            # one transaction with the region's heartbeat row would serialise all of them on
            # that row's lock (held through each commit's fsync).
            with self._db.engine.begin() as conn:
                self._heard(conn, region, received_at, heartbeat)
        return PushCounts(accepted=accepted, duplicates=len(signals) - accepted)

    def _due(self, region: str, at: datetime) -> bool:
        """Whether this process should record ``region`` as heard at ``at`` (at most ~1/s)."""
        with self._heard_lock:
            last = self._heard_written.get(region)
            if last is not None and abs((at - last).total_seconds()) < HEARD_RESOLUTION_S:
                return False
            self._heard_written[region] = at
            return True

    def _heard(
        self,
        conn: Connection,
        region: str,
        at: datetime,
        heartbeat: Mapping[str, Any] | None,
    ) -> None:
        stmt = _insert_for(conn, _HEARTBEATS).values(
            region=region, last_heard_at=at, detail=dict(heartbeat or {})
        )
        # A push refreshes only the time; a heartbeat also replaces the scout's reported state.
        updates: dict[str, Any] = {"last_heard_at": stmt.excluded.last_heard_at}
        if heartbeat is not None:
            updates["detail"] = stmt.excluded.detail
        stmt = stmt.on_conflict_do_update(
            index_elements=["region"],
            set_=updates,
            where=_HEARTBEATS.c.last_heard_at <= stmt.excluded.last_heard_at,
        )
        conn.execute(stmt)

    def count(self) -> int:
        with self._db.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(_SIGNALS)) or 0)

    def last_heard(self) -> dict[str, datetime]:
        with self._db.session() as session:
            rows = session.scalars(select(RegionHeartbeatRow))
            return {row.region: row.last_heard_at for row in rows}

    def cross_region(
        self,
        *,
        now: datetime,
        stale_after_s: float,
        max_ttl_s: float,
        symbol: str | None = None,
        exchange: str | None = None,
        since: datetime | None = None,
        limit: int = 1000,
    ) -> CrossRegionView:
        """Signals still within their ttl at ``now`` (newest first, at most ``limit``), by region.

        ``max_ttl_s`` (the longest ttl the API accepts) bounds the scan by ``ts``; the exact
        ``ts + ttl_s > now`` test is done here, portably, on that bounded set.
        """
        query = (
            select(SignalRow)
            .where(SignalRow.ts > now - timedelta(seconds=max_ttl_s))
            .order_by(SignalRow.ts.desc(), SignalRow.source_region, SignalRow.id)
        )
        if symbol is not None:
            query = query.where(SignalRow.symbol == symbol)
        if exchange is not None:
            query = query.where(SignalRow.exchange == exchange)
        if since is not None:
            query = query.where(SignalRow.ts >= since)
        by_region: dict[str, list[SignalRecord]] = {}
        taken = 0
        with self._db.session() as session:
            heard = {
                row.region: row.last_heard_at for row in session.scalars(select(RegionHeartbeatRow))
            }
            for row in session.scalars(query.execution_options(yield_per=500)):
                record = _record(row)
                if not record.is_fresh(now):
                    continue
                by_region.setdefault(record.source_region, []).append(record)
                taken += 1
                if taken >= limit:
                    break
        regions = {
            name: RegionView(
                region=name,
                last_heard_at=heard.get(name),
                stale=is_stale(heard.get(name), now, stale_after_s),
                signals=tuple(by_region.get(name, ())),
            )
            for name in sorted(set(heard) | set(by_region))
        }
        return CrossRegionView(as_of=now, stale_after_s=stale_after_s, regions=regions)


def _record(row: SignalRow) -> SignalRecord:
    return SignalRecord(
        id=row.id,
        source=row.source,
        source_region=row.source_region,
        exchange=row.exchange,
        symbol=row.symbol,
        side=row.side,
        confidence=row.confidence,
        ts=row.ts,
        ttl_s=row.ttl_s,
        meta=dict(row.meta or {}),
        received_at=row.received_at,
    )


def records(signals: Iterable[SignalRecord]) -> list[dict[str, Any]]:
    """Signals as plain dicts (the API's JSON shape, datetimes left to the serializer)."""
    return [
        {
            "id": s.id,
            "source": s.source,
            "source_region": s.source_region,
            "exchange": s.exchange,
            "symbol": s.symbol,
            "side": s.side,
            "confidence": s.confidence,
            "ts": s.ts,
            "ttl_s": s.ttl_s,
            "meta": s.meta,
            "received_at": s.received_at,
        }
        for s in signals
    ]
