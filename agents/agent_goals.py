"""Seed entry point ``agents/agent_goals.py``: an alias of ``nettrace.agents.agent_goals``.

The seed names its parts by file (DESIGN §2); the implementation lives in the installed
``nettrace`` package. This module replaces itself in ``sys.modules`` with that module, so
``agents.agent_goals`` *is* ``nettrace.agents.agent_goals`` (the same objects and state, never a
copy): nothing here may hold logic of its own.
"""

import sys

from nettrace.agents import agent_goals as _impl

sys.modules[__name__] = _impl
