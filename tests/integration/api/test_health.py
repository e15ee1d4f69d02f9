"""``/healthz`` says the process is alive; ``/readyz`` says it can take pushes (or why not)."""

from __future__ import annotations

import threading
from typing import Any

import requests
from werkzeug.serving import make_server

from nettrace.app import create_app
from nettrace.config.settings import Settings
from nettrace.store import migrate
from nettrace.store.database import Database


def test_ready_when_migrated(api: Any) -> None:
    assert api.http.get(api.base_url + "/healthz").json() == {"status": "ok"}
    ready = api.http.get(api.base_url + "/readyz")
    assert ready.status_code == 200
    assert ready.json()["revision"] == migrate.head_revision()


def test_not_ready_when_migrations_are_behind(api: Any) -> None:
    migrate.downgrade(api.db.url, "0001")
    ready = api.http.get(api.base_url + "/readyz")
    assert ready.status_code == 503
    assert ready.json()["revision"] == "0001"
    assert "nettrace db upgrade" in ready.json()["database"]
    assert api.http.get(api.base_url + "/healthz").status_code == 200


def test_not_ready_when_database_is_unreachable() -> None:
    # Nothing listens on port 1 of the loopback interface.
    database = Database(
        "postgresql://postgres@127.0.0.1:1/none", connect_args={"connect_timeout": 2}
    )
    app = create_app(Settings(), database)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        ready = requests.get(base + "/readyz", timeout=30)
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable"
        assert "unreachable" in ready.json()["database"]
        assert requests.get(base + "/healthz", timeout=30).status_code == 200
        # A push with a token cannot even be authenticated: 503 with Retry-After, never 500.
        push = requests.post(
            base + "/api/v1/signals/push",
            json={"signals": []},
            headers={"Authorization": "Bearer ntq_whatever"},
            timeout=30,
        )
        assert push.status_code == 503
        assert push.headers["Retry-After"]
        assert push.json()["error"] == "database_unavailable"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        database.dispose()
