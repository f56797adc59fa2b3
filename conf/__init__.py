"""Configuration: one definition of every setting (`conf.settings`) plus per-env YAML files."""

from conf.settings import ConfigError, Settings, get_settings, load_settings

__all__ = ["ConfigError", "Settings", "get_settings", "load_settings"]
