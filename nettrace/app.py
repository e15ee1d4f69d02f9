"""The Flask application factory: the primary's HTTP API (signals, health, OpenAPI).

Production: ``gunicorn -w 2 -k nettrace.api.gunicorn_worker.JsonErrorThreadWorker --threads 4
-b 0.0.0.0:8080 'nettrace.app:create_app()'`` (the benchmark's configuration; the worker is
gunicorn's gthread, whose own 414/431/400 answers are JSON). Each worker builds its own app,
engine and pool after the fork, so no database connection is shared across processes - hence
no ``--preload``. Locally: ``nettrace serve``. Tests pass their own ``settings`` and ``database``.
"""

from __future__ import annotations

from flask import Flask, Response
from flask_limiter import Limiter

from nettrace.api import auth, control, health, signals_api
from nettrace.api.errors import register_error_handlers
from nettrace.api.openapi import build_openapi
from nettrace.api.state import ApiState, install
from nettrace.config.settings import Settings, load_settings
from nettrace.observability.log import configure_logging
from nettrace.store.database import Database
from nettrace.store.migrate import head_revision
from nettrace.store.signals import SignalStore
from nettrace.store.tokens import TokenStore


def create_app(settings: Settings | None = None, database: Database | None = None) -> Flask:
    """Build the app. Without arguments, settings come from the environment (as in gunicorn)."""
    if settings is None:
        settings = load_settings()
        configure_logging(
            level=settings.log_level, fmt=settings.log_format, secrets=settings.secret_values()
        )
    if database is None:
        database = Database(settings.resolved_database_url())

    app = Flask("nettrace")
    app.config["MAX_CONTENT_LENGTH"] = settings.api_max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    install(
        app,
        ApiState(
            settings=settings,
            database=database,
            signals=SignalStore(database),
            tokens=TokenStore(database),
            head_revision=head_revision(),
        ),
    )
    app.extensions[health.OPENAPI_KEY] = build_openapi(settings)
    register_error_handlers(app)

    # Authentication first: the limiter below keys its counters by the authenticated region.
    app.before_request(auth.authenticate)
    # Registered before the limiter, so it runs after the limiter's header injection (Flask
    # runs after_request functions in reverse): Retry-After only where it means something.
    app.after_request(_retry_after_only_when_refused)
    limiter = Limiter(
        auth.rate_limit_key,
        app=app,
        default_limits=[settings.api_rate_limit],
        storage_uri=settings.api_rate_limit_storage_uri,
        headers_enabled=True,
        retry_after="delta-seconds",
    )
    limiter.exempt(health.blueprint)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(signals_api.blueprint)
    app.register_blueprint(control.blueprint)
    return app


def _retry_after_only_when_refused(response: Response) -> Response:
    """Flask-Limiter adds ``Retry-After`` to every response; keep it on 429 and 503 only."""
    if response.status_code not in (429, 503):
        response.headers.pop("Retry-After", None)
    return response
