"""Agents, named as in the seed (DESIGN §2).

``agent_goals`` and ``risk_controller`` are the rules at the bottom of the import graph; the
trading agents (sniper, meta_engine, ...) sit above storage and market data. This package
``__init__`` deliberately imports nothing so that importing the rules never drags in the rest.
"""
