"""Request and response models of the HTTP API (pydantic); the OpenAPI document is built from them.

Request models are *strict* and forbid unknown fields, so that what the API accepts is exactly
what its published JSON Schema allows: a string where a number belongs, a naive timestamp, NaN or
infinity, or a misspelt field is refused with the field named, never coerced. Limits that depend
on settings (future-skew of ``ts``, the longest ``ttl_s``, the batch size) are checked against a
validation context built per request (``PushContext``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationInfo,
    field_validator,
)
from pydantic.config import JsonDict

#: Largest ``meta`` object (bytes of compact JSON): meta annotates a signal, it is not a payload.
MAX_META_BYTES: Final = 4096
MAX_META_KEYS: Final = 32

REGION_PATTERN: Final = r"^[a-z]{3}$"
ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$"
SOURCE_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$"
EXCHANGE_PATTERN: Final = r"^[a-z0-9][a-z0-9_]{0,63}$"
#: ccxt unified symbols: BASE/QUOTE, with :SETTLE for derivatives (BTC/USD, BTC/USDT:USDT).
SYMBOL_PATTERN: Final = r"^[A-Za-z0-9]{1,24}/[A-Za-z0-9]{1,24}(:[A-Za-z0-9]{1,24})?$"
#: A HARDSTOP reason: free text with at least one non-blank character and no NUL (PostgreSQL
#: text cannot hold one). The document states this pattern and ``_reason`` checks the very same
#: one (with Python's ``re``, as schemathesis does), so the two agree on every string.
REASON_PATTERN: Final = r"^[^\x00]*[^\s\x00][^\x00]*$"
MAX_REASON_LEN: Final = 2000
_REASON_SCHEMA: Final[JsonDict] = {"pattern": REASON_PATTERN}

Side = Literal["BUY", "SELL", "HOLD"]

#: RFC 3339 ``date-time`` (JSON Schema's ``format: date-time``): a full date, a full time and an
#: offset. What the document promises for ``since``; a bare number (a Unix time to pydantic's
#: lax mode) or a date alone is not one.
RFC3339_DATE_TIME: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})\Z"
)


def _integral(value: object) -> object:
    """JSON Schema's ``integer`` includes ``5.0`` (a number with a zero fractional part): accept
    integral floats as the int they are. ``5.5``, NaN and infinity stay floats and are refused."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: An ``integer`` of the document: a JSON int, or a float with no fractional part.
JsonInt = Annotated[int, BeforeValidator(_integral)]


@dataclass(frozen=True)
class PushContext:
    """Per-request limits for validating a push (from the settings and the server clock)."""

    now: datetime
    clock_skew_s: float
    max_ttl_s: float
    max_batch: int


def _context(info: ValidationInfo) -> PushContext | None:
    ctx = info.context
    if isinstance(ctx, dict):
        found = ctx.get("push")
        return found if isinstance(found, PushContext) else None
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)


class SignalIn(_Strict):
    """One signal as a scout pushes it (DESIGN §3)."""

    id: str = Field(pattern=ID_PATTERN, max_length=128, description="Idempotency key.")
    source: str = Field(pattern=SOURCE_PATTERN, max_length=64, description="Signal generator.")
    source_region: str = Field(pattern=REGION_PATTERN, description="Must be the token's region.")
    exchange: str = Field(pattern=EXCHANGE_PATTERN, max_length=64, description="ccxt exchange id.")
    symbol: str = Field(pattern=SYMBOL_PATTERN, max_length=64, description="ccxt form, BTC/USD.")
    side: Side
    confidence: float = Field(ge=0.0, le=1.0, description="A fraction in [0, 1].")
    ts: AwareDatetime = Field(description="When the signal was produced; RFC 3339 with offset.")
    ttl_s: float = Field(gt=0.0, description="Seconds after ts during which the signal is fresh.")
    meta: dict[str, Any] = Field(
        default_factory=dict,
        max_length=MAX_META_KEYS,
        description=f"Small JSON object (at most {MAX_META_BYTES} bytes).",
    )

    @field_validator("ts")
    @classmethod
    def _not_in_the_future(cls, value: datetime, info: ValidationInfo) -> datetime:
        try:
            value = value.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00+01:00 has no UTC equivalent
            raise ValueError("ts is outside the representable UTC range") from None
        ctx = _context(info)
        if ctx is not None and value > ctx.now + timedelta(seconds=ctx.clock_skew_s):
            raise ValueError(
                f"ts lies more than {ctx.clock_skew_s:g} s in the future (server clock)"
            )
        return value

    @field_validator("ttl_s")
    @classmethod
    def _ttl_bounded(cls, value: float, info: ValidationInfo) -> float:
        ctx = _context(info)
        if ctx is not None and value > ctx.max_ttl_s:
            raise ValueError(f"ttl_s must be at most {ctx.max_ttl_s:g} s")
        return value

    @field_validator("meta")
    @classmethod
    def _small_json(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            encoded = json.dumps(value, allow_nan=False, separators=(",", ":"))
        except (ValueError, TypeError):
            raise ValueError("meta must be plain JSON without NaN or infinity") from None
        if len(encoded.encode("utf-8")) > MAX_META_BYTES:
            raise ValueError(f"meta must be at most {MAX_META_BYTES} bytes of JSON")
        return value


class HeartbeatIn(_Strict):
    """A scout's liveness report, sent when it has had nothing to push for a while."""

    source_region: str = Field(pattern=REGION_PATTERN)
    scout_id: str | None = Field(default=None, max_length=128)
    ts: AwareDatetime | None = None
    last_seq: JsonInt | None = Field(default=None, ge=0)
    pending: JsonInt | None = Field(default=None, ge=0)
    quarantined: JsonInt | None = Field(default=None, ge=0)
    dropped_expired: JsonInt | None = Field(default=None, ge=0)


class PushRequest(_Strict):
    """A batch of signals (possibly empty) and an optional heartbeat."""

    signals: list[SignalIn] = Field(description="The batch; repeated ids are stored once.")
    heartbeat: HeartbeatIn | None = None

    @field_validator("signals")
    @classmethod
    def _batch_size(cls, value: list[SignalIn], info: ValidationInfo) -> list[SignalIn]:
        ctx = _context(info)
        if ctx is not None and len(value) > ctx.max_batch:
            raise ValueError(f"at most {ctx.max_batch} signals per push")
        return value


class PushResponse(BaseModel):
    """``accepted + duplicates`` always equals the number of signals sent."""

    region: str
    accepted: int = Field(ge=0, description="Newly stored signals.")
    duplicates: int = Field(ge=0, description="Already stored, or repeated within the batch.")


class SignalOut(BaseModel):
    id: str
    source: str
    source_region: str
    exchange: str
    symbol: str
    side: Side
    confidence: float
    ts: datetime
    ttl_s: float
    meta: dict[str, Any]
    received_at: datetime


class RegionOut(BaseModel):
    region: str
    last_heard_at: datetime | None = Field(description="Last push or heartbeat; null if never.")
    age_s: float | None = Field(description="Seconds since last heard; null if never.")
    stale: bool = Field(description="Silent past the staleness limit: do not count its signals.")
    signals: list[SignalOut]


class CrossRegionResponse(BaseModel):
    as_of: datetime
    stale_after_s: float
    regions: dict[str, RegionOut]


class CrossRegionQuery(BaseModel):
    """Query string of ``GET /api/v1/signals/cross-region`` (all optional).

    Unknown parameters are refused: a misspelt filter (``symbl=``) silently returning every
    symbol is the kind of mistake that ends in a wrong trade.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    symbol: str | None = Field(default=None, pattern=SYMBOL_PATTERN, max_length=64)
    exchange: str | None = Field(default=None, pattern=EXCHANGE_PATTERN, max_length=64)
    since: AwareDatetime | None = Field(default=None, description="Only signals with ts >= since.")
    limit: int = Field(default=1000, ge=1, le=10_000)

    @field_validator("since", mode="before")
    @classmethod
    def _rfc3339(cls, value: object) -> object:
        """Only an RFC 3339 date-time, as the document says (``format: date-time``)."""
        if value is None:
            return None
        if not isinstance(value, str) or not RFC3339_DATE_TIME.match(value):
            raise ValueError(
                "since must be an RFC 3339 date-time with an offset, e.g. 2026-12-02T12:00:00Z"
            )
        return value

    @field_validator("since")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """Any valid RFC 3339 time is accepted; ones with no UTC equivalent are clamped."""
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError:
            if value.year == 1:
                return datetime.min.replace(tzinfo=UTC)
            return datetime.max.replace(tzinfo=UTC)


class HardstopRequest(BaseModel):
    """Body of ``POST`` (raise) and, optionally, ``DELETE`` (clear) ``/api/v1/control/hardstop``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field(
        min_length=1,
        max_length=MAX_REASON_LEN,
        json_schema_extra=_REASON_SCHEMA,
        description="Why (kept in the HARDSTOP log). Not blank.",
    )
    flatten: StrictBool = Field(
        default=False,
        description=(
            "Raise only: also close every position at market (reason hardstop) instead of "
            "keeping each position's protective stop. A clear ignores it."
        ),
    )

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        return _check_reason(value)


class HardstopClearQuery(BaseModel):
    """Query string of ``DELETE /api/v1/control/hardstop``: the reason, when there is no body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_REASON_LEN,
        json_schema_extra=_REASON_SCHEMA,
        description="Why it is safe to trade again, if no JSON body is sent (a body wins).",
    )

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str | None) -> str | None:
        return None if value is None else _check_reason(value)


def _check_reason(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if not re.match(REASON_PATTERN, value):
        raise ValueError("must not be blank")
    return value


class HardstopResponse(BaseModel):
    """The HARDSTOP latch as it stands after the request."""

    active: bool
    status: Literal["HALTED", "TRADING"] = Field(
        description="HALTED while HARDSTOP is raised, else TRADING."
    )
    source: str | None = None
    reason: str | None = None
    raised_at: datetime | None = None
    cleared_at: datetime | None = None
    cleared_by: str | None = None
    flatten: bool = Field(default=False, description="This raise closes every position at market.")


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body: a code, a sentence, and the offending field when there is one."""

    error: str
    message: str
    field: str | None = None
    details: list[ErrorDetail] | None = None


class HealthResponse(BaseModel):
    status: str


class ReadyResponse(BaseModel):
    status: str
    database: str
    revision: str | None = None
    head: str | None = None


def field_name(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a path: ``("signals", 3, "ttl_s")`` -> ``signals[3].ttl_s``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"
