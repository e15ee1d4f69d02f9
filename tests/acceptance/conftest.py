"""Acceptance fixtures: the CLI runs as a user runs it, in a home of its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The caller's environment without any NetTrace setting, and an empty NETTRACE_DATA_DIR.

    COLUMNS is wide so that rich tables print whole cells rather than ellipses.
    """
    clean = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("NETTRACE_") or k in {"FLY_REGION", "PRIMARY_REGION", "DATABASE_URL"})
    }
    clean["NETTRACE_DATA_DIR"] = str(tmp_path / "home")
    clean["COLUMNS"] = "200"
    return clean
