"""Configuration: the priority table (providers.yaml) and the API keys (.env / environment)."""

from __future__ import annotations

from scheduler.config.keys import KeySource, KeyStore, fingerprint, mask
from scheduler.config.loader import ConfigSource, load_config, parse_config, resolve_config_path
from scheduler.config.schema import (
    Budget,
    Config,
    Pricing,
    ProviderConfig,
    QuotaRule,
    Settings,
)

__all__ = [
    "Budget",
    "Config",
    "ConfigSource",
    "KeySource",
    "KeyStore",
    "Pricing",
    "ProviderConfig",
    "QuotaRule",
    "Settings",
    "fingerprint",
    "load_config",
    "mask",
    "parse_config",
    "resolve_config_path",
]
