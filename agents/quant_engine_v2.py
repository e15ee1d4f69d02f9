"""Seed entry point ``agents/quant_engine_v2.py``: an alias of ``nettrace.agents.quant_engine``.

The seed names its parts by file (DESIGN §2); the implementation lives in the installed
``nettrace`` package. This module replaces itself in ``sys.modules`` with that module, so
``agents.quant_engine_v2`` *is* ``nettrace.agents.quant_engine`` (the same objects and state,
never a copy): nothing here may hold logic of its own.
"""

import sys

from nettrace.agents import quant_engine as _impl

sys.modules[__name__] = _impl
