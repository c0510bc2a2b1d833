"""Cohere v2 Chat (`POST /v2/chat`) through the `cohere` SDK's async v2 client, whole or streamed.

The SDK supplies the URL joining, bearer auth and status-to-exception mapping; its own retries are
off (`max_retries=0` on the client and on every call), ours is the only retry loop. We call the
raw-response variant (`with_raw_response.chat`) and read the answer's JSON ourselves: the typed
models hide the `x-trial-endpoint-call-*` headers, and a malformed answer must become a clear
Transient, not an attribute error deep in the SDK's models.

Wire facts (Cohere docs "Chat API (v2)", "Errors", "Rate limits"; SDK 7.x source; see
tests/test_cohere.py): errors are `{"id": ..., "message": ...}`; a 429 carries no `retry-after`
and no rate-limit headers; the trial key's 1,000 calls a month also ends in a 429, told apart by
its text; 402 is a billing limit that lifts at the start of next month.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from collections.abc import AsyncIterator, Iterator, Mapping
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
from scheduler.providers.chat import openai_messages
from scheduler.providers.http_errors import (
    error_text,
    is_model_gone,
    page_title_or_text,
    transport_error,
)
from scheduler.providers.sse import read_events
from scheduler.retry_hints import retry_hint
from scheduler.tasks import (
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

# "You are using a Trial key, which is limited to 1000 API calls / month." -- per month, not
# per minute: waiting seconds will not help.
_MONTHLY = re.compile(r"/\s*month|per month|monthly", re.IGNORECASE)
# The trial per-minute window is rolling: a slot comes back within a minute.
_TRIAL_WINDOW_S = 60.0
# finish_reason values that mean the generation failed, not that it ended (SDK ChatFinishReason).
_FAILED_FINISH = frozenset({"ERROR", "TIMEOUT"})


class CohereAdapter(Adapter):
    """Text through Cohere's v2 chat endpoint."""

    kinds: ClassVar[frozenset[TaskKind]] = frozenset({"text"})
    default_base_url: ClassVar[str | None] = "https://api.cohere.com"
    can_stream: ClassVar[bool] = True

    async def list_models(self) -> list[ModelInfo]:
        return await list_cohere_models(self)

    _client: Any = None

    def _sdk(self) -> Any:
        """The SDK client, built once per adapter with our base URL, key, timeout and httpx."""
        if self._client is None:
            import cohere  # imported when this provider is first called

            self._client = cohere.AsyncClientV2(
                # The SDK falls back to $CO_API_KEY and raises without one; the server decides.
                api_key=self.api_key or "no-key",
                base_url=self.base_url,
                timeout=self.timeout_s,
                max_retries=0,
                httpx_client=self.http,
                log_warning_experimental_features=False,
            )
        return self._client

    async def text(self, task: TextTask, *, model: str) -> ProviderResult:
        response = await self._chat(_request(task, model))
        return self._result(response, task, model, time.time())

    async def stream_text(
        self, task: TextTask, *, model: str
    ) -> AsyncIterator[TextDelta | ProviderResult]:
        """`client.v2.chat_stream` (`stream: true`): server-sent events `message-start`,
        `content-start`, `content-delta` (the text in `delta.message.content.text`),
        `content-end`, and `message-end` with `delta.finish_reason` and `delta.usage`
        (`tokens`, `billed_units`) (Cohere docs "A Guide to Streaming Responses"; SDK 7.x
        `AsyncRawV2Client.chat_stream`, which reads them with an SSE EventSource). The SDK
        sends the request and raises its status errors; we read the events of the raw response
        ourselves, as sse.py does for the others: the SDK's own reader skips an event it
        cannot parse with only a log line, which would drop text and bill it as whole."""
        written: list[str] = []
        finish: str | None = None
        usage: object = None
        with self._translated():
            async with self._sdk().with_raw_response.chat_stream(
                **_request(task, model), request_options=self._request_options()
            ) as raw:
                response: httpx.Response = raw.response
                async for name, event in read_events(
                    response, provider=self.name, timeout_s=self.timeout_s
                ):
                    if not isinstance(event, dict):
                        continue
                    kind = event.get("type", name)
                    if kind == "content-delta":
                        piece = _delta_text(event)
                        if piece:
                            written.append(piece)
                            yield TextDelta(piece)
                    elif kind == "message-end":
                        delta = event.get("delta")
                        delta = delta if isinstance(delta, dict) else {}
                        finish = str(delta.get("finish_reason") or "COMPLETE")
                        usage = delta.get("usage")
                headers = response.headers
        if finish is None:
            raise Transient("stream ended before message-end", provider=self.name, status=200)
        if finish in _FAILED_FINISH:
            raise Transient(
                f"generation failed (finish_reason {finish})", provider=self.name, status=200
            )
        output = "".join(written)
        yield ProviderResult(
            output=output,
            model=model,  # the v2 stream does not name the model either
            usage=_usage(task, output, usage),
            rate_limits=rate_limit_reports(headers, now=time.time()),
        )

    def _request_options(self) -> dict[str, Any]:
        return {"max_retries": 0, "timeout": self.timeout_s}

    async def _chat(self, kwargs: dict[str, Any]) -> httpx.Response:
        with self._translated():
            raw = await self._sdk().with_raw_response.chat(
                **kwargs, request_options=self._request_options()
            )
        response: httpx.Response = raw.response
        return response

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """What the SDK raises leaves as a taxonomy error, whole answer or stream alike."""
        from cohere.core.api_error import ApiError
        from cohere.core.parse_error import ParsingError

        try:
            yield
        except ApiError as exc:
            raise classify_error(
                exc.status_code or 0,
                exc.headers or {},
                exc.body,
                provider=self.name,
                secret=self.api_key,
            ) from None
        except ParsingError:
            raise Transient(
                "malformed response: the answer does not match the chat schema",
                provider=self.name,
                status=200,
            ) from None
        except httpx.HTTPError as exc:
            raise transport_error(exc, provider=self.name, timeout_s=self.timeout_s) from None

    def _result(
        self, response: httpx.Response, task: TextTask, model: str, now: float
    ) -> ProviderResult:
        try:
            data = json.loads(response.content)
        except (ValueError, UnicodeDecodeError):  # the SDK parsed it once; be total anyway
            raise Transient(
                "malformed response: not JSON", provider=self.name, status=200
            ) from None
        message = data.get("message") if isinstance(data, dict) else None
        if not isinstance(message, dict):
            raise Transient("malformed response: no message", provider=self.name, status=200)
        if data.get("finish_reason") == "ERROR":
            raise Transient(
                "generation failed (finish_reason ERROR)", provider=self.name, status=200
            )
        content = message.get("content") or []
        if isinstance(content, str):
            output = content
        elif isinstance(content, list):
            output = "".join(
                part["text"]
                for part in content
                if isinstance(part, dict)
                and part.get("type") == "text"
                and isinstance(part.get("text"), str)
            )
        else:
            raise Transient(
                "malformed response: message.content is not a list", provider=self.name, status=200
            )
        return ProviderResult(
            output=output,
            model=model,  # the v2 answer does not name the model
            usage=_usage(task, output, data.get("usage")),
            rate_limits=rate_limit_reports(response.headers, now=now),
        )


async def list_cohere_models(adapter: CohereAdapter) -> list[ModelInfo]:
    """`GET /v1/models` (`page_size`, `next_page_token`), over the shared client."""
    from scheduler.providers.listing import get_json, parse_cohere

    def classify(status: int, headers: Mapping[str, str], raw: bytes) -> ProviderError:
        return classify_error(status, headers, raw, provider=adapter.name, secret=adapter.api_key)

    models: list[ModelInfo] = []
    params = {"page_size": "1000"}
    while True:
        data = await get_json(
            adapter.http,
            f"{adapter.base_url}/v1/models",
            provider=adapter.name,
            timeout_s=adapter.timeout_s,
            headers={"Authorization": f"Bearer {adapter.api_key}"} if adapter.api_key else {},
            params=params,
            classify=classify,
        )
        models += parse_cohere(data)
        token = data.get("next_page_token")
        if not isinstance(token, str) or not token:
            return models
        params = {"page_size": "1000", "page_token": token}


def _request(task: TextTask, model: str) -> dict[str, Any]:
    """The chat call's arguments: v2 takes OpenAI's messages (images as `image_url` parts with
    data URLs, Cohere docs "Image Inputs"), and names stop sequences `stop_sequences`."""
    kwargs: dict[str, Any] = {"model": model, "messages": openai_messages(task)}
    if task.max_tokens:
        kwargs["max_tokens"] = task.max_tokens
    if task.temperature is not None:
        kwargs["temperature"] = task.temperature
    if task.stop:
        kwargs["stop_sequences"] = list(task.stop)
    return kwargs


def _delta_text(event: Mapping[str, Any]) -> str:
    """`delta.message.content.text` of a content-delta (a reasoning model's `thinking` pieces
    are its notes, not the answer)."""
    delta = event.get("delta")
    message = delta.get("message") if isinstance(delta, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    text = content.get("text") if isinstance(content, dict) else None
    return text if isinstance(text, str) else ""


def _usage(task: TextTask, output: str, usage: object) -> dict[str, float]:
    """Ledger usage from a v2 `usage` object; counts it lacks fall back to the estimates."""
    input_tokens, output_tokens = _token_counts(usage)
    return text_usage(
        input_tokens if input_tokens is not None else int(task.estimate()["input_tokens"]),
        output_tokens if output_tokens is not None else estimate_tokens(output),
    )


def _count(value: object) -> int | None:
    return reported_count(value)


def _token_counts(usage: object) -> tuple[int | None, int | None]:
    """(input, output) from `usage.tokens`, falling back to `usage.billed_units` per count."""
    if not isinstance(usage, dict):
        return None, None
    counts: list[int | None] = [None, None]
    for section in ("tokens", "billed_units"):
        part = usage.get(section)
        if not isinstance(part, dict):
            continue
        for i, key in enumerate(("input_tokens", "output_tokens")):
            if counts[i] is None:
                counts[i] = _count(part.get(key))
    return counts[0], counts[1]


def _message(body: object) -> str:
    """The text of a Cohere error body (`{"message": ...}`), or of an HTML/text page."""
    if isinstance(body, dict):
        message = body.get("message") or body.get("detail") or body.get("error") or ""
        return message if isinstance(message, str) else json.dumps(message)
    return page_title_or_text(str(body or ""))  # never bytes: classify_error decoded them


def classify_error(
    status: int,
    headers: Mapping[str, str],
    body: object,
    *,
    provider: str,
    secret: str | None = None,
    now: float | None = None,
) -> ProviderError:
    """Map one Cohere error (status, headers, decoded body or text) to the taxonomy."""
    now = time.time() if now is None else now
    if isinstance(body, str | bytes | bytearray):  # the SDK hands over text it could not parse
        text_body = body.decode("utf-8", "replace") if not isinstance(body, str) else body
        try:
            body = json.loads(text_body)
        except ValueError:
            body = text_body
    message = _message(body)
    hint = retry_hint(headers, body if body is not None else "", now=now)
    text = error_text(status, message, secret)
    kwargs: dict[str, Any] = {"provider": provider, "status": status}

    if status == 200:  # the SDK could not decode a successful answer
        return Transient(f"malformed response: not JSON ({message[:80]})", **kwargs)
    if status == 402:
        return QuotaExhausted(text, **kwargs)
    if status == 429:
        if _MONTHLY.search(message):
            # No reset date is sent: the provider's monthly quota rule says when.
            return QuotaExhausted(text, **kwargs)
        return RateLimited(text, retry_after=hint, **kwargs)
    if status in (401, 403):
        return AuthFailed(text, **kwargs)
    if status in (408, 409, 499) or status >= 500 or status == 0:
        return Transient(text, retry_after=hint, **kwargs)
    if is_model_gone(status, body, message):
        return ModelUnavailable(text, **kwargs)
    # 400 too many tokens / bad field, 422, 498 blocked by usage guidelines.
    return RejectedInput(text, **kwargs)


def rate_limit_reports(headers: Mapping[str, str], *, now: float) -> tuple[RateLimitReport, ...]:
    """The trial key's per-minute count (`x-trial-endpoint-call-{limit,remaining}`), if sent."""
    lower = {key.lower(): value for key, value in headers.items()}
    try:
        remaining = float(lower["x-trial-endpoint-call-remaining"])
    except (KeyError, ValueError):
        return ()
    if not math.isfinite(remaining):
        return ()
    try:
        limit: float | None = float(lower.get("x-trial-endpoint-call-limit", ""))
    except ValueError:
        limit = None
    return (RateLimitReport("requests", remaining, now + _TRIAL_WINDOW_S, limit),)


__all__ = ["CohereAdapter", "classify_error", "rate_limit_reports"]
