"""The region table (DESIGN §1): which regions exist, which one trades, what each scout watches.

Adding a scout region is configuration, not code: the defaults below describe the network of
DESIGN §1, and an optional TOML file (``$NETTRACE_REGIONS_FILE``) is merged over them, region
by region and field by field. A file looks like this::

    [regions.fra]
    role = "scout"
    exchanges = ["bitvavo", { id = "kraken", symbols = ["BTC/EUR"] }]

    [regions.ewr]
    url = "https://nettrace-ewr.example"

Everything is validated with pydantic before anyone uses it: an unknown role, a region code
that is not three lower-case letters, an exchange id ccxt does not know, or anything but exactly
one primary raises ``RegionConfigError`` whose one-line message names the offending field.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

REGIONS_FILE_ENV: Final = "NETTRACE_REGIONS_FILE"
_REGION_CODE = re.compile(r"[a-z]{3}")
DEFAULT_SYMBOLS: Final[tuple[str, ...]] = ("BTC/USD",)

Role = Literal["primary", "scout"]


class RegionConfigError(ValueError):
    """The region table is invalid; the message is one line naming the field and the problem."""


def _known_exchange_ids() -> frozenset[str]:
    # Imported here, not at module level: ccxt takes ~0.4 s to import and only validation
    # needs its list of ids.
    import ccxt

    return frozenset(ccxt.exchanges)


class ExchangeWatch(BaseModel):
    """One exchange a scout monitors: its ccxt id and the symbols (ccxt form) to watch there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS

    @field_validator("id")
    @classmethod
    def _known_ccxt_id(cls, value: str) -> str:
        if value not in _known_exchange_ids():
            raise ValueError(f"unknown ccxt exchange id {value!r} (see ccxt.exchanges)")
        return value

    @field_validator("symbols")
    @classmethod
    def _ccxt_symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for symbol in value:
            if not re.fullmatch(r"[A-Z0-9]+/[A-Z0-9]+", symbol):
                raise ValueError(f"symbol {symbol!r} is not in ccxt form such as 'BTC/USD'")
        if not value:
            raise ValueError("needs at least one symbol")
        return value


class Region(BaseModel):
    """One region: its role, optional public API URL and, for a scout, the exchanges it watches."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    description: str = ""
    #: The region's public base URL (scouts push to the primary's ``url``).
    url: str | None = None
    exchanges: tuple[ExchangeWatch, ...] = ()

    @field_validator("exchanges", mode="before")
    @classmethod
    def _shorthand(cls, value: object) -> object:
        # ``"kraken"`` is shorthand for ``{id = "kraken"}`` with the default symbols.
        if isinstance(value, list | tuple):
            return [{"id": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _primary_watches_nothing(self) -> Region:
        if self.role == "primary" and self.exchanges:
            raise ValueError("a primary region trades; exchange monitors belong to scouts")
        return self


class RegionTable(BaseModel):
    """All regions by code. Exactly one is the primary: the only region that places orders."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    regions: dict[str, Region] = Field(min_length=1)

    @field_validator("regions")
    @classmethod
    def _codes(cls, value: dict[str, Region]) -> dict[str, Region]:
        for code in value:
            if not _REGION_CODE.fullmatch(code):
                raise ValueError(
                    f"region code {code!r} must be three lower-case letters such as ewr or lhr"
                )
        return value

    @model_validator(mode="after")
    def _one_primary(self) -> RegionTable:
        primaries = sorted(
            code for code, region in self.regions.items() if region.role == "primary"
        )
        if len(primaries) != 1:
            raise ValueError(
                f"exactly one region must have role 'primary', found {len(primaries)}"
                + (f" ({', '.join(primaries)})" if primaries else "")
            )
        return self

    @property
    def primary(self) -> str:
        """The code of the primary region."""
        return next(code for code, region in self.regions.items() if region.role == "primary")

    def codes(self) -> list[str]:
        """Every configured region code, sorted."""
        return sorted(self.regions)

    def get(self, code: str) -> Region | None:
        return self.regions.get(code)


#: DESIGN §1's network. Exchanges are real ccxt ids near each region; symbols in each venue's
#: own quote currency.
DEFAULT_REGIONS: Final[Mapping[str, Mapping[str, Any]]] = {
    "ewr": {"role": "primary", "description": "trading brain (the only region placing orders)"},
    "lhr": {
        "role": "scout",
        "description": "European exchange monitoring",
        "exchanges": [
            {"id": "kraken", "symbols": ["BTC/USD", "ETH/USD"]},
            {"id": "bitstamp", "symbols": ["BTC/USD", "ETH/USD"]},
        ],
    },
    "nrt": {
        "role": "scout",
        "description": "Asian exchange monitoring",
        "exchanges": [
            {"id": "bitflyer", "symbols": ["BTC/JPY"]},
            {"id": "coincheck", "symbols": ["BTC/JPY"]},
            {"id": "bitbank", "symbols": ["BTC/JPY"]},
        ],
    },
    "sin": {
        "role": "scout",
        "description": "SE-Asian exchange monitoring",
        "exchanges": [
            {"id": "indodax", "symbols": ["BTC/IDR"]},
            {"id": "tokocrypto", "symbols": ["BTC/USDT"]},
        ],
    },
    "ord": {
        "role": "scout",
        "description": "US exchange monitoring (future)",
        "exchanges": [
            {"id": "coinbase", "symbols": ["BTC/USD"]},
            {"id": "gemini", "symbols": ["BTC/USD"]},
        ],
    },
    "fra": {
        "role": "scout",
        "description": "Central-European exchange monitoring (future)",
        "exchanges": [{"id": "bitvavo", "symbols": ["BTC/EUR"]}],
    },
    "bom": {
        "role": "scout",
        "description": "Indian exchange monitoring (future)",
        "exchanges": [{"id": "zebpay", "symbols": ["BTC/INR"]}],
    },
}


def build_region_table(
    overrides: Mapping[str, Mapping[str, Any]] | None = None, *, source: str = "region table"
) -> RegionTable:
    """The defaults with ``overrides`` merged over them (per region, per field), validated.

    ``source`` prefixes error messages so the operator knows which file to fix.
    """
    merged: dict[str, dict[str, Any]] = {code: dict(spec) for code, spec in DEFAULT_REGIONS.items()}
    for code, spec in (overrides or {}).items():
        if not isinstance(spec, Mapping):
            raise RegionConfigError(f"{source}: regions.{code} must be a table")
        merged.setdefault(str(code), {}).update(spec)
    try:
        return RegionTable.model_validate({"regions": merged})
    except ValidationError as exc:
        raise RegionConfigError(f"{source}: {_describe(exc)}") from None


def load_regions(path: Path | None = None, env: Mapping[str, str] | None = None) -> RegionTable:
    """The region table: defaults, plus ``path`` (default ``$NETTRACE_REGIONS_FILE``) if given."""
    environ = os.environ if env is None else env
    if path is None and environ.get(REGIONS_FILE_ENV):
        path = Path(environ[REGIONS_FILE_ENV])
    if path is None:
        return build_region_table()
    if not path.is_file():
        raise RegionConfigError(f"regions file {str(path)!r} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RegionConfigError(f"regions file {str(path)!r} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"regions"})
    if unknown:
        raise RegionConfigError(
            f"regions file {str(path)!r}: unknown key {unknown[0]!r} (expected [regions.<code>])"
        )
    regions = data.get("regions", {})
    if not isinstance(regions, dict):
        raise RegionConfigError(f"regions file {str(path)!r}: regions must be a table")
    return build_region_table(regions, source=f"regions file {str(path)!r}")


def _describe(exc: ValidationError) -> str:
    """The first error as ``field.path: reason (got value)``."""
    error = exc.errors()[0]
    loc = ".".join(str(part) for part in error["loc"])
    reason = str(error["msg"]).removeprefix("Value error, ")
    got = "" if error["type"] == "value_error" else f" (got {error.get('input')!r})"
    return f"{loc}: {reason}{got}" if loc else f"{reason}{got}"
