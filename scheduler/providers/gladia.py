"""Gladia pre-recorded speech-to-text (v2), and audio questions through its Audio-to-LLM option.

Plain httpx on the shared client; Gladia's own SDK would bring its own retry loop. The flow
(Gladia API reference, v2): `POST /v2/upload` (multipart, field `audio`) answers `{"audio_url",
"audio_metadata"}`; `POST /v2/pre-recorded` (JSON) answers `{"id", "result_url"}`; `GET
/v2/pre-recorded/{id}` is polled until `status` is `done` or `error` (then `error_code` holds the
HTTP status of the failure). Auth is the `x-gladia-key` header.

Results: `result.transcription.full_transcript` and `utterances` (seconds); usage is
`result.metadata.billing_time` (what Gladia bills: duration x distinct channels), else
`audio_duration`, else the length measured before the call.

Multimodal = one audio file plus a prompt: the job is created with `audio_to_llm: true` and
`audio_to_llm_config: {"prompts": [prompt]}` (docs "Audio-to-LLM"); the answer is
`result.audio_to_llm.results[0].results.response`. Gladia runs the prompt on the transcript text
with its default LLM, so the configured model names the transcription model only. Images are
refused (RejectedInput): Gladia only hears.

Errors are `{"statusCode", "message", "request_id", "validation_errors"?}`. Gladia does not
document how it reports exhausted credit (10 h/month free, or the 2026 prepaid wallet), so we
decide: 402, and any 400/401/403/429 whose message speaks of quota, credit, balance or a usage
limit, is QuotaExhausted; other 429s are rate limits; 401/403 bad keys; 400/413/415/422 input
Gladia refused; 5xx and malformed answers transient.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from pathlib import Path
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
    redact,
)
from scheduler.providers.base import Adapter, reported_number
from scheduler.providers.http_errors import error_parts, json_object, read_error, transport_error
from scheduler.tasks import MultimodalTask, ProviderResult, Segment, SttTask, TaskKind

DEFAULT_BASE_URL = "https://api.gladia.io"

_QUOTA_TEXT = re.compile(
    r"quota|credit|balance|usage limit|exceeded (?:your|the) (?:monthly|free)|top.?up|wallet"
    r"|payment required|hours? (?:limit|per month)",
    re.IGNORECASE,
)
_RUNNING = ("queued", "processing")


class GladiaAdapter(Adapter):
    """Pre-recorded transcription and Audio-to-LLM prompts over Gladia's v2 job API."""

    kinds: ClassVar[frozenset[TaskKind]] = frozenset({"stt", "multimodal"})
    default_base_url: ClassVar[str | None] = DEFAULT_BASE_URL
    poll_interval_s: ClassVar[float] = 3.0  # what Gladia's SDKs use

    async def stt(self, task: SttTask, *, model: str) -> ProviderResult:
        options: dict[str, Any] = {}
        if task.language:
            options["language_config"] = {"languages": [task.language]}
        result, upload_seconds = await self._run_job(task.audio, task.mime_type, options)
        try:
            transcription = result["transcription"]
            text = transcription["full_transcript"]
            if not isinstance(text, str):
                raise TypeError
            segments = tuple(
                Segment(float(u["start"]), float(u["end"]), str(u["text"]))
                for u in transcription.get("utterances") or ()
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise self._malformed("no result.transcription.full_transcript") from None
        return ProviderResult(
            output=text,
            model=model,
            usage=self._usage(result, upload_seconds, task.audio_seconds),
            segments=segments,
        )

    async def multimodal(self, task: MultimodalTask, *, model: str) -> ProviderResult:
        if not task.is_audio:
            raise RejectedInput(
                f"{self.name} answers questions about audio only, not {task.mime_type}",
                provider=self.name,
            )
        options = {"audio_to_llm": True, "audio_to_llm_config": {"prompts": [task.prompt]}}
        result, upload_seconds = await self._run_job(task.media, task.mime_type, options)
        answer = self._llm_answer(result)
        return ProviderResult(
            output=answer,
            model=model,
            usage=self._usage(result, upload_seconds, task.audio_seconds or 0.0),
        )

    # -- the job ---------------------------------------------------------------------------

    async def _run_job(
        self, audio: Path, mime_type: str, options: dict[str, Any]
    ) -> tuple[dict[str, Any], float | None]:
        """Upload, create, poll until done; the job's `result` and the upload's duration."""
        if not self.api_key:
            raise AuthFailed("no API key", provider=self.name)
        try:
            data = await asyncio.to_thread(audio.read_bytes)
        except OSError as exc:
            raise RejectedInput(
                f"cannot read {audio.name}: {exc.strerror or type(exc).__name__}",
                provider=self.name,
            ) from None
        job_id: str | None = None
        status = "not created"
        try:
            async with asyncio.timeout(self.timeout_s):
                upload = await self._call(
                    "POST", "/v2/upload", files={"audio": (audio.name, data, mime_type)}
                )
                audio_url = upload.get("audio_url")
                if not isinstance(audio_url, str) or not audio_url:
                    raise self._malformed("upload answered without audio_url")
                metadata = upload.get("audio_metadata")
                upload_seconds = (
                    _number(metadata.get("audio_duration")) if isinstance(metadata, dict) else None
                )
                job = await self._call(
                    "POST", "/v2/pre-recorded", json={"audio_url": audio_url, **options}
                )
                job_id = job.get("id") if isinstance(job.get("id"), str) else None
                if not job_id:
                    raise self._malformed("job created without an id")
                while True:
                    state = await self._call("GET", f"/v2/pre-recorded/{job_id}")
                    status = str(state.get("status"))
                    if status == "done":
                        result = state.get("result")
                        if not isinstance(result, dict):
                            raise self._malformed("job done without a result")
                        return result, upload_seconds
                    if status == "error":
                        raise self._job_failed(job_id, state.get("error_code"))
                    if status not in _RUNNING:
                        raise self._malformed(f"unknown job status {status!r}")
                    await asyncio.sleep(self.poll_interval_s)
        except TimeoutError:  # our total budget (asyncio.timeout)
            where = (
                f"waiting for job {job_id} (last status: {status})"
                if job_id
                else "before the job was created"
            )
            raise Transient(
                f"timed out after {self.timeout_s:g} s {where}", provider=self.name
            ) from None

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self.http.request(
                method,
                f"{self.base_url}{path}",
                headers={"x-gladia-key": self.api_key or ""},
                **kwargs,
            )
        except httpx.HTTPError as exc:
            raise transport_error(
                exc, provider=self.name, timeout_s=self.timeout_s, where=f" on {method} {path}"
            ) from None
        if not response.is_success:
            raise classify_error(*error_parts(response), provider=self.name, secret=self.api_key)
        return json_object(response, provider=self.name)

    # -- results ---------------------------------------------------------------------------

    def _usage(
        self, result: Mapping[str, Any], upload_seconds: float | None, measured: float
    ) -> dict[str, float]:
        metadata = result.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        for seconds in (
            _number(metadata.get("billing_time")),
            _number(metadata.get("audio_duration")),
            upload_seconds,
        ):
            if seconds is not None:
                return {"requests": 1, "audio_seconds": seconds}
        return {"requests": 1, "audio_seconds": measured}

    def _llm_answer(self, result: Mapping[str, Any]) -> str:
        addon = result.get("audio_to_llm")
        if not isinstance(addon, dict):
            raise self._malformed("no result.audio_to_llm")
        items = addon.get("results")
        first = items[0] if isinstance(items, list) and items else None
        for part in (addon, first):
            if isinstance(part, dict) and part.get("success") is False:
                raise self._addon_failed(part.get("error"))
        inner = first.get("results") if isinstance(first, dict) else None
        if not isinstance(first, dict) or not isinstance(inner, dict):
            raise self._malformed("no result.audio_to_llm.results[0].results.response")
        answer = inner.get("response")
        if answer is None and first.get("is_empty"):
            return ""
        if not isinstance(answer, str):
            raise self._malformed("audio_to_llm response is not text")
        return answer

    # -- failures --------------------------------------------------------------------------

    def _malformed(self, what: str) -> Transient:
        return Transient(f"malformed response: {what}", provider=self.name, status=200)

    def _job_failed(self, job_id: str, error_code: object) -> ProviderError:
        code = error_code if isinstance(error_code, int) else None
        text = f"job {job_id} failed with error code {code if code is not None else 'unknown'}"
        if code == 402:
            return QuotaExhausted(text, provider=self.name, status=code)
        if code is not None and 400 <= code < 500 and code not in (408, 429):
            return RejectedInput(text, provider=self.name, status=code)
        return Transient(text, provider=self.name, status=code)

    def _addon_failed(self, error: object) -> ProviderError:
        detail = error if isinstance(error, dict) else {}
        code = detail.get("status_code")
        message = detail.get("message") or detail.get("exception") or "no reason given"
        text = redact(f"audio_to_llm failed: {message}", self.api_key)[:300]
        if isinstance(code, int) and 400 <= code < 500 and code not in (408, 429):
            return RejectedInput(text, provider=self.name, status=code)
        return Transient(text, provider=self.name, status=code if isinstance(code, int) else None)


def _number(value: object) -> float | None:
    number = reported_number(value)
    return number if number is not None and number >= 0 else None


def _message(body: object) -> str | None:
    """`message` (and any `validation_errors`) of a Gladia error body; None when it has none."""
    if not isinstance(body, dict):
        return None
    message = body.get("message") or body.get("error") or body.get("detail") or ""
    if not isinstance(message, str):
        message = json.dumps(message)
    problems = body.get("validation_errors")
    if isinstance(problems, list) and problems:
        message = f"{message} ({'; '.join(str(p) for p in problems)})".strip()
    return message or None


def classify_error(
    status: int,
    headers: Mapping[str, str],
    raw: bytes,
    *,
    provider: str,
    secret: str | None = None,
    now: float | None = None,
) -> ProviderError:
    """Map one failed Gladia response to the taxonomy (see the module docstring)."""
    answer = read_error(status, headers, raw, secret=secret, now=now, message_of=_message)
    message, text, kwargs = answer.message, answer.text, answer.fields(provider)
    if status == 402 or (status in (400, 401, 403, 429) and _QUOTA_TEXT.search(message)):
        return QuotaExhausted(text, **kwargs)
    if status == 429:
        return RateLimited(text, **kwargs)
    if status in (401, 403):
        return AuthFailed(text, **kwargs)
    if status in (408, 409, 425) or status >= 500 or status < 400:
        return Transient(text, **kwargs)
    if answer.model_gone:
        return ModelUnavailable(text, **kwargs)
    return RejectedInput(text, **kwargs)


__all__ = ["GladiaAdapter", "classify_error"]
