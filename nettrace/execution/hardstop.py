"""HARDSTOP sources (DESIGN §3): the daily-loss monitor and the HANDOFF.md line.

Both sources fail closed: when one cannot tell whether trading is safe, that counts as a
reason to halt, never as "all clear". A halt costs missed trades until the operator looks; a
missed halt can cost the account. Only the operator clears the latch, so a fault that raised it
is always looked at by a person.

``DailyLossMonitor`` is pure: it is fed mark-to-market equity (unrealised losses count) per
tick and compares it with the equity at the start of the UTC day. The line is the one
``backtest.metrics`` uses: a fall *beyond* ``HARDSTOP_DAILY_LOSS`` breaches, a fall of exactly
5% does not (with ``FLOAT_TOLERANCE`` so binary rounding cannot trip it). A non-finite or
non-positive equity (a missing price makes mark-to-market NaN; an empty account is 0) means the
loss cannot be measured, so it is a breach too (``DailyLossBreach.fault`` says why) -- and it
never becomes a day-start value, so a later valid tick is still measured against a real one.

``handoff_says_hardstop`` reads the operator's HANDOFF.md. The file is optional: a missing one
says nothing. But one that exists and cannot be read (permission denied, a directory, an I/O
error) or is not valid UTF-8 might hold a HARDSTOP line we cannot see, so it halts, with the
read error as the reason.

``HardstopGuard`` ties both sources to the persisted latch, so a breach raises HARDSTOP within
the same tick that saw it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import structlog

from nettrace.agents.agent_goals import FLOAT_TOLERANCE, HARDSTOP_DAILY_LOSS
from nettrace.store.hardstop import HardstopLatch, HardstopState

_log = structlog.get_logger(__name__)

SOURCE_DAILY_LOSS = "daily_loss"
SOURCE_HANDOFF = "handoff"


@dataclass(frozen=True, slots=True)
class DailyLossBreach:
    """Equity fell beyond the daily-loss line, or could not be measured (``fault``)."""

    ts: datetime
    day: date
    #: The day's start equity; None if it is not known yet (only with a ``fault``).
    day_start_equity: float | None
    #: The equity as fed, which for a ``fault`` is the invalid value itself (NaN, inf, <= 0).
    equity: float
    #: Fractional change from the day start (negative: -0.0612 is a 6.12% fall); None with a
    #: ``fault`` (no change can be measured from an invalid equity).
    change: float | None
    #: Why the equity could not be measured, or None for a fall beyond the line.
    fault: str | None = None

    @property
    def reason(self) -> str:
        if self.fault is not None:
            return f"{self.fault}: treated as a breach"
        if self.day_start_equity is None or self.change is None:  # only built with a fault
            return f"daily-loss breach on {self.day.isoformat()} UTC: equity {self.equity!r}"
        return (
            f"daily loss {self.change:.2%} on {self.day.isoformat()} UTC: equity "
            f"{self.equity:.2f} vs day start {self.day_start_equity:.2f} "
            f"(limit -{HARDSTOP_DAILY_LOSS:.0%})"
        )


def _valid_equity(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0.0


def _utc(ts: datetime) -> datetime:
    if ts.tzinfo is None:
        raise ValueError(f"naive timestamp {ts!r}: ticks must be timezone-aware UTC")
    return ts.astimezone(UTC)


class DailyLossMonitor:
    """Tracks the UTC-day-start equity and reports a breach of the daily-loss line."""

    def __init__(self, limit: float = HARDSTOP_DAILY_LOSS) -> None:
        if not (0.0 < limit <= HARDSTOP_DAILY_LOSS):
            raise ValueError(
                f"limit {limit!r} must be in (0, {HARDSTOP_DAILY_LOSS}] (tighten only)"
            )
        self._limit = limit
        self._day: date | None = None
        self._day_start: float | None = None

    @property
    def day(self) -> date | None:
        return self._day

    @property
    def day_start_equity(self) -> float | None:
        return self._day_start

    def set_day_start(self, day: date, equity: float) -> None:
        """Use a known day-start value (e.g. the stored snapshot at 00:00 UTC) for ``day``."""
        if not _valid_equity(equity):
            raise ValueError(f"day-start equity {equity!r} must be finite and positive")
        self._day = day
        self._day_start = float(equity)

    def check(self, ts: datetime, equity: float) -> DailyLossBreach | None:
        """Feed one tick; the breach if ``equity`` is beyond the line or invalid, else None.

        An invalid equity (non-finite or <= 0) is a breach with ``fault`` set, whether or not
        the day start is known; it never becomes the day start.
        """
        ts = _utc(ts)
        day = ts.date()
        if not _valid_equity(equity):
            _log.error(
                "data_fault", kind="hardstop_equity_refused", ts=ts.isoformat(), equity=repr(equity)
            )
            known = self._day_start if self._day == day else None
            return DailyLossBreach(
                ts=ts,
                day=day,
                day_start_equity=known,
                equity=equity,
                change=None,
                fault=(
                    f"equity {equity!r} is not a positive finite number "
                    "(a missing price or an empty account)"
                ),
            )
        if self._day != day or self._day_start is None:
            self._day = day
            self._day_start = float(equity)
            return None
        change = equity / self._day_start - 1.0
        if change < -(self._limit + FLOAT_TOLERANCE):
            return DailyLossBreach(
                ts=ts, day=day, day_start_equity=self._day_start, equity=equity, change=change
            )
        return None


class UnreadableHandoff(str):
    """The reason ``handoff_says_hardstop`` gives for a HANDOFF.md it could not read.

    A plain ``str`` to every caller; ``HardstopGuard`` tells it from a HARDSTOP line so that it
    reads the file again next tick instead of caching the failure.
    """

    __slots__ = ()


def _unreadable(path: Path, exc: Exception) -> UnreadableHandoff:
    return UnreadableHandoff(f"HANDOFF.md {path} is unreadable: {exc}")


def handoff_says_hardstop(path: Path | None) -> str | None:
    """The reason ``path`` gives to raise HARDSTOP, or None if it gives none.

    That is the first line starting with ``HARDSTOP`` (leading blanks ignored), or -- failing
    closed -- a sentence naming the path and the error if the file exists but cannot be read
    or is not valid UTF-8 (an ``UnreadableHandoff``). A missing file (or no path) is None.
    """
    if path is None:
        return None
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return _unreadable(path, exc)
    try:
        text = raw.decode("utf-8-sig")  # an editor's byte-order mark must not hide line 1
    except UnicodeDecodeError as exc:
        return _unreadable(path, exc)
    return hardstop_line(text)


def hardstop_line(text: str) -> str | None:
    """The first line of ``text`` that starts with ``HARDSTOP`` (leading blanks ignored), stripped.

    The one parser of the HANDOFF.md kill switch: lines are split as ``str.splitlines`` does
    (``\\r``, form feeds and Unicode line separators end a line too), which is why
    ``nettrace handoff add`` refuses such characters in an entry.
    """
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("HARDSTOP"):
            return stripped
    return None


class HardstopGuard:
    """Runs both automatic sources each tick and raises the latch when either fires.

    The tick is on the decision path, so what it reads must be cheap: HANDOFF.md is re-read
    only when its size, mtime or ctime changes (ctime: a chmod can make it unreadable) or when
    it could not be read last time (an unreadable one raises the latch, and is read again
    every tick rather than cached), and the latch -- which only another process (the
    operator's API call or CLI) can change behind our back -- is not read there at all: the
    loop calls ``refresh_latch`` after its orders went out (at most every ``latch_recheck_s``
    seconds), and an order is refused inside its own transaction while the latch is up
    (``OrderStore.create``), so a raise stops new orders at once either way. A raise from this
    process (daily loss, HANDOFF) is written and acted on in the same tick regardless.
    """

    def __init__(
        self,
        latch: HardstopLatch,
        monitor: DailyLossMonitor | None = None,
        handoff_path: Path | None = None,
        *,
        latch_recheck_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._latch = latch
        self.monitor = monitor or DailyLossMonitor()
        self._handoff_path = handoff_path
        self.latch_recheck_s = latch_recheck_s
        self._clock = clock
        self._cached: tuple[float, HardstopState] | None = None
        self._handoff_seen: tuple[tuple[int, int, int] | None, str | None] = (None, None)

    def latch_state(self) -> HardstopState:
        """The latch as last read (read now if it never was)."""
        if self._cached is None:
            self._cached = (self._clock(), self._latch.state())
        return self._cached[1]

    def refresh_latch(self, *, force: bool = False) -> HardstopState:
        """The latch, read again once ``latch_recheck_s`` has passed since the last read."""
        now = self._clock()
        if force or self._cached is None or now - self._cached[0] >= self.latch_recheck_s:
            self._cached = (now, self._latch.state())
        return self._cached[1]

    def _handoff_line(self) -> str | None:
        path = self._handoff_path
        if path is None:
            return None
        try:
            stat = path.stat()
            signature: tuple[int, int, int] | None = (
                stat.st_mtime_ns,
                stat.st_size,
                stat.st_ctime_ns,
            )
        except FileNotFoundError:
            signature = None  # optional file, absent: read (cheaply) again every tick
        except OSError as exc:  # it may exist, we cannot tell: fail closed
            return self._seen(None, _unreadable(path, exc))
        if signature is None or signature != self._handoff_seen[0]:
            line = handoff_says_hardstop(path)
            # An unreadable file is read again every tick, never cached as a verdict.
            return self._seen(None if isinstance(line, UnreadableHandoff) else signature, line)
        return self._handoff_seen[1]

    def _seen(self, signature: tuple[int, int, int] | None, line: str | None) -> str | None:
        if isinstance(line, UnreadableHandoff) and line != self._handoff_seen[1]:
            _log.error("handoff_unreadable", path=str(self._handoff_path), reason=str(line))
        self._handoff_seen = (signature, line)
        return line

    def tick(self, ts: datetime, equity: float) -> HardstopState:
        """Check one tick; returns the latch state after any raise."""
        breach = self.monitor.check(ts, equity)
        line = None if breach is not None else self._handoff_line()
        state = self.latch_state()
        if state.active:  # halted: cleared meanwhile? (no order is placed while halted)
            state = self.refresh_latch()
        if state.active:  # already halted: one event per raise, not one per tick
            return state
        if breach is not None:
            _log.critical("hardstop_daily_loss", reason=breach.reason)
            return self._raise(SOURCE_DAILY_LOSS, breach.reason, ts)
        if line is not None:
            _log.critical("hardstop_handoff", line=line, path=str(self._handoff_path))
            return self._raise(SOURCE_HANDOFF, line, ts)
        return state

    def _raise(self, source: str, reason: str, ts: datetime) -> HardstopState:
        state = self._latch.raise_(source, reason, now=_utc(ts))
        self._cached = (self._clock(), state)
        return state
