"""Bring candle files from elsewhere into the store: CSV, Parquet and Freqtrade's formats.

Every import goes through the same validation as a load, so a file with a bad bar is refused
(or repaired on request, with the changes listed) before it can reach a backtest.

Formats read, all converted to ``timestamp`` int64 ms UTC bar open time plus OHLCV float64:

* CSV with a header: a ``timestamp``/``date``/``time`` column holding either integer ms or ISO
  dates (naive dates are taken as UTC), and ``open, high, low, close, volume``.
* Parquet: our own layout, or any frame with a date column like the CSV.
* Freqtrade ``.feather`` (``date`` tz-aware, ``open`` ... ``volume``) and ``.json`` /
  ``.json.gz`` (a list of ``[ms, open, high, low, close, volume]``), named like
  ``BTC_USDT-5m.feather`` or ``BTC_USDT_USDT-5m-futures.feather``.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from nettrace.market.candles import COLUMNS, TIMEFRAME_MS, CandleKey, Candles
from nettrace.market.store import (
    SOURCE_META,
    SYNTHETIC_META,
    CandleStore,
    check_frame,
    read_parquet_frame,
)
from nettrace.market.validation import CandleDataError, validate_frame

SUFFIXES = (".parquet", ".csv", ".csv.gz", ".feather", ".json", ".json.gz")
_TIME_COLUMNS = ("timestamp", "date", "datetime", "time", "open_time", "opentime")
_FREQTRADE_NAME = re.compile(
    r"^(?P<base>[A-Za-z0-9]+)_(?P<quote>[A-Za-z0-9]+)(?:_(?P<settle>[A-Za-z0-9]+))?"
    r"-(?P<tf>\d+[mhdwM])(?:-(?P<kind>[A-Za-z_]+))?$"
)
#: ``BTC-USD_5m``: our name without the exchange (pair and timeframe only).
_PAIR_TF_NAME = re.compile(r"^(?P<base>[A-Za-z0-9]+)-(?P<quote>[A-Za-z0-9]+)_(?P<tf>\d+[mhdw])$")
#: The command-line option that gives each key part, for error messages.
KEY_FLAGS: dict[str, str] = {"exchange": "--exchange", "pair": "--pair", "timeframe": "--timeframe"}
#: Freqtrade candle types that are trade OHLCV; mark/index/funding files are other series.
_FREQTRADE_OHLCV_KINDS = (None, "spot", "futures")


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did to the store."""

    path: Path
    key: CandleKey
    stored_path: Path
    rows_read: int
    rows_added: int
    rows_already_present: int
    rows_replaced: int
    rows_total: int
    repairs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def import_file(
    path: Path, store: CandleStore, *, key: CandleKey | None = None, repair: bool = False
) -> ImportReport:
    """Read ``path``, validate (and repair if asked), and merge its bars into ``store``.

    ``key`` defaults to what the file name says (see ``resolve_key``). Raises
    ``CandleDataError`` for unreadable or invalid files and ``ValueError`` when the key cannot
    be worked out.
    """
    if key is None:
        key = resolve_key(path)
    frame, meta = read_frame(path)
    rows_read = len(frame)
    frame, repairs = check_frame(frame, str(path), key.timeframe, repair=repair)
    warnings = [p.describe() for p in validate_frame(frame, str(path), key.timeframe)]
    candles = Candles.from_frame(
        frame,
        key,
        synthetic=meta.get(SYNTHETIC_META) == "true",
        source=meta.get(SOURCE_META) or f"imported from {path.name}",
    )
    saved = store.save(candles)
    return ImportReport(
        path=path,
        key=key,
        stored_path=saved.path,
        rows_read=rows_read,
        rows_added=saved.rows_added,
        rows_already_present=saved.rows_already_present,
        rows_replaced=saved.rows_replaced,
        rows_total=saved.rows_total,
        repairs=repairs,
        warnings=warnings,
    )


def resolve_key(
    path: Path,
    *,
    exchange: str | None = None,
    pair: str | None = None,
    timeframe: str | None = None,
) -> CandleKey:
    """The key for ``path``: given parts win, the rest comes from the file name.

    Understands ``binance_BTC-USDT_5m.<ext>`` (ours) and Freqtrade's ``BTC_USDT-5m.<ext>``,
    whose exchange is the folder name (``user_data/data/binance/``). Freqtrade futures files
    never take the exchange from the folder: the store names perpetuals differently
    (``binance-usdm``), so it must be given.
    """
    guess = guess_key_parts(path)
    parts = {
        "exchange": exchange or guess.get("exchange"),
        "pair": pair or guess.get("pair"),
        "timeframe": timeframe or guess.get("timeframe"),
    }
    missing = [name for name, value in parts.items() if not value]
    if missing:
        flags = " ".join(f"--{name}" for name in missing)
        raise ValueError(
            f"cannot tell the {' and '.join(missing)} of {path.name} from its name; give {flags}"
        )
    return CandleKey(
        exchange=str(parts["exchange"]), pair=str(parts["pair"]), timeframe=str(parts["timeframe"])
    )


def file_key_parts(
    path: Path,
    *,
    exchange: str | None = None,
    pair: str | None = None,
    timeframe: str | None = None,
    flags: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Exchange, pair and (if known) timeframe of the candle file ``path``.

    Given parts win; the rest comes from the file name (``guess_key_parts``). The timeframe
    may stay unknown (the caller infers it from the bars); a missing exchange or pair raises
    ``ValueError`` naming the file, what is missing, how to name the file and which options
    (``flags``, default ``KEY_FLAGS``) to pass instead.
    """
    try:
        guess = guess_key_parts(path)
    except ValueError:
        if not (exchange and pair):
            raise
        guess = {}
    parts = {
        "exchange": exchange or guess.get("exchange"),
        "pair": pair or guess.get("pair"),
        "timeframe": timeframe or guess.get("timeframe"),
    }
    missing = [name for name in ("exchange", "pair") if not parts[name]]
    if missing:
        names = {**KEY_FLAGS, **(flags or {})}
        raise ValueError(
            f"{path}: cannot tell the {' and '.join(missing)} of these candles from the file "
            f"name; name it EXCHANGE_BASE-QUOTE_TIMEFRAME{_suffix(path)} or pass "
            f"{' and '.join(names[m] for m in missing)}"
        )
    return {name: str(value) for name, value in parts.items() if value}


def guess_key_parts(path: Path) -> dict[str, str]:
    """Whatever key parts the file name reveals (possibly none)."""
    stem = _stem(path)
    try:
        key = CandleKey.from_filename(stem)
    except ValueError:
        pass
    else:
        return {"exchange": key.exchange, "pair": key.pair, "timeframe": key.timeframe}
    match = _PAIR_TF_NAME.match(stem)
    if match is not None and match["tf"] in TIMEFRAME_MS:
        return {"pair": f"{match['base']}/{match['quote']}", "timeframe": match["tf"]}
    match = _FREQTRADE_NAME.match(stem)
    if match is None:
        return {}
    kind = match["kind"]
    if kind not in _FREQTRADE_OHLCV_KINDS:
        raise ValueError(f"{path.name} is a Freqtrade {kind} file, not trade candles")
    parts = {"pair": f"{match['base']}/{match['quote']}"}
    if match["tf"] in TIMEFRAME_MS:
        parts["timeframe"] = match["tf"]
    folder = path.resolve().parent.name
    if kind != "futures" and match["settle"] is None and _is_ccxt_exchange(folder):
        parts["exchange"] = folder
    return parts


def read_frame(path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """The file as a frame in ``COLUMNS`` (timestamps in ms), plus any ``nettrace.*`` metadata.

    Does not validate: unparsable dates become NaN timestamps so validation can name the row.
    """
    if not path.is_file():
        raise CandleDataError(f"{path}: no such file")
    name = path.name.lower()
    meta: dict[str, str] = {}
    try:
        if name.endswith(".parquet"):
            frame, meta = read_parquet_frame(path)
        elif name.endswith((".csv", ".csv.gz")):
            frame = pd.read_csv(path)
        elif name.endswith(".feather"):
            frame = pd.read_feather(path)
        elif name.endswith((".json", ".json.gz")):
            frame = _read_freqtrade_json(path)
        else:
            raise CandleDataError(f"{path}: unknown file type (use one of {', '.join(SUFFIXES)})")
    except (OSError, ValueError, pa.ArrowException, UnicodeDecodeError) as exc:
        if isinstance(exc, CandleDataError):
            raise
        raise CandleDataError(f"{path}: cannot read file: {_first_line(exc)}") from None
    return normalise_columns(frame, str(path)), meta


def normalise_columns(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Lower-case column names and turn the time column into ``timestamp`` ms UTC."""
    frame = frame.rename(columns={c: str(c).strip().lower() for c in frame.columns})
    time_col = next((c for c in _TIME_COLUMNS if c in frame.columns), None)
    if time_col is None:
        raise CandleDataError(f"{source}: no time column (need one of {', '.join(_TIME_COLUMNS)})")
    out = pd.DataFrame({"timestamp": to_epoch_ms(frame[time_col])})
    for name in COLUMNS[1:]:
        if name in frame.columns:
            out[name] = frame[name].to_numpy()
    return out


def to_epoch_ms(values: pd.Series) -> pd.Series:
    """Integer ms stay as they are; datetimes and ISO strings become ms (naive = UTC).

    Unparsable dates become NaN so that validation reports the row instead of a parse error
    with no position.
    """
    kind = values.dtype.kind
    if kind in "iu":
        return values.astype(np.int64)
    if kind == "f":
        return values
    if kind == "M" or isinstance(values.dtype, pd.DatetimeTZDtype):
        stamps = pd.to_datetime(values, utc=True)
    else:
        stamps = pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")
    ms = stamps.dt.as_unit("ms").astype("int64").astype(np.float64)
    ms[stamps.isna().to_numpy()] = np.nan
    if not np.isnan(ms).any():
        return ms.astype(np.int64)
    return ms


def _read_freqtrade_json(path: Path) -> pd.DataFrame:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        rows = json.load(handle)
    if not isinstance(rows, list) or (rows and not isinstance(rows[0], list)):
        raise CandleDataError(
            f"{path}: expected a JSON list of [ms, open, high, low, close, volume] rows"
        )
    if any(len(row) != len(COLUMNS) for row in rows):
        bad = next(i for i, row in enumerate(rows) if len(row) != len(COLUMNS))
        raise CandleDataError(
            f"{path}: row {bad} has {len(rows[bad])} values, expected {len(COLUMNS)} "
            "([ms, open, high, low, close, volume])"
        )
    array = np.array(rows, dtype=np.float64).reshape(len(rows), len(COLUMNS))
    frame = pd.DataFrame(array, columns=list(COLUMNS))
    if np.isfinite(array[:, 0]).all():
        frame["timestamp"] = array[:, 0].astype(np.int64)
    return frame


def _stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return next((s for s in sorted(SUFFIXES, key=len, reverse=True) if name.endswith(s)), ".csv")


def _is_ccxt_exchange(name: str) -> bool:
    import ccxt  # deferred: importing ccxt costs ~0.4 s and most imports never need it

    return name in ccxt.exchanges


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
