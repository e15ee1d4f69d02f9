"""Structured logging for every NetTrace process, with secrets scrubbed before anything is written.

Readable lines on a terminal, one JSON object per line otherwise (Fly.io, CI, files). Logs go
to stderr so that command output on stdout stays clean for pipes.

Redaction happens in the last processor before rendering, so it sees the final text of
everything -- including formatted exceptions and messages from libraries that log through the
standard library (alembic, SQLAlchemy). Two nets: any key that sounds secret is masked
whatever its value, and any known secret value is cut out of every string it appears in.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

MASK = "**********"
_SENSITIVE_KEY = re.compile(
    r"secret|token|password|passwd|api[_-]?key|authorization|private[_-]?key|credential", re.I
)
# A secret shorter than this would mask ordinary words; such a secret is a configuration error
# elsewhere, not something the logger can protect.
_MIN_SECRET_LENGTH = 4

LogFormat = Literal["auto", "json", "console"]


class SecretRedactor:
    """A structlog processor that masks secret-looking keys and known secret values."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        unique = {s for s in secrets if s and len(s) >= _MIN_SECRET_LENGTH}
        # Longest first, so a secret containing another is masked whole.
        self._secrets = sorted(unique, key=len, reverse=True)

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        return {key: self._clean(key, value) for key, value in event_dict.items()}

    def _clean(self, key: str, value: Any) -> Any:
        if value is not None and _SENSITIVE_KEY.search(key):
            return MASK
        return self._scrub(value)

    def _scrub(self, value: Any) -> Any:
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return self._scrub_text(value)
        if isinstance(value, Mapping):
            return {str(k): self._clean(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._scrub(item) for item in value]
        # Anything else is rendered as text by the renderer; render it here so it is scrubbed.
        return self._scrub_text(repr(value))

    def _scrub_text(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text


def configure_logging(
    level: str = "INFO",
    fmt: LogFormat = "auto",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and the standard library's logging for this process.

    Call once at start-up with the settings' secret values; calling again replaces the setup
    (tests do this to capture output).
    """
    out = stream if stream is not None else sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not _is_terminal(out))
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=_is_terminal(out))
    )
    redactor = SecretRedactor(secrets)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            redactor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redactor,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)
    # Alembic narrates every connection at INFO; the CLI reports the outcome itself.
    logging.getLogger("alembic").setLevel(max(numeric_level, logging.WARNING))


def get_logger(name: str | None = None) -> structlog.typing.FilteringBoundLogger:
    """A structlog logger; use it with an event name and key-value context."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
