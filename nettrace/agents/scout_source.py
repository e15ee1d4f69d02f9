"""Where the primary's sniper hears the scouts (signals 5-7), and at which moment of each bar.

Two sources, one contract (``agents.sniper.ScoutSource``: the fresh signals of live regions for
a symbol at a moment):

- ``StoredScouts`` reads the primary's own database -- the one ``POST /api/v1/signals/push``
  writes -- as it was at that moment (``store.signal_history``), so a replay over the same
  database hears exactly what the recorded run heard;
- ``RemoteScouts`` asks a primary's API (``GET /api/v1/signals/cross-region``) when the trading
  process runs away from the database. The API answers only the live view, so this one cannot
  be replayed; any failure (network, status, a body it cannot parse) hears nothing: a vote
  the primary cannot verify never counts (fail closed).

``ScoutClock`` says when each bar's scouts are read: ``anchor`` (epoch seconds) is the moment
the bar closing at ``origin_ms`` is decided, later bars follow at ``speed`` market seconds per
second. Live, that is the wall clock; in a paced replay, the schedule the loop keeps; in an
unpaced replay, the bar's own close (``at_bar_close``), which hears only signals stamped in
the market time of the file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from nettrace.observability.log import get_logger
from nettrace.store.database import Database
from nettrace.store.signal_history import signals_known_at
from nettrace.store.signals import CrossRegionView, SignalRecord, live_signals

__all__ = ["RemoteScouts", "ScoutClock", "StoredScouts"]

CROSS_REGION_PATH: Final = "/api/v1/signals/cross-region"

_log = get_logger(__name__)


@dataclass(frozen=True)
class ScoutClock:
    """Maps a bar's close (epoch ms, market time) to the moment its scouts are read."""

    anchor_s: float
    origin_ms: int
    speed: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.speed) and self.speed > 0.0):
            raise ValueError(f"scout clock speed must be a positive number, not {self.speed!r}")
        if not math.isfinite(self.anchor_s):
            raise ValueError("scout clock anchor must be finite epoch seconds")

    @classmethod
    def at_bar_close(cls) -> ScoutClock:
        """Each bar's scouts read at the bar's own close (an unpaced replay)."""
        return cls(anchor_s=0.0, origin_ms=0, speed=1.0)

    def epoch_s(self, close_ms: int) -> float:
        return self.anchor_s + (close_ms - self.origin_ms) / 1000.0 / self.speed

    def at(self, close_ms: int) -> datetime:
        return datetime.fromtimestamp(self.epoch_s(close_ms), UTC)


class StoredScouts:
    """The primary's cross-region store as known at each moment (replayable)."""

    def __init__(self, database: Database, *, stale_after_s: float, max_ttl_s: float) -> None:
        self._db = database
        self.stale_after_s = stale_after_s
        self.max_ttl_s = max_ttl_s

    def __call__(self, symbol: str, now: datetime) -> Sequence[SignalRecord]:
        return signals_known_at(
            self._db,
            symbol=symbol,
            now=now,
            stale_after_s=self.stale_after_s,
            max_ttl_s=self.max_ttl_s,
        )


class RemoteScouts:
    """A primary's ``GET /api/v1/signals/cross-region`` (the live view; fail closed)."""

    def __init__(self, base_url: str, token: str, *, timeout_s: float = 2.0) -> None:
        self._url = base_url.rstrip("/") + CROSS_REGION_PATH
        self._token = token
        self._timeout_s = timeout_s

    def __call__(self, symbol: str, now: datetime) -> Sequence[SignalRecord]:
        import requests

        try:
            response = requests.get(
                self._url,
                params={"symbol": symbol},
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=self._timeout_s,
            )
            response.raise_for_status()
            view = CrossRegionView.from_json(response.json())
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            _log.warning("scouts_unreadable", url=self._url, error=type(exc).__name__)
            return []
        return [s for s in live_signals(view, now) if s.symbol == symbol]
