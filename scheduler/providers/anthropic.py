"""Anthropic's native Messages API (`POST /v1/messages`), spoken with plain httpx.

Why not the `anthropic` SDK: the call is one small JSON request, the SDK is not a dependency, and
the classification needs the raw status, headers and body anyway (Anthropic signals "out of
credit" as a 400, and a tier's monthly spend cap as a 429 that must not be retried).

Wire facts (Anthropic API docs "Messages", "Errors", "Rate limits"; observed bodies in public
issue reports, see tests/test_anthropic.py):

- headers `x-api-key`, `anthropic-version: 2023-06-01`; `max_tokens` is required; the system
  prompt is the top-level `system`, not a message;
- the answer is the `text` blocks of `content[]`; usage is `usage.input_tokens`/`output_tokens`;
- `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`
  headers, reset as an RFC 3339 instant; `retry-after` seconds on a 429;
- errors are `{"type": "error", "error": {"type": ..., "message": ..., "details"?: ...}}`.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from scheduler.errors import (
    AuthFailed,
    ModelUnavailable,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    RejectedInput,
    Transient,
)
from scheduler.providers.base import Adapter, reported_count
from scheduler.providers.chat import anthropic_messages
from scheduler.providers.http_errors import error_parts, json_object, read_error, transport_error
from scheduler.providers.sse import SseStream
from scheduler.retry_hints import parse_retry_value, retry_hint
from scheduler.tasks import (
    DEFAULT_MAX_OUTPUT_TOKENS,
    ProviderResult,
    RateLimitReport,
    TaskKind,
    TextDelta,
    TextTask,
    estimate_tokens,
    text_usage,
)

if TYPE_CHECKING:
    from scheduler.providers.listing import ModelInfo

API_VERSION = "2023-06-01"

# Out of money: the long-observed 400 text, and the documented billing_error type.
_CREDIT_TEXT = re.compile(r"credit balance is too low", re.IGNORECASE)
# A spend limit (the user's own org/workspace limit: 400; the tier's monthly cap: 429 with
# details.error_code enforced_spend_limit_reached). Both say when access comes back.
_SPEND_LIMIT_TEXT = re.compile(r"reached your (?:specified )?(?:workspace )?API usage limits", re.I)
_REGAIN = re.compile(r"regain access on (\d{4}-\d{2}-\d{2}) at (\d{1,2}:\d{2}) UTC", re.IGNORECASE)
_TRANSIENT_TYPES = frozenset({"overloaded_error", "api_error", "timeout_error"})
# Header family -> ledger metric.
_LIMIT_FAMILIES = (
    ("requests", "requests"),
    ("tokens", "tokens"),
    ("input-tokens", "input_tokens"),
    ("output-tokens", "output_tokens"),
)


class AnthropicAdapter(Adapter):
    """Text through the Messages API."""

    kinds: ClassVar[frozenset[TaskKind]] = frozenset({"text"})
    default_base_url: ClassVar[str | None] = "https://api.anthropic.com"
    can_stream: ClassVar[bool] = True

    async def text(self, task: TextTask, *, model: str) -> ProviderResult:
        try:
            response = await self.http.post(
                f"{self.base_url}/v1/messages",
                content=json.dumps(self._body(task, model)).encode(),
                headers={**self._headers(), "content-type": "application/json"},
                timeout=self.timeout_s,
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc, provider=self.name, timeout_s=self.timeout_s) from None
        now = time.time()
        if response.status_code != 200:
            raise self._classify(*error_parts(response))
        return self._result(response, task, model, now)

    async def stream_text(
        self, task: TextTask, *, model: str
    ) -> AsyncIterator[TextDelta | ProviderResult]:
        """`stream: true`: `message_start` (the model, input usage), `content_block_delta`s with
        `text_delta` pieces, `message_delta` (output usage), `message_stop`; `ping`s between
        and an `error` event when the API fails mid-stream (Anthropic docs "Streaming
        Messages")."""
        body = {**self._body(task, model), "stream": True}
        written: list[str] = []
        usage: dict[str, Any] = {}
        answered_by = model
        stream = SseStream(
            self.http,
            f"{self.base_url}/v1/messages",
            body=body,
            headers=self._headers(),
            provider=self.name,
            timeout_s=self.timeout_s,
            classify=self._classify,
        )
        async with stream:
            async for name, event in stream.events():
                if not isinstance(event, dict):
                    continue
                kind = event.get("type", name)
                if kind == "error":
                    raw = json.dumps(event).encode()
                    raise self._classify(_stream_error_status(event), stream.response.headers, raw)
                if kind == "message_start" and isinstance(event.get("message"), dict):
                    message = event["message"]
                    answered_by = str(message.get("model") or answered_by)
                    if isinstance(message.get("usage"), dict):
                        usage.update(message["usage"])
                elif kind == "message_delta" and isinstance(event.get("usage"), dict):
                    usage.update(event["usage"])  # cumulative output_tokens
                elif kind == "content_block_delta" and isinstance(event.get("delta"), dict):
                    piece = event["delta"].get("text")
                    if isinstance(piece, str) and piece:
                        written.append(piece)
                        yield TextDelta(piece)
            headers = stream.response.headers
        output = "".join(written)
        yield ProviderResult(
            output=output,
            model=answered_by,
            usage=text_usage(
                _input_tokens(usage, task),
                _int(usage.get("output_tokens"), estimate_tokens(output)),
            ),
            rate_limits=rate_limit_reports(headers, now=time.time()),
        )

    def _body(self, task: TextTask, model: str) -> dict[str, Any]:
        system, messages = anthropic_messages(task)
        body: dict[str, Any] = {
            "model": model,
            # Required by the API; the same default the reservation assumed.
            "max_tokens": task.max_tokens or DEFAULT_MAX_OUTPUT_TOKENS,
            "messages": messages,
        }
        if system:
            body["system"] = system
        if task.temperature is not None:
            body["temperature"] = min(task.temperature, 1.0)  # Anthropic's range is 0 to 1
        if task.stop:
            body["stop_sequences"] = list(task.stop)
        return body

    def _headers(self) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        return headers

    async def list_models(self) -> list[ModelInfo]:
        """`GET /v1/models`, page by page (`limit`, `after_id` = the page's `last_id`)."""
        from scheduler.providers.listing import get_json, parse_anthropic

        models: list[ModelInfo] = []
        params = {"limit": "1000"}
        while True:
            data = await get_json(
                self.http,
                f"{self.base_url}/v1/models",
                provider=self.name,
                timeout_s=self.timeout_s,
                headers=self._headers(),
                params=params,
                classify=self._classify,
            )
            models += parse_anthropic(data)
            last = data.get("last_id")
            if not data.get("has_more") or not isinstance(last, str):
                return models
            params = {"limit": "1000", "after_id": last}

    def _classify(self, status: int, headers: Mapping[str, str], raw: bytes) -> ProviderError:
        return classify_error(status, headers, raw, provider=self.name, secret=self.api_key)

    def _result(
        self, response: httpx.Response, task: TextTask, model: str, now: float
    ) -> ProviderResult:
        data = json_object(response, provider=self.name)
        if data.get("type") == "error":  # an error object inside a 200
            raise classify_error(
                200, response.headers, response.content, provider=self.name, secret=self.api_key
            )
        blocks = data.get("content")
        if not isinstance(blocks, list):
            raise Transient("malformed response: no content[]", provider=self.name, status=200)
        output = "".join(
            block["text"]
            for block in blocks
            if isinstance(block, dict)
            and block.get("type") == "text"
            and isinstance(block.get("text"), str)
        )
        usage = data.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        input_tokens = _input_tokens(usage, task)
        output_tokens = _int(usage.get("output_tokens"), estimate_tokens(output))
        return ProviderResult(
            output=output,
            model=str(data.get("model") or model),
            usage=text_usage(input_tokens, output_tokens),
            rate_limits=rate_limit_reports(response.headers, now=now),
        )


def _input_tokens(usage: Mapping[str, Any], task: TextTask) -> int:
    """input_tokens excludes prompt-cache reads and writes; all three are input we sent."""
    cached = sum(
        _int(usage.get(key), 0)
        for key in ("cache_creation_input_tokens", "cache_read_input_tokens")
    )
    return cached + _int(usage.get("input_tokens"), task.estimate()["input_tokens"])


# The status an `error` event inside a stream stands for, by its error type (the HTTP status
# was already 200 when it arrived).
_STREAM_ERROR_STATUS = {
    "overloaded_error": 529,
    "api_error": 500,
    "timeout_error": 504,
    "rate_limit_error": 429,
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "billing_error": 402,
}


def _stream_error_status(event: Mapping[str, Any]) -> int:
    error = event.get("error")
    kind = error.get("type") if isinstance(error, dict) else None
    return _STREAM_ERROR_STATUS.get(str(kind), 500)


def _int(value: object, fallback: float) -> int:
    """A JSON count, or the fallback when it is missing, not a number, or not finite."""
    count = reported_count(value)
    return count if count is not None else int(fallback)


def _error(body: object) -> dict[str, Any]:
    """The `error` object of an Anthropic error body (`{}` for any other body)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {"message": str(error)} if error is not None else {}
    return error


def _message(body: object) -> str | None:
    """`error.message` of an Anthropic error body; None for a body of another shape."""
    return str(_error(body).get("message") or "") if isinstance(body, dict) else None


def _regain_at(message: str) -> float | None:
    """POSIX time of "You will regain access on 2026-04-01 at 00:00 UTC", if the text says so."""
    match = _REGAIN.search(message)
    if match is None:
        return None
    try:
        moment = datetime.strptime(f"{match.group(1)} {match.group(2)}", "%Y-%m-%d %H:%M")
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC).timestamp()


def _next_month_utc(now: float) -> float:
    """00:00 UTC on the first day of the next month: when a tier's monthly spend cap lifts."""
    today = datetime.fromtimestamp(now, UTC)
    year, month = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
    return datetime(year, month, 1, tzinfo=UTC).timestamp()


def classify_error(
    status: int,
    headers: Mapping[str, str],
    raw: bytes,
    *,
    provider: str,
    secret: str | None = None,
    now: float | None = None,
) -> ProviderError:
    """Map one Anthropic error response to the taxonomy, reading the body, not only the status."""
    now = time.time() if now is None else now
    answer = read_error(status, headers, raw, secret=secret, now=now, message_of=_message)
    message, text, hint = answer.message, answer.text, answer.retry_after
    error = _error(answer.body)
    etype = str(error.get("type") or "")
    details = error.get("details")
    code = str((details.get("error_code") if isinstance(details, dict) else None) or "")
    # Only an explicit retry-after paces a server error: the rate-limit resets describe
    # buckets, not what failed.
    explicit = retry_hint(
        {k: v for k, v in headers.items() if k.lower() in ("retry-after", "retry-after-ms")},
        None,
        now=now,
    )
    kwargs = answer.fields(provider, with_hint=False)

    if status == 402 or etype == "billing_error" or _CREDIT_TEXT.search(message):
        return QuotaExhausted(text, **kwargs)
    if code == "enforced_spend_limit_reached" or _SPEND_LIMIT_TEXT.search(message):
        resets_at = _regain_at(message)
        if resets_at is None and code == "enforced_spend_limit_reached":
            resets_at = _next_month_utc(now)
        if resets_at is None and hint is not None:  # a dated text beats a header
            resets_at = now + hint
        return QuotaExhausted(text, resets_at=resets_at, **kwargs)
    if status == 429 or etype == "rate_limit_error":
        return RateLimited(text, retry_after=hint, **kwargs)
    if status in (401, 403) or etype in ("authentication_error", "permission_error"):
        return AuthFailed(text, **kwargs)
    if status in (408, 409, 529) or status >= 500 or etype in _TRANSIENT_TYPES or status == 200:
        return Transient(text, retry_after=explicit, **kwargs)
    if answer.model_gone:
        return ModelUnavailable(text, **kwargs)
    # 400 invalid_request_error (prompt too long, bad parameter), 404 model, 413 too large.
    return RejectedInput(text, **kwargs)


def rate_limit_reports(headers: Mapping[str, str], *, now: float) -> tuple[RateLimitReport, ...]:
    """Remaining counts from `anthropic-ratelimit-*` headers; resets are RFC 3339 instants."""
    lower = {key.lower(): value for key, value in headers.items()}
    reports = []
    for family, metric in _LIMIT_FAMILIES:
        prefix = f"anthropic-ratelimit-{family}-"
        remaining = _number(lower.get(prefix + "remaining"))
        if remaining is None:
            continue
        reset = lower.get(prefix + "reset")
        wait = parse_retry_value(reset, now=now) if reset else None
        reports.append(
            RateLimitReport(
                metric=metric,
                remaining=remaining,
                resets_at=now + wait if wait is not None else None,
                limit=_number(lower.get(prefix + "limit")),
            )
        )
    return tuple(reports)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


__all__ = ["API_VERSION", "AnthropicAdapter", "classify_error", "rate_limit_reports"]
