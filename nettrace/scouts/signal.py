"""The signal a scout pushes to the primary, in the wire form of DESIGN §3 (Signals).

``{"id", "source", "source_region", "exchange", "symbol", "side", "confidence", "ts", "ttl_s",
"meta"}``: ``id`` is the idempotency key (the primary stores a signal once however often it is
pushed), ``ts`` ISO-8601 UTC, ``ttl_s`` seconds after ``ts`` during which the signal is worth
acting on, ``confidence`` a fraction in [0, 1].
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

SIDES: Final = frozenset({"BUY", "SELL", "HOLD"})


@dataclass(frozen=True)
class ScoutSignal:
    """One signal from one scout generator on one exchange and symbol."""

    source: str
    source_region: str
    exchange: str
    symbol: str
    side: str
    confidence: float
    ts: datetime
    ttl_s: int
    meta: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise ValueError(f"side must be one of BUY, SELL, HOLD, not {self.side!r}")
        if not (math.isfinite(self.confidence) and 0.0 <= self.confidence <= 1.0):
            raise ValueError(f"confidence must be in [0, 1], not {self.confidence!r}")
        if self.ts.tzinfo is None:
            raise ValueError("ts must be timezone-aware UTC")
        if isinstance(self.ttl_s, bool) or not isinstance(self.ttl_s, int) or self.ttl_s <= 0:
            raise ValueError(
                f"ttl_s must be a positive whole number of seconds, not {self.ttl_s!r}"
            )

    @property
    def expires_at(self) -> float:
        """Epoch seconds after which the signal must not be sent."""
        return self.ts.timestamp() + self.ttl_s

    def to_wire(self) -> dict[str, Any]:
        """The JSON object the primary's ``POST /api/v1/signals/push`` accepts."""
        return {
            "id": self.id,
            "source": self.source,
            "source_region": self.source_region,
            "exchange": self.exchange,
            "symbol": self.symbol,
            "side": self.side,
            "confidence": self.confidence,
            "ts": self.ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "ttl_s": self.ttl_s,
            "meta": dict(self.meta),
        }
