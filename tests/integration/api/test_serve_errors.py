"""``nettrace serve`` answers the errors its HTTP server raises itself (414, 431) as JSON.

A real ``nettrace serve`` subprocess on 127.0.0.1, spoken to over a raw socket: these requests
never reach Flask, so only the server process shows what a client really gets.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests

from nettrace.store.migrate import upgrade


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    home = tmp_path_factory.mktemp("serve")
    url = f"sqlite:///{home / 'nettrace.db'}"
    upgrade(url)
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("NETTRACE_") or k in {"FLY_REGION", "DATABASE_URL"})
    }
    env.update(DATABASE_URL=url, NETTRACE_DATA_DIR=str(home), NETTRACE_LOG_LEVEL="WARNING")
    process = subprocess.Popen(
        [sys.executable, "-m", "nettrace", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).ok:
                    break
            except requests.RequestException:
                pass
            assert process.poll() is None, "nettrace serve exited while starting"
            assert time.monotonic() < deadline, "nettrace serve did not come up"
            time.sleep(0.05)
        yield port
    finally:
        process.kill()
        process.wait(timeout=10)


def _raw(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])
    }
    return status, headers, body


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /healthz?x=" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n", 431),
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: 1\r\n" % i for i in range(120))
            + b"\r\n",
            431,
        ),
    ],
    ids=["request-line-414", "header-line-431", "too-many-headers-431"],
)
def test_server_level_errors_are_json(served: int, request_bytes: bytes, status: int) -> None:
    got, headers, body = _raw(served, request_bytes)
    assert got == status
    assert headers["content-type"] == "application/json"
    error = json.loads(body)
    assert set(error) == {"error", "message"}
    assert error["error"]
    assert error["message"]
    assert "<" not in body.decode()  # not an HTML page


@pytest.fixture(scope="module")
def gunicorn_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """Production's server: gunicorn with the JSON-error worker, on 127.0.0.1."""
    home = tmp_path_factory.mktemp("gunicorn")
    url = f"sqlite:///{home / 'nettrace.db'}"
    upgrade(url)
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("NETTRACE_") or k in {"FLY_REGION", "DATABASE_URL"})
    }
    env.update(DATABASE_URL=url, NETTRACE_DATA_DIR=str(home), NETTRACE_LOG_LEVEL="WARNING")
    argv = [sys.executable, "-m", "gunicorn", "-w", "1", "--threads", "2", "-b"]
    argv += [f"127.0.0.1:{port}", "-k", "nettrace.api.gunicorn_worker.JsonErrorThreadWorker"]
    process = subprocess.Popen(
        [*argv, "nettrace.app:create_app()"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).ok:
                    break
            except requests.RequestException:
                pass
            assert process.poll() is None, "gunicorn exited while starting"
            assert time.monotonic() < deadline, "gunicorn did not come up"
            time.sleep(0.05)
        yield port
    finally:
        process.kill()
        process.wait(timeout=10)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /healthz?x=" + b"a" * 9_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9_000 + b"\r\n\r\n", 431),
    ],
    ids=["request-line-414", "header-line-431"],
)
def test_gunicorn_level_errors_are_json(
    gunicorn_served: int, request_bytes: bytes, status: int
) -> None:
    got, headers, body = _raw(gunicorn_served, request_bytes)
    assert got == status
    assert headers["content-type"] == "application/json"
    error = json.loads(body)
    assert error["error"]
    assert error["message"]
    assert "<" not in body.decode()
