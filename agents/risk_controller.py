"""Seed entry point ``agents/risk_controller.py``: an alias of ``nettrace.agents.risk_controller``.

The seed names its parts by file (DESIGN §2); the implementation lives in the installed
``nettrace`` package. This module replaces itself in ``sys.modules`` with that module, so
``agents.risk_controller`` *is* ``nettrace.agents.risk_controller`` (the same objects and state,
never a copy): nothing here may hold logic of its own.
"""

import sys

from nettrace.agents import risk_controller as _impl

sys.modules[__name__] = _impl
