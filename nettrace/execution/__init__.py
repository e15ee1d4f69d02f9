"""Execution: order intents become exchange orders, maker-first, from the primary region only."""
