"""API keys: from the environment first, then .env files, and never anywhere else.

The environment wins because a service's environment (systemd, a container, a secret manager) is
the canonical place; .env is a convenience for a terminal. With SCHED_ENV=development or
production, `.env.development` / `.env.production` is read over `.env` (the test/production split).
Keys are only ever held in memory; `mask()` is the one way a key is shown.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from scheduler.errors import ConfigError

ENV_SELECTOR = "SCHED_ENV"


@dataclass(frozen=True)
class KeySource:
    """A key's value and where it was found (`environment`, `.env`, `.env.production`)."""

    value: str
    origin: str


class KeyStore:
    """Resolved keys for one process. Reads the .env files once."""

    def __init__(self, directory: Path | None = None, environ: Mapping[str, str] | None = None):
        self._environ = os.environ if environ is None else environ
        self._files: list[tuple[str, dict[str, str | None]]] = []
        base = directory or Path.cwd()
        names = [".env"]
        if selected := self._environ.get(ENV_SELECTOR):
            names.insert(0, f".env.{selected}")
        for name in names:
            path = base / name
            if path.is_file():
                self._files.append((name, dotenv_values(path)))

    def lookup(self, variable: str | None) -> KeySource | None:
        """The key for `variable`, or None when it is unset or empty everywhere."""
        if not variable:
            return None
        if value := self._environ.get(variable):
            return _checked(variable, KeySource(value, "environment"))
        for name, values in self._files:
            if value := values.get(variable):
                return _checked(variable, KeySource(value, name))
        return None

    def get(self, variable: str | None) -> str | None:
        found = self.lookup(variable)
        return found.value if found else None


def _checked(variable: str, found: KeySource) -> KeySource:
    """A key goes into an HTTP header, which takes printable ASCII only: anything else (a
    trailing newline from `echo KEY > file`, a pasted curly quote or non-breaking space) is the
    configuration's fault, said once here, never a traceback or a "transient" failure that
    cools the provider down. The message names the variable and where it was read, never the
    value."""
    value = found.value
    if not (value.isascii() and value.isprintable()):
        what = "a newline or control character" if value.isascii() else "a non-ASCII character"
        raise ConfigError(
            f"{variable} (from {found.origin}) holds {what}; an API key is printable ASCII:"
            " set it to the key alone"
        )
    return found


def mask(key: str) -> str:
    """Enough of a key to tell two apart, never enough to use: `…9f3c` (nothing of short keys)."""
    return f"…{key[-4:]}" if len(key) >= 16 else "…"


def fingerprint(key: str) -> str:
    """A short one-way digest, stored to notice that a disabled provider's key was changed."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


__all__ = ["ENV_SELECTOR", "KeySource", "KeyStore", "fingerprint", "mask"]
