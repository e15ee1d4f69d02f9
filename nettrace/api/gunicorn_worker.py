"""gunicorn's ``gthread`` worker, with the errors gunicorn answers itself written as JSON.

gunicorn refuses some requests before the WSGI app sees them (a request line over
``limit_request_line``: 414; a header over ``limit_request_field_size`` or too many headers:
431; a malformed request: 400) and answers them with an HTML page. This worker keeps every
status and decision gunicorn makes and only replaces the page with the API's ``ErrorResponse``
JSON. Production: ``gunicorn -k nettrace.api.gunicorn_worker.JsonErrorThreadWorker ...``.
"""

from __future__ import annotations

from typing import Any

from gunicorn import util  # type: ignore[import-untyped]
from gunicorn.workers.gthread import ThreadWorker  # type: ignore[import-untyped]

from nettrace.api.schemas import ErrorResponse


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """``gunicorn.util.write_error`` with an ``ErrorResponse`` body instead of HTML."""
    code = "".join(c if c.isalnum() else "_" for c in reason.lower()).strip("_") or "error"
    body = ErrorResponse(error=code, message=mesg or reason).model_dump_json(exclude_none=True)
    payload = body.encode("utf-8")
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + payload)


class JsonErrorThreadWorker(ThreadWorker):  # type: ignore[misc]
    """``-k gthread`` whose own error answers (414, 431, 400, ...) are JSON."""

    def init_process(self) -> None:
        # In this worker process only (after the fork): gunicorn's handle_error writes through
        # ``util.write_error``; the statuses and logging stay gunicorn's.
        util.write_error = write_json_error
        super().init_process()
