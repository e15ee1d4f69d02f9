"""``nettrace serve``: run the primary's HTTP API locally (werkzeug, threaded).

Errors the HTTP server refuses before the app sees the request (an over-long request line: 414,
over-long or too many headers: 431) are answered as JSON too (``nettrace.api.server``).
Production runs the same app under gunicorn (``gunicorn 'nettrace.app:create_app()'``); this
command exists so a developer or a local multi-region run needs no extra tooling.
"""

from __future__ import annotations

from typing import Annotated

import typer
from werkzeug.serving import run_simple

from nettrace.cli.context import state


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8080,
) -> None:
    """Serve the signals API (push, cross-region, healthz, readyz, OpenAPI) until Ctrl-C."""
    from nettrace.api.server import JsonErrorRequestHandler
    from nettrace.app import create_app  # flask loads only for this command

    settings = state(ctx).settings
    app = create_app(settings)
    typer.echo(
        f"NetTrace API for region {settings.region} on http://{host}:{port} "
        f"(database {settings.database_display()}); OpenAPI at /api/v1/openapi.json",
        err=True,
    )
    # Errors the HTTP server answers itself (414, 431, ...) are JSON too, like the app's.
    run_simple(
        host,
        port,
        app,
        threaded=True,
        use_reloader=False,
        request_handler=JsonErrorRequestHandler,
    )
