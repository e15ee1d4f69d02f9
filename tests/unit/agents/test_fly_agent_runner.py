"""FlyAgentRunner: which agents run where, the lifecycle, and a real SIGTERM to a real process."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import structlog

from nettrace.agents.fly_agent_runner import (
    Agent,
    FlyAgentRunner,
    RunnerConfigError,
    UnknownRegionError,
    main,
)
from nettrace.config.regions import build_region_table
from nettrace.scouts.monitor import ExchangeMonitorAgent
from nettrace.scouts.stream import has_stream

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("region", "role", "agents"),
    [
        ("ewr", "primary", ["api", "sniper", "meta_engine", "advanced_team", "capital_allocator"]),
        ("lhr", "scout", ["exchange_monitor:kraken", "exchange_monitor:bitstamp"]),
        ("nrt", "scout", ["exchange_monitor:bitflyer", "exchange_monitor:coincheck",
                          "exchange_monitor:bitbank"]),
        ("sin", "scout", ["exchange_monitor:indodax", "exchange_monitor:tokocrypto"]),
    ],
)  # fmt: skip
def test_agents_per_region(region: str, role: str, agents: list[str]) -> None:
    runner = FlyAgentRunner(env={"FLY_REGION": region})
    assert (runner.region, runner.role, runner.get_agents_for_region()) == (region, role, agents)
    assert runner.is_primary == (role == "primary")


def test_region_comes_from_fly_region_then_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLY_REGION", " LHR ")
    assert FlyAgentRunner().region == "lhr"
    monkeypatch.delenv("FLY_REGION")
    monkeypatch.setenv("NETTRACE_REGION", "nrt")  # read by load_settings()
    assert FlyAgentRunner().region == "nrt"
    assert FlyAgentRunner("sin").region == "sin"  # an explicit region wins


def test_an_unknown_region_is_a_value_error_naming_the_configured_ones() -> None:
    with pytest.raises(UnknownRegionError) as info:
        FlyAgentRunner(env={"FLY_REGION": "syd"})
    assert isinstance(info.value, ValueError)
    assert "'syd'" in str(info.value)
    assert "bom, ewr, fra, lhr, nrt, ord, sin" in str(info.value)


def test_a_new_scout_is_configuration_not_code() -> None:
    table = build_region_table({"syd": {"role": "scout", "exchanges": ["btcmarkets"]}})
    runner = FlyAgentRunner("syd", regions=table)
    assert runner.get_agents_for_region() == ["exchange_monitor:btcmarkets"]


class Recorder:
    def __init__(self, name: str, events: list[str], fail: bool = False) -> None:
        self.name = name
        self._events = events
        self._fail = fail

    def start(self) -> None:
        if self._fail:
            raise RuntimeError(f"{self.name} cannot start")
        self._events.append(f"start {self.name}")

    def stop(self) -> None:
        self._events.append(f"stop {self.name}")


def test_run_starts_in_order_and_stops_in_reverse() -> None:
    events: list[str] = []

    def factory(runner: FlyAgentRunner) -> list[Agent]:
        return [Recorder(n, events) for n in runner.get_agents_for_region()]

    runner = FlyAgentRunner("ewr", agent_factory=factory)
    thread = threading.Thread(target=lambda: runner.run(install_signal_handlers=False))
    thread.start()
    deadline = time.monotonic() + 5
    while len(events) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    runner.request_stop()
    thread.join(timeout=5)
    assert not thread.is_alive()
    names = ["api", "sniper", "meta_engine", "advanced_team", "capital_allocator"]
    assert events == [f"start {n}" for n in names] + [f"stop {n}" for n in reversed(names)]


def test_an_agent_that_cannot_start_stops_the_started_ones() -> None:
    events: list[str] = []

    def factory(runner: FlyAgentRunner) -> list[Agent]:
        return [Recorder("a", events), Recorder("b", events, fail=True), Recorder("c", events)]

    with pytest.raises(RuntimeError, match="b cannot start"):
        FlyAgentRunner("ewr", agent_factory=factory).run(install_signal_handlers=False)
    assert events == ["start a", "stop a"]


def test_a_scout_without_a_primary_url_or_token_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NETTRACE_DATA_DIR", str(tmp_path))
    with pytest.raises(RunnerConfigError, match="NETTRACE_PRIMARY_URL"):
        FlyAgentRunner(env={"FLY_REGION": "lhr"}).build_agents()
    env = {"FLY_REGION": "lhr", "NETTRACE_PRIMARY_URL": "http://127.0.0.1:9"}
    with pytest.raises(RunnerConfigError, match="NETTRACE_SCOUT_TOKEN"):
        FlyAgentRunner(env=env).build_agents()
    monkeypatch.setenv("FLY_REGION", "lhr")
    monkeypatch.delenv("NETTRACE_PRIMARY_URL", raising=False)
    try:
        assert main() == 2
    finally:  # main() configured logging onto the captured stderr; undo it for later tests
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    assert "NETTRACE_PRIMARY_URL" in capsys.readouterr().err


def test_a_scout_with_its_config_builds_monitors_and_a_pusher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NETTRACE_DATA_DIR", str(tmp_path))
    runner = FlyAgentRunner(
        env={"FLY_REGION": "lhr", "NETTRACE_PRIMARY_URL": "http://127.0.0.1:9",
             "NETTRACE_SCOUT_TOKEN": "t"},
    )  # fmt: skip
    agents = runner.build_agents()
    assert [a.name for a in agents] == [*runner.get_agents_for_region(), "outbox_pusher"]
    assert (tmp_path / "outbox-lhr.db").is_file()
    # Live venues that ccxt.pro streams get a websocket feed (REST stays the fallback); the
    # feed is built, not started: nothing here connects anywhere.
    monitors = [a for a in agents if isinstance(a, ExchangeMonitorAgent)]
    assert monitors
    for agent in monitors:
        stream = agent.monitor.stream
        assert (stream is not None) == has_stream(agent.monitor.exchange_id)
        assert stream is None or not stream.running
    assert any(a.monitor.stream is not None for a in monitors)  # kraken and bitstamp stream


def test_a_replaying_scout_has_no_websocket_feed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NETTRACE_DATA_DIR", str(tmp_path))
    runner = FlyAgentRunner(
        env={"FLY_REGION": "lhr", "NETTRACE_PRIMARY_URL": "http://127.0.0.1:9",
             "NETTRACE_SCOUT_TOKEN": "t", "NETTRACE_SCOUT_FEED": "replay"},
    )  # fmt: skip
    monitors = [a for a in runner.build_agents() if isinstance(a, ExchangeMonitorAgent)]
    assert monitors
    assert all(a.monitor.stream is None for a in monitors)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NETTRACE_", "FLY_"))}
    env.update(NETTRACE_DATA_DIR=str(tmp_path), NETTRACE_LOG_FORMAT="json", **extra)
    return env


def test_sigterm_stops_the_process_cleanly(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "nettrace.agents.fly_agent_runner"],
        env=_env(tmp_path, FLY_REGION="ewr"),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if "fly_agent_runner_started" in line:
                break
        assert any("fly_agent_runner_started" in line for line in lines), "".join(lines)
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = "".join(lines) + rest
    assert proc.returncode == 0, log
    assert "fly_agent_runner_stopped" in log
    assert "SIGTERM" in log
    assert "not implemented yet" in log  # placeholders say what they are
    assert log.count("agent_placeholder_stopped") == 4


def test_the_seed_check_prints_the_region_and_its_agents(tmp_path: Path) -> None:
    code = (
        "from nettrace.agents.fly_agent_runner import FlyAgentRunner; "
        "r = FlyAgentRunner(); print(r.region, r.get_agents_for_region())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=_env(tmp_path, FLY_REGION="lhr"), cwd=REPO,
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    assert out == "lhr ['exchange_monitor:kraken', 'exchange_monitor:bitstamp']\n"
