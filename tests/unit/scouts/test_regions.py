"""The region table: DESIGN §1's defaults, a TOML file merged over them, clear errors."""

from __future__ import annotations

from pathlib import Path

import ccxt
import pytest

from nettrace.config.regions import RegionConfigError, build_region_table, load_regions


def test_the_defaults_are_design_section_1() -> None:
    table = load_regions(env={})
    assert table.primary == "ewr"
    assert table.codes() == ["bom", "ewr", "fra", "lhr", "nrt", "ord", "sin"]
    assert {code for code, r in table.regions.items() if r.role == "scout"} == {
        "lhr", "nrt", "sin", "ord", "fra", "bom",
    }  # fmt: skip
    assert [w.id for w in table.regions["lhr"].exchanges] == ["kraken", "bitstamp"]
    for region in table.regions.values():
        for watch in region.exchanges:
            assert watch.id in ccxt.exchanges
            assert watch.symbols


def test_a_file_adds_a_scout_and_overrides_fields(tmp_path: Path) -> None:
    path = tmp_path / "regions.toml"
    path.write_text(
        """
[regions.syd]
role = "scout"
exchanges = ["btcmarkets", { id = "independentreserve", symbols = ["BTC/AUD"] }]

[regions.ewr]
url = "https://primary.example"

[regions.lhr]
exchanges = ["kraken"]
""",
        encoding="utf-8",
    )
    table = load_regions(env={"NETTRACE_REGIONS_FILE": str(path)})
    syd = table.regions["syd"]
    assert [(w.id, w.symbols) for w in syd.exchanges] == [
        ("btcmarkets", ("BTC/USD",)), ("independentreserve", ("BTC/AUD",)),
    ]  # fmt: skip
    assert table.regions["ewr"].url == "https://primary.example"
    assert table.regions["ewr"].role == "primary"  # untouched fields keep their defaults
    assert [w.id for w in table.regions["lhr"].exchanges] == ["kraken"]
    assert table.regions["nrt"].exchanges  # regions absent from the file keep theirs


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"fra": {"role": "trader"}}, r"regions\.fra\.role: Input should be 'primary' or 'scout'"),
        ({"Syd": {"role": "scout"}}, r"region code 'Syd' must be three lower-case letters"),
        (
            {"fra": {"exchanges": ["krakn"]}},
            r"regions\.fra\.exchanges\.0\.id: unknown ccxt .*'krakn'",
        ),
        ({"ewr": {"role": "scout"}}, r"exactly one region must have role 'primary', found 0"),
        ({"syd": {"role": "primary"}}, r"exactly one .* found 2 \(ewr, syd\)"),
        (
            {"fra": {"exchanges": [{"id": "kraken", "symbols": ["btcusd"]}]}},
            r"symbols: .*ccxt form",
        ),
        ({"fra": {"colour": "red"}}, r"regions\.fra\.colour: Extra inputs are not permitted"),
        ({"ewr": {"exchanges": ["kraken"]}}, r"regions\.ewr: a primary region trades"),
    ],
)
def test_invalid_tables_name_the_field(
    overrides: dict[str, dict[str, object]], message: str
) -> None:
    with pytest.raises(RegionConfigError, match=message):
        build_region_table(overrides)


def test_file_problems_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(RegionConfigError, match="does not exist"):
        load_regions(env={"NETTRACE_REGIONS_FILE": str(missing)})
    bad = tmp_path / "bad.toml"
    bad.write_text("[regions.fra\n", encoding="utf-8")
    with pytest.raises(RegionConfigError, match="not valid TOML"):
        load_regions(bad)
    stray = tmp_path / "stray.toml"
    stray.write_text("[scouts.fra]\nrole = 'scout'\n", encoding="utf-8")
    with pytest.raises(RegionConfigError, match=r"stray\.toml.*unknown key 'scouts'"):
        load_regions(stray)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("[regions.fra]\nrole = 'boss'\n", encoding="utf-8")
    with pytest.raises(RegionConfigError, match=r"wrong\.toml.*regions\.fra\.role"):
        load_regions(wrong)
