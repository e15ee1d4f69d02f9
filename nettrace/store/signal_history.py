"""The cross-region signals as the primary knew them at a moment: what a decision heard.

Why a second reader beside ``SignalStore.cross_region``: that view is *live* -- freshness
against the wall clock, liveness from the heartbeat row, which keeps only a region's last
time. A decision must be reproducible from the stored ledger: replaying a recorded cluster
run over the same database has to hear, at each bar, exactly the signals the run heard. So
this reader judges everything from the signals' own stored times:

- a signal is known at ``now`` once it was received (``received_at <= now``) and issued
  (``ts <= now``), and fresh while ``ts + ttl_s > now``;
- a region is live at ``now`` when its newest signal known by then was issued within
  ``stale_after_s`` -- fail closed like the live view: a region silent past the limit
  supplies no vote, even with signals still inside their ttl;
- a signal issued longer ago than ``stale_after_s`` is not heard either, whatever its ttl:
  what a scout said before the staleness limit is as old as a silent region's word. This also
  bounds each read to that window of the ``(symbol, ts)`` index -- a cluster stores several
  signals a second, and a trading tick must not scan a day of them.

A signal that arrives after ``now`` is not heard at ``now``, live or replayed; the trading
loop reads a moment only after it has passed (``agents.scout_source``), so nothing in flight
can be heard by a replay and not by the run it replays.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from nettrace.store.database import Database
from nettrace.store.models import SignalRow
from nettrace.store.signals import SignalRecord, _record

__all__ = ["signals_known_at"]


def signals_known_at(
    database: Database,
    *,
    symbol: str,
    now: datetime,
    stale_after_s: float,
    max_ttl_s: float,
) -> list[SignalRecord]:
    """Fresh signals for ``symbol`` known at ``now`` from regions live at ``now``, newest first.

    The scan reaches back ``min(max_ttl_s, stale_after_s)``; ties are ordered by region and
    id so two reads of one moment return the same list.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware UTC")
    window = timedelta(seconds=min(max_ttl_s, stale_after_s))
    query = (
        select(SignalRow)
        .where(
            SignalRow.symbol == symbol,
            SignalRow.ts > now - window,
            SignalRow.ts <= now,
            SignalRow.received_at <= now,
        )
        .order_by(SignalRow.ts.desc(), SignalRow.source_region, SignalRow.id)
    )
    found: list[SignalRecord] = []
    with database.session() as session:
        for row in session.scalars(query):
            record = _record(row)
            if record.is_fresh(now):
                found.append(record)
        live: dict[str, bool] = {}
        for region in sorted({s.source_region for s in found}):
            newest = session.scalar(
                select(func.max(SignalRow.ts)).where(
                    SignalRow.source_region == region,
                    SignalRow.ts <= now,
                    SignalRow.received_at <= now,
                )
            )
            if newest is not None and newest.tzinfo is None:  # SQLite hands back naive UTC
                newest = newest.replace(tzinfo=now.tzinfo)
            live[region] = newest is not None and (now - newest).total_seconds() <= stale_after_s
    return [s for s in found if live[s.source_region]]
