"""Google Gemini's native `generateContent` API, spoken through the `google-genai` SDK.

`google-generativeai` reached end of life; its successor `google-genai` is the supported client. We
build it with our shared httpx client (so the SDK never picks aiohttp or opens its own pool), its
retries off (one attempt: the dispatcher owns the only retry loop), our timeout (the SDK takes
milliseconds) and the configured base URL (scheme and host; the SDK appends `v1beta/models/...`).

Gemini tells "slow down" from "no more today" only in the error body: a 429 `RESOURCE_EXHAUSTED`
whose `QuotaFailure` names a `...PerDay...` quota, or whose message says `limit: 0` (no free quota
for this model at all), will not clear in the 30-odd seconds its `RetryInfo` suggests, so those are
QuotaExhausted with no reset time: the provider's own day rule (midnight America/Los_Angeles) knows
when the window turns. Prepaid credit running out is a 402.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from scheduler.errors import (
    AuthFailed,
    InputError,
    ModelUnavailable,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    RejectedInput,
    Transient,
    redact,
)
from scheduler.providers.base import Adapter, reported_count
from scheduler.providers.chat import gemini_contents
from scheduler.providers.http_errors import is_model_gone, transport_error
from scheduler.retry_hints import retry_hint
from scheduler.tasks import (
    MultimodalTask,
    ProviderResult,
    TaskKind,
    TextDelta,
    TextTask,
    estimate_tokens,
    text_usage,
)

if TYPE_CHECKING:
    from google.genai import Client

    from scheduler.providers.listing import ModelInfo

API_VERSION = "v1beta"

_NO_FREE_QUOTA = re.compile(r"\blimit: 0\b")
# Not "billing": every per-minute 429 says "please check your plan and billing details".
_CREDITS_GONE = re.compile(r"prepayment credits|credits are depleted", re.IGNORECASE)
_BAD_KEY = re.compile(r"API key not valid|API key expired|API_KEY_INVALID", re.IGNORECASE)
# A candidate that ends for one of these reasons without text is a refusal, not a glitch.
_REFUSED_FINISH = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE"}
)


class GeminiAdapter(Adapter):
    """Text and multimodal (prompt + one image or audio file) through `generateContent`."""

    kinds: ClassVar[frozenset[TaskKind]] = frozenset({"text", "multimodal"})
    default_base_url: ClassVar[str | None] = "https://generativelanguage.googleapis.com"
    can_stream: ClassVar[bool] = True

    _client: Client | None = None

    def _sdk(self) -> Client:
        """The SDK client, built once per adapter on first use (the SDK import is slow)."""
        if self._client is None:
            if not self.api_key:
                raise AuthFailed("no API key", provider=self.name)
            from google import genai
            from google.genai import types

            self._client = genai.Client(
                vertexai=False,  # never let GOOGLE_GENAI_USE_VERTEXAI redirect us
                api_key=self.api_key,
                http_options=types.HttpOptions(
                    base_url=self.base_url,
                    api_version=API_VERSION,
                    timeout=max(1, math.ceil(self.timeout_s * 1000)),  # milliseconds
                    retry_options=types.HttpRetryOptions(attempts=1),
                    httpx_async_client=self.http,
                ),
            )
        return self._client

    async def text(self, task: TextTask, *, model: str) -> ProviderResult:
        response = await self._generate(model, _contents(task), _config(task))
        return self._result(response, model, task)

    async def stream_text(
        self, task: TextTask, *, model: str
    ) -> AsyncIterator[TextDelta | ProviderResult]:
        """`streamGenerateContent?alt=sse`: each event is a whole GenerateContentResponse
        holding the next text parts; `usageMetadata` is a running total, complete in the last
        event, which also carries the `finishReason` (ai.google.dev/api/generate-content,
        "streamGenerateContent"). A stream that ends without a finishReason was cut short."""
        written: list[str] = []
        usage: Any = None  # the latest usageMetadata: a running total
        answered_by = model
        finish = ""
        chunks: Any = None
        try:
            with self._translated():
                chunks = await self._sdk().aio.models.generate_content_stream(
                    model=model, contents=_contents(task), config=_config(task)
                )
                async for chunk in chunks:
                    piece, reason = self._piece(chunk)
                    finish = reason or finish
                    answered_by = str(chunk.model_version or answered_by)
                    usage = chunk.usage_metadata or usage
                    if piece:
                        written.append(piece)
                        yield TextDelta(piece)
        finally:
            await _close(chunks)
        output = "".join(written)
        if not finish:
            raise Transient("stream ended before its finishReason", provider=self.name, status=200)
        if not output and finish in _REFUSED_FINISH:
            raise RejectedInput(
                f"answer withheld: finishReason {finish}", provider=self.name, status=200
            )
        prompt_tokens, output_tokens = _token_counts(usage, output) if usage else (None, None)
        yield ProviderResult(
            output=output,
            model=answered_by,
            usage=_usage(task, output, prompt_tokens, output_tokens),
        )

    def _piece(self, chunk: Any) -> tuple[str, str]:
        """(answer text, finishReason or "") of one streamed GenerateContentResponse. A
        blocked prompt arrives as an event with `promptFeedback.blockReason` and no
        candidates; an event without candidates otherwise (usage only) adds nothing."""
        try:
            candidates = chunk.candidates or []
            if not candidates:
                self._raise_if_blocked(chunk)
                return "", ""
            candidate = candidates[0]
            parts = (candidate.content.parts if candidate.content else None) or []
            text = "".join(part.text for part in parts if part.text and not part.thought)
            finish = _enum_name(candidate.finish_reason) if candidate.finish_reason else ""
        except (AttributeError, TypeError):
            raise Transient(
                "malformed response: unexpected candidate shape", provider=self.name, status=200
            ) from None
        return text, finish

    def _raise_if_blocked(self, response: Any) -> None:
        feedback = response.prompt_feedback
        reason = getattr(feedback, "block_reason", None) if feedback else None
        if reason:
            detail = getattr(feedback, "block_reason_message", None) or ""
            raise RejectedInput(
                redact(f"prompt blocked: {_enum_name(reason)} {detail}".strip(), self.api_key),
                provider=self.name,
                status=200,
            )

    async def multimodal(self, task: MultimodalTask, *, model: str) -> ProviderResult:
        from google.genai import types

        try:
            data = task.media.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {task.media}: {exc.strerror or exc}") from None
        parts = [
            types.Part.from_text(text=task.prompt),
            types.Part.from_bytes(data=data, mime_type=task.mime_type),
        ]
        contents = [types.Content(role="user", parts=parts)]
        response = await self._generate(model, contents, _config(task))
        return self._result(response, model, task)

    def _result(self, response: Any, model: str, task: TextTask | MultimodalTask) -> ProviderResult:
        """The answer and its usage; counts the provider left out fall back to the estimates."""
        output, result_model, prompt_tokens, output_tokens = self._read(response, model)
        usage = _usage(task, output, prompt_tokens, output_tokens)
        if isinstance(task, MultimodalTask) and task.is_audio and task.audio_seconds:
            usage["audio_seconds"] = task.audio_seconds  # measured before the call
        return ProviderResult(output=output, model=result_model, usage=usage)

    async def _generate(self, model: str, contents: list[Any], config: Any) -> Any:
        """One `generateContent` call; every failure leaves as a taxonomy error."""
        with self._translated():
            return await self._sdk().aio.models.generate_content(
                model=model, contents=contents, config=config
            )

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """Whatever the SDK raises inside leaves as a taxonomy error, whole call or stream
        alike; our own ProviderErrors pass, and so does anything that is not the provider's
        doing (a bug here should surface as one)."""
        try:
            yield
        except ProviderError:
            raise
        except Exception as exc:
            error = self._failure(exc)
            if error is None:
                raise
            raise error from None

    def _failure(self, exc: Exception) -> ProviderError | None:
        """The taxonomy error for one exception the SDK raised, or None when it is not one."""
        import httpx
        from google.genai import errors

        if isinstance(exc, errors.APIError):  # an error answer, or an error event mid-stream
            return self._classify(exc)
        if isinstance(exc, httpx.TransportError):  # refused, timed out, or cut mid-stream
            return transport_error(exc, provider=self.name, timeout_s=self.timeout_s)
        if isinstance(exc, ValueError | TypeError | KeyError | AttributeError):
            # A 200 whose body is not JSON or not the documented shape (the SDK's json.loads
            # and pydantic models raise these).
            return Transient(
                redact(f"malformed response: {type(exc).__name__}", self.api_key),
                provider=self.name,
                status=200,
            )
        return None

    def _read(self, response: Any, model: str) -> tuple[str, str, int | None, int | None]:
        """(text, model, prompt tokens, output tokens) from a GenerateContentResponse."""
        try:
            candidates = response.candidates or []
            if not candidates:
                self._raise_if_blocked(response)
                raise Transient("malformed response: no candidates", provider=self.name, status=200)
            candidate = candidates[0]
            if candidate.content is None and candidate.finish_reason is None:
                raise Transient(
                    "malformed response: candidate without content", provider=self.name, status=200
                )
            parts = (candidate.content.parts if candidate.content else None) or []
            # Thought summaries are the model's notes to itself, not the answer.
            output = "".join(part.text for part in parts if part.text and not part.thought)
            finish = _enum_name(candidate.finish_reason) if candidate.finish_reason else ""
            if not output and finish in _REFUSED_FINISH:
                raise RejectedInput(
                    f"answer withheld: finishReason {finish}", provider=self.name, status=200
                )
            meta = response.usage_metadata
            prompt_tokens, output_tokens = _token_counts(meta, output) if meta else (None, None)
        except (AttributeError, TypeError):
            raise Transient(
                "malformed response: unexpected candidate shape", provider=self.name, status=200
            ) from None
        return output, str(response.model_version or model), prompt_tokens, output_tokens

    async def list_models(self) -> list[ModelInfo]:
        """`models.list` (`GET /v1beta/models`, `pageSize`, `nextPageToken`), over our client."""
        from scheduler.providers.listing import get_json, parse_gemini

        if not self.api_key:
            raise AuthFailed("no API key", provider=self.name)

        def classify(status: int, headers: Mapping[str, str], raw: bytes) -> ProviderError:
            return classify_error(status, raw, headers, provider=self.name, secret=self.api_key)

        models: list[ModelInfo] = []
        params = {"pageSize": "1000"}
        while True:
            data = await get_json(
                self.http,
                f"{self.base_url}/{API_VERSION}/models",
                provider=self.name,
                timeout_s=self.timeout_s,
                headers={"x-goog-api-key": self.api_key},
                params=params,
                classify=classify,
            )
            models += parse_gemini(data)
            token = data.get("nextPageToken")
            if not isinstance(token, str) or not token:
                return models
            params = {"pageSize": "1000", "pageToken": token}

    def _classify(self, exc: Any) -> ProviderError:
        """The SDK's APIError (code, status, message, details = the decoded body) -> taxonomy."""
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
        return classify_error(
            int(getattr(exc, "code", 0) or 0),
            getattr(exc, "details", None),
            headers if isinstance(headers, Mapping) else None,
            provider=self.name,
            secret=self.api_key,
        )


def _config(task: TextTask | MultimodalTask) -> Any:
    """The GenerateContentConfig of one call: the system prompt, output cap, temperature and
    stop sequences a text task sets (unset ones are left to the model's defaults)."""
    from google.genai import types

    text = task if isinstance(task, TextTask) else None
    return types.GenerateContentConfig(
        system_instruction=(text.system if text else None) or None,
        max_output_tokens=task.max_tokens or None,
        temperature=text.temperature if text else None,
        stop_sequences=list(text.stop) if text and text.stop else None,
        # One request per call: no function-calling loop, no continuation follow-ups.
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        automatic_continuation=False,
    )


def _contents(task: TextTask) -> list[Any]:
    """The task's conversation as the SDK's Content models (chat.gemini_contents' dicts,
    validated here, so a shape the SDK does not know fails before any request)."""
    from google.genai import types

    return [types.Content.model_validate(content) for content in gemini_contents(task)]


def _usage(
    task: TextTask | MultimodalTask,
    output: str,
    prompt_tokens: int | None,
    output_tokens: int | None,
) -> dict[str, float]:
    """Ledger usage from the provider's counts; those it left out fall back to the estimates."""
    return text_usage(
        prompt_tokens if prompt_tokens is not None else int(task.estimate()["input_tokens"]),
        output_tokens if output_tokens is not None else estimate_tokens(output),
    )


def _token_counts(meta: Any, output: str) -> tuple[int | None, int | None]:
    """(prompt tokens, output tokens) of a usageMetadata. Thinking tokens are billed as output
    tokens, so they count against the budget too."""
    prompt_tokens = _count(meta.prompt_token_count)
    answer_tokens = _count(meta.candidates_token_count)
    thoughts = _count(meta.thoughts_token_count) or 0
    output_tokens = answer_tokens + thoughts if answer_tokens is not None else None
    if output_tokens is None and thoughts:
        output_tokens = thoughts + estimate_tokens(output)
    return prompt_tokens, output_tokens


async def _close(stream: Any) -> None:
    """Close the SDK's stream early (on a failure, or when the caller stopped reading), so its
    response and connection go back now rather than when the generator is collected."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):  # best effort: the outcome is already decided
            await aclose()


def _enum_name(value: object) -> str:
    """The wire name of an SDK enum (or the raw string when the SDK did not know the value)."""
    name = getattr(value, "name", None)
    return str(name if isinstance(name, str) else value)


def _count(value: object) -> int | None:
    return reported_count(value)


def _google_error(body: object) -> Mapping[str, Any]:
    """The `error` object of a Google RPC error body (the SDK may hand us it or its parent)."""
    if isinstance(body, list) and body:
        body = body[0]
    if not isinstance(body, Mapping):
        return {}
    error = body.get("error", body)
    return error if isinstance(error, Mapping) else {}


def _details(error: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    details = error.get("details")
    return [d for d in details if isinstance(d, Mapping)] if isinstance(details, list) else []


def _quota_ids(error: Mapping[str, Any]) -> list[str]:
    """Every `quotaId` in the body's google.rpc.QuotaFailure violations."""
    ids = []
    for detail in _details(error):
        violations = detail.get("violations")
        for violation in violations if isinstance(violations, list) else ():
            if isinstance(violation, Mapping) and isinstance(violation.get("quotaId"), str):
                ids.append(violation["quotaId"])
    return ids


def _reasons(error: Mapping[str, Any]) -> set[str]:
    """Every google.rpc.ErrorInfo `reason` (e.g. API_KEY_INVALID)."""
    return {str(d["reason"]) for d in _details(error) if isinstance(d.get("reason"), str)}


def classify_error(
    status: int,
    body: object,
    headers: Mapping[str, str] | None,
    *,
    provider: str,
    secret: str | None = None,
    now: float | None = None,
) -> ProviderError:
    """Map one Gemini error (HTTP status + decoded Google RPC body) to the taxonomy."""
    now = time.time() if now is None else now
    if isinstance(body, bytes | str):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            body = {"message": body.decode("utf-8", "replace") if isinstance(body, bytes) else body}
    error = _google_error(body)
    message = str(error.get("message") or "")
    rpc_status = str(error.get("status") or "")
    text = redact(f"HTTP {status} {rpc_status}: {message}".strip().rstrip(":"), secret)[:300]
    quota_ids = _quota_ids(error)

    if status == 402 or (rpc_status == "RESOURCE_EXHAUSTED" and _CREDITS_GONE.search(message)):
        return QuotaExhausted(text, provider=provider, status=status)
    if status == 429 or rpc_status == "RESOURCE_EXHAUSTED":
        if _NO_FREE_QUOTA.search(message) or any("PerDay" in qid for qid in quota_ids):
            # RetryInfo (~40 s) is wrong for a daily quota: the window resets at midnight
            # Pacific, which the provider's own day rule knows. No hint, no resets_at.
            return QuotaExhausted(text, provider=provider, status=status)
        hint = retry_hint(headers, body, now=now)
        return RateLimited(text, provider=provider, status=status, retry_after=hint)
    if status in (401, 403) or rpc_status in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return AuthFailed(text, provider=provider, status=status)
    if status == 400 and (_reasons(error) & {"API_KEY_INVALID"} or _BAD_KEY.search(message)):
        return AuthFailed(text, provider=provider, status=status)
    if status == 400 and rpc_status == "FAILED_PRECONDITION":
        # "User location is not supported", "free tier not available in your country": no
        # request of ours will succeed until the account (or where it calls from) changes.
        return AuthFailed(text, provider=provider, status=status)
    if status in (408, 409, 425, 499) or status >= 500 or status < 400:
        hint = retry_hint(headers, body, now=now)
        return Transient(text, provider=provider, status=status, retry_after=hint)
    if is_model_gone(status, error, message):  # 404 NOT_FOUND "models/X is not found ..."
        return ModelUnavailable(text, provider=provider, status=status)
    return RejectedInput(text, provider=provider, status=status)


__all__ = ["API_VERSION", "GeminiAdapter", "classify_error"]
