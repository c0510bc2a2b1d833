"""Adapter name -> class, imported only when a provider using it is called (fast start-up)."""

from __future__ import annotations

from functools import cache
from importlib import import_module

from scheduler.providers.base import Adapter

# Adapters written so far; the others in config.schema.AdapterName are skipped with a reason.
_ADAPTERS: dict[str, str] = {
    "openai": "scheduler.providers.openai_compat:OpenAICompatAdapter",
}


def available_adapters() -> tuple[str, ...]:
    return tuple(sorted(_ADAPTERS))


@cache
def adapter_class(name: str) -> type[Adapter] | None:
    """The adapter class for a wire-protocol name, or None when this version has none."""
    target = _ADAPTERS.get(name)
    if target is None:
        return None
    module, _, attr = target.partition(":")
    cls: type[Adapter] = getattr(import_module(module), attr)
    return cls


__all__ = ["adapter_class", "available_adapters"]
