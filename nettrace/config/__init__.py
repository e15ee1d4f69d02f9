"""Configuration: one immutable ``Settings`` object, read from the environment and a file."""

from nettrace.config.settings import Settings, SettingsError, load_settings

__all__ = ["Settings", "SettingsError", "load_settings"]
