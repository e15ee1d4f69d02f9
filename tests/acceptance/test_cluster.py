"""``nettrace cluster``: four real processes on 127.0.0.1, scouts heard by the primary, all stopped.

The whole signal path runs as in production, only local: scouts replaying candles through the
unchanged monitor, pushing through their outboxes with their own region tokens, the primary
storing and serving ``GET /api/v1/signals/cross-region``. Bounded: the cluster must be heard
within 60 s, and every pid must be gone after ``down``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

SCOUTS = ("lhr", "nrt", "sin")
HEARD_WITHIN_S = 60.0


def nettrace(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nettrace", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
        check=False,
    )


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie awaiting its reaper has stopped running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return True
    return not stat[stat.rindex(")") + 2 :].startswith("Z")


def status_json(env: dict[str, str]) -> dict[str, Any]:
    result = nettrace("cluster", "status", "--json", env=env)
    assert result.returncode in (0, 1), result.stderr
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


def heard_decision(payload: dict[str, Any]) -> bool:
    """The newest stored decision heard at least one scout vote."""
    last = (payload.get("trading") or {}).get("last_decision")
    return bool(last and last["scouts"])


def test_cluster_up_status_down(env: dict[str, str]) -> None:
    state_file = Path(env["NETTRACE_DATA_DIR"]) / "cluster" / "state.json"
    pids: list[int] = []
    try:
        # One replayed hour per wall second: the primary's trading loop decides every second.
        up = nettrace("cluster", "up", "--speed", "3600", env=env)
        assert up.returncode == 0, up.stderr
        state = json.loads(state_file.read_text(encoding="utf-8"))
        assert state_file.stat().st_mode & 0o077 == 0  # it holds a token: owner-only
        regions = {proc["region"]: proc for proc in state["processes"]}
        assert set(regions) == {"ewr", *SCOUTS}
        assert regions["ewr"]["role"] == "primary"
        assert all(regions[r]["role"] == "scout" for r in SCOUTS)
        assert state["primary_url"].startswith("http://127.0.0.1:")
        pids = [proc["pid"] for proc in state["processes"]]
        assert len(set(pids)) == 4
        assert all(running(pid) for pid in pids)

        again = nettrace("cluster", "up", env=env)
        assert again.returncode == 2
        assert again.stderr.startswith("nettrace: error: a cluster is already up")
        assert len(again.stderr.strip().splitlines()) == 1

        deadline = time.monotonic() + HEARD_WITHIN_S
        payload = status_json(env)
        while not payload["healthy"] and time.monotonic() < deadline:
            time.sleep(1.0)
            payload = status_json(env)
        rows = {row["region"]: row for row in payload["regions"]}
        for region in SCOUTS:
            row = rows[region]
            assert row["alive"], f"{region} died: {Path(row['log']).read_text()[-2000:]}"
            assert row["last_heard_at"] is not None, f"the primary never heard from {region}"
            assert row["stale"] is False
        assert payload["healthy"] is True

        # The primary trades paper on the replay and its decisions hear the scouts.
        while time.monotonic() < deadline and not heard_decision(payload):
            time.sleep(1.0)
            payload = status_json(env)
        trading = payload["trading"]
        assert trading["plan"]["symbol"] == "BTC/USD", trading
        assert trading["plan"]["speed"] == 3600.0
        assert trading["decisions"] > 0, Path(regions["ewr"]["log"]).read_text()[-3000:]
        heard = trading["last_decision"]["scouts"]
        assert {s["region"] for s in heard} <= set(SCOUTS)
        assert heard_decision(payload), trading

        table = nettrace("cluster", "status", env=env)
        assert table.returncode == 0, table.stdout + table.stderr
        assert "Trading (paper): BTC/USD" in table.stdout
        assert "replay it: nettrace run --replay" in table.stdout
        lines = table.stdout.splitlines()
        for region in ("ewr", *SCOUTS):
            assert any(f" {region} " in line for line in lines), table.stdout
        assert "STALE" not in table.stdout
        assert "never" not in table.stdout
    finally:
        down = nettrace("cluster", "down", env=env)
        for pid in pids:  # never leave a process behind, even when an assertion failed
            if running(pid):
                os.kill(pid, signal.SIGKILL)
    assert down.returncode == 0, down.stderr
    deadline = time.monotonic() + 5.0
    while any(running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if running(pid)]
    assert not state_file.exists()
    assert "Cluster down." in down.stdout
    assert "SIGKILL" not in down.stdout  # every process stopped on SIGTERM, in time

    after = nettrace("cluster", "status", env=env)
    assert after.returncode == 2
    assert after.stderr.startswith("nettrace: error: no cluster is up here")


def test_down_without_a_cluster_is_a_no_op(env: dict[str, str]) -> None:
    result = nettrace("cluster", "down", env=env)
    assert result.returncode == 0
    assert "nothing to stop" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--scouts", "xyz"), "unknown scout region 'xyz'"),
        (("--scouts", "ewr"), "ewr is the primary"),
        (("--feed", "paper"), "--feed/--speed"),
    ],
)
def test_up_refuses_bad_options_in_one_line(
    env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    result = nettrace("cluster", "up", *args, env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("nettrace: error: ")
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (Path(env["NETTRACE_DATA_DIR"]) / "cluster" / "state.json").exists()


def test_help_has_examples(env: dict[str, str]) -> None:
    result = nettrace("cluster", "--help", env=env)
    assert result.returncode == 0
    for command in ("up", "status", "down", "nettrace cluster up --port"):
        assert command in result.stdout
