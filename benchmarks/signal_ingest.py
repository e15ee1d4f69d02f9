"""Signal ingestion benchmark: sustained push throughput and latency into PostgreSQL.

DESIGN §5: "thousands of signals per second sustained into PostgreSQL on 2 cores, p99 in tens of
milliseconds, nothing lost or doubled". Target of the signals-API issue: >= 5,000 signals/s at
batch 50 with p99 <= 50 ms.

What runs, all on 127.0.0.1:
- the real app under gunicorn (2 workers, gthread by default) on a fresh PostgreSQL database,
  with a region token, pushing batches of 1, 50 and 500 signals with unique ids;
- beside it, in the same run, a bare Flask JSON echo endpoint under the same gunicorn settings
  (parses the body, answers a count): the ceiling the HTTP stack allows on this machine;
- client processes (``--clients``, keep-alive ``http.client``) push for ``--seconds`` each.

Afterwards the stored row count must equal the acknowledged signals (nothing lost or doubled).
The machine is shared by clients, gunicorn and PostgreSQL, so the figures are a floor.

    python benchmarks/signal_ingest.py [--database-url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from nettrace.store.database import Database
from nettrace.store.migrate import upgrade
from nettrace.store.signals import SignalStore
from nettrace.store.tokens import TokenStore

HERE = Path(__file__).resolve().parent
BATCH_SIZES = (1, 50, 500)


def echo_app() -> Any:
    """The ceiling: a bare Flask app that parses the JSON body and answers with a count."""
    from flask import Flask, jsonify, request

    app = Flask("echo")

    @app.post("/api/v1/signals/push")
    def echo() -> Any:
        body = request.get_json()
        n = len(body["signals"])
        return jsonify(accepted=n, duplicates=0)

    return app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(port: int, path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status < 500:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server on port {port} did not come up")


def _gunicorn(target: str, port: int, env: dict[str, str], args: argparse.Namespace) -> Any:
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(args.workers),
        "--worker-class",
        args.worker_class,
        "--threads",
        str(args.threads),
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "--chdir",
        str(HERE),
        target,
    ]
    return subprocess.Popen(cmd, env=env)  # noqa: S603 - our own interpreter and arguments


@dataclass
class Result:
    requests: int
    signals: int
    errors: int
    latencies_ms: list[float]
    elapsed_s: float


def _client(
    port: int,
    token: str,
    region: str,
    batch: int,
    seconds: float,
    tag: str,
    out: Any,
    interval_s: float = 0.0,
    offset_s: float = 0.0,
) -> None:
    """Push for ``seconds``: back to back, or (``interval_s`` > 0) one request per interval.

    Paced latency is measured from the *scheduled* send time, so a stall that delays later
    requests counts against them too (no coordinated omission).
    """
    ts = datetime.now(UTC).isoformat()
    prefix = (
        '{"source":"bench","source_region":"' + region + '","exchange":"kraken",'
        '"symbol":"BTC/USD","side":"BUY","confidence":0.75,"ts":"' + ts + '","ttl_s":600,'
        '"meta":{"seq":1},"id":"'
    )
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies: list[float] = []
    sent = errors = counter = 0
    start = time.perf_counter()
    end = start + seconds
    next_at = start + offset_s  # clients staggered, so paced requests do not arrive in bursts
    while time.perf_counter() < end:
        ids = [f"{tag}-{counter + i}" for i in range(batch)]
        counter += batch
        body = '{"signals":[' + ",".join(prefix + i + '"}' for i in ids) + "]}"
        if interval_s > 0:
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            t0 = next_at
            next_at += interval_s
        else:
            t0 = time.perf_counter()
        try:
            conn.request("POST", "/api/v1/signals/push", body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            errors += 1
            continue
        latencies.append((time.perf_counter() - t0) * 1000)
        if response.status == 200 and json.loads(payload)["accepted"] == batch:
            sent += batch
        else:
            errors += 1
    out.put(Result(len(latencies), sent, errors, latencies, time.perf_counter() - start))


def _run(
    port: int,
    token: str,
    region: str,
    batch: int,
    args: argparse.Namespace,
    rate: float = 0.0,
) -> Result:
    """All clients at once; ``rate`` > 0 paces them to that many signals/s in total."""
    interval = args.clients * batch / rate if rate > 0 else 0.0
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    run_id = uuid.uuid4().hex[:8]
    procs = [
        ctx.Process(
            target=_client,
            args=(
                port,
                token,
                region,
                batch,
                args.seconds,
                f"{run_id}-{c}",
                queue,
                interval,
                interval * c / args.clients,
            ),
        )
        for c in range(args.clients)
    ]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=args.seconds + 120) for _ in procs]
    for proc in procs:
        proc.join()
    return Result(
        requests=sum(r.requests for r in results),
        signals=sum(r.signals for r in results),
        errors=sum(r.errors for r in results),
        latencies_ms=[x for r in results for x in r.latencies_ms],
        elapsed_s=max(r.elapsed_s for r in results),
    )


def _acked(label: str, batch: int, r: Result) -> int:
    # The echo endpoint stores nothing: every answered request counts as its batch.
    return r.requests * batch if label.startswith("echo") else r.signals


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "NETTRACE_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
        help="A PostgreSQL server whose user may create databases (a throw-away one is made).",
    )
    parser.add_argument("--seconds", type=float, default=6.0, help="Duration of each run.")
    parser.add_argument("--clients", type=int, default=4, help="Concurrent client processes.")
    parser.add_argument(
        "--batches", type=int, nargs="*", default=list(BATCH_SIZES), help="Batch sizes to run."
    )
    parser.add_argument(
        "--paced",
        type=float,
        nargs="*",
        default=[5000.0],
        help="Also push batches of 50 paced at these total rates (signals/s).",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", default="gthread")
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()

    admin = make_url(args.database_url).set(drivername="postgresql+psycopg")
    name = f"nettrace_bench_{uuid.uuid4().hex[:10]}"
    admin_engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.set(database=name).render_as_string(hide_password=False)
    servers: list[Any] = []
    try:
        upgrade(url)
        database = Database(url)
        token, _ = TokenStore(database).issue("lhr", label="benchmark")
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "FLY_REGION": "ewr",
            "NETTRACE_API_RATE_LIMIT": "1000000/second",
            "NETTRACE_LOG_LEVEL": "WARNING",
            "NETTRACE_LOG_FORMAT": "json",
        }
        api_port, echo_port = _free_port(), _free_port()
        servers.append(_gunicorn("nettrace.app:create_app()", api_port, env, args))
        servers.append(_gunicorn("signal_ingest:echo_app()", echo_port, env, args))
        _wait_ready(api_port, "/readyz")
        _wait_ready(echo_port, "/")

        rows: list[tuple[str, int, Result]] = []
        acked = 0
        warmup = argparse.Namespace(**{**vars(args), "seconds": 1.0})
        for batch in args.batches:
            for label, port in (("echo (ceiling)", echo_port), ("signals API", api_port)):
                warm = _run(port, token, "lhr", batch, warmup)
                timed = _run(port, token, "lhr", batch, args)
                rows.append((label, batch, timed))
                if port == api_port:
                    acked += warm.signals + timed.signals

        for rate in args.paced:
            warm = _run(api_port, token, "lhr", 50, warmup, rate)
            timed = _run(api_port, token, "lhr", 50, args, rate)
            rows.append((f"API @{rate:g}/s", 50, timed))
            acked += warm.signals + timed.signals

        stored = SignalStore(database).count()
        database.dispose()
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
        with admin_engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin_engine.dispose()

    print(
        f"\nSignal ingestion, gunicorn {args.workers} workers ({args.worker_class}, "
        f"{args.threads} threads), {args.clients} client processes, {args.seconds:g} s per run, "
        f"PostgreSQL, 127.0.0.1, {os.cpu_count()} cores\n"
    )
    header = (
        f"{'endpoint':<18}{'batch':>6}{'req/s':>10}{'signals/s':>12}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
    )
    print(header)
    print("-" * len(header))
    for label, batch, r in rows:
        print(
            f"{label:<18}{batch:>6}{r.requests / r.elapsed_s:>10.0f}"
            f"{_acked(label, batch, r) / r.elapsed_s:>12.0f}"
            f"{statistics.median(r.latencies_ms):>9.1f}{_pct(r.latencies_ms, 0.99):>9.1f}"
            f"{r.errors:>8}"
        )
    same = "nothing lost or doubled" if stored == acked else "MISMATCH"
    print(f"\nrows stored: {stored}; signals acknowledged (incl. warm-ups): {acked}: {same}")
    for label, batch, r in rows:
        if batch != 50 or label.startswith("echo"):
            continue
        rate, p99 = r.signals / r.elapsed_s, _pct(r.latencies_ms, 0.99)
        verdict = "met" if rate >= 5000 * 0.98 and p99 <= 50 else "NOT met"
        print(
            f"target (batch 50: >= 5000 signals/s with p99 <= 50 ms), {label}: {verdict} "
            f"({rate:.0f} signals/s, p99 {p99:.1f} ms)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
