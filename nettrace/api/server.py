"""The HTTP server side of ``nettrace serve``: werkzeug's threaded server, JSON errors only.

Some requests are refused by the HTTP server itself, before the WSGI app (and Flask's JSON
error handlers) ever sees them: a request line over 64 KiB (414), a header line over 64 KiB or
more than 100 header fields (431), a malformed request line or version (400/505). Python's
``http.server`` answers those with an HTML page; ``JsonErrorRequestHandler`` answers them with
the same ``ErrorResponse`` JSON as every other error, so a client never parses HTML.
"""

from __future__ import annotations

from http import HTTPStatus

from werkzeug.serving import WSGIRequestHandler

from nettrace.api.schemas import ErrorResponse


def _error_code(code: int) -> str:
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        return "error"
    return "".join(c if c.isalnum() else "_" for c in phrase.lower()).strip("_").replace("__", "_")


class JsonErrorRequestHandler(WSGIRequestHandler):
    """werkzeug's request handler, with ``send_error`` writing a JSON ``ErrorResponse``."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        try:
            short, long = self.responses[code]
        except KeyError:
            short, long = "error", "error"
        text = message or short
        if explain and explain != long:
            text = f"{text}: {explain}"
        body = ErrorResponse(error=_error_code(code), message=text).model_dump_json(
            exclude_none=True
        )
        payload = body.encode("utf-8")
        self.log_error("code %d, message %s", code, text)
        self.send_response(code, short)
        self.send_header("Connection", "close")
        self.close_connection = True
        if code >= 200 and code not in (HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED):
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(payload)
