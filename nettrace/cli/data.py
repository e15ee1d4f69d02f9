"""``nettrace data``: download, import and list candle data."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Download, import and list candle data (Parquet per exchange/pair/timeframe).",
    no_args_is_help=True,
)
