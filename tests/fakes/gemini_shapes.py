"""Replies shaped exactly like Google's Gemini API (`generateContent`, v1beta) answers.

Why: Gemini says "slow down", "no more today", "no free quota for this model" and "out of prepaid
credit" only in the body (Google RPC `error.status` + `details`), so the classifier must be tested
against the real shapes. Sources, each reproduced below:

- Success: `candidates[0].content.parts[*].text` (parts flagged `thought: true` are thought
  summaries), `finishReason`, `usageMetadata.{promptTokenCount, candidatesTokenCount,
  totalTokenCount, thoughtsTokenCount}`, `modelVersion`; a blocked prompt is a 200 with no
  candidates and `promptFeedback.blockReason` (ai.google.dev/api/generate-content, REST reference).
- 429 `RESOURCE_EXHAUSTED` with `google.rpc.QuotaFailure.violations[{quotaMetric, quotaId,
  quotaDimensions, quotaValue}]`, `google.rpc.Help` and `google.rpc.RetryInfo.retryDelay`, the
  message ending "Please retry in N s." (google-gemini/gemini-cli#8437, 2025-09;
  langgenius/dify#19838, 2025-05).
- "limit: 0" in the message for models without free quota (continuedev/continue#10062, 2026-01).
- 402 "Your prepayment credits are depleted..." (dyad-sh/dyad#3626, 2026-06; Google forum
  announcement ~2026-09 that depleted prepaid credit moved from 429 to 402).
- 400 `INVALID_ARGUMENT` "API key not valid..." with `ErrorInfo.reason = API_KEY_INVALID` and a
  `LocalizedMessage` (cequence-io/openai-scala-client#109, continuedev/continue#10290, 2026).
- 400 `FAILED_PRECONDITION` "User location is not supported for the API use."
  (google-gemini/gemini-cli#1614, 2025-06).
- 400 token limit, 404 `NOT_FOUND` model text, 403 `PERMISSION_DENIED`, 500 `INTERNAL`,
  503 `UNAVAILABLE`: /work/shared/providers/text-llm.md "Google Gemini — native".
- Streams (`stream_chunks`): `POST .../models/{model}:streamGenerateContent?alt=sse`, each SSE
  `data:` a whole GenerateContentResponse (ai.google.dev/api/generate-content,
  "streamGenerateContent"; the endpoint list at ai.google.dev/api names it SSE); no `[DONE]`;
  `finishReason` and the complete `usageMetadata` in the last event. An error mid-stream is an
  event whose data is the Google RPC envelope (google-genai `_api_client.async_request_streamed`
  raises APIError for a `{"error": ...}` chunk).
"""

from __future__ import annotations

from typing import Any

from tests.fakes.server import FakeServer, Reply

__all__ = [
    "API_KEY_INVALID_MESSAGE",
    "DEFAULT_MODEL",
    "blocked_prompt",
    "generate_ok",
    "generate_path",
    "google_error",
    "invalid_key",
    "location_unsupported",
    "model_not_found",
    "mount_gemini_ok",
    "no_free_quota",
    "per_day_quota",
    "per_minute_quota",
    "permission_denied",
    "prepayment_depleted",
    "server_error",
    "stream_chunks",
    "stream_path",
    "token_limit",
    "unavailable",
]

DEFAULT_MODEL = "gemini-2.5-flash"
API_KEY_INVALID_MESSAGE = "API key not valid. Please pass a valid API key."
QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. "
    "To monitor your current usage, head to: https://ai.dev/rate-limit. \n"
    "* Quota exceeded for metric: generativelanguage.googleapis.com/"
    "generate_content_free_tier_requests, limit: {limit}, model: {model}\n"
    "Please retry in {delay}."
)
PREPAYMENT_MESSAGE = (
    "Your prepayment credits are depleted. Please go to AI Studio at https://ai.studio/projects "
    "to manage your project and billing."
)
_HELP = {
    "@type": "type.googleapis.com/google.rpc.Help",
    "links": [
        {
            "description": "Learn more about Gemini API quotas",
            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
        }
    ],
}


def generate_path(model: str = DEFAULT_MODEL, prefix: str = "") -> str:
    """Path of `generateContent` for `model` when the provider's base_url is `{url}/{prefix}`."""
    head = f"/{prefix.strip('/')}" if prefix.strip("/") else ""
    return f"{head}/v1beta/models/{model}:generateContent"


def stream_path(model: str = DEFAULT_MODEL, prefix: str = "") -> str:
    """Path of `streamGenerateContent` (the SDK adds `?alt=sse`, which the fake ignores)."""
    return generate_path(model, prefix).replace(":generateContent", ":streamGenerateContent")


def stream_chunks(
    pieces: list[str],
    *,
    model_version: str = DEFAULT_MODEL,
    prompt_tokens: int = 8,
    candidates_tokens: int = 5,
    thoughts_tokens: int | None = None,
    finish_reason: str = "STOP",
    error: tuple[int, str, str] | None = None,
) -> list[bytes]:
    """A streamed answer: one event per piece (role `model`, running `usageMetadata` with the
    prompt count and a partial candidates count), then the last event with an empty text part,
    `finishReason` and the final counts. With `error` (code, status, message) an error event
    replaces that last one, as when the model overloads mid-answer."""
    from tests.fakes.openai_shapes import sse

    def event(parts: list[dict[str, Any]], usage: dict[str, Any], finish: str | None) -> bytes:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish is not None:
            candidate["finishReason"] = finish
        return sse(
            {
                "candidates": [candidate],
                "usageMetadata": usage,
                "modelVersion": model_version,
                "responseId": "fake-stream-0001",
            }
        )

    out = []
    for i, piece in enumerate(pieces, 1):
        running = {"promptTokenCount": prompt_tokens, "candidatesTokenCount": i}
        running["totalTokenCount"] = prompt_tokens + i
        out.append(event([{"text": piece}], running, None))
    if error is not None:
        code, status, message = error
        out.append(sse({"error": {"code": code, "message": message, "status": status}}))
        return out
    final: dict[str, Any] = {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": candidates_tokens,
        "totalTokenCount": prompt_tokens + candidates_tokens + (thoughts_tokens or 0),
    }
    if thoughts_tokens is not None:
        final["thoughtsTokenCount"] = thoughts_tokens
    out.append(event([{"text": ""}], final, finish_reason))
    return out


def generate_ok(
    *texts: str,
    model_version: str = DEFAULT_MODEL,
    prompt_tokens: int = 8,
    candidates_tokens: int = 5,
    thoughts_tokens: int | None = None,
    thought: str | None = None,
    finish_reason: str = "STOP",
) -> Reply:
    """200 with one candidate whose parts are `texts` (after an optional thought summary)."""
    parts: list[dict[str, Any]] = []
    if thought is not None:
        parts.append({"text": thought, "thought": True})
    parts += [{"text": text} for text in texts]
    usage: dict[str, Any] = {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": candidates_tokens,
        "totalTokenCount": prompt_tokens + candidates_tokens + (thoughts_tokens or 0),
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
    }
    if thoughts_tokens is not None:
        usage["thoughtsTokenCount"] = thoughts_tokens
    return Reply(
        status=200,
        json={
            "candidates": [
                {
                    "content": {"parts": parts, "role": "model"},
                    "finishReason": finish_reason,
                    "index": 0,
                }
            ],
            "usageMetadata": usage,
            "modelVersion": model_version,
            "responseId": "fake-response-0001",
        },
    )


def blocked_prompt(reason: str = "PROHIBITED_CONTENT") -> Reply:
    """200 without candidates: the prompt itself was blocked (`promptFeedback.blockReason`)."""
    return Reply(
        status=200,
        json={
            "promptFeedback": {"blockReason": reason},
            "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
            "modelVersion": DEFAULT_MODEL,
        },
    )


def google_error(
    status: int, rpc_status: str, message: str, details: list[Any] | None = None
) -> Reply:
    """The Google RPC error envelope every Gemini failure uses."""
    error: dict[str, Any] = {"code": status, "message": message, "status": rpc_status}
    if details is not None:
        error["details"] = details
    return Reply(status=status, json={"error": error})


def _quota_429(quota_id: str, limit: int, model: str, delay_s: float) -> Reply:
    metric = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
    return google_error(
        429,
        "RESOURCE_EXHAUSTED",
        QUOTA_MESSAGE.format(limit=limit, model=model, delay=f"{delay_s}s"),
        [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": metric,
                        "quotaId": quota_id,
                        "quotaDimensions": {"location": "global", "model": model},
                        "quotaValue": str(limit),
                    }
                ],
            },
            _HELP,
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{int(delay_s)}s"},
        ],
    )


def per_minute_quota(model: str = DEFAULT_MODEL, delay_s: float = 36.42976) -> Reply:
    """429: requests per minute used up; RetryInfo says when to come back."""
    return _quota_429("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", 10, model, delay_s)


def per_day_quota(model: str = DEFAULT_MODEL, delay_s: float = 7.5) -> Reply:
    """429: the daily free requests are gone (resets at midnight Pacific, not in `delay_s`)."""
    return _quota_429("GenerateRequestsPerDayPerProjectPerModel-FreeTier", 20, model, delay_s)


def no_free_quota(model: str = "gemini-2.5-pro") -> Reply:
    """429 for a model with no free tier at all: `limit: 0`, and only Help in the details."""
    return google_error(
        429,
        "RESOURCE_EXHAUSTED",
        QUOTA_MESSAGE.format(limit=0, model=model, delay="20.04466179s"),
        [_HELP],
    )


def prepayment_depleted() -> Reply:
    """402: the project's prepaid balance is spent (status still RESOURCE_EXHAUSTED)."""
    return google_error(402, "RESOURCE_EXHAUSTED", PREPAYMENT_MESSAGE)


def invalid_key() -> Reply:
    """400 INVALID_ARGUMENT with ErrorInfo reason API_KEY_INVALID: a wrong key, not bad input."""
    return google_error(
        400,
        "INVALID_ARGUMENT",
        API_KEY_INVALID_MESSAGE,
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": API_KEY_INVALID_MESSAGE,
            },
        ],
    )


def location_unsupported() -> Reply:
    """400 FAILED_PRECONDITION: the API is not offered where the caller is."""
    return google_error(
        400, "FAILED_PRECONDITION", "User location is not supported for the API use."
    )


def permission_denied() -> Reply:
    """403 PERMISSION_DENIED (e.g. the key's project has the API disabled)."""
    return google_error(
        403,
        "PERMISSION_DENIED",
        "Method doesn't allow unregistered callers (callers without "
        "established identity). Please use API Key or other form of API consumer identity to "
        "call this API.",
    )


def token_limit(tokens: int = 1_200_000, limit: int = 1_048_576) -> Reply:
    """400 INVALID_ARGUMENT: the prompt is longer than the model's context."""
    return google_error(
        400,
        "INVALID_ARGUMENT",
        f"The input token count ({tokens}) exceeds the maximum number of tokens allowed ({limit}).",
    )


def model_not_found(model: str = "gemini-9-nope") -> Reply:
    """404 NOT_FOUND for an unknown model name."""
    return google_error(
        404,
        "NOT_FOUND",
        f"models/{model} is not found for API version v1beta, or is not supported for "
        "generateContent. Call ListModels to see the list of available models and their "
        "supported methods.",
    )


def server_error() -> Reply:
    """500 INTERNAL."""
    return google_error(
        500,
        "INTERNAL",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    )


def unavailable() -> Reply:
    """503 UNAVAILABLE: the model is overloaded."""
    return google_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")


def mount_gemini_ok(
    fake: FakeServer,
    prefix: str = "",
    *,
    model: str = DEFAULT_MODEL,
    text: str = "Hello from Gemini.",
    prompt_tokens: int = 8,
    candidates_tokens: int = 5,
) -> str:
    """Script one complete successful `generateContent` exchange; returns the path it serves.

    Point the provider's base_url at `f"{fake.url}/{prefix}"` (or `fake.url` with no prefix).
    """
    path = generate_path(model, prefix)
    fake.route(
        "POST",
        path,
        generate_ok(
            text,
            model_version=model,
            prompt_tokens=prompt_tokens,
            candidates_tokens=candidates_tokens,
        ),
    )
    return path
