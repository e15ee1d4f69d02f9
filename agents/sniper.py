"""Seed entry point ``agents/sniper.py``: an alias of ``nettrace.agents.sniper``.

The seed names its parts by file (DESIGN §2); the implementation lives in the installed
``nettrace`` package. This module replaces itself in ``sys.modules`` with that module, so
``agents.sniper`` *is* ``nettrace.agents.sniper`` (the same objects and state, never a copy):
nothing here may hold logic of its own.
"""

import sys

from nettrace.agents import sniper as _impl

sys.modules[__name__] = _impl
