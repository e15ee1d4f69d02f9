"""The settings' error type, in a module of its own so that the CLI can catch it without
importing pydantic and the settings model (``nettrace --help`` stays fast)."""

from __future__ import annotations


class SettingsError(Exception):
    """An invalid setting, described in one line that names the setting and the bad value."""
