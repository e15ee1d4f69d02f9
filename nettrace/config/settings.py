"""One settings object for the whole process.

Sources, strongest first: the environment (``NETTRACE_*``, plus the deployment's own
``FLY_REGION``, ``PRIMARY_REGION`` and ``DATABASE_URL``), then an optional TOML config file,
then the defaults. Secrets are read only from the environment: a config file that holds one is
refused, so a file committed by mistake cannot leak a key.

Trading thresholds here can only be tightened: their bounds come from ``agent_goals``, so a
setting looser than the law is an invalid setting, not a silent override.
"""

from __future__ import annotations

import difflib
import hmac
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from nettrace.agents.agent_goals import (
    DEFAULT_ENTRY_MARGIN,
    MIN_CONFIDENCE,
    MIN_SIGNAL_COUNT,
    GoalThresholds,
)
from nettrace.agents.risk_controller import RiskLimits
from nettrace.config.errors import SettingsError as SettingsError  # re-exported
from nettrace.domain.fees import DEFAULT_MAKER_FEE, DEFAULT_TAKER_FEE, FeeSchedule

ENV_PREFIX = "NETTRACE_"
CONFIG_ENV_VAR = "NETTRACE_CONFIG"
_DEFAULTS = RiskLimits()
_REGION_CODE = re.compile(r"[a-z]{3}")
#: The seed's HANDOFF.md in the checkout (``agents/HANDOFF.md``), relative to the working
#: directory the process starts in.
DEFAULT_HANDOFF_PATH = Path("agents") / "HANDOFF.md"

DEFAULT_RATE_LIMIT = "200/second"

#: The database backends NetTrace supports (SQLAlchemy backend names, any driver).
SUPPORTED_DATABASES: tuple[str, ...] = ("sqlite", "postgresql")

#: NETTRACE_* variables that are read outside ``Settings`` (by the module named beside each).
#: ``load_settings`` refuses any other NETTRACE_* name that is not a setting, so a misspelled
#: variable is an error instead of being silently ignored. Adding a variable read elsewhere?
#: Add its name here (``tests/unit/config/test_env_registry.py`` checks the source for strays).
EXTRA_ENV_VARS: tuple[str, ...] = (
    "NETTRACE_CONFIG",  # this module: the TOML settings file
    "NETTRACE_REGIONS_FILE",  # config/regions.py
    "NETTRACE_SCOUT_FEED",  # market/replay.py
    "NETTRACE_REPLAY_SPEED",  # market/replay.py
    "NETTRACE_REPLAY_ANCHOR",  # market/replay.py
    "NETTRACE_SHARED_DATA",  # market/shared_data.py: the candle data folder
    "NETTRACE_PAPER_KILL_AFTER_ORDERS",  # cli/run.py (crash-test hook)
    "NETTRACE_TEST_DATABASE_URL",  # tests/conftest.py: PostgreSQL for the tests
    "NETTRACE_BENCH_DATABASE_URL",  # benchmarks/
    "NETTRACE_API_HOST",  # agents/primary_trader.py: where the primary's API listens
    "NETTRACE_API_PORT",  # agents/primary_trader.py
    "NETTRACE_TRADE_SYMBOL",  # agents/primary_trader.py: the pair the primary trades
    "NETTRACE_TRADE_FEED",  # agents/primary_trader.py: replay[:DIR] (or live: not trading)
    "NETTRACE_TRADE_CASH",  # agents/primary_trader.py: a new paper account's cash
    "NETTRACE_READ_TOKEN",  # cli/run.py: --scouts-url's bearer token
)
#: Patterns of NETTRACE_* names read outside ``Settings``: live exchange keys
#: ``NETTRACE_<EXCHANGE>_API_KEY`` / ``NETTRACE_<EXCHANGE>_SECRET`` (cli/run.py).
EXTRA_ENV_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"NETTRACE_[A-Z0-9]+_API_KEY"),
    re.compile(r"NETTRACE_[A-Z0-9]+_SECRET"),
)


class ExchangeFees(BaseModel):
    """One exchange's maker and taker rates, as fractions of notional (0.001 = 0.10%)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    maker: float = Field(ge=0.0, lt=1.0)
    taker: float = Field(ge=0.0, lt=1.0)


class Settings(BaseSettings):
    """Process settings. Read them with ``load_settings()``; the object is immutable."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        populate_by_name=True,
        frozen=True,
        case_sensitive=False,
    )

    # --- Deployment -------------------------------------------------------------------------
    region: str = Field(
        "ewr",
        validation_alias=AliasChoices("FLY_REGION", "NETTRACE_REGION"),
        description="This process's region code (Fly.io's FLY_REGION).",
    )
    primary_region: str = Field(
        "ewr",
        validation_alias=AliasChoices("PRIMARY_REGION", "NETTRACE_PRIMARY_REGION"),
        description="The only region allowed to place orders.",
    )
    database_url: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("DATABASE_URL", "NETTRACE_DATABASE_URL"),
        description="SQLAlchemy URL; a SQLite file under data_dir when unset.",
    )
    data_dir: Path = Field(
        Path.home() / ".nettrace",
        description="Where the default SQLite database and candle files live.",
    )
    mode: Literal["paper", "live"] = Field(
        "paper", description="Paper trading unless live is asked for explicitly."
    )
    handoff_path: Path | None = Field(
        DEFAULT_HANDOFF_PATH,
        validate_default=True,
        description=(
            "The operator's HANDOFF.md (`nettrace handoff`); a HARDSTOP line in it halts "
            "trading. A relative path is taken from the working directory at start (default: "
            "the checkout's agents/HANDOFF.md); a missing file says nothing, an unreadable one "
            "halts; empty: none."
        ),
    )
    hardstop_action: Literal["halt", "flatten"] = Field(
        "halt",
        description=(
            "What HARDSTOP does to open positions: halt (keep each position's protective stop) "
            "or flatten (close every position at market, reason hardstop)."
        ),
    )

    # --- Logging ----------------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: readable on a terminal, JSON otherwise."
    )

    # --- Fees (fractions of notional) -------------------------------------------------------
    maker_fee: float = Field(DEFAULT_MAKER_FEE, ge=0.0, lt=1.0)
    taker_fee: float = Field(DEFAULT_TAKER_FEE, ge=0.0, lt=1.0)
    exchange_fees: dict[str, ExchangeFees] = Field(
        default_factory=dict,
        description=(
            "Per-exchange fee schedules over maker_fee/taker_fee, by ccxt id: "
            'JSON {"binance": {"maker": 0.001, "taker": 0.001}} or a TOML table.'
        ),
    )

    # --- The gate: may only be tightened ----------------------------------------------------
    min_confidence: float = Field(MIN_CONFIDENCE, ge=MIN_CONFIDENCE, le=1.0)
    min_signal_count: int = Field(MIN_SIGNAL_COUNT, ge=MIN_SIGNAL_COUNT)
    entry_margin: float = Field(DEFAULT_ENTRY_MARGIN, ge=DEFAULT_ENTRY_MARGIN, lt=1.0)

    # --- Risk budget (fractions of equity unless named otherwise) ---------------------------
    max_position_fraction: float = Field(_DEFAULTS.max_position_fraction, gt=0.0, le=1.0)
    risk_per_trade: float = Field(_DEFAULTS.risk_per_trade, gt=0.0, le=1.0)
    atr_stop_multiple: float = Field(_DEFAULTS.atr_stop_multiple, gt=0.0)
    max_open_positions: int = Field(_DEFAULTS.max_open_positions, ge=1)
    max_total_exposure: float = Field(_DEFAULTS.max_total_exposure, gt=0.0, le=1.0)
    max_drawdown: float = Field(_DEFAULTS.max_drawdown, gt=0.0, le=1.0)
    take_profit_atr_multiple: float = Field(_DEFAULTS.take_profit_atr_multiple, gt=0.0)
    max_exit_reprices: int = Field(_DEFAULTS.max_exit_reprices, ge=0)
    entry_ttl_bars: int = Field(_DEFAULTS.entry_ttl_bars, ge=1)

    # --- Signals API (the primary's HTTP endpoints) -----------------------------------------
    api_max_body_bytes: int = Field(
        1_048_576,
        ge=1024,
        description="Largest request body the API reads (bytes); bigger bodies get 413.",
    )
    api_max_batch: int = Field(
        1000, ge=1, le=100_000, description="Most signals one push may carry."
    )
    api_rate_limit: str = Field(
        DEFAULT_RATE_LIMIT,
        min_length=1,
        description="Per-region-token request limit (Flask-Limiter syntax, e.g. '200/second').",
    )
    api_rate_limit_storage_uri: str = Field(
        "memory://",
        description=(
            "Where rate-limit counters live; memory:// counts per process, so with N gunicorn "
            "workers the effective limit is N times higher (use redis:// to share them)."
        ),
    )
    api_clock_skew_s: float = Field(
        60.0, ge=0.0, le=3600.0, description="How far in the future a signal's ts may lie (s)."
    )
    api_max_ttl_s: float = Field(
        86_400.0, gt=0.0, description="Longest ttl_s a pushed signal may carry (s)."
    )
    api_stale_after_s: float = Field(
        120.0,
        gt=0.0,
        description="A region not heard from for this long is stale; its signals are not counted.",
    )

    # --- Scouts -----------------------------------------------------------------------------
    primary_url: str | None = Field(
        None,
        description="A scout's primary: base URL of its signals API (e.g. http://127.0.0.1:8080).",
    )

    # --- Secrets: environment only ----------------------------------------------------------
    exchange_api_key: SecretStr | None = None
    exchange_api_secret: SecretStr | None = None
    operator_token: SecretStr | None = None
    #: A scout's bearer token for the primary (``nettrace tokens issue --region R``).
    scout_token: SecretStr | None = None

    @field_validator("region", "primary_region", mode="before")
    @classmethod
    def _valid_region(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().lower()
            if not _REGION_CODE.fullmatch(value):
                raise ValueError("must be a three-letter region code such as ewr, lhr, nrt or sin")
        return value

    @field_validator("handoff_path", mode="before")
    @classmethod
    def _no_handoff(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("handoff_path")
    @classmethod
    def _absolute_handoff(cls, value: Path | None) -> Path | None:
        # Resolved once, at start: a later chdir must not move the kill switch.
        return None if value is None else Path.cwd() / value.expanduser()

    @field_validator("api_rate_limit")
    @classmethod
    def _valid_rate_limit(cls, value: str) -> str:
        if value == DEFAULT_RATE_LIMIT:
            return value  # valid, and checking it would import `limits` on every start
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError:
            raise ValueError(
                "not a rate limit such as '200/second' or '10/second;500/minute'"
            ) from None
        return value

    @field_validator("database_url")
    @classmethod
    def _valid_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value.get_secret_value())
        except ArgumentError:
            raise ValueError("not a valid SQLAlchemy database URL") from None
        if url.get_backend_name() not in SUPPORTED_DATABASES:
            shown = url.render_as_string(hide_password=True)
            raise ValueError(
                f"unsupported database {shown!r}: the scheme must be one of "
                f"{', '.join(SUPPORTED_DATABASES)} (e.g. postgresql://user@127.0.0.1:5432/db)"
            )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment beats the config file (passed as init values): a deployment's
        # variables must be able to override a checked-in file.
        return (env_settings, init_settings)

    # --- Derived objects --------------------------------------------------------------------
    @property
    def is_primary(self) -> bool:
        return self.region == self.primary_region

    def resolved_database_url(self) -> str:
        """The database URL to connect to (a secret: never log it, see ``database_display``)."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.data_dir.expanduser() / 'nettrace.db'}"

    def database_display(self) -> str:
        """The database URL with any password masked, safe to print and log."""
        if self.database_url is None:
            return self.resolved_database_url()  # the default SQLite file: no password
        from sqlalchemy.engine import make_url

        return make_url(self.resolved_database_url()).render_as_string(hide_password=True)

    def fees(self, exchange: str | None = None) -> FeeSchedule:
        """The fee schedule of ``exchange`` (its entry in ``exchange_fees``), else the default."""
        own = self.exchange_fees.get(exchange.lower()) if exchange else None
        if own is not None:
            return FeeSchedule(maker=own.maker, taker=own.taker)
        return FeeSchedule(maker=self.maker_fee, taker=self.taker_fee)

    def goal_thresholds(self) -> GoalThresholds:
        return GoalThresholds(
            min_confidence=self.min_confidence,
            min_signal_count=self.min_signal_count,
            entry_margin=self.entry_margin,
        )

    def risk_limits(self) -> RiskLimits:
        return RiskLimits(
            max_position_fraction=self.max_position_fraction,
            risk_per_trade=self.risk_per_trade,
            atr_stop_multiple=self.atr_stop_multiple,
            max_open_positions=self.max_open_positions,
            max_total_exposure=self.max_total_exposure,
            max_drawdown=self.max_drawdown,
            take_profit_atr_multiple=self.take_profit_atr_multiple,
            max_exit_reprices=self.max_exit_reprices,
            entry_ttl_bars=self.entry_ttl_bars,
        )

    def is_operator_token(self, token: str) -> bool:
        """Is ``token`` the configured operator token? Constant time; False when none is set.

        The one check for the operator, used by the API (bearer token) and the CLI.
        """
        if self.operator_token is None or not token:
            return False
        return hmac.compare_digest(token.encode(), self.operator_token.get_secret_value().encode())

    def secret_values(self) -> list[str]:
        """Every secret's plain value (and the database password), for log redaction."""
        values = [
            secret.get_secret_value()
            for secret in (
                self.exchange_api_key,
                self.exchange_api_secret,
                self.operator_token,
                self.scout_token,
            )
            if secret is not None
        ]
        if self.database_url is not None:
            password = _password(self.database_url.get_secret_value())
            if password:
                values.append(password)
        return [value for value in values if value]

    def safe_dump(self) -> dict[str, Any]:
        """All settings with secrets masked: what ``nettrace`` may print or log."""
        dumped = self.model_dump(mode="json")
        for name in SECRET_FIELDS:
            if dumped.get(name) is not None:
                dumped[name] = "**********"
        dumped["database_url"] = self.database_display()
        return dumped


SECRET_FIELDS: frozenset[str] = frozenset(
    {"exchange_api_key", "exchange_api_secret", "operator_token", "scout_token"}
)


def env_name(field: str) -> str:
    """The environment variable that sets ``field`` (its first alias, else the prefixed name)."""
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings(
    config_file: Path | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Read the settings, raising ``SettingsError`` (one line) on anything invalid.

    ``config_file`` defaults to ``$NETTRACE_CONFIG`` when that is set. ``env`` is only for
    finding that variable in tests; the settings themselves always come from ``os.environ``.
    """
    environ = os.environ if env is None else env
    _refuse_unknown_variables(environ)
    if config_file is None and environ.get(CONFIG_ENV_VAR):
        config_file = Path(environ[CONFIG_ENV_VAR])
    file_values = _read_config_file(config_file) if config_file is not None else {}
    try:
        return Settings(**file_values)
    except ValidationError as exc:
        secrets = _secrets_in(os.environ)
        raise SettingsError(_redact(_describe(exc, secrets), secrets)) from None


def known_env_vars() -> frozenset[str]:
    """Every NETTRACE_* (and deployment) variable name that NetTrace reads, upper case."""
    names = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    for info in Settings.model_fields.values():
        if isinstance(info.validation_alias, AliasChoices):
            names.update(str(choice).upper() for choice in info.validation_alias.choices)
    names.update(EXTRA_ENV_VARS)
    return frozenset(names)


def is_known_env_var(name: str) -> bool:
    upper = name.upper()
    return upper in known_env_vars() or any(p.fullmatch(upper) for p in EXTRA_ENV_PATTERNS)


def _refuse_unknown_variables(environ: Mapping[str, str]) -> None:
    known = known_env_vars()
    for name in sorted(environ):
        if name.upper().startswith(ENV_PREFIX) and not is_known_env_var(name):
            raise SettingsError(
                f"unknown environment variable {name}{_did_you_mean(name.upper(), known)}"
            )


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean X?)`` for the closest known name, else ``""``."""
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _secrets_in(environ: Mapping[str, str]) -> list[str]:
    """The secret values the environment holds (and the database password), for redaction."""
    values = [environ.get(env_name(name), "") for name in sorted(SECRET_FIELDS)]
    for var in ("DATABASE_URL", "NETTRACE_DATABASE_URL"):
        values.append(_password(environ.get(var, "")) or "")
    return [value for value in values if value]


def _redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value masked (a value that is a secret is masked whole by
    ``_describe``; here, a secret shorter than 4 characters is left alone inside other words)."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, "**********")
    return text


def _password(url: str) -> str | None:
    if not url:
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        password = make_url(url).password
    except ArgumentError:
        return None
    return str(password) if password else None


def _read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SettingsError(f"config file {str(path)!r} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    table = data.get("nettrace", data)
    if not isinstance(table, dict):
        raise SettingsError(f"config file {str(path)!r}: [nettrace] must be a table")
    unknown = sorted(set(table) - set(Settings.model_fields))
    if unknown:
        hint = _did_you_mean(unknown[0], Settings.model_fields) or (
            " (known: see `nettrace config show`)"
        )
        raise SettingsError(f"config file {str(path)!r}: unknown setting {unknown[0]!r}{hint}")
    for name in sorted(SECRET_FIELDS & set(table)):
        raise SettingsError(
            f"config file {str(path)!r}: {name} is a secret and must come from the "
            f"environment ({env_name(name)}), never from a file"
        )
    url = table.get("database_url")
    if isinstance(url, str) and _has_password(url):
        raise SettingsError(
            f"config file {str(path)!r}: database_url holds a password; set DATABASE_URL "
            "in the environment instead"
        )
    return dict(table)


def _has_password(url: str) -> bool:
    return _password(url) is not None


def _describe(exc: ValidationError, secrets: Iterable[str] = ()) -> str:
    """The first validation error as one line: setting, bad value (masked if secret), reason."""
    error = exc.errors()[0]
    loc = str(error["loc"][0]) if error["loc"] else "?"
    field = _field_for(loc)
    value = error.get("input")
    shown = (
        "<hidden>"
        if field in SECRET_FIELDS or field == "database_url"
        else "'**********'"
        if isinstance(value, str) and value in set(secrets)
        else repr(value)
    )
    reason = str(error["msg"]).removeprefix("Value error, ")
    # A nested setting (exchange_fees) names the entry too: NETTRACE_EXCHANGE_FEES.binance.maker
    inner = "".join(f".{part}" for part in error["loc"][1:])
    return f"invalid setting {env_name(field)}{inner} = {shown}: {reason}"


def _field_for(loc: str) -> str:
    if loc in Settings.model_fields:
        return loc
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices) and loc.upper() in {
            str(choice).upper() for choice in alias.choices
        }:
            return name
        if loc.upper() == f"{ENV_PREFIX}{name.upper()}":
            return name
    return loc
