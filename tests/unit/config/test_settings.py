"""Settings: sources and their order, one-line errors, secrets only from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from nettrace.config.settings import Settings, SettingsError, env_name, load_settings
from nettrace.domain.fees import FeeSchedule


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("NETTRACE_") or key in {"FLY_REGION", "PRIMARY_REGION", "DATABASE_URL"}:
            monkeypatch.delenv(key)
    monkeypatch.setenv("NETTRACE_DATA_DIR", str(tmp_path / "data"))


def _toml(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "nettrace.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_defaults_are_paper_trading_in_the_primary_region(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.mode == "paper"
    assert settings.region == settings.primary_region == "ewr"
    assert settings.is_primary
    assert settings.resolved_database_url() == f"sqlite:///{tmp_path / 'data' / 'nettrace.db'}"
    assert settings.fees().maker == 0.004


def test_deployment_variables_are_read_without_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLY_REGION", "lhr")
    monkeypatch.setenv("PRIMARY_REGION", "ewr")
    monkeypatch.setenv("DATABASE_URL", "postgresql://nettrace@127.0.0.1/db")
    settings = load_settings()
    assert settings.region == "lhr"
    assert not settings.is_primary
    assert settings.resolved_database_url() == "postgresql://nettrace@127.0.0.1/db"


def test_config_file_is_read_and_the_environment_beats_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _toml(tmp_path, '[nettrace]\nregion = "nrt"\nmin_confidence = 0.8\nmaker_fee = 0.001\n')
    monkeypatch.setenv("NETTRACE_MAKER_FEE", "0.002")
    settings = load_settings(path)
    assert settings.region == "nrt"
    assert settings.goal_thresholds().min_confidence == 0.8
    assert settings.maker_fee == 0.002


def test_config_file_from_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NETTRACE_CONFIG", str(_toml(tmp_path, 'region = "sin"\n')))
    assert load_settings().region == "sin"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("NETTRACE_MAKER_FEE", "abc", "invalid setting NETTRACE_MAKER_FEE = 'abc': "),
        ("NETTRACE_MAKER_FEE", "1.5", "invalid setting NETTRACE_MAKER_FEE = '1.5': "),
        ("NETTRACE_MIN_CONFIDENCE", "0.6", "invalid setting NETTRACE_MIN_CONFIDENCE = '0.6': "),
        ("NETTRACE_MIN_SIGNAL_COUNT", "1", "invalid setting NETTRACE_MIN_SIGNAL_COUNT = '1': "),
        ("FLY_REGION", "london", "invalid setting FLY_REGION = 'london': must be a three-letter"),
        ("NETTRACE_MODE", "yolo", "invalid setting NETTRACE_MODE = 'yolo': "),
        ("NETTRACE_LOG_LEVEL", "LOUD", "invalid setting NETTRACE_LOG_LEVEL = 'LOUD': "),
    ],
)
def test_invalid_setting_is_one_line_naming_setting_and_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(expected)
    assert "\n" not in message


def test_the_law_cannot_be_loosened_from_a_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"NETTRACE_MIN_CONFIDENCE = 0\.5"):
        load_settings(_toml(tmp_path, "min_confidence = 0.5\n"))


def test_an_invalid_secret_is_reported_without_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "not a url hunter2")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "DATABASE_URL" in str(caught.value)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    "secret", ["exchange_api_key", "exchange_api_secret", "operator_token", "scout_token"]
)
def test_secrets_in_a_config_file_are_refused(tmp_path: Path, secret: str) -> None:
    path = _toml(tmp_path, f'{secret} = "s3cr3t-value"\n')
    with pytest.raises(SettingsError) as caught:
        load_settings(path)
    assert env_name(secret) in str(caught.value)
    assert "s3cr3t-value" not in str(caught.value)


def test_a_database_password_in_a_config_file_is_refused(tmp_path: Path) -> None:
    path = _toml(tmp_path, 'database_url = "postgresql://u:pw@127.0.0.1/db"\n')
    with pytest.raises(SettingsError, match="DATABASE_URL in the environment"):
        load_settings(path)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("regoin = 'lhr'\n", "unknown setting 'regoin'"),
        ("region = \n", "is not valid TOML"),
        ("nettrace = 3\n", "[nettrace] must be a table"),
    ],
)
def test_bad_config_files_name_the_problem(tmp_path: Path, body: str, fragment: str) -> None:
    with pytest.raises(SettingsError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        load_settings(_toml(tmp_path, body))


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")


def test_secrets_never_appear_in_repr_or_safe_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETTRACE_EXCHANGE_API_SECRET", "api-secret-123")
    monkeypatch.setenv("NETTRACE_OPERATOR_TOKEN", "op-token-456")
    monkeypatch.setenv("NETTRACE_SCOUT_TOKEN", "scout-token-321")
    monkeypatch.setenv("DATABASE_URL", "postgresql://user:db-pass-789@127.0.0.1/x")
    settings = load_settings()
    shown = repr(settings) + str(settings.safe_dump()) + settings.database_display()
    for secret in ("api-secret-123", "op-token-456", "scout-token-321", "db-pass-789"):
        assert secret not in shown
    assert set(settings.secret_values()) == {
        "api-secret-123",
        "op-token-456",
        "scout-token-321",
        "db-pass-789",
    }


def test_settings_are_immutable() -> None:
    settings = load_settings()
    with pytest.raises(Exception, match="frozen"):
        settings.region = "lhr"  # type: ignore[misc]


def test_risk_limits_and_thresholds_come_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETTRACE_MAX_OPEN_POSITIONS", "3")
    monkeypatch.setenv("NETTRACE_ENTRY_MARGIN", "0.002")
    settings = load_settings()
    assert settings.risk_limits().max_open_positions == 3
    assert settings.goal_thresholds().entry_margin == 0.002
    assert isinstance(settings, Settings)


def test_fees_per_exchange_override_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETTRACE_EXCHANGE_FEES", '{"binance": {"maker": 0.001, "taker": 0.002}}')
    settings = load_settings()
    assert settings.fees("binance") == FeeSchedule(maker=0.001, taker=0.002)
    assert settings.fees("BINANCE") == FeeSchedule(maker=0.001, taker=0.002)
    assert settings.fees("kraken") == FeeSchedule(maker=0.004, taker=0.006)
    assert settings.fees() == FeeSchedule(maker=0.004, taker=0.006)


def test_a_bad_exchange_fee_names_the_exchange_and_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETTRACE_EXCHANGE_FEES", '{"binance": {"maker": 2, "taker": 0.001}}')
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "NETTRACE_EXCHANGE_FEES.binance.maker = 2" in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "secret"),
    [
        ("NETTRACE_OPERATOR_TOKEN", "op-token-redact-7a7a"),
        ("NETTRACE_EXCHANGE_API_SECRET", "ex-secret-redact-8b8b"),
        ("NETTRACE_SCOUT_TOKEN", "scout-token-redact-9c9c"),
    ],
)
def test_an_invalid_setting_holding_a_secret_value_does_not_echo_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, secret: str
) -> None:
    monkeypatch.setenv(variable, secret)
    monkeypatch.setenv("NETTRACE_API_RATE_LIMIT", secret)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("invalid setting NETTRACE_API_RATE_LIMIT = '**********': ")
    assert secret not in message


def test_an_invalid_setting_holding_the_database_password_does_not_echo_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:db-pass-5d5d@127.0.0.1/db")
    monkeypatch.setenv("NETTRACE_MODE", "db-pass-5d5d")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "db-pass-5d5d" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mysql://app:hunter2-pw@127.0.0.1/app", "mysql://app:***@127.0.0.1/app"),
        ("notadb://", "notadb://"),
    ],
)
def test_an_unsupported_database_is_one_line_naming_it_without_its_password(
    monkeypatch: pytest.MonkeyPatch, url: str, shown: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    assert shown in message
    assert "sqlite, postgresql" in message
    assert "hunter2-pw" not in message


def test_postgresql_with_a_driver_is_supported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u@127.0.0.1/db")
    assert load_settings().database_display() == "postgresql+psycopg://u@127.0.0.1/db"


def test_a_misspelled_config_key_gets_the_closest_name(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"unknown setting 'min_confidance' \(did you mean"):
        load_settings(_toml(tmp_path, "min_confidance = 0.9\n"))


def test_the_operator_token_check_is_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not load_settings().is_operator_token("anything")
    monkeypatch.setenv("NETTRACE_OPERATOR_TOKEN", "op-1")
    settings = load_settings()
    assert settings.is_operator_token("op-1")
    assert not settings.is_operator_token("op-2")
    assert not settings.is_operator_token("")
