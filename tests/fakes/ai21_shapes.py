"""Replies shaped like AI21 Studio's chat completions answers.

Sources: AI21 docs "Jamba chat completions" and the ai21-python SDK (`ChatCompletionResponse`:
id, choices, usage; no `model` field) for the success body; AI21 docs "Errors" for the statuses
(401, 403, 422, 429, 500, 503); FastAPI error bodies (`{"detail": "..."}`, and on 422 pydantic's
list of `{"type", "loc", "msg", "input"}`); the keyless 400 "Bad request: bad or missing
authentication." was observed (2026-09). Detail texts other than that one are schematic: AI21
documents statuses, not messages.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from tests.fakes.server import FakeServer, Reply

__all__ = [
    "MISSING_AUTH",
    "base_url",
    "chat_ok",
    "chat_path",
    "detail",
    "missing_auth_400",
    "mount_ai21_ok",
    "too_many_requests",
    "validation_error",
]

_ids = itertools.count(1)

MISSING_AUTH = "Bad request: bad or missing authentication."


def chat_path(prefix: str = "") -> str:
    """The chat path for a fake AI21 mounted at `/{prefix}`."""
    prefix = prefix.strip("/")
    return f"/{prefix}/studio/v1/chat/completions" if prefix else "/studio/v1/chat/completions"


def base_url(fake: FakeServer, prefix: str = "") -> str:
    prefix = prefix.strip("/")
    return f"{fake.url}/{prefix}" if prefix else fake.url


def chat_ok(
    text: str = "Hello!",
    *,
    prompt_tokens: int = 14,
    completion_tokens: int = 6,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """200 chat completion: one choice, usage, no `model` field (as the SDK's model has it)."""
    return Reply(
        status=200,
        json={
            "id": f"chat-{next(_ids):032x}",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "tool_calls": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            "meta": {"requestDurationMillis": 312},
        },
        headers=dict(headers or {}),
    )


def detail(status: int, message: str, headers: Mapping[str, str] | None = None) -> Reply:
    """A FastAPI error body: `{"detail": "..."}`."""
    return Reply(status=status, json={"detail": message}, headers=dict(headers or {}))


def missing_auth_400() -> Reply:
    """What a call without a valid Authorization header was observed to get."""
    return detail(400, MISSING_AUTH)


def too_many_requests(retry_after: str | None = None) -> Reply:
    """429: "sending requests too quickly" (docs); no retry-after is documented."""
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return detail(429, "You are sending requests too quickly. Please slow down.", headers)


def validation_error(field: str = "max_tokens", limit: int = 4096) -> Reply:
    """422 pydantic validation list, e.g. a value out of range."""
    return Reply(
        status=422,
        json={
            "detail": [
                {
                    "type": "less_than_equal",
                    "loc": ["body", field],
                    "msg": f"Input should be less than or equal to {limit}",
                    "input": limit + 1,
                    "ctx": {"le": limit},
                }
            ]
        },
    )


def mount_ai21_ok(fake: FakeServer, prefix: str = "", *, text: str = "Hello from Jamba") -> str:
    """Script one successful chat exchange; returns the base_url to configure."""
    fake.route("POST", chat_path(prefix), chat_ok(text))
    return base_url(fake, prefix)
