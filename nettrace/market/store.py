"""Candles on disk: one Parquet file per exchange/pair/timeframe, validated on every load.

The file layout matches ../shared/data (``EXCHANGE_BASE-QUOTE_TIMEFRAME.parquet``, columns
``timestamp`` int64 ms UTC bar open time, ``open/high/low/close`` float64 quote per base,
``volume`` float64 base), so the real data set can be loaded or copied in as is.

Two facts travel in the Parquet file metadata rather than in a side file, so they cannot get
separated from the bars: ``nettrace.synthetic`` (generated data must never pass for real) and
``nettrace.source`` (where the bars came from).
"""

from __future__ import annotations

import builtins
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from nettrace.market.candles import COLUMNS, CandleKey, Candles, infer_timeframe
from nettrace.market.validation import (
    CandleDataError,
    gap_stats,
    raise_on_errors,
    repair_frame,
    validate_frame,
)

SYNTHETIC_META = "nettrace.synthetic"
SOURCE_META = "nettrace.source"


@dataclass(frozen=True, slots=True)
class CandleInfo:
    """What ``nettrace data list`` shows about one stored file. Times are bar open ms UTC."""

    key: CandleKey
    path: Path
    rows: int
    first_ms: int | None
    last_ms: int | None
    gaps: int
    missing_bars: int
    synthetic: bool
    source: str


@dataclass(frozen=True, slots=True)
class SaveReport:
    """How a save changed the stored file: new bars, bars it already had, bars replaced."""

    key: CandleKey
    path: Path
    rows_added: int
    rows_already_present: int
    rows_replaced: int
    rows_total: int


def key_from_path(path: Path) -> CandleKey:
    """The key encoded in a file name like ``binance_BTC-USDT_5m.parquet`` (any suffix)."""
    stem = path.name.split(".", 1)[0]
    return CandleKey.from_filename(stem)


def read_parquet_frame(path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """The frame in ``path`` and its ``nettrace.*`` metadata. ``CandleDataError`` if unreadable."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise CandleDataError(f"{path}: cannot read Parquet file: {_first_line(exc)}") from None
    return table.to_pandas(), _nettrace_metadata(table.schema.metadata)


def load_candles(
    path: Path,
    *,
    key: CandleKey | None = None,
    repair: bool = False,
    exchange: str | None = None,
    pair: str | None = None,
    timeframe: str | None = None,
    flags: Mapping[str, str] | None = None,
) -> tuple[Candles, list[str]]:
    """Read, validate and (if asked) repair candles from ``path``; return them with the notes.

    Any error-level problem raises ``CandleDataError`` naming the file, row and problem unless
    ``repair`` is true, in which case the notes say what was changed; gaps never fail a load.
    Parquet is read directly; CSV, Freqtrade ``.feather`` and ``.json`` go through the
    importers.

    Without ``key``, the given ``exchange``/``pair``/``timeframe`` win and the file name
    (``EXCHANGE_BASE-QUOTE_TIMEFRAME.<ext>``, ``BASE-QUOTE_TIMEFRAME.<ext>`` or Freqtrade's
    ``BASE_QUOTE-TIMEFRAME.<ext>``) supplies the rest; a timeframe known from neither is
    inferred from the median spacing of the bars. ``ValueError`` (one line, naming the file,
    the missing parts and the options in ``flags`` that give them) if exchange or pair is
    still unknown.
    """
    from nettrace.market.importers import file_key_parts, read_frame

    parts: dict[str, str] = {}
    if key is None:
        parts = file_key_parts(path, exchange=exchange, pair=pair, timeframe=timeframe, flags=flags)
    if path.suffix == ".parquet":
        frame, meta = read_parquet_frame(path)
    else:
        frame, meta = read_frame(path)
    if key is None:
        tf = parts.get("timeframe")
        if tf is None:
            if "timestamp" not in frame.columns:
                raise CandleDataError(f"{path}: no timestamp column")
            try:
                tf = infer_timeframe(frame["timestamp"].to_numpy())
            except ValueError as exc:
                option = (flags or {}).get("timeframe", "--timeframe")
                raise ValueError(
                    f"{path}: cannot infer the timeframe: {exc}; pass {option}"
                ) from None
        key = CandleKey(parts["exchange"], parts["pair"], tf)
    frame, notes = check_frame(frame, str(path), key.timeframe, repair=repair)
    candles = Candles.from_frame(
        frame,
        key,
        synthetic=meta.get(SYNTHETIC_META) == "true",
        source=meta.get(SOURCE_META) or path.name,
    )
    return candles, notes


def check_frame(
    frame: pd.DataFrame, source: str, timeframe: str | None, *, repair: bool
) -> tuple[pd.DataFrame, list[str]]:
    """Validate; on errors either raise or repair and validate again. Returns frame and notes.

    Without ``timeframe`` the grid (alignment, gaps) is not checked.
    """
    problems = validate_frame(frame, source, timeframe)
    if not any(p.is_error for p in problems):
        return frame, []
    if not repair:
        raise_on_errors(problems)
    repaired, notes = repair_frame(frame, timeframe)
    raise_on_errors(validate_frame(repaired, source, timeframe))
    return repaired, notes


class CandleStore:
    """A folder of candle files, one per ``CandleKey`` at ``root / key.filename``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, key: CandleKey) -> Path:
        return self.root / key.filename

    def exists(self, key: CandleKey) -> bool:
        return self.path_for(key).is_file()

    def load(self, key: CandleKey, repair: bool = False) -> tuple[Candles, list[str]]:
        """The stored candles for ``key`` (validated) and any repair notes.

        ``FileNotFoundError`` with a one-line hint when nothing is stored for the key.
        """
        path = self.path_for(key)
        if not path.is_file():
            raise FileNotFoundError(
                f"no candles stored for {key} (expected {path}); download or import them first"
            )
        return load_candles(path, key=key, repair=repair)

    def save(self, candles: Candles) -> SaveReport:
        """Merge ``candles`` into the stored file and write it atomically.

        New rows win on equal timestamps (a re-download corrects a bar). The incoming candles
        must be valid; real and synthetic bars are never mixed in one file, because the
        synthetic label is per file and mixing would either hide or smear it.
        """
        key = candles.key
        path = self.path_for(key)
        new = candles.to_frame()
        raise_on_errors(validate_frame(new, candles.source or f"new {key} candles", key.timeframe))
        source = candles.source
        if path.is_file():
            old_candles, _ = load_candles(path, key=key)
            if old_candles.synthetic != candles.synthetic:
                kinds = ("synthetic", "real") if candles.synthetic else ("real", "synthetic")
                raise ValueError(
                    f"refusing to merge {kinds[0]} candles into {path}, which holds "
                    f"{kinds[1]} data; store them under another exchange name"
                )
            merged, present, replaced = _merge(old_candles.to_frame(), new)
            source = source or old_candles.source
        else:
            merged, present, replaced = new, 0, 0
        self._write(path, merged, synthetic=candles.synthetic, source=source)
        return SaveReport(
            key=key,
            path=path,
            rows_added=len(new) - present,
            rows_already_present=present,
            rows_replaced=replaced,
            rows_total=len(merged),
        )

    def info(self, key: CandleKey) -> CandleInfo | None:
        """Summary of the stored file for ``key``, or ``None`` if there is none."""
        path = self.path_for(key)
        return _info(path, key) if path.is_file() else None

    def list(self) -> builtins.list[CandleInfo]:
        """Every stored file whose name is a valid key, sorted by file name."""
        infos: builtins.list[CandleInfo] = []
        if not self.root.is_dir():
            return infos
        for path in sorted(self.root.glob("*.parquet")):
            try:
                key = key_from_path(path)
            except ValueError:
                continue  # not one of ours (a stray file); list only what load() can read
            infos.append(_info(path, key))
        return infos

    def _write(self, path: Path, frame: pd.DataFrame, *, synthetic: bool, source: str) -> None:
        write_parquet(path, frame, synthetic=synthetic, source=source)


def write_parquet(path: Path, frame: pd.DataFrame, *, synthetic: bool, source: str) -> None:
    """Write ``frame`` (``COLUMNS``) with the ``nettrace.*`` labels, atomically.

    The bytes go to a temporary file beside ``path`` that is then renamed over it, so a crash
    mid-write leaves the previous file intact rather than a truncated one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame[list(COLUMNS)], preserve_index=False)
    metadata = dict(table.schema.metadata or {})
    metadata[SYNTHETIC_META.encode()] = b"true" if synthetic else b"false"
    metadata[SOURCE_META.encode()] = source.encode()
    table = table.replace_schema_metadata(metadata)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _merge(old: pd.DataFrame, new: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """``(merged, rows already present, rows whose values changed)``; both inputs are valid
    (sorted, unique timestamps), new rows win on equal timestamps."""
    old_ts = old["timestamp"].to_numpy(np.int64)
    new_ts = new["timestamp"].to_numpy(np.int64)
    in_old = np.isin(new_ts, old_ts)
    present = int(in_old.sum())
    replaced = 0
    if present:
        at = np.searchsorted(old_ts, new_ts[in_old])
        differs = np.zeros(present, dtype=bool)
        for name in COLUMNS[1:]:
            differs |= old[name].to_numpy()[at] != new[name].to_numpy()[in_old]
        replaced = int(differs.sum())
    kept_old = old[~np.isin(old_ts, new_ts)]
    merged = pd.concat([kept_old, new], ignore_index=True)
    merged = merged.sort_values("timestamp", kind="stable", ignore_index=True)
    return merged, present, replaced


def _info(path: Path, key: CandleKey) -> CandleInfo:
    try:
        table = pq.read_table(path, columns=["timestamp"])
    except (OSError, pa.ArrowException) as exc:
        raise CandleDataError(f"{path}: cannot read Parquet file: {_first_line(exc)}") from None
    meta = _nettrace_metadata(table.schema.metadata)
    ts = table.column("timestamp").to_numpy().astype(np.int64)
    gaps, missing = gap_stats(ts, key.timeframe)
    return CandleInfo(
        key=key,
        path=path,
        rows=len(ts),
        first_ms=int(ts[0]) if len(ts) else None,
        last_ms=int(ts[-1]) if len(ts) else None,
        gaps=gaps,
        missing_bars=missing,
        synthetic=meta.get(SYNTHETIC_META) == "true",
        source=meta.get(SOURCE_META, ""),
    )


def _nettrace_metadata(raw: dict[bytes, bytes] | None) -> dict[str, str]:
    return {
        k.decode(): v.decode(errors="replace")
        for k, v in (raw or {}).items()
        if k.startswith(b"nettrace.")
    }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
