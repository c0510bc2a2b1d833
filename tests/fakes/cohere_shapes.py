"""Replies shaped exactly like Cohere's v2 Chat API answers.

Sources: Cohere API reference "Chat (v2)" and the SDK's `V2ChatResponse` (cohere 7.x) for the
success body; Cohere docs "Errors" for the statuses and example messages (`{"id", "message"}`
bodies); docs "Rate limits" for the trial key (20 chat calls a minute, 1,000 calls a month).
The `x-trial-endpoint-call-*` and `x-endpoint-monthly-call-limit` headers are undocumented but
observed on successful calls (2026); a 429 carries none of them and no `retry-after`.

Streams (`stream_chunks`): the same `POST /v2/chat` with `"stream": true` answers server-sent
events, each named by `event:` and carrying its `type` again in the JSON `data:` (Cohere docs
"A Guide to Streaming Responses", docs.cohere.com/v2/docs/streaming; SDK 7.x
`AsyncRawV2Client.chat_stream` reads them with an SSE EventSource and stops at `data: [DONE]`;
event models in `v2/types/v2chat_stream_response.py`): `message-start` (`id`, `delta.message`
with role assistant), `content-start` (`index`, an empty text part), `content-delta`
(`delta.message.content.text`), `content-end`, and `message-end` with `delta.finish_reason`
and `delta.usage.{billed_units, tokens}`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

from tests.fakes.server import FakeServer, Reply

__all__ = [
    "TRIAL_MINUTE",
    "TRIAL_MONTH",
    "bad_request_too_many_tokens",
    "base_url",
    "chat_ok",
    "chat_path",
    "error",
    "invalid_token",
    "model_not_found",
    "mount_cohere_ok",
    "payment_required",
    "server_error",
    "stream_chunks",
    "trial_headers",
    "trial_per_minute",
    "trial_per_month",
]

_ids = itertools.count(1)

_TRIAL_TAIL = (
    " You can continue to use the Trial key for free or upgrade to a Production key with higher"
    " rate limits at 'https://dashboard.cohere.com/api-keys'. Contact us on"
    " 'https://discord.gg/XW44jPfYJu' or email us at support@cohere.com with any questions"
)
TRIAL_MINUTE = "You are using a Trial key, which is limited to 20 API calls / minute." + _TRIAL_TAIL
TRIAL_MONTH = "You are using a Trial key, which is limited to 1000 API calls / month." + _TRIAL_TAIL


def chat_path(prefix: str = "") -> str:
    """The v2 chat path for a fake Cohere mounted at `/{prefix}`."""
    prefix = prefix.strip("/")
    return f"/{prefix}/v2/chat" if prefix else "/v2/chat"


def base_url(fake: FakeServer, prefix: str = "") -> str:
    prefix = prefix.strip("/")
    return f"{fake.url}/{prefix}" if prefix else fake.url


def trial_headers(remaining: int = 19, limit: int = 20) -> dict[str, str]:
    """The headers a trial key's successful call carries (per-minute count, monthly limit)."""
    return {
        "x-endpoint-monthly-call-limit": "1000",
        "x-trial-endpoint-call-limit": str(limit),
        "x-trial-endpoint-call-remaining": str(remaining),
    }


def chat_ok(
    text: str | Sequence[Mapping[str, object]] = "Hello!",
    *,
    input_tokens: int = 71,
    output_tokens: int = 9,
    billed_input: int = 5,
    billed_output: int = 9,
    finish_reason: str = "COMPLETE",
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """200 chat answer: text parts in `message.content`, `usage.tokens` and `billed_units`."""
    content = [{"type": "text", "text": text}] if isinstance(text, str) else list(text)
    return Reply(
        status=200,
        json={
            "id": f"c14c80c3-18eb-4519-9460-{next(_ids):012d}",
            "finish_reason": finish_reason,
            "message": {"role": "assistant", "content": content},
            "usage": {
                "billed_units": {"input_tokens": billed_input, "output_tokens": billed_output},
                "tokens": {"input_tokens": input_tokens, "output_tokens": output_tokens},
            },
        },
        headers=dict(headers or {}),
    )


def stream_chunks(
    pieces: list[str],
    *,
    input_tokens: int = 71,
    output_tokens: int = 9,
    billed_input: int = 5,
    billed_output: int = 9,
    finish_reason: str = "COMPLETE",
    end: bool = True,
    done: bool = False,
) -> list[bytes]:
    """A streamed chat answer as SSE events; `end=False` leaves out content-end and
    message-end (a stream that stops early), `done` adds the `data: [DONE]` the SDK accepts."""
    from tests.fakes.openai_shapes import sse

    def event(kind: str, **data: object) -> bytes:
        return sse({"type": kind, **data}, event=kind)

    ident = f"c14c80c3-18eb-4519-9460-{next(_ids):012d}"
    start = {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": []}}
    out = [
        event("message-start", id=ident, delta=start),
        event(
            "content-start",
            index=0,
            delta={"message": {"content": {"type": "text", "text": ""}}},
        ),
    ]
    for piece in pieces:
        out.append(event("content-delta", index=0, delta={"message": {"content": {"text": piece}}}))
    if end:
        usage = {
            "billed_units": {"input_tokens": billed_input, "output_tokens": billed_output},
            "tokens": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }
        out.append(event("content-end", index=0))
        out.append(
            event("message-end", id=ident, delta={"finish_reason": finish_reason, "usage": usage})
        )
    if done:
        out.append(b"data: [DONE]\n\n")
    return out


def error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Reply:
    """Cohere's error body: `{"id": ..., "message": ...}`."""
    return Reply(
        status=status,
        json={"id": f"5a1e3f7c-0000-4000-8000-{next(_ids):012d}", "message": message},
        headers=dict(headers or {}),
    )


def trial_per_minute() -> Reply:
    """429: the trial key's per-minute chat limit (no retry-after, no rate-limit headers)."""
    return error(429, TRIAL_MINUTE)


def trial_per_month() -> Reply:
    """429: the trial key's 1,000 calls a month are used up."""
    return error(429, TRIAL_MONTH)


def payment_required() -> Reply:
    """402: the billing limit set for the key is reached, or no payment method."""
    return error(
        402,
        "Please add or update your payment method at "
        "https://dashboard.cohere.com/billing?tab=payment to continue",
    )


def invalid_token() -> Reply:
    return error(401, "invalid api token")


def model_not_found(model: str = "command-nope") -> Reply:
    return error(
        404,
        f"model '{model}' not found, make sure the correct model ID was used and that you have"
        " access to the model.",
    )


def bad_request_too_many_tokens() -> Reply:
    return error(
        400,
        "too many tokens: total number of tokens in the prompt cannot exceed 256000 - received"
        " 270000. Try using a shorter prompt, or enabling prompt truncating.",
    )


def server_error() -> Reply:
    return error(500, "internal server error, this has been reported to our developers")


def mount_cohere_ok(fake: FakeServer, prefix: str = "", *, text: str = "Hello from Cohere") -> str:
    """Script one successful chat exchange; returns the base_url to configure."""
    fake.route("POST", chat_path(prefix), chat_ok(text, headers=trial_headers()))
    return base_url(fake, prefix)
