"""CLI start-up benchmark: how long `nettrace` takes to answer its quickest commands.

Target (the start-up issue): `nettrace --help`, `--version`, `rules` and `hardstop status`
under 0.3 s each on an idle machine. Each command runs ``--runs`` times as a fresh process
(``python -m nettrace``, as the console script does), in a throw-away NETTRACE_DATA_DIR whose
SQLite database is migrated first; the figures are wall-clock min / median / max, like
hyperfine's. The machine's load average is printed too: on a busy machine the figures rise.

With ``--imports`` it also prints, per command, the heaviest modules by cumulative import
time (``python -X importtime``), to find what to import lazily next.

    python benchmarks/cli_startup.py [--runs 10] [--imports]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS: tuple[tuple[str, ...], ...] = (
    ("--help",),
    ("--version",),
    ("rules",),
    ("hardstop", "status"),
)
TARGET_S = 0.3


def _env(data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("NETTRACE_") or k in {"FLY_REGION", "PRIMARY_REGION", "DATABASE_URL"})
    }
    env["NETTRACE_DATA_DIR"] = str(data_dir)
    return env


def _run(
    args: tuple[str, ...], env: dict[str, str], *flags: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, *flags, "-m", "nettrace", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def _time(args: tuple[str, ...], env: dict[str, str], runs: int) -> list[float]:
    _run(args, env)  # warm the file cache, as hyperfine's --warmup does
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = _run(args, env)
        times.append(time.perf_counter() - start)
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines() or ["?"]
            raise CommandError(f"exit {result.returncode}: {lines[-1][:60]}")
    return times


class CommandError(Exception):
    """A timed command did not succeed (an older nettrace may lack it)."""


def _heaviest(args: tuple[str, ...], env: dict[str, str], top: int = 8) -> list[tuple[int, str]]:
    stderr = _run(args, env, "-X", "importtime").stderr
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = (
            part.strip() for part in line.removeprefix("import time:").split("|")
        )
        if not name.startswith(" "):  # top-level imports only (indentation = nesting)
            rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)[:top]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs per command")
    parser.add_argument("--imports", action="store_true", help="also show the heaviest imports")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nettrace-startup-") as tmp:
        env = _env(Path(tmp) / "home")
        if _run(("db", "upgrade"), env).returncode != 0:
            raise SystemExit("nettrace db upgrade failed")
        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
            f"load average {os.getloadavg()[0]:.2f}, {options.runs} runs each"
        )
        print(f"{'command':<24}{'min':>8}{'median':>8}{'max':>8}  target {TARGET_S:.1f} s")
        for args in COMMANDS:
            try:
                times = _time(args, env, options.runs)
            except CommandError as exc:
                print(f"{'nettrace ' + ' '.join(args):<24}  failed ({exc})")
                continue
            median = statistics.median(times)
            verdict = "ok" if median < TARGET_S else "SLOW"
            print(
                f"{'nettrace ' + ' '.join(args):<24}{min(times):>8.3f}{median:>8.3f}"
                f"{max(times):>8.3f}  {verdict}"
            )
            if options.imports:
                for cumulative, name in _heaviest(args, env):
                    print(f"    {cumulative / 1e6:6.3f} s  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
