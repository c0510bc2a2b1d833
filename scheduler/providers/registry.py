"""Adapter name -> class, imported only when a provider using it is called (fast start-up)."""

from __future__ import annotations

from functools import cache
from importlib import import_module

from scheduler.providers.base import Adapter

# Every wire protocol of config.schema.AdapterName -> its module. A module that does not exist yet
# makes its providers skip with "not available in this version".
_ADAPTERS: dict[str, str] = {
    "openai": "scheduler.providers.openai_compat:OpenAICompatAdapter",
    "anthropic": "scheduler.providers.anthropic:AnthropicAdapter",
    "gemini": "scheduler.providers.gemini:GeminiAdapter",
    "cohere": "scheduler.providers.cohere:CohereAdapter",
    "ai21": "scheduler.providers.ai21:AI21Adapter",
    "stability": "scheduler.providers.stability:StabilityAdapter",
    "replicate": "scheduler.providers.replicate:ReplicateAdapter",
    "huggingface": "scheduler.providers.huggingface:HuggingFaceAdapter",
    "fireworks": "scheduler.providers.fireworks:FireworksAdapter",
    "assemblyai": "scheduler.providers.assemblyai:AssemblyAIAdapter",
    "gladia": "scheduler.providers.gladia:GladiaAdapter",
    "elevenlabs": "scheduler.providers.elevenlabs:ElevenLabsAdapter",
    "playht": "scheduler.providers.playht:PlayHTAdapter",
    "local": "scheduler.providers.local:LocalAdapter",
}


@cache
def adapter_class(name: str) -> type[Adapter] | None:
    """The adapter class for a wire-protocol name, or None when this version has none."""
    target = _ADAPTERS.get(name)
    if target is None:
        return None
    module, _, attr = target.partition(":")
    try:
        loaded = import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:  # the adapter itself is missing, not something it imports
            return None
        raise
    cls: type[Adapter] = getattr(loaded, attr)
    return cls


__all__ = ["adapter_class"]
