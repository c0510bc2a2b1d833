"""The OpenAI-compatible wire protocol: OpenAI, Groq, Mistral, Together, OpenRouter, DeepInfra,
Fireworks chat, Perplexity, AI21's compatible endpoint and any local server (Ollama, vLLM, ...).

Requests go through the `openai` SDK's documented raw-request path
(`client.post(path, body=..., cast_to=httpx.Response)`): the SDK still supplies the base URL,
auth, timeouts and status-error mapping, with its own retries off (`max_retries=0`, ours is the
only retry loop), but we skip its typed request/response models. Those cost about 0.35 ms per
call, more than the whole ledger transaction pair, and we need the raw body anyway: these
providers signal "out of credit" and "per day" in the body, not in the status code.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from scheduler.errors import (
    AuthFailed,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    RejectedInput,
    Transient,
    redact,
)
from scheduler.providers.base import Adapter
from scheduler.retry_hints import parse_retry_value, retry_hint
from scheduler.tasks import (
    ProviderResult,
    RateLimitReport,
    TaskKind,
    TextTask,
    estimate_tokens,
    text_usage,
)

# error.type / error.code values that mean "no more money or quota", not "slow down".
_QUOTA_CODES = frozenset(
    {
        "insufficient_quota",
        "credit_balance_exhausted",
        "organization_spend_limit_exceeded",
        "project_spend_limit_exceeded",
        "organization_usage_limit_exceeded",
        "billing_hard_limit_reached",
        "billing_error",
    }
)
# A 429 whose text names a daily (or monthly) limit will not clear in seconds.
_LONG_WINDOW = re.compile(
    r"per day|per month|\((?:RPD|TPD)\)|PerDay|free-models-per-day|/ month|monthly", re.IGNORECASE
)
_CREDIT_TEXT = re.compile(
    r"credit balance is too low|insufficient credit|no credits", re.IGNORECASE
)
_BAD_KEY_TEXT = re.compile(r"API key not valid|API_KEY_INVALID|invalid api key", re.IGNORECASE)
_GOOGLE_NO_FREE_QUOTA = re.compile(r"\blimit: 0\b")
_REFUSED_403 = re.compile(r"moderation|flagged|context|too long|max_tokens|tokens", re.IGNORECASE)
_HTML_TITLE = re.compile(r"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class OpenAICompatAdapter(Adapter):
    """Chat completions over the OpenAI wire format."""

    kinds: ClassVar[frozenset[TaskKind]] = frozenset({"text"})
    default_base_url = "https://api.openai.com/v1"

    _client: Any = None

    def _sdk(self) -> Any:
        if self._client is None:
            from openai import AsyncOpenAI  # imported when this provider is first called

            self._client = AsyncOpenAI(
                # Local servers need no key, but the SDK refuses to build without one.
                api_key=self.api_key or "no-key",
                base_url=self.base_url,
                http_client=self.http,
                max_retries=0,
                timeout=self.timeout_s,
            )
        return self._client

    async def text(self, task: TextTask, *, model: str) -> ProviderResult:
        messages = []
        if task.system:
            messages.append({"role": "system", "content": task.system})
        messages.append({"role": "user", "content": task.prompt})
        body: dict[str, Any] = {"model": model, "messages": messages}
        if task.max_tokens:
            body["max_tokens"] = task.max_tokens
        response = await self._post("/chat/completions", body)
        data = _json_object(response, self.name)
        if "error" in data and "choices" not in data:  # OpenRouter reports late errors in a 200
            # ... with the real status in error.code: classify by that, not by the 200.
            code = data["error"].get("code") if isinstance(data["error"], dict) else None
            status = code if isinstance(code, int) and 400 <= code <= 599 else 200
            raise classify_error(
                status,
                response.headers,
                response.content,
                provider=self.name,
                secret=self.api_key,
            )
        try:
            message = data["choices"][0]["message"]
            content = message.get("content") or ""
            if isinstance(content, list):  # some compatible servers return content parts
                content = "".join(
                    part.get("text", "") for part in content if isinstance(part, dict)
                )
        except (KeyError, IndexError, TypeError, AttributeError):
            raise Transient(
                "malformed response: no choices[0].message", provider=self.name, status=200
            ) from None
        usage = data.get("usage")
        usage = usage if isinstance(usage, dict) else {}  # a malformed usage is a missing one
        input_tokens = _int(usage.get("prompt_tokens"), task.estimate()["input_tokens"])
        output_tokens = _int(usage.get("completion_tokens"), estimate_tokens(content))
        return ProviderResult(
            output=str(content),
            model=str(data.get("model") or model),
            usage=text_usage(input_tokens, output_tokens),
            rate_limits=rate_limit_reports(response.headers, now=time.time()),
        )

    async def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        import openai

        try:
            response: httpx.Response = await self._sdk().post(
                path, body=body, cast_to=httpx.Response
            )
        except openai.APIStatusError as exc:
            raise classify_error(
                exc.response.status_code,
                exc.response.headers,
                exc.response.content,
                provider=self.name,
                secret=self.api_key,
            ) from None
        except openai.APITimeoutError:
            raise Transient(f"timed out after {self.timeout_s:g} s", provider=self.name) from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            raise Transient(
                f"connection failed: {type(cause).__name__}", provider=self.name
            ) from None
        return response


def _int(value: object, fallback: float) -> int:
    if isinstance(value, int | float) and math.isfinite(value):  # JSON may say NaN
        return int(value)
    return int(fallback)


def _json_object(response: httpx.Response, provider: str) -> dict[str, Any]:
    content_type = response.headers.get("content-type", "")
    try:
        data = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        raise Transient(
            f"malformed response: not JSON ({content_type or 'no content type'})",
            provider=provider,
            status=response.status_code,
        ) from None
    if not isinstance(data, dict):
        raise Transient("malformed response: not a JSON object", provider=provider, status=200)
    return data


def _error_fields(body: object, raw: bytes) -> tuple[str, str, str, str, dict[str, Any]]:
    """(message, type, code, google_status, metadata) from any OpenAI-like error body."""
    if isinstance(body, list) and body and isinstance(body[0], dict):  # Gemini-compat wraps
        body = body[0]
    if not isinstance(body, dict):
        text = raw.decode("utf-8", "replace")
        title = _HTML_TITLE.search(text)
        return (title.group(1).strip() if title else text.strip()[:200]), "", "", "", {}
    error = body.get("error", body)
    if not isinstance(error, dict):
        error = {"message": str(error)}
    message = error.get("message") or body.get("detail") or body.get("message") or ""
    if isinstance(message, dict):  # FastAPI-style {"detail": {...}}
        message = message.get("message") or json.dumps(message)
    metadata = error.get("metadata") if isinstance(error.get("metadata"), dict) else {}
    return (
        str(message),
        str(error.get("type") or ""),
        str(error.get("code") or ""),
        str(error.get("status") or ""),
        metadata or {},
    )


def _google_per_day(body: object) -> bool:
    """A Google RPC QuotaFailure whose violated quota counts per day (`quotaId` ...PerDay...)."""
    if isinstance(body, list) and body:
        body = body[0]
    error = body.get("error") if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    if not isinstance(details, list):
        return False
    for detail in details:
        for violation in (detail.get("violations") or []) if isinstance(detail, dict) else []:
            if isinstance(violation, dict) and "PerDay" in str(violation.get("quotaId", "")):
                return True
    return False


def classify_error(
    status: int,
    headers: Mapping[str, str],
    raw: bytes,
    *,
    provider: str,
    secret: str | None = None,
    now: float | None = None,
) -> ProviderError:
    """Map an OpenAI-compatible error to the taxonomy, reading the body, not only the status."""
    now = time.time() if now is None else now
    try:
        body: object = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        body = None
    message, etype, code, google_status, metadata = _error_fields(body, raw)
    hint = retry_hint(
        headers, body if body is not None else raw.decode("utf-8", "replace"), now=now
    )
    text = redact(f"HTTP {status}: {message}".strip().rstrip(":"), secret)[:300]
    kwargs: dict[str, Any] = {"provider": provider, "status": status, "retry_after": hint}
    quota_signal = etype in _QUOTA_CODES or code in _QUOTA_CODES or _CREDIT_TEXT.search(message)

    if status == 402:
        if metadata.get("reason") == "in_flight_budget_exhausted":
            return Transient(text, **kwargs)
        return QuotaExhausted(text, **kwargs)
    if status == 429 or google_status == "RESOURCE_EXHAUSTED":
        if _GOOGLE_NO_FREE_QUOTA.search(message) or _google_per_day(body):
            # Google's retryDelay (~40 s) is wrong for a daily quota: the window resets at
            # midnight Pacific, which the provider's own day rule knows.
            return QuotaExhausted(text, provider=provider, status=status)
        if (
            quota_signal
            or _LONG_WINDOW.search(message)
            or str(metadata.get("limit_source", "")).endswith("_daily")
        ):
            resets_at = now + hint if hint is not None else None
            return QuotaExhausted(text, resets_at=resets_at, **kwargs)
        return RateLimited(text, **kwargs)
    if status in (401, 403):
        # Together answers 403 for a prompt longer than the context; OpenRouter for moderation.
        if status == 403 and _REFUSED_403.search(message):
            return RejectedInput(text, **kwargs)
        return AuthFailed(text, **kwargs)
    if status == 400 and quota_signal:
        return QuotaExhausted(text, **kwargs)
    if status == 400 and _BAD_KEY_TEXT.search(message):
        return AuthFailed(text, **kwargs)
    if status in (408, 409, 425, 498, 529) or status >= 500:
        return Transient(text, **kwargs)
    if status == 200:  # an error object inside a successful answer
        return Transient(text, **kwargs)
    return RejectedInput(text, **kwargs)


_RESET_SUFFIX = {"requests": "requests", "tokens": "tokens", "req-minute": "requests"}


def rate_limit_reports(headers: Mapping[str, str], *, now: float) -> tuple[RateLimitReport, ...]:
    """Remaining-quota figures from `x-ratelimit-*` headers (OpenAI, Groq, Mistral, Together)."""
    lower = {key.lower(): value for key, value in headers.items()}
    reports = []
    for suffix, metric in (
        ("requests", "requests"),
        ("tokens", "tokens"),
        ("req-minute", "requests"),
        ("tokens-minute", "tokens"),
        ("", "requests"),
    ):
        tail = f"-{suffix}" if suffix else ""
        remaining = lower.get(f"x-ratelimit-remaining{tail}")
        if remaining is None:
            continue
        try:
            remaining_value = float(remaining)
        except ValueError:
            continue
        reset = lower.get(f"x-ratelimit-reset{tail}")
        wait = parse_retry_value(reset, now=now) if reset else None
        if wait is None and suffix.endswith("minute"):
            wait = 60 - now % 60  # Mistral: fixed wall-clock minute, no reset header
        limit = lower.get(f"x-ratelimit-limit{tail}")
        try:
            limit_value = float(limit) if limit is not None else None
        except ValueError:
            limit_value = None
        reports.append(
            RateLimitReport(
                metric=metric,
                remaining=remaining_value,
                resets_at=now + wait if wait is not None else None,
                limit=limit_value,
            )
        )
        if suffix == "":
            break
    # One figure per metric: the tightest one wins.
    tightest: dict[str, RateLimitReport] = {}
    for report in reports:
        best = tightest.get(report.metric)
        if best is None or report.remaining < best.remaining:
            tightest[report.metric] = report
    return tuple(tightest.values())


__all__ = ["OpenAICompatAdapter", "classify_error", "rate_limit_reports"]
