"""Strategies: small classes declaring indicators, entries, exits and risk (like Freqtrade's)."""
