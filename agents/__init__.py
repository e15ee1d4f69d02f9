"""The seed's ``agents/`` folder: the operator's shared state and thin entry points.

This folder is **not** a package that gets installed (``pyproject.toml`` ships ``nettrace*``
only; another distribution on PyPI owns the top-level name ``agents``). It exists so that the
seed's quick checks work exactly as the seed writes them, run from the repository root::

    python3 -c "from agents.agent_goals import GoalValidator; ..."

(``python3 -c`` puts the current directory first on ``sys.path``, so ``agents`` resolves to
this folder.) This ``__init__`` makes it a regular package, so an ``agents`` distribution that
happens to be installed in site-packages cannot shadow it from the checkout.

What lives here:

- ``HANDOFF.md`` -- the operator's hand-off log (``nettrace handoff add/show``); a line starting
  with ``HARDSTOP`` in it halts trading (the default ``NETTRACE_HANDOFF_PATH``).
- ``growth_batch_config.json`` -- the current growth plan, validated by
  ``nettrace.config.growth_plan.GrowthBatchConfig``.
- one module per seed file name, each an alias of the ``nettrace`` module that implements it
  (the very same module object, so thresholds and state are shared, never copied).
"""
