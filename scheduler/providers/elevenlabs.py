"""ElevenLabs text-to-speech over plain httpx.

`POST /v1/text-to-speech/{voice_id}?output_format=...` with the `xi-api-key` header and JSON
`{"text", "model_id"}` answers the raw audio bytes (ElevenLabs API reference). The SDK would add
only its own retries and typed wrappers around this one request.

Formats: mp3 -> `mp3_44100_128` (the documented default), opus -> `opus_48000_64` (Ogg Opus;
the output_format enum is per request, not per model), wav -> `pcm_24000`, which is headerless
16-bit little-endian mono PCM: we wrap it in a WAV container here so that `data` is always a
playable file matching `media_type` (pcm_44100 needs the Pro tier, 24 kHz does not). Without a
voice we use George (`JBFqnCBsd6RMkjVDRZzb`), a premade voice that free accounts may use through
the API (library voices need a paid plan).

Errors are `{"detail": {"status", "message"}}` (newer answers add `type`, `code`, `request_id`);
422 validation errors carry FastAPI's `{"detail": [{"loc", "msg", "type"}]}`. Out of credit is
HTTP 401 with `detail.status == "quota_exceeded"`, so the body decides, never the status alone;
402 `paid_plan_required` refuses a voice for this plan (RejectedInput: another voice or provider
works), any other 402 is out of credit. 429 `too_many_concurrent_requests` / `system_busy` are
rate limits. Usage is the characters sent (`len(text)`); Flash/Turbo bill half a credit per
character through the API, so counting whole characters keeps a margin.
"""

from __future__ import annotations

import io
import json
import wave
from collections.abc import Mapping
from typing import ClassVar
from urllib.parse import quote

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
from scheduler.providers.base import Adapter
from scheduler.providers.http_errors import error_parts, read_error, transport_error
from scheduler.tasks import AudioFormat, ProviderResult, TaskKind, TtsTask

DEFAULT_BASE_URL = "https://api.elevenlabs.io"
DEFAULT_VOICE = "JBFqnCBsd6RMkjVDRZzb"  # "George", premade
PCM_RATE = 24000

# Our format -> (ElevenLabs output_format, media type of the bytes we hand back).
FORMATS: dict[AudioFormat, tuple[str, str]] = {
    "mp3": ("mp3_44100_128", "audio/mpeg"),
    "opus": ("opus_48000_64", "audio/ogg"),
    "wav": (f"pcm_{PCM_RATE}", "audio/wav"),
}
_QUOTA_STATUSES = frozenset({"quota_exceeded", "insufficient_credits", "credits_exhausted"})
_BUSY_STATUSES = frozenset({"too_many_concurrent_requests", "system_busy", "rate_limit_exceeded"})
_PLAN_STATUSES = frozenset({"paid_plan_required"})


class ElevenLabsAdapter(Adapter):
    """Text to speech; always hands back a complete file in the format the task asked for."""

    kinds: ClassVar[frozenset[TaskKind]] = frozenset({"tts"})
    default_base_url: ClassVar[str | None] = DEFAULT_BASE_URL

    async def tts(self, task: TtsTask, *, model: str) -> ProviderResult:
        if not self.api_key:
            raise AuthFailed("no API key", provider=self.name)
        output_format, media_type = FORMATS[task.format]
        voice = task.voice or DEFAULT_VOICE
        try:
            response = await self.http.post(
                f"{self.base_url}/v1/text-to-speech/{quote(voice, safe='')}",
                params={"output_format": output_format},
                headers={"xi-api-key": self.api_key},
                json={"text": task.text, "model_id": model},
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc, provider=self.name, timeout_s=self.timeout_s) from None
        if not response.is_success:
            raise classify_error(*error_parts(response), provider=self.name, secret=self.api_key)
        data = response.content
        content_type = response.headers.get("content-type", "")
        if not data or content_type.startswith(("application/json", "text/")):
            raise Transient(
                f"malformed response: no audio ({content_type or 'empty body'})",
                provider=self.name,
                status=response.status_code,
            )
        if task.format == "wav":
            data = pcm_to_wav(data, PCM_RATE)
        return ProviderResult(
            output="",
            model=model,
            usage={"requests": 1, "characters": len(task.text)},
            data=data,
            media_type=media_type,
        )


def pcm_to_wav(pcm: bytes, rate: int) -> bytes:
    """Raw 16-bit little-endian mono PCM in a WAV container (a stray odd byte is dropped)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm[: len(pcm) - len(pcm) % 2])
    return out.getvalue()


def _detail(body: object) -> tuple[str, str] | None:
    """(status or code, message) from any ElevenLabs error body; None for another body."""
    detail = body.get("detail", body) if isinstance(body, dict) else None
    if isinstance(detail, dict):
        status = detail.get("status") or detail.get("code") or ""
        code = detail.get("code") or ""
        if code in _PLAN_STATUSES:  # the code is more specific than status "payment_required"
            status = code
        message = detail.get("message") or detail.get("msg") or json.dumps(detail)
        return str(status), str(message)
    if isinstance(detail, list):  # FastAPI validation errors
        messages = [
            str(item.get("msg") or item) if isinstance(item, dict) else str(item) for item in detail
        ]
        return "validation_error", "; ".join(messages)
    if isinstance(detail, str):
        return "", detail
    return None


def _label(body: object) -> str | None:
    """The `status: message` label of an ElevenLabs error body (no status: the message)."""
    found = _detail(body)
    if found is None:
        return None
    code, message = found
    return f"{code}: {message}" if code else message


def classify_error(
    status: int,
    headers: Mapping[str, str],
    raw: bytes,
    *,
    provider: str,
    secret: str | None = None,
    now: float | None = None,
) -> ProviderError:
    """Map one failed ElevenLabs response to the taxonomy, by `detail.status` first."""
    answer = read_error(status, headers, raw, secret=secret, now=now, message_of=_label)
    code = (_detail(answer.body) or ("", ""))[0]
    text, kwargs = answer.text, answer.fields(provider)
    if code in _QUOTA_STATUSES:
        return QuotaExhausted(text, **kwargs)
    if code in _PLAN_STATUSES:
        return RejectedInput(text, **kwargs)
    if status == 402:
        return QuotaExhausted(text, **kwargs)
    if status == 429 or code in _BUSY_STATUSES:
        return RateLimited(text, **kwargs)
    if status in (401, 403):
        return AuthFailed(text, **kwargs)
    if status in (408, 409, 425) or status >= 500 or status < 400:
        return Transient(text, **kwargs)
    if answer.model_gone:
        return ModelUnavailable(text, **kwargs)
    return RejectedInput(text, **kwargs)


__all__ = ["DEFAULT_VOICE", "FORMATS", "ElevenLabsAdapter", "classify_error", "pcm_to_wav"]
