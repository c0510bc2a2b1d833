"""AI21 Studio chat completions (Jamba), spoken with plain httpx.

The request and answer are OpenAI-shaped, but the errors are not: AI21 answers with FastAPI
bodies (`{"detail": "..."}`, or a list of validation problems on 422), and an unauthenticated call
was observed as a 400 "Bad request: bad or missing authentication." rather than a 401. So the
adapter has its own small classifier instead of the OpenAI one.

Wire facts (AI21 docs "Jamba chat completions", "Errors", and the ai21-python SDK; see
tests/test_ai21.py): `POST /studio/v1/chat/completions`, `Authorization: Bearer`, `max_tokens`
at most 4096; statuses 401, 403, 422, 429 ("sending requests too quickly"), 500, 503; no
rate-limit headers are documented.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, ClassVar

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
from scheduler.providers.chat import openai_messages, openai_sampling
from scheduler.providers.http_errors import error_parts, json_object, read_error, transport_error
from scheduler.tasks import ProviderResult, TaskKind, TextTask, estimate_tokens, text_usage

# Jamba refuses larger values with a 422; clamping keeps a big --max-tokens usable here.
MAX_OUTPUT_TOKENS = 4096

_CREDIT_TEXT = re.compile(
    r"credit|insufficient (?:funds|balance)|payment required|billing|out of quota|quota exceeded",
    re.IGNORECASE,
)
_AUTH_TEXT = re.compile(r"authenticat|api key|api_key|unauthori[sz]ed", re.IGNORECASE)


class AI21Adapter(Adapter):
    """Text through AI21's chat completions endpoint."""

    kinds: ClassVar[frozenset[TaskKind]] = frozenset({"text"})
    default_base_url: ClassVar[str | None] = "https://api.ai21.com"

    async def text(self, task: TextTask, *, model: str) -> ProviderResult:
        body: dict[str, Any] = {
            "model": model,
            "messages": openai_messages(task),
            **openai_sampling(task),
        }
        if task.max_tokens:
            body["max_tokens"] = min(task.max_tokens, MAX_OUTPUT_TOKENS)
        headers = {"content-type": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        try:
            response = await self.http.post(
                f"{self.base_url}/studio/v1/chat/completions",
                content=json.dumps(body).encode(),
                headers=headers,
                timeout=self.timeout_s,
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc, provider=self.name, timeout_s=self.timeout_s) from None
        if response.status_code != 200:
            raise classify_error(*error_parts(response), provider=self.name, secret=self.api_key)
        return self._result(response, task, model)

    def _result(self, response: httpx.Response, task: TextTask, model: str) -> ProviderResult:
        data = json_object(response, provider=self.name)
        try:
            content = data["choices"][0]["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise Transient(
                "malformed response: no choices[0].message", provider=self.name, status=200
            ) from None
        if not isinstance(content, str):
            raise Transient(
                "malformed response: content is not text", provider=self.name, status=200
            )
        usage = data.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        input_tokens = _int(usage.get("prompt_tokens"), task.estimate()["input_tokens"])
        output_tokens = _int(usage.get("completion_tokens"), estimate_tokens(content))
        return ProviderResult(
            output=content,
            model=str(data.get("model") or model),
            usage=text_usage(input_tokens, output_tokens),
        )


def _int(value: object, fallback: float) -> int:
    """A JSON count, or the fallback when it is missing, not a number, or not finite."""
    count = reported_count(value)
    return count if count is not None else int(fallback)


def _message(body: object) -> str | None:
    """The human text of a FastAPI error body (`detail` string or validation list), or None."""
    if not isinstance(body, dict):
        return None
    detail = body.get("detail", body.get("message", body.get("error")))
    if isinstance(detail, list):  # 422: [{"loc": [...], "msg": "...", "type": "..."}]
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg")))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    if isinstance(detail, dict):
        return str(detail.get("message") or json.dumps(detail))
    return "" if detail is None else str(detail)


def classify_error(
    status: int,
    headers: Mapping[str, str],
    raw: bytes,
    *,
    provider: str,
    secret: str | None = None,
    now: float | None = None,
) -> ProviderError:
    """Map one AI21 error response to the taxonomy."""
    answer = read_error(status, headers, raw, secret=secret, now=now, message_of=_message)
    message, text, hint = answer.message, answer.text, answer.retry_after
    kwargs = answer.fields(provider, with_hint=False)

    if status == 402 or (status in (400, 403, 429) and _CREDIT_TEXT.search(message)):
        return QuotaExhausted(text, **kwargs)
    if status in (401, 403) or (status == 400 and _AUTH_TEXT.search(message)):
        return AuthFailed(text, **kwargs)
    if status == 429:
        return RateLimited(text, retry_after=hint, **kwargs)
    if status in (408, 409) or status >= 500 or status == 200:
        return Transient(text, retry_after=hint, **kwargs)
    if answer.model_gone:
        return ModelUnavailable(text, **kwargs)
    # 400 bad request, 404 unknown model, 410 retired API, 413, 422 validation.
    return RejectedInput(text, **kwargs)


__all__ = ["MAX_OUTPUT_TOKENS", "AI21Adapter", "classify_error"]
