"""NetTrace Quant: a multi-region crypto trading system; every order passes the operator's rules.

The package tree tells the architecture (DESIGN.md §2): ``domain`` and the rules in
``agents.agent_goals`` / ``agents.risk_controller`` at the bottom, storage above them, the
CLI and API on top. Imports flow one way; ``lint-imports`` checks it.
"""

__version__ = "0.1.0"
