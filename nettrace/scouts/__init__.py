"""Scouts: per-region exchange monitors pushing signals 5-7 to the primary via a durable outbox."""
