"""Seed entry point ``agents/fly_agent_runner.py``: alias of ``nettrace.agents.fly_agent_runner``.

The seed names its parts by file (DESIGN §2); the implementation lives in the installed
``nettrace`` package. This module replaces itself in ``sys.modules`` with that module, so
``agents.fly_agent_runner`` *is* ``nettrace.agents.fly_agent_runner`` (the same objects and
state, never a copy): nothing here may hold logic of its own.

Run as a script (``python3 agents/fly_agent_runner.py``) it does what ``python -m
nettrace.agents.fly_agent_runner`` does.
"""

import sys

from nettrace.agents import fly_agent_runner as _impl

if __name__ == "__main__":
    sys.exit(_impl.main())
sys.modules[__name__] = _impl
