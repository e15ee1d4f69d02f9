"""Where the developer data set (real historical candles) lives, if it is here at all.

The project never copies this data; tests and benchmarks read it in place. Order of search:
``$NETTRACE_SHARED_DATA``, then ``shared/data`` beside the repository root.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "NETTRACE_SHARED_DATA"
_REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path | None:
    """The folder of real candle files, or ``None`` when it is absent."""
    configured = os.environ.get(ENV_VAR)
    candidates = [Path(configured)] if configured else []
    candidates.append(_REPO_ROOT.parent / "shared" / "data")
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob("*.parquet")):
            return candidate
    return None
