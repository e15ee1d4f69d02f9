"""The HANDOFF.md log: the seed's entry format, append-only writes, and that no entry can be
read as a HARDSTOP line by the watcher that reads the same file (DESIGN §3)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import structlog

from nettrace.cli.main import main
from nettrace.config.growth_plan import GrowthBatchConfig, GrowthPlanError, load_growth_plan
from nettrace.config.settings import load_settings
from nettrace.execution.handoff import HandoffEntry, HandoffError, append_entry, read_entries
from nettrace.execution.hardstop import HardstopGuard, handoff_says_hardstop
from nettrace.store.database import Database
from nettrace.store.hardstop import HardstopLatch

ROOT = Path(__file__).resolve().parents[3]
DAY = date(2026, 12, 2)
FIELDS = {"did": "built it", "next": "test it", "blockers": "none", "deploy": "not deployed"}
#: Every character str.splitlines ends a line at (the watcher splits lines that way).
LINE_BREAKS = ["\n", "\r", "\r\n", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


def entry(**changes: str) -> HandoffEntry:
    return HandoffEntry.create(day=DAY, **{"agent": "sniper", **FIELDS, **changes})


@pytest.fixture(autouse=True)
def _logging_left_as_found() -> Iterator[None]:
    """``main()`` configures logging onto this test's captured stderr, which pytest closes
    afterwards: put structlog and the root handlers back, or a later test's log line fails."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key == "NETTRACE_TEST_DATABASE_URL":
            continue  # the storage fixture's, not a setting
        if key.startswith("NETTRACE_") or key in {"FLY_REGION", "PRIMARY_REGION", "DATABASE_URL"}:
            monkeypatch.delenv(key)
    monkeypatch.setenv("NETTRACE_DATA_DIR", str(tmp_path / "data"))


def test_the_seed_format() -> None:
    assert entry().render() == (
        "## [2026-12-02] [sniper] Handoff\n"
        "- **Did:** built it\n"
        "- **Next:** test it\n"
        "- **Blockers:** none\n"
        "- **Deploy:** not deployed\n"
    )


def test_add_on_a_missing_file_creates_it_with_a_title_then_appends(tmp_path: Path) -> None:
    path = tmp_path / "HANDOFF.md"
    append_entry(path, entry())
    append_entry(path, entry(agent="Claude Code", did="second"))
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# HANDOFF\n\n## [2026-12-02] [sniper] Handoff\n")
    assert text.endswith(
        "\n\n## [2026-12-02] [Claude Code] Handoff\n- **Did:** second\n"
        "- **Next:** test it\n- **Blockers:** none\n- **Deploy:** not deployed\n"
    )
    assert read_entries(path) == [
        entry().render(),
        entry(agent="Claude Code", did="second").render(),
    ]


def test_append_never_truncates_and_starts_on_a_line_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "HANDOFF.md"
    path.write_text("# Notes by hand\nHARD", encoding="utf-8")  # no final newline
    append_entry(path, entry(did="STOP now"))
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Notes by hand\nHARD\n\n## [2026-12-02] [sniper] Handoff\n")
    assert handoff_says_hardstop(path) is None


@pytest.mark.parametrize("name", ["agent", "did", "next", "blockers", "deploy"])
@pytest.mark.parametrize("value", ["", "   ", "\t"])
def test_empty_fields_are_refused(name: str, value: str) -> None:
    with pytest.raises(HandoffError, match=f"--{name} is empty"):
        entry(**{name: value})


@pytest.mark.parametrize("name", ["agent", "did", "next", "blockers", "deploy"])
@pytest.mark.parametrize("brk", LINE_BREAKS)
def test_no_field_can_start_a_hardstop_line(name: str, brk: str) -> None:
    with pytest.raises(HandoffError, match=f"--{name} must be one line"):
        entry(**{name: f"fine{brk}HARDSTOP: halt everything"})


def test_an_entry_that_mentions_hardstop_does_not_raise_it(
    tmp_path: Path, migrated_db: Database
) -> None:
    path = tmp_path / "HANDOFF.md"
    mention = {name: "HARDSTOP: tested the kill switch" for name in FIELDS}
    append_entry(path, entry(agent="HARDSTOP", **mention))
    assert "HARDSTOP: tested" in path.read_text(encoding="utf-8")
    assert handoff_says_hardstop(path) is None  # the watcher's own reading
    guard = HardstopGuard(HardstopLatch(migrated_db), handoff_path=path)
    assert not guard.tick(datetime(2026, 12, 2, 12, tzinfo=UTC), 10_000.0).active


def _with(args: list[str], option: str, value: str) -> list[str]:
    at = args.index(option) + 1
    return [*args[:at], value, *args[at + 1 :]]


def test_cli_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "sub" / "HANDOFF.md"
    args = ["handoff", "add", "--file", str(path), "--agent", "sniper", "--did", "a"]
    args += ["--next", "b", "--blockers", "none", "--deploy", "paper"]
    assert main(args) == 2  # the folder does not exist: refused, nothing created
    assert "does not exist" in capsys.readouterr().err
    path.parent.mkdir()
    assert main(args) == 0
    assert main(_with(args, "--did", "second")) == 0
    today = datetime.now(UTC).date().isoformat()
    assert f"## [{today}] [sniper] Handoff" in capsys.readouterr().out
    assert main(["handoff", "show", "--file", str(path)]) == 0
    latest = capsys.readouterr().out
    assert latest.startswith(f"## [{today}] [sniper] Handoff\n- **Did:** second\n")
    assert latest.count("## ") == 1
    assert main(["handoff", "show", "--file", str(path), "-n", "2"]) == 0
    assert capsys.readouterr().out.count("Handoff\n") == 2
    assert main(["handoff", "show", "--file", str(path), "--all"]) == 0
    assert "- **Did:** a\n" in capsys.readouterr().out

    before = path.read_bytes()
    bad = _with(args, "--did", "x\nHARDSTOP now")
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--did must be one line" in err
    assert main(_with(args, "--blockers", " ")) == 2
    assert "--blockers is empty" in capsys.readouterr().err
    assert path.read_bytes() == before


def test_cli_defaults_to_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "agents").mkdir()
    monkeypatch.chdir(tmp_path)
    args = ["handoff", "add", "--agent", "ops", "--did", "a", "--next", "b"]
    assert main([*args, "--blockers", "none", "--deploy", "none"]) == 0
    assert (tmp_path / "agents" / "HANDOFF.md").read_text(encoding="utf-8").startswith("# HANDOFF")
    assert main(["handoff", "show"]) == 0
    assert "[ops] Handoff" in capsys.readouterr().out


def test_handoff_path_default_is_the_checkouts_agents_handoff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    default = load_settings().handoff_path
    assert default == ROOT / "agents" / "HANDOFF.md"
    assert default.is_file()
    assert handoff_says_hardstop(default) is None  # the checked-in file never halts trading
    monkeypatch.chdir(tmp_path)  # elsewhere: relative to the working directory, missing is fine
    assert load_settings().handoff_path == tmp_path / "agents" / "HANDOFF.md"
    assert handoff_says_hardstop(load_settings().handoff_path) is None
    monkeypatch.setenv("NETTRACE_HANDOFF_PATH", "")
    assert load_settings().handoff_path is None


def test_the_checked_in_growth_plan_validates(tmp_path: Path) -> None:
    plan = load_growth_plan(ROOT / "agents" / "growth_batch_config.json")
    assert (plan.version, plan.mode, plan.allocations) == (1, "paper", ())
    bad = tmp_path / "plan.json"
    allocations = [{"strategy": "a", "fraction": 0.7}, {"strategy": "b", "fraction": 0.4}]
    bad.write_text(json.dumps({"version": 1, "allocations": allocations}), encoding="utf-8")
    with pytest.raises(GrowthPlanError, match="more than 1"):
        load_growth_plan(bad)
    with pytest.raises(ValueError, match="version"):
        GrowthBatchConfig.model_validate({"version": 2})
