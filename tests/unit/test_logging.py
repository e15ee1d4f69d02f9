"""Logging: JSON off a terminal, and no secret value ever reaches the output."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from nettrace.config.settings import load_settings
from nettrace.observability.log import MASK, SecretRedactor, configure_logging, get_logger

SECRETS = {
    "NETTRACE_EXCHANGE_API_KEY": "key-AAAA1111",
    "NETTRACE_EXCHANGE_API_SECRET": "secret-BBBB2222",
    "NETTRACE_OPERATOR_TOKEN": "token-CCCC3333",
}
DB_PASSWORD = "dbpass-DDDD4444"


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://nettrace:{DB_PASSWORD}@127.0.0.1/db")
    settings = load_settings()
    stream = io.StringIO()
    configure_logging(level="DEBUG", fmt="json", secrets=settings.secret_values(), stream=stream)
    yield stream
    configure_logging(level="WARNING", fmt="json")


def _all_secret_values() -> list[str]:
    return [*SECRETS.values(), DB_PASSWORD]


def test_no_secret_value_reaches_the_log(captured: io.StringIO) -> None:
    settings = load_settings()
    log = get_logger("test")
    log.info("settings_loaded", settings=settings.safe_dump())
    # The careless ways a secret leaks: the whole settings object, a formatted message,
    # a plainly named field, a nested structure, an exception, a library's stdlib logger.
    log.info("settings_repr", settings=settings)
    log.info(f"connecting with {SECRETS['NETTRACE_EXCHANGE_API_SECRET']}")
    log.info("auth", api_key=SECRETS["NETTRACE_EXCHANGE_API_KEY"], harmless="visible")
    log.info("nested", payload={"headers": {"x": [SECRETS["NETTRACE_OPERATOR_TOKEN"]]}})
    log.debug("url", url=settings.resolved_database_url())
    try:
        raise RuntimeError(f"login failed for token {SECRETS['NETTRACE_OPERATOR_TOKEN']}")
    except RuntimeError:
        log.exception("login_failed")
    logging.getLogger("ccxt.base").warning("request with secret %s", DB_PASSWORD)

    output = captured.getvalue()
    lines = [json.loads(line) for line in output.splitlines()]
    assert len(lines) == 8
    for secret in _all_secret_values():
        assert secret not in output
    assert MASK in output
    assert lines[3]["harmless"] == "visible"
    assert lines[3]["api_key"] == MASK
    assert "login failed for token" in lines[6]["exception"]


def test_json_lines_carry_level_timestamp_and_context(captured: io.StringIO) -> None:
    get_logger("x").warning("order_refused", symbol="BTC/USD", reasons=["too few signals"])
    record = json.loads(captured.getvalue().splitlines()[-1])
    assert record["event"] == "order_refused"
    assert record["level"] == "warning"
    assert record["symbol"] == "BTC/USD"
    assert record["timestamp"].endswith("Z")


def test_level_filters_out_lower_events() -> None:
    stream = io.StringIO()
    configure_logging(level="WARNING", fmt="json", stream=stream)
    get_logger().info("chatty")
    get_logger().error("important")
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["important"]


def test_console_format_is_readable_text() -> None:
    stream = io.StringIO()
    configure_logging(level="INFO", fmt="console", stream=stream)
    get_logger().info("hello", region="ewr")
    text = stream.getvalue()
    assert "hello" in text
    assert "region" in text
    assert "ewr" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_auto_format_is_json_off_a_terminal() -> None:
    stream = io.StringIO()
    configure_logging(level="INFO", fmt="auto", stream=stream)
    get_logger().info("piped")
    assert json.loads(stream.getvalue())["event"] == "piped"


def test_redactor_masks_longest_secret_first_and_ignores_short_ones() -> None:
    redactor = SecretRedactor(["abcd", "abcdefgh", "ab"])
    out = redactor(None, "info", {"event": "abcdefgh and abcd and ab"})
    assert out["event"] == f"{MASK} and {MASK} and ab"


def teardown_module() -> None:
    structlog.reset_defaults()
