"""The sniper's candle-derived signal generators, the regime detector and their aggregation."""
