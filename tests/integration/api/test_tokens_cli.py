"""``nettrace tokens``: issue prints the token once, list never shows it, revoke makes it 401."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from nettrace.cli.main import main


def _cli(
    argv: list[str], url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    monkeypatch.setenv("DATABASE_URL", url)
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_issue_list_revoke(
    api: Any,
    signal_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = api.db.url
    code, out, err = _cli(
        ["tokens", "issue", "--region", "lhr", "--label", "london"], url, monkeypatch, capsys
    )
    assert code == 0
    token = out.strip()
    assert out.count(token) == 1
    assert token.startswith("ntq_")
    assert len(token) >= 40
    assert "shown only now" in err
    assert token not in err

    # The token works against the running API...
    assert api.push(token, {"signals": [signal_factory("lhr")]}).status_code == 200
    # ...but is nowhere in the database (only its digest) and never in a listing.
    with api.db.engine.connect() as conn:
        stored = conn.execute(text("SELECT token_sha256, region, label FROM api_tokens")).all()
    assert [(row[1], row[2]) for row in stored] == [("lhr", "london")]
    assert token not in str(stored)
    code, out, _ = _cli(["tokens", "list"], url, monkeypatch, capsys)
    assert code == 0
    assert "lhr" in out
    assert "london" in out
    assert "active" in out
    assert token not in out
    assert token[4:20] not in out

    code, out, _ = _cli(["tokens", "revoke", "--region", "lhr"], url, monkeypatch, capsys)
    assert code == 0
    assert "Revoked 1" in out
    assert api.push(token, {"signals": [signal_factory("lhr")]}).status_code == 401
    code, out, _ = _cli(["tokens", "list"], url, monkeypatch, capsys)
    assert "active" not in out


def test_revoke_by_id_leaves_other_tokens(
    api: Any,
    signal_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = api.db.url
    first = _cli(["tokens", "issue", "--region", "nrt"], url, monkeypatch, capsys)[1].strip()
    second = _cli(["tokens", "issue", "--region", "nrt"], url, monkeypatch, capsys)[1].strip()
    code, _out, _ = _cli(["tokens", "revoke", "--id", "1"], url, monkeypatch, capsys)
    assert code == 0
    assert api.push(first, {"signals": [signal_factory("nrt")]}).status_code == 401
    assert api.push(second, {"signals": [signal_factory("nrt")]}).status_code == 200
    # Nothing left to revoke under that id: exit 1, and usage errors exit 2 with one line.
    assert _cli(["tokens", "revoke", "--id", "1"], url, monkeypatch, capsys)[0] == 1
    code, _, err = _cli(["tokens", "revoke"], url, monkeypatch, capsys)
    assert code == 2
    assert err.count("\n") == 1
    code, _, err = _cli(["tokens", "issue", "--region", "London"], url, monkeypatch, capsys)
    assert code == 2
    assert "three-letter" in err


def test_unmigrated_database_is_one_line_error(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    code, _out, err = _cli(["tokens", "list"], url, monkeypatch, capsys)
    assert code == 2
    assert "nettrace db upgrade" in err
    assert err.count("\n") == 1


def test_issue_refuses_a_region_that_is_not_configured(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'tokens.db'}"
    from nettrace.store.migrate import upgrade

    upgrade(url)
    monkeypatch.delenv("NETTRACE_REGIONS_FILE", raising=False)
    code, out, err = _cli(["tokens", "issue", "--region", "xyz"], url, monkeypatch, capsys)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "'xyz' is not configured" in err
    assert "configured regions: bom, ewr, fra, lhr, nrt, ord, sin" in err
    code, out, _ = _cli(["tokens", "list"], url, monkeypatch, capsys)
    assert code == 0
    assert "xyz" not in out  # nothing was issued
    # A configured region still works.
    code, out, _ = _cli(["tokens", "issue", "--region", "fra"], url, monkeypatch, capsys)
    assert code == 0
    assert out.startswith("ntq_")
