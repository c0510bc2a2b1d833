"""Replies shaped exactly like Anthropic's Messages API answers.

Sources: Anthropic API docs ("Messages", "Errors", "Rate limits"); the success headers are those
of a recorded api.anthropic.com exchange (tidyllm test fixture, 2025-08-21); the usage-limit and
credit bodies are verbatim from public issue reports (anthropics/claude-code #2127, #38035;
askimo-ai/askimo #277); the tier spend-cap body (429, `details.error_code`
`enforced_spend_limit_reached`, no `retry-after`) is as the rate-limits docs describe it.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from tests.fakes.server import FakeServer, Reply

__all__ = [
    "CREDIT_TOO_LOW",
    "PROMPT_TOO_LONG",
    "RATE_LIMIT_MESSAGE",
    "api_error",
    "base_url",
    "billing_error",
    "credit_too_low",
    "error",
    "invalid_key",
    "message_ok",
    "messages_path",
    "model_not_found",
    "mount_anthropic_ok",
    "overloaded",
    "permission_denied",
    "prompt_too_long",
    "rate_limited",
    "ratelimit_headers",
    "request_too_large_html",
    "spend_limit_reached",
    "tier_spend_cap",
]

_ids = itertools.count(1)

CREDIT_TOO_LOW = (
    "Your credit balance is too low to access the Anthropic API. "
    "Please go to Plans & Billing to upgrade or purchase credits."
)
RATE_LIMIT_MESSAGE = (
    "This request would exceed the rate limit for your organization of 50 requests per "
    "minute. For details, refer to: https://docs.claude.com/en/api/rate-limits."
)
PROMPT_TOO_LONG = "prompt is too long: 207791 tokens > 200000 maximum"


def messages_path(prefix: str = "") -> str:
    """The Messages endpoint's path for a fake Anthropic mounted at `/{prefix}`."""
    prefix = prefix.strip("/")
    return f"/{prefix}/v1/messages" if prefix else "/v1/messages"


def base_url(fake: FakeServer, prefix: str = "") -> str:
    """The `base_url` (scheme, host and the mount prefix) to configure for that fake."""
    prefix = prefix.strip("/")
    return f"{fake.url}/{prefix}" if prefix else fake.url


def ratelimit_headers(
    reset: datetime,
    *,
    requests: tuple[int, int] = (50, 49),
    tokens: tuple[int, int] = (96000, 95000),
    input_tokens: tuple[int, int] = (80000, 79000),
    output_tokens: tuple[int, int] = (16000, 16000),
) -> dict[str, str]:
    """`anthropic-ratelimit-*` headers, (limit, remaining) per family, reset as RFC 3339."""
    stamp = reset.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    headers: dict[str, str] = {}
    for family, (limit, remaining) in (
        ("requests", requests),
        ("tokens", tokens),
        ("input-tokens", input_tokens),
        ("output-tokens", output_tokens),
    ):
        headers[f"anthropic-ratelimit-{family}-limit"] = str(limit)
        headers[f"anthropic-ratelimit-{family}-remaining"] = str(remaining)
        headers[f"anthropic-ratelimit-{family}-reset"] = stamp
    return headers


def message_ok(
    text: str | Sequence[Mapping[str, object]] = "Hello!",
    *,
    model: str = "claude-haiku-4-5-20251001",
    input_tokens: int = 12,
    output_tokens: int = 5,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """200 `message` with text (or the given content blocks) and usage."""
    content = [{"type": "text", "text": text}] if isinstance(text, str) else list(text)
    return Reply(
        status=200,
        json={
            "id": f"msg_fake{next(_ids):06d}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": output_tokens,
            },
        },
        headers={"request-id": "req_fake", **dict(headers or {})},
    )


def error(
    status: int,
    error_type: str,
    message: str,
    *,
    details: Mapping[str, object] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """Anthropic's error envelope: `{"type": "error", "error": {...}, "request_id": ...}`."""
    err: dict[str, object] = {"type": error_type, "message": message}
    if details is not None:
        err["details"] = dict(details)
    return Reply(
        status=status,
        json={"type": "error", "error": err, "request_id": f"req_fake{next(_ids):06d}"},
        headers=dict(headers or {}),
    )


def rate_limited(retry_after: str | None = "7", reset: datetime | None = None) -> Reply:
    """429 rate_limit_error with retry-after (seconds) and the exhausted requests bucket."""
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["retry-after"] = retry_after
    if reset is not None:
        headers.update(ratelimit_headers(reset, requests=(50, 0)))
    return error(429, "rate_limit_error", RATE_LIMIT_MESSAGE, headers=headers)


def tier_spend_cap(regain: str = "2026-09-01") -> Reply:
    """429 for the tier's monthly spend cap: no retry-after, `details.error_code` names it."""
    return error(
        429,
        "rate_limit_error",
        "You have reached your API usage limits: your organization has crossed its monthly "
        "API usage threshold, set based on your organization's API tier. "
        f"You will regain access on {regain} at 00:00 UTC.",
        details={"error_code": "enforced_spend_limit_reached"},
    )


def spend_limit_reached(regain: str = "2026-04-01", *, workspace: bool = False) -> Reply:
    """400 when a spend limit the user set is reached; the text says when access returns."""
    scope = "workspace " if workspace else ""
    return error(
        400,
        "invalid_request_error",
        f"You have reached your specified {scope}API usage limits. "
        f"You will regain access on {regain} at 00:00 UTC.",
    )


def credit_too_low() -> Reply:
    """400 invalid_request_error: the prepaid balance is gone (observed through 2026)."""
    return error(400, "invalid_request_error", CREDIT_TOO_LOW)


def billing_error() -> Reply:
    """402 billing_error (docs: a billing or payment problem)."""
    return error(402, "billing_error", "There is an issue with your account's billing.")


def overloaded() -> Reply:
    """529 overloaded_error: the platform is busy; retry later."""
    return error(529, "overloaded_error", "Overloaded")


def api_error() -> Reply:
    """500 api_error: an unexpected internal error."""
    return error(500, "api_error", "Internal server error")


def invalid_key() -> Reply:
    """401 authentication_error for a wrong key."""
    return error(401, "authentication_error", "invalid x-api-key")


def permission_denied() -> Reply:
    """403 permission_error: the key may not use this resource."""
    return error(
        403,
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    )


def prompt_too_long() -> Reply:
    """400 invalid_request_error when the prompt exceeds the context window."""
    return error(400, "invalid_request_error", PROMPT_TOO_LONG)


def model_not_found(model: str = "claude-nope") -> Reply:
    """404 not_found_error naming the model."""
    return error(404, "not_found_error", f"model: {model}")


def request_too_large_html() -> Reply:
    """413 from the edge (Cloudflare) for a body over 32 MB: HTML, not JSON."""
    return Reply(
        status=413,
        body="<html><head><title>413 Request Entity Too Large</title></head><body>"
        "<center><h1>413 Request Entity Too Large</h1></center><hr>"
        "<center>cloudflare</center></body></html>",
        headers={"content-type": "text/html"},
    )


def mount_anthropic_ok(
    fake: FakeServer, prefix: str = "", *, text: str = "Hello from Claude"
) -> str:
    """Script one successful Messages exchange; returns the base_url to configure."""
    fake.route(
        "POST",
        messages_path(prefix),
        message_ok(
            text,
            headers=ratelimit_headers(datetime(2099, 1, 1, tzinfo=UTC)),
        ),
    )
    return base_url(fake, prefix)


def message_stream_chunks(
    pieces: list[str],
    *,
    model: str = "claude-haiku-4-5-20251001",
    input_tokens: int = 12,
    output_tokens: int = 5,
    error: str | None = None,
) -> list[bytes]:
    """A streamed message as Anthropic documents it ("Streaming Messages"): `message_start`
    (usage with input_tokens), `content_block_start`, a `ping`, one `content_block_delta` per
    piece (`text_delta`), `content_block_stop`, `message_delta` (stop_reason and cumulative
    output_tokens), `message_stop`. With `error`, an `error` event of that type replaces
    everything after the pieces, as when the API overloads mid-stream."""
    from tests.fakes.openai_shapes import sse

    def event(name: str, data: dict[str, object]) -> bytes:
        return sse({"type": name, **data}, event=name)

    message = {
        "id": f"msg_fake{next(_ids):06d}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1},
    }
    out = [
        event("message_start", {"message": message}),
        event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        event("ping", {}),
    ]
    for piece in pieces:
        delta = {"type": "text_delta", "text": piece}
        out.append(event("content_block_delta", {"index": 0, "delta": delta}))
    if error is not None:
        out.append(event("error", {"error": {"type": error, "message": "Overloaded"}}))
        return out
    out += [
        event("content_block_stop", {"index": 0}),
        event(
            "message_delta",
            {
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        ),
        event("message_stop", {}),
    ]
    return out
