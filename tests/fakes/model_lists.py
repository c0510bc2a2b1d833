"""Model-list endpoints and "model gone" answers, in the shapes the providers document.

Sources, per builder: each docstring names the page or SDK type its shape is taken from. The
list endpoints are the ones `sched models` and `models-check` read; the error answers are what a
retired or unknown model gets (Groq's deprecation notice and OpenAI's error codes).
"""

from __future__ import annotations

from collections.abc import Sequence

from tests.fakes.server import Reply

# -- "model gone" answers ---------------------------------------------------------------------


def groq_model_not_found(model: str) -> Reply:
    """Groq (and OpenAI) for a model it does not serve (any more): 404 with `code:
    model_not_found`, as OpenAI's error-codes guide and Groq's deprecations page describe."""
    return Reply(
        status=404,
        json={
            "error": {
                "message": f"The model `{model}` does not exist or you do not have access to it.",
                "type": "invalid_request_error",
                "code": "model_not_found",
            }
        },
    )


def groq_decommissioned(model: str) -> Reply:
    """Groq for a decommissioned model: 400 `model_decommissioned` with the notice's text
    (quoted in the public threads named in ../shared/providers/changes-2026-12.md)."""
    return Reply(
        status=400,
        json={
            "error": {
                "message": (
                    f"The model `{model}` has been decommissioned and is no longer supported."
                    " Please refer to https://console.groq.com/docs/deprecations for a"
                    " recommendation on which model to use instead."
                ),
                "type": "invalid_request_error",
                "code": "model_decommissioned",
            }
        },
    )


def openai_models(ids: Sequence[str], *, owner: str = "system") -> Reply:
    """OpenAI-compatible `GET /models` (OpenAI API reference "List models"; Groq, Mistral,
    Together, DeepInfra, Fireworks and local servers answer the same envelope):
    `{"object": "list", "data": [{"id", "object": "model", "created", "owned_by"}]}`."""
    return Reply(
        json={
            "object": "list",
            "data": [
                {"id": i, "object": "model", "created": 1_700_000_000, "owned_by": owner}
                for i in ids
            ],
        }
    )


def openrouter_models() -> Reply:
    """OpenRouter `GET /api/v1/models` (OpenRouter API reference "List available models"):
    `data[]` with `id`, `name`, `context_length`, `architecture.output_modalities` and
    `pricing` in USD per token, as strings; `:free` ids price at "0"."""
    return Reply(
        json={
            "data": [
                {
                    "id": "meta-llama/llama-3.3-70b-instruct:free",
                    "name": "Meta: Llama 3.3 70B Instruct (free)",
                    "context_length": 131072,
                    "architecture": {"input_modalities": ["text"], "output_modalities": ["text"]},
                    "pricing": {"prompt": "0", "completion": "0", "request": "0", "image": "0"},
                },
                {
                    "id": "openai/gpt-4o-mini",
                    "name": "OpenAI: GPT-4o-mini",
                    "context_length": 128000,
                    "architecture": {
                        "input_modalities": ["text", "image"],
                        "output_modalities": ["text"],
                    },
                    "pricing": {"prompt": "0.00000015", "completion": "0.0000006"},
                },
            ]
        }
    )


def together_models() -> Reply:
    """Together `GET /v1/models` (Together API reference "List all models"): a bare JSON array,
    each with `id`, `type` (chat, image, ...) and `pricing` in USD per million tokens."""
    return Reply(
        json=[
            {
                "id": "meta-llama/Llama-3.3-70B-Instruct-Turbo",
                "object": "model",
                "type": "chat",
                "pricing": {"hourly": 0, "input": 0.88, "output": 0.88, "base": 0},
            },
            {
                "id": "black-forest-labs/FLUX.1-schnell",
                "object": "model",
                "type": "image",
                "pricing": {"hourly": 0, "input": 0, "output": 0, "base": 0},
            },
        ]
    )


def anthropic_models_page(ids: Sequence[str], *, has_more: bool) -> Reply:
    """Anthropic `GET /v1/models` (API reference "List Models"): `data[]` of `{"type": "model",
    "id", "display_name", "created_at"}`, with `has_more`, `first_id`, `last_id` for paging."""
    return Reply(
        json={
            "data": [
                {
                    "type": "model",
                    "id": i,
                    "display_name": i,
                    "created_at": "2025-10-01T00:00:00Z",
                }
                for i in ids
            ],
            "has_more": has_more,
            "first_id": ids[0] if ids else None,
            "last_id": ids[-1] if ids else None,
        }
    )


def gemini_models_page(names: Sequence[str], *, next_page: str | None = None) -> Reply:
    """Gemini `GET /v1beta/models` (API reference "models.list"): `models[]` with `name`
    ("models/..."), `supportedGenerationMethods`, and `nextPageToken` while there are more."""
    body: dict[str, object] = {
        "models": [
            {
                "name": f"models/{n}",
                "displayName": n,
                "supportedGenerationMethods": ["generateContent", "countTokens"],
            }
            for n in names
        ]
    }
    if next_page:
        body["nextPageToken"] = next_page
    return Reply(json=body)


def cohere_models(names: Sequence[str]) -> Reply:
    """Cohere `GET /v1/models` (API reference "List Models"): `models[]` with `name`,
    `endpoints` (chat, embed, ...), `context_length`; `next_page_token` when paged."""
    return Reply(
        json={
            "models": [
                {"name": n, "endpoints": ["chat", "generate"], "context_length": 256000}
                for n in names
            ]
        }
    )


__all__ = [
    "anthropic_models_page",
    "cohere_models",
    "gemini_models_page",
    "groq_decommissioned",
    "groq_model_not_found",
    "openai_models",
    "openrouter_models",
    "together_models",
]
