"""A scout's durable outbox: signals wait in SQLite until the primary has acknowledged them.

DESIGN §3: "a signal is deleted from it only after the primary acknowledged it, so the primary
being down loses nothing". The outbox is its own SQLite file per region (WAL, fsync on commit),
separate from the trading database, so a scout needs no database server and a crash between
"measured" and "sent" loses nothing either.

Wire format (``POST <primary>/api/v1/signals/push``, ``Authorization: Bearer <region token>``):

- a batch: ``{"signals": [<signal>, ...]}``, each signal as ``ScoutSignal.to_wire()`` with the
  scout's sequence number in ``meta.seq`` (strictly increasing per outbox file, never reused,
  so the primary can see gaps);
- a heartbeat, sent when there is nothing to send for ``heartbeat_interval_s``:
  ``{"signals": [], "heartbeat": {"source_region", "scout_id", "ts", "last_seq", "pending",
  "quarantined", "dropped_expired"}}``;
- the answer the outbox treats as an acknowledgement: a 2xx whose JSON has integers
  ``accepted + duplicates == len(signals)``. Anything else is not an ack.

Failure policy: connection errors, timeouts, 5xx, 429 and a 2xx that does not cover the batch
are retried with exponential backoff and jitter; a ``Retry-After`` sent with a 429/503 can only
lengthen the wait (the delay is the larger of it and the backoff, so ``Retry-After: 0`` does
not mean "hammer me"); any other 4xx means the primary will never take that batch as it is, so
the batch is quarantined: kept in the file, logged, not retried (``requeue_quarantined`` puts it
back). A signal whose ``ts + ttl_s`` has passed is dropped unsent and counted: acting on it
would be acting on stale news.
"""

from __future__ import annotations

import email.utils
import json
import math
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import requests

from nettrace.observability.log import get_logger
from nettrace.scouts.signal import ScoutSignal

PUSH_PATH: Final = "/api/v1/signals/push"
_log = get_logger(__name__)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    signal_id  TEXT    NOT NULL UNIQUE,
    body       TEXT    NOT NULL,
    expires_at REAL    NOT NULL,
    state      TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'quarantined')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    error      TEXT
);
CREATE INDEX IF NOT EXISTS outbox_state_seq ON outbox (state, seq);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

Outcome = Literal["acked", "heartbeat", "idle", "waiting", "retry", "quarantined"]


@dataclass(frozen=True)
class PushResult:
    """What one ``push_once`` call did.

    ``acked``: the batch was acknowledged and removed. ``heartbeat``: nothing to send, a
    heartbeat was. ``idle``: nothing to send and no heartbeat due. ``waiting``: still backing
    off, nothing sent. ``retry``: the attempt failed and will be retried after ``retry_in_s``
    seconds. ``quarantined``: the primary refused the batch (4xx); it stays in the file.
    """

    outcome: Outcome
    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    dropped_expired: int = 0
    retry_in_s: float = 0.0
    status: int | None = None
    error: str = ""


@dataclass(frozen=True)
class OutboxStats:
    """Counts for the operator (and the heartbeat)."""

    pending: int
    quarantined: int
    acked: int
    dropped_expired: int
    last_seq: int


class Outbox:
    """Durable queue of signals for one scout, and the one client that pushes them.

    Thread-safe: monitors ``put`` from their threads while one pusher calls ``push_once``.
    ``clock`` returns epoch seconds (injected so tests can move time); ``rng`` draws jitter.
    """

    def __init__(
        self,
        path: Path,
        *,
        region: str,
        push_url: str,
        token: str,
        scout_id: str | None = None,
        session: requests.Session | None = None,
        batch_size: int = 200,
        timeout_s: float = 5.0,
        heartbeat_interval_s: float = 15.0,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 60.0,
        max_retry_after_s: float = 300.0,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.path = path
        self.region = region
        self.scout_id = scout_id or f"scout-{region}"
        self.push_url = push_url
        self._token = token
        self._session = session if session is not None else requests.Session()
        self._batch_size = batch_size
        self._timeout_s = timeout_s
        self._heartbeat_interval_s = heartbeat_interval_s
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._max_retry_after_s = max_retry_after_s
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 (jitter, not crypto)
        self._lock = threading.Lock()
        self._push_lock = threading.Lock()
        self._failures = 0
        self._next_attempt_at = 0.0
        # A fresh process has not talked to the primary yet: the first idle call heartbeats.
        self._last_contact = -math.inf
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit survives power loss, not just a process crash. Signals are few.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    # --- Queue --------------------------------------------------------------------------------
    def put(self, signal: ScoutSignal) -> int | None:
        """Store ``signal`` durably; its sequence number, or None if it had already expired.

        Putting the same signal id twice stores it once and returns the first sequence number.
        """
        if signal.expires_at <= self._clock():
            with self._transaction() as db:
                self._bump(db, "dropped_expired", 1)
            _log.info("outbox_dropped_expired", signal_id=signal.id, count=1, at="put")
            return None
        body = json.dumps(signal.to_wire(), separators=(",", ":"), sort_keys=True)
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO outbox (signal_id, body, expires_at) VALUES (?, ?, ?)",
                (signal.id, body, signal.expires_at),
            )
            row = db.execute("SELECT seq FROM outbox WHERE signal_id = ?", (signal.id,)).fetchone()
        return int(row[0])

    def pending(self) -> list[dict[str, Any]]:
        """The signals waiting to be sent, oldest first, as they would go on the wire."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, body FROM outbox WHERE state = 'pending' ORDER BY seq"
            ).fetchall()
        return [_with_seq(seq, body) for seq, body in rows]

    def quarantined(self) -> list[tuple[dict[str, Any], str]]:
        """Refused signals with the primary's reason, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, body, error FROM outbox WHERE state = 'quarantined' ORDER BY seq"
            ).fetchall()
        return [(_with_seq(seq, body), str(error)) for seq, body, error in rows]

    def requeue_quarantined(self) -> int:
        """Put every quarantined signal back in the queue (after the operator fixed the cause)."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE outbox SET state = 'pending', error = NULL WHERE state = 'quarantined'"
            )
        return cursor.rowcount

    def stats(self) -> OutboxStats:
        with self._lock:
            counts = dict(
                self._db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall()
            )
            counters = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
            last = self._db.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'"
            ).fetchone()
        return OutboxStats(
            pending=int(counts.get("pending", 0)),
            quarantined=int(counts.get("quarantined", 0)),
            acked=int(counters.get("acked", 0)),
            dropped_expired=int(counters.get("dropped_expired", 0)),
            last_seq=int(last[0]) if last else 0,
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- Push ---------------------------------------------------------------------------------
    def push_once(self) -> PushResult:
        """Send at most one batch (or one heartbeat), unless still backing off.

        Never raises for a network or HTTP failure: the result says what happened and, when
        the caller should come back, ``retry_in_s``.
        """
        with self._push_lock:
            now = self._clock()
            if now < self._next_attempt_at:
                return PushResult("waiting", retry_in_s=self._next_attempt_at - now)
            dropped = self._drop_expired(now)
            with self._lock:
                rows = self._db.execute(
                    "SELECT seq, body FROM outbox WHERE state = 'pending' ORDER BY seq LIMIT ?",
                    (self._batch_size,),
                ).fetchall()
            if not rows:
                if now - self._last_contact < self._heartbeat_interval_s:
                    return PushResult("idle", dropped_expired=dropped)
                return self._send_heartbeat(now, dropped)
            return self._send_batch(now, [int(seq) for seq, _ in rows], rows, dropped)

    def _send_batch(
        self, now: float, seqs: list[int], rows: list[tuple[int, str]], dropped: int
    ) -> PushResult:
        payload = {"signals": [_with_seq(seq, body) for seq, body in rows]}
        response, error = self._post(payload)
        if response is None:
            return self._retry(now, seqs, dropped, error=error)
        status = response.status_code
        if 200 <= status < 300:
            counts = _ack_counts(response)
            if counts is not None and counts[0] + counts[1] == len(seqs):
                with self._transaction() as db:
                    db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])
                    self._bump(db, "acked", len(seqs))
                self._succeeded(now)
                _log.info(
                    "outbox_acked",
                    sent=len(seqs),
                    accepted=counts[0],
                    duplicates=counts[1],
                    first_seq=seqs[0],
                    last_seq=seqs[-1],
                )
                return PushResult(
                    "acked",
                    sent=len(seqs),
                    accepted=counts[0],
                    duplicates=counts[1],
                    dropped_expired=dropped,
                    status=status,
                )
            return self._retry(
                now,
                seqs,
                dropped,
                status=status,
                error=f"HTTP {status} does not acknowledge the batch of {len(seqs)}: "
                f"{response.text[:200]!r}",
            )
        if status == 429 or status >= 500 or status < 200 or 300 <= status < 400:
            return self._retry(
                now,
                seqs,
                dropped,
                status=status,
                retry_after=_retry_after(response, self._clock()),
                error=f"HTTP {status}: {response.text[:200]!r}",
            )
        reason = f"HTTP {status}: {response.text[:500]}"
        with self._transaction() as db:
            db.executemany(
                "UPDATE outbox SET state = 'quarantined', error = ?, attempts = attempts + 1 "
                "WHERE seq = ?",
                [(reason, s) for s in seqs],
            )
        self._succeeded(now)  # the primary answered; the link itself is healthy
        _log.error(
            "outbox_batch_quarantined",
            status=status,
            count=len(seqs),
            first_seq=seqs[0],
            last_seq=seqs[-1],
            reason=reason,
        )
        return PushResult(
            "quarantined", sent=len(seqs), dropped_expired=dropped, status=status, error=reason
        )

    def _send_heartbeat(self, now: float, dropped: int) -> PushResult:
        stats = self.stats()
        payload = {
            "signals": [],
            "heartbeat": {
                "source_region": self.region,
                "scout_id": self.scout_id,
                "ts": datetime.fromtimestamp(now, UTC)
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"),
                "last_seq": stats.last_seq,
                "pending": stats.pending,
                "quarantined": stats.quarantined,
                "dropped_expired": stats.dropped_expired,
            },
        }
        response, error = self._post(payload)
        if response is None:
            return self._retry(now, [], dropped, error=error)
        status = response.status_code
        if status == 429 or status >= 500:
            return self._retry(
                now,
                [],
                dropped,
                status=status,
                retry_after=_retry_after(response, self._clock()),
                error=f"HTTP {status}",
            )
        self._succeeded(now)
        if not 200 <= status < 300:
            # Nothing to quarantine; say so loudly once per interval and carry on.
            _log.warning("outbox_heartbeat_refused", status=status, body=response.text[:200])
        return PushResult("heartbeat", dropped_expired=dropped, status=status)

    def _post(self, payload: dict[str, Any]) -> tuple[requests.Response | None, str]:
        try:
            response = self._session.post(
                self.push_url,
                json=payload,
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=self._timeout_s,
            )
        except requests.RequestException as exc:
            return None, f"{type(exc).__name__}: {exc}"
        return response, ""

    def _retry(
        self,
        now: float,
        seqs: list[int],
        dropped: int,
        *,
        error: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> PushResult:
        self._failures += 1
        ceiling = min(self._backoff_max_s, self._backoff_base_s * 2 ** (self._failures - 1))
        # "Equal jitter": at least half the exponential step, so scouts that lost the
        # primary together do not all come back in the same instant.
        delay = ceiling * (0.5 + 0.5 * self._rng.random())
        if retry_after is not None:
            # Retry-After is a floor, never a licence to go faster than our own backoff: a
            # primary answering 429 with "Retry-After: 0" would otherwise be hammered in a
            # tight loop (issue 11: 87 refused POSTs in under a second).
            delay = max(delay, min(retry_after, self._max_retry_after_s))
        self._next_attempt_at = now + delay
        if seqs:
            with self._transaction() as db:
                db.executemany(
                    "UPDATE outbox SET attempts = attempts + 1, error = ? WHERE seq = ?",
                    [(error, s) for s in seqs],
                )
        _log.warning(
            "outbox_push_failed",
            status=status,
            count=len(seqs),
            failures=self._failures,
            retry_in_s=round(delay, 3),
            error=error,
        )
        return PushResult(
            "retry",
            sent=len(seqs),
            dropped_expired=dropped,
            retry_in_s=delay,
            status=status,
            error=error,
        )

    def _succeeded(self, now: float) -> None:
        self._failures = 0
        self._next_attempt_at = 0.0
        self._last_contact = now

    def _drop_expired(self, now: float) -> int:
        with self._transaction() as db:
            count = db.execute(
                "DELETE FROM outbox WHERE state = 'pending' AND expires_at <= ?", (now,)
            ).rowcount
            if count:
                self._bump(db, "dropped_expired", count)
        if count:
            _log.info("outbox_dropped_expired", count=count, at="push")
        return int(count)

    # --- SQLite -------------------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @staticmethod
    def _bump(db: sqlite3.Connection, name: str, by: int) -> None:
        db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            (name, by),
        )


class OutboxPusher:
    """The agent that drains an outbox: pushes as fast as acks come, sleeps when idle or told to.

    ``name``/``start``/``stop`` make it an agent for ``FlyAgentRunner``.
    """

    name = "outbox_pusher"

    def __init__(self, outbox: Outbox, *, idle_s: float = 1.0) -> None:
        self._outbox = outbox
        self._idle_s = idle_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._outbox_timeout())
            self._thread = None

    def _outbox_timeout(self) -> float:
        # An in-flight POST may take up to its timeout; wait for it rather than cut it off.
        return self._outbox._timeout_s + 1.0

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                result = self._outbox.push_once()
            except Exception:  # a bug must not silently kill the pusher thread
                _log.exception("outbox_pusher_error")
                self._stop.wait(self._idle_s)
                continue
            if result.outcome in ("retry", "waiting"):
                wait = result.retry_in_s
            elif result.outcome in ("acked", "quarantined"):
                wait = 0.0  # more may be waiting behind this batch
            else:
                wait = self._idle_s
            self._stop.wait(wait)


def _with_seq(seq: int, body: str) -> dict[str, Any]:
    signal: dict[str, Any] = json.loads(body)
    signal["meta"] = {**signal.get("meta", {}), "seq": int(seq)}
    return signal


def _ack_counts(response: requests.Response) -> tuple[int, int] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    accepted, duplicates = data.get("accepted"), data.get("duplicates", 0)
    if type(accepted) is not int or type(duplicates) is not int:
        return None
    return accepted, duplicates


def _retry_after(response: requests.Response, now: float) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), or None if absent/invalid."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now
    return max(0.0, seconds) if math.isfinite(seconds) else None
