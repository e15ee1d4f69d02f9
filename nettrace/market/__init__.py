"""Market data: candles, their validation, storage in Parquet, import and download via ccxt."""
