"""Reading the providers' model-list endpoints: one `ModelInfo` per model, whatever the shape.

Adapters fetch (`Adapter.list_models`, through their provider's own endpoint and auth); the shapes
are parsed here, once: the OpenAI envelope (`{"data": [{"id"}]}`, which OpenRouter extends with
per-token prices and Together answers as a bare list with per-million prices and a `type`),
Anthropic's paged `data`, Gemini's `models[].name` with `supportedGenerationMethods`, Cohere's
`models[].name` with `endpoints`. A provider that tells what a model serves fills `kinds`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from scheduler.errors import ProviderError
from scheduler.providers.http_errors import error_parts, json_object, transport_error
from scheduler.tasks import TaskKind

# Together's `type` and OpenRouter's output modalities -> the task kinds they serve.
_TYPE_KINDS: dict[str, frozenset[TaskKind]] = {
    "chat": frozenset({"text"}),
    "language": frozenset({"text"}),
    "code": frozenset({"text"}),
    "image": frozenset({"image"}),
    "audio": frozenset({"tts"}),
    "transcribe": frozenset({"stt"}),
}


@dataclass(frozen=True)
class ModelInfo:
    """One model as its provider lists it."""

    id: str
    kinds: frozenset[TaskKind] = field(default_factory=frozenset)  # empty: the list does not say
    usd_per_mtok_input: float | None = None  # published prices (OpenRouter, Together)
    usd_per_mtok_output: float | None = None
    free: bool = False  # OpenRouter `:free` ids, or a published price of zero


class NoListing(Exception):
    """The provider has no model-list endpoint this adapter can read."""


def _price(value: object, per_token: bool) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]  # OpenRouter sends strings
    except (TypeError, ValueError):
        return None
    if number < 0:  # OpenRouter's "-1" for a router whose price varies
        return None
    return number * 1_000_000 if per_token else number


def parse_openai(data: object) -> list[ModelInfo]:
    """`GET /models` of an OpenAI-compatible API: the envelope, or Together's bare list."""
    items = data.get("data") if isinstance(data, Mapping) else data
    models = []
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
            continue
        ident: str = item["id"]
        pricing = item.get("pricing") if isinstance(item.get("pricing"), Mapping) else {}
        assert isinstance(pricing, Mapping)
        if "prompt" in pricing:  # OpenRouter: USD per token, as strings
            cost_in, cost_out = (
                _price(pricing.get("prompt"), True),
                _price(pricing.get("completion"), True),
            )
        else:  # Together: USD per million tokens
            cost_in, cost_out = (
                _price(pricing.get("input"), False),
                _price(pricing.get("output"), False),
            )
        kinds: set[TaskKind] = set(_TYPE_KINDS.get(str(item.get("type", "")).lower(), ()))
        architecture = item.get("architecture")
        if isinstance(architecture, Mapping):
            for modality in architecture.get("output_modalities") or ():
                kinds |= {"text"} if modality == "text" else set(_TYPE_KINDS.get(modality, ()))
        free = ident.endswith(":free") or (cost_in == 0 and cost_out == 0)
        models.append(ModelInfo(ident, frozenset(kinds), cost_in, cost_out, free))
    return models


def parse_anthropic(data: object) -> list[ModelInfo]:
    """`GET /v1/models`: `{"data": [{"type": "model", "id", "display_name"}], "has_more"}`."""
    items = data.get("data") if isinstance(data, Mapping) else None
    return [
        ModelInfo(item["id"], frozenset({"text", "multimodal"}))
        for item in (items if isinstance(items, list) else ())
        if isinstance(item, Mapping) and isinstance(item.get("id"), str)
    ]


def parse_gemini(data: object) -> list[ModelInfo]:
    """`models.list`: `{"models": [{"name": "models/X", "supportedGenerationMethods"}]}`."""
    items = data.get("models") if isinstance(data, Mapping) else None
    models = []
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            continue
        methods = item.get("supportedGenerationMethods") or ()
        kinds: frozenset[TaskKind] = (
            frozenset({"text", "multimodal"}) if "generateContent" in methods else frozenset()
        )
        models.append(ModelInfo(item["name"].removeprefix("models/"), kinds))
    return models


def parse_cohere(data: object) -> list[ModelInfo]:
    """`GET /v1/models`: `{"models": [{"name", "endpoints": ["chat", ...]}]}`."""
    items = data.get("models") if isinstance(data, Mapping) else None
    models = []
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            continue
        chat = "chat" in (item.get("endpoints") or ())
        models.append(ModelInfo(item["name"], frozenset({"text"}) if chat else frozenset()))
    return models


async def get_json(
    http: httpx.AsyncClient,
    url: str,
    *,
    provider: str,
    timeout_s: float,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    classify: Any,
) -> dict[str, Any]:
    """One GET of a list endpoint; a failed answer is classified by the adapter's own
    `classify(status, headers, body)`, no answer is Transient. A bare JSON array (Together's
    list) comes back as `{"data": [...]}`."""
    try:
        response = await http.get(url, headers=dict(headers or {}), params=dict(params or {}))
    except httpx.HTTPError as exc:
        raise transport_error(exc, provider=provider, timeout_s=timeout_s) from None
    if response.status_code >= 400:
        error: ProviderError = classify(*error_parts(response))
        raise error
    if response.content.lstrip().startswith(b"["):
        response = httpx.Response(200, content=b'{"data": ' + response.content + b"}")
    return json_object(response, provider=provider)


def dedupe(models: Iterable[ModelInfo]) -> tuple[ModelInfo, ...]:
    """One entry per id (pages may overlap), sorted by id."""
    return tuple(sorted({m.id: m for m in models}.values(), key=lambda m: m.id))


__all__ = [
    "ModelInfo",
    "NoListing",
    "dedupe",
    "get_json",
    "parse_anthropic",
    "parse_cohere",
    "parse_gemini",
    "parse_openai",
]
