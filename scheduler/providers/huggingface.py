"""Hugging Face Inference Providers (the router), HF's own `hf-inference` provider, plain httpx.

Both tasks post to `POST {base}/hf-inference/models/{model}` with a Bearer token: text-to-image
takes JSON `{"inputs": prompt, "parameters": {...}}` and answers with the raw image bytes;
speech recognition takes the raw audio bytes (Content-Type = the audio's type) and answers
`{"text": ..., "chunks"?: [{"text", "timestamp": [start, end]}]}`. No SDK: `huggingface_hub`
would add a heavy import and its own retries for two plain requests.

The legacy serverless host (api-inference.huggingface.co) answers 410 Gone; a 503 "is currently
loading" carries `estimated_time`, the seconds until the model is warm, which is our retry hint.
Raw-bytes ASR has no way to pass a language, so `SttTask.language` is left to the model's
detection.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

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
from scheduler.media import sniff_media_type
from scheduler.providers.base import Adapter, reported_number
from scheduler.providers.http_errors import error_parts, read_error, transport_error
from scheduler.tasks import (
    ImageTask,
    ProviderResult,
    RateLimitReport,
    Segment,
    SttTask,
    TaskKind,
)

ROUTER_URL = "https://router.huggingface.co"
PROVIDER_PATH = "/hf-inference"

_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")
# IETF draft RateLimit header as HF sends it: `"api";r=489;t=189` (remaining, seconds to reset),
# and RateLimit-Policy: `"fixed window";"api";q=500;w=300` (quota per window).
_RL_REMAINING = re.compile(r"(?:^|;)\s*r=(\d+(?:\.\d+)?)")
_RL_RESET = re.compile(r"(?:^|;)\s*t=(\d+(?:\.\d+)?)")
_RL_QUOTA = re.compile(r"(?:^|;)\s*q=(\d+(?:\.\d+)?)")
_CREDITS_GONE = re.compile(
    r"included credits|credits? (?:exhausted|depleted)|out of credits", re.IGNORECASE
)


class HuggingFaceAdapter(Adapter):
    """Text-to-image and speech recognition on the router's `hf-inference` provider."""

    kinds: ClassVar[frozenset[TaskKind]] = frozenset({"image", "stt"})
    default_base_url: ClassVar[str | None] = ROUTER_URL

    def _url(self, model: str) -> str:
        """A base URL that already names the provider (…/hf-inference) is taken as it is."""
        prefix = "" if self.base_url.endswith(PROVIDER_PATH) else PROVIDER_PATH
        return f"{self.base_url}{prefix}/models/{model.strip('/')}"

    def _auth(self) -> dict[str, str]:
        if not self.api_key:
            raise AuthFailed("no API token", provider=self.name)
        return {"Authorization": f"Bearer {self.api_key}"}

    async def image(self, task: ImageTask, *, model: str) -> ProviderResult:
        body: dict[str, Any] = {"inputs": task.prompt}
        size = _SIZE.match(task.size or "")
        if size:
            body["parameters"] = {"width": int(size.group(1)), "height": int(size.group(2))}
        response = await self._post(model, headers=self._auth(), json=body)
        data = response.content
        media_type = _image_type(response.headers.get("content-type", ""), data)
        if media_type is None:
            kind = response.headers.get("content-type") or "no content type"
            raise Transient(
                f"malformed response: expected image bytes, got {kind}",
                provider=self.name,
                status=response.status_code,
            )
        return ProviderResult(
            output="",
            model=model,
            usage={"requests": 1, "images": 1},
            rate_limits=rate_limit_reports(response.headers, now=time.time()),
            data=data,
            media_type=media_type,
        )

    async def stt(self, task: SttTask, *, model: str) -> ProviderResult:
        try:
            audio = task.audio.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {task.audio}: {exc.strerror or exc}") from None
        headers = {**self._auth(), "Content-Type": task.mime_type}
        response = await self._post(model, headers=headers, content=audio)
        try:
            data = json.loads(response.content)
            text = data["text"]
            if not isinstance(text, str):
                raise TypeError("text is not a string")
        except (ValueError, UnicodeDecodeError, KeyError, TypeError):
            raise Transient(
                "malformed response: no text in the transcription",
                provider=self.name,
                status=response.status_code,
            ) from None
        return ProviderResult(
            output=text.strip(),
            model=model,
            usage={"requests": 1, "audio_seconds": task.audio_seconds},
            rate_limits=rate_limit_reports(response.headers, now=time.time()),
            segments=_segments(data.get("chunks"), task.audio_seconds),
        )

    async def _post(self, model: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self.http.post(self._url(model), timeout=self.timeout_s, **kwargs)
        except httpx.TransportError as exc:
            raise transport_error(exc, provider=self.name, timeout_s=self.timeout_s) from None
        if response.status_code >= 300:
            raise classify_error(*error_parts(response), provider=self.name, secret=self.api_key)
        return response


def _image_type(content_type: str, data: bytes) -> str | None:
    """The image's media type from its Content-Type, else from its first bytes."""
    declared = content_type.split(";", 1)[0].strip().lower()
    if declared.startswith("image/") and data:
        return declared
    sniffed = sniff_media_type(data[:16])  # a body served as application/octet-stream
    return sniffed if sniffed is not None and sniffed.startswith("image/") else None


def _segments(chunks: object, audio_seconds: float) -> tuple[Segment, ...]:
    """`chunks[].timestamp` = [start, end] in seconds; Whisper leaves the last end null."""
    if not isinstance(chunks, list):
        return ()
    segments = []
    for chunk in chunks:
        if not isinstance(chunk, Mapping):
            continue
        stamp = chunk.get("timestamp")
        if not isinstance(stamp, list | tuple) or len(stamp) != 2:
            continue
        start, end = (_number(value) for value in stamp)
        if start is None:
            continue
        segments.append(
            Segment(
                start=start,
                end=end if end is not None else max(start, audio_seconds),
                text=str(chunk.get("text") or "").strip(),
            )
        )
    return tuple(segments)


def _number(value: object) -> float | None:
    return reported_number(value)


def _message(body: object) -> str | None:
    """The human-readable error from HF's shapes: {"error": str | {message} | [str, ...]}."""
    if isinstance(body, Mapping):
        error = body.get("error", body.get("message", body.get("detail")))
        if isinstance(error, Mapping):
            error = error.get("message") or json.dumps(error)
        if isinstance(error, list):
            error = "; ".join(str(item) for item in error)
        if error is not None:
            return str(error)
    return None


def classify_error(
    status: int,
    headers: Mapping[str, str],
    raw: bytes,
    *,
    provider: str,
    secret: str | None = None,
    now: float | None = None,
) -> ProviderError:
    """Map one failed router response to the taxonomy, reading the body, not only the status."""
    answer = read_error(status, headers, raw, secret=secret, now=now, message_of=_message)
    body, message, text, hint = answer.body, answer.message, answer.text, answer.retry_after
    kwargs = answer.fields(provider, with_hint=False)

    if status == 402 or (status == 429 and _CREDITS_GONE.search(message)):
        return QuotaExhausted(text, **kwargs)
    if status == 429:
        if hint is None:
            hint = _ietf_reset(headers)
        return RateLimited(text, retry_after=hint, **kwargs)
    if status in (401, 403):
        return AuthFailed(text, **kwargs)
    if status == 410:
        return RejectedInput(
            redact(
                f"HTTP 410: {message} (this is the retired serverless endpoint: set the provider's"
                f" base_url to {ROUTER_URL})",
                secret,
            )[:400],
            **kwargs,
        )
    if status in (408, 409, 425) or status >= 500:
        if isinstance(body, Mapping):  # a model still loading says how long it needs
            estimated = _number(body.get("estimated_time"))
            if estimated is not None and estimated >= 0:
                hint = estimated
        return Transient(text, retry_after=hint, **kwargs)
    if answer.model_gone:
        return ModelUnavailable(text, **kwargs)
    return RejectedInput(text, **kwargs)


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return ""


def _ietf_reset(headers: Mapping[str, str]) -> float | None:
    """Seconds until the window resets, from `RateLimit: "api";r=0;t=89`."""
    match = _RL_RESET.search(_header(headers, "ratelimit").replace(" ", ""))
    return float(match.group(1)) if match else None


def rate_limit_reports(headers: Mapping[str, str], *, now: float) -> tuple[RateLimitReport, ...]:
    """Remaining requests in HF's fixed window, when the router sends the RateLimit header."""
    value = _header(headers, "ratelimit").replace(" ", "")
    remaining = _RL_REMAINING.search(value)
    if remaining is None:
        return ()
    reset = _RL_RESET.search(value)
    quota = _RL_QUOTA.search(_header(headers, "ratelimit-policy").replace(" ", ""))
    return (
        RateLimitReport(
            metric="requests",
            remaining=float(remaining.group(1)),
            resets_at=now + float(reset.group(1)) if reset else None,
            limit=float(quota.group(1)) if quota else None,
        ),
    )


__all__ = [
    "PROVIDER_PATH",
    "ROUTER_URL",
    "HuggingFaceAdapter",
    "classify_error",
    "rate_limit_reports",
]
