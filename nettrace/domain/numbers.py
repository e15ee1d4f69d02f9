"""Strict readers for numbers that arrive from outside (signals, APIs, exchanges).

They return ``None`` rather than raising, so trading code can fail closed with a reason instead
of crashing. Bools are refused (``True`` is not a confidence of 1.0); numpy scalars are
accepted because they register as ``numbers.Real`` / ``numbers.Integral``.
"""

from __future__ import annotations

import math
import numbers


def finite_float(value: object) -> float | None:
    """``value`` as a finite float, or ``None`` if it is not a real, finite number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return result if math.isfinite(result) else None


def strict_int(value: object) -> int | None:
    """``value`` as an int if it is an integral number (not a bool, not 3.0), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return None
    return int(value)
