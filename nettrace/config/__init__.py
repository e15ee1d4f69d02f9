"""Configuration: one immutable ``Settings`` object, read from the environment and a file.

The names below load on first use, so importing a light submodule (``nettrace.config.errors``)
does not import pydantic and the settings model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nettrace.config.settings import Settings, SettingsError, load_settings

__all__ = ["Settings", "SettingsError", "load_settings"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from nettrace.config import settings

        return getattr(settings, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
