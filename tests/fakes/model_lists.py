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


__all__ = ["groq_decommissioned", "groq_model_not_found", "openai_models"]
