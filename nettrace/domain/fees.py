"""Exchange fee schedules.

All rates are fractions of notional (0.004 means 0.40%), never percent: mixing the two is the
most common money bug in trading code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# The seed's fee schedule (DESIGN §3): maker 0.40%, taker 0.60%. These are the only literals for
# fees in the code; exchanges override them through configuration.
DEFAULT_MAKER_FEE = 0.004
DEFAULT_TAKER_FEE = 0.006


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """Maker and taker fee rates of one exchange, as fractions of notional."""

    maker: float = DEFAULT_MAKER_FEE
    taker: float = DEFAULT_TAKER_FEE

    def __post_init__(self) -> None:
        for name in ("maker", "taker"):
            rate = getattr(self, name)
            if not (isinstance(rate, int | float) and math.isfinite(rate) and 0.0 <= rate < 1.0):
                raise ValueError(f"{name} fee must be a fraction in [0, 1), got {rate!r}")

    @property
    def round_trip_maker(self) -> float:
        """Fees paid to enter and exit as a maker, as a fraction of notional (2 x maker)."""
        return 2.0 * self.maker
