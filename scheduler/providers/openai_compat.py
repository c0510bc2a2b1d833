"""The OpenAI-compatible wire protocol: OpenAI, Groq, Mistral, Together, OpenRouter, DeepInfra,
Fireworks chat, Perplexity, AI21's compatible endpoint and any local server (Ollama, vLLM, ...).

Requests are plain httpx POSTs on the shared client (base URL + path, a bearer key, our timeout;
any non-2xx answer goes to `classify_error`). The `openai` SDK was used here only for its raw
POST, and importing it cost 1.4 s of CPU per process, more than the rest of a `sched run text`
together; its typed models would cost 0.35 ms more per call, and we need the raw body anyway:
these providers signal "out of credit" and "per day" in the body, not in the status code.

The same path serves every kind these APIs speak: `/chat/completions` (text, and multimodal with
an `image_url` content part), `/images/generations`, `/audio/transcriptions` (multipart form
fields plus the file, as the SDK's own `audio.transcriptions.create` sends it) and
`/audio/speech`. Every endpoint shares one error envelope, so `classify_error` serves them all.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

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
from scheduler.media import sniff_media_type
from scheduler.providers.base import Adapter, reported_count
from scheduler.providers.chat import (
    data_url,
    openai_max_tokens,
    openai_messages,
    openai_sampling,
)
from scheduler.providers.http_errors import (
    decode_json,
    error_parts,
    json_object,
    read_error,
    transport_error,
)
from scheduler.providers.http_guard import failure_name
from scheduler.providers.sse import SseStream
from scheduler.retry_hints import parse_retry_value
from scheduler.tasks import (
    ImagePart,
    ImageTask,
    MultimodalTask,
    ProviderResult,
    RateLimitReport,
    Segment,
    SttTask,
    TaskKind,
    TextDelta,
    TextTask,
    TtsTask,
    estimate_tokens,
    text_usage,
)

if TYPE_CHECKING:
    from scheduler.providers.listing import ModelInfo

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
# Whisper models answer `verbose_json` (segments with timestamps); gpt-4o*-transcribe only `json`.
_WHISPER = re.compile(r"whisper", re.IGNORECASE)
# What each requested speech format is when neither the bytes nor the content-type tell.
_FORMAT_MEDIA_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav", "opus": "audio/ogg"}
_AUDIO_ALIASES = {
    "audio/mp3": "audio/mpeg",
    "audio/mpeg3": "audio/mpeg",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
}

FileField = tuple[str, tuple[str, bytes, str]]
# OpenAI's own API, the one server that wants `max_completion_tokens` unless configured.
OPENAI_API_HOST = "api.openai.com"


class OpenAICompatAdapter(Adapter):
    """Chat, images, transcription and speech over the OpenAI wire format."""

    kinds: ClassVar[frozenset[TaskKind]] = frozenset({"text", "image", "stt", "tts", "multimodal"})
    default_base_url = "https://api.openai.com/v1"
    can_stream: ClassVar[bool] = True

    # -- text and multimodal: /chat/completions --------------------------------------------

    @property
    def completion_tokens(self) -> bool:
        """Whether this provider caps answers with `max_completion_tokens`: as configured
        (`max_tokens_field`), else only OpenAI's own API, which deprecated `max_tokens`."""
        field = self.config.max_tokens_field
        if field is None:
            host = urlsplit(self.base_url).hostname or ""
            return host == OPENAI_API_HOST
        return field == "max_completion_tokens"

    async def text(self, task: TextTask, *, model: str) -> ProviderResult:
        sampling = openai_sampling(task, completion_tokens=self.completion_tokens)
        body = {"model": model, "messages": openai_messages(task), **sampling}
        return await self._chat(body, model=model, input_estimate=task.estimate()["input_tokens"])

    async def stream_text(
        self, task: TextTask, *, model: str
    ) -> AsyncIterator[TextDelta | ProviderResult]:
        """`stream: true` over SSE: `choices[0].delta.content` pieces, then the usage chunk that
        `stream_options.include_usage` asks for (empty `choices`), then `data: [DONE]`. Groq
        sends its usage as `x_groq.usage` instead; a server that sends none is counted."""
        body = {
            "model": model,
            "messages": openai_messages(task),
            **openai_sampling(task, completion_tokens=self.completion_tokens),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        headers = self._auth()
        written: list[str] = []
        usage: dict[str, Any] = {}
        answered_by = model
        stream = SseStream(
            self.http,
            f"{self.base_url}/chat/completions",
            body=body,
            headers=headers,
            provider=self.name,
            timeout_s=self.timeout_s,
            classify=self._classify,
        )
        async with stream:
            async for _, chunk in stream.events():
                if not isinstance(chunk, dict):
                    continue
                if "error" in chunk:  # a late error inside the stream (OpenRouter, vLLM)
                    self._raise_body_error(chunk, stream.response, expected="")
                answered_by = str(chunk.get("model") or answered_by)
                reported = chunk.get("usage") or (chunk.get("x_groq") or {}).get("usage")
                if isinstance(reported, dict):
                    usage = reported
                piece = _delta_text(chunk)
                if piece:
                    written.append(piece)
                    yield TextDelta(piece)
            headers_seen = stream.response.headers
        output = "".join(written)
        yield ProviderResult(
            output=output,
            model=answered_by,
            usage=text_usage(
                _int(usage.get("prompt_tokens"), task.estimate()["input_tokens"]),
                _int(usage.get("completion_tokens"), estimate_tokens(output)),
            ),
            rate_limits=rate_limit_reports(headers_seen, now=time.time()),
        )

    async def multimodal(self, task: MultimodalTask, *, model: str) -> ProviderResult:
        """A prompt about one image, as an `image_url` data-URL content part.

        Chat completions take images, not audio files (audio needs input_audio parts that only a
        few models accept), so audio is refused before any call: the next provider gets it and
        this one's health is untouched.
        """
        if task.is_audio:
            raise RejectedInput(f"{self.name} takes images, not audio, in chat", provider=self.name)
        media = await self._read(task.media)
        url = data_url(ImagePart(media, task.mime_type))
        content = [
            {"type": "text", "text": task.prompt},
            {"type": "image_url", "image_url": {"url": url}},
        ]
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": "user", "content": content}],
            **openai_max_tokens(task.max_tokens, completion_tokens=self.completion_tokens),
        }
        return await self._chat(body, model=model, input_estimate=task.estimate()["input_tokens"])

    async def _chat(
        self, body: dict[str, Any], *, model: str, input_estimate: float
    ) -> ProviderResult:
        response = await self._post("/chat/completions", body)
        data = json_object(response, provider=self.name)
        self._raise_body_error(data, response, expected="choices")
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
        input_tokens = _int(usage.get("prompt_tokens"), input_estimate)
        output_tokens = _int(usage.get("completion_tokens"), estimate_tokens(content))
        return ProviderResult(
            output=str(content),
            model=str(data.get("model") or model),
            usage=text_usage(input_tokens, output_tokens),
            rate_limits=rate_limit_reports(response.headers, now=time.time()),
        )

    # -- image: /images/generations --------------------------------------------------------

    async def image(self, task: ImageTask, *, model: str) -> ProviderResult:
        """One image, base64 in the answer; a URL-only answer (DALL-E url mode) is downloaded.

        DALL-E defaults to `url` (links that expire in an hour), so it is asked for `b64_json`;
        gpt-image-1 rejects `response_format` and always answers base64, as do DeepInfra's and
        most compatible servers' FLUX/SD endpoints.
        """
        body: dict[str, Any] = {"model": model, "prompt": task.prompt, "n": 1}
        if task.size:
            body["size"] = task.size
        if model.lower().startswith("dall-e"):
            body["response_format"] = "b64_json"
        response = await self._post("/images/generations", body)
        data = json_object(response, provider=self.name)
        self._raise_body_error(data, response, expected="data")
        items = data.get("data")
        item = items[0] if isinstance(items, list) and items else None
        encoded = item.get("b64_json") if isinstance(item, dict) else None
        url = item.get("url") if isinstance(item, dict) else None
        if isinstance(encoded, str) and encoded:
            image = decode_base64(encoded, provider=self.name)
        elif isinstance(url, str) and url:
            image = await self._download(url)
        else:
            raise Transient(
                "malformed response: no data[0].b64_json or url", provider=self.name, status=200
            )
        return ProviderResult(
            output="",
            model=model,
            usage={"requests": 1, "images": 1},
            rate_limits=rate_limit_reports(response.headers, now=time.time()),
            data=image,
            media_type=image_media_type(image, provider=self.name),
        )

    async def _download(self, url: str) -> bytes:
        """Fetch a result URL with the shared client (no auth header: it is a signed link)."""
        if not url.startswith(("https://", "http://")):
            raise Transient(
                "malformed response: image url is not http(s)", provider=self.name, status=200
            )
        try:
            response = await self.http.get(url, timeout=self.timeout_s)
        except httpx.TimeoutException:
            raise Transient(
                f"image download timed out after {self.timeout_s:g} s", provider=self.name
            ) from None
        except httpx.HTTPError as exc:
            raise Transient(
                f"image download failed: {failure_name(exc)}", provider=self.name
            ) from None
        if response.status_code != 200:
            raise Transient(
                f"image download failed: HTTP {response.status_code}",
                provider=self.name,
                status=response.status_code,
            )
        return response.content

    # -- stt: /audio/transcriptions (multipart) ---------------------------------------------

    async def stt(self, task: SttTask, *, model: str) -> ProviderResult:
        """Transcribe one file; whisper models are asked for `verbose_json` to get segments.

        Usage is the audio length measured before the call: providers bill audio by length.
        """
        audio = await self._read(task.audio)
        fields: dict[str, Any] = {
            "model": model,
            "response_format": "verbose_json" if _WHISPER.search(model) else "json",
        }
        if task.language:
            fields["language"] = task.language
        files: list[FileField] = [("file", (task.audio.name, audio, task.mime_type))]
        response = await self._post("/audio/transcriptions", fields, files=files)
        data = json_object(response, provider=self.name)
        self._raise_body_error(data, response, expected="text")
        text = data.get("text")
        if not isinstance(text, str):
            raise Transient("malformed response: no text", provider=self.name, status=200)
        return ProviderResult(
            output=text.strip(),
            model=model,
            usage={"requests": 1, "audio_seconds": task.audio_seconds},
            rate_limits=rate_limit_reports(response.headers, now=time.time()),
            segments=transcript_segments(data.get("segments")),
        )

    # -- tts: /audio/speech ------------------------------------------------------------------

    async def tts(self, task: TtsTask, *, model: str) -> ProviderResult:
        """Speech as raw bytes in the requested format; the CLI converts if a server ignored it."""
        body = {
            "model": model,
            "input": task.text,
            "voice": task.voice or "alloy",
            "response_format": task.format,
        }
        # As the SDK's own audio.speech.create: octet-stream, not JSON.
        response = await self._post(
            "/audio/speech", body, headers={"Accept": "application/octet-stream"}
        )
        media_type = self._speech_media_type(response, task.format)
        return ProviderResult(
            output="",
            model=model,
            usage={"requests": 1, "characters": len(task.text)},
            rate_limits=rate_limit_reports(response.headers, now=time.time()),
            data=response.content,
            media_type=media_type,
        )

    def _speech_media_type(self, response: httpx.Response, fmt: str) -> str:
        """What the audio is: its magic bytes, else its content-type, else what was asked for.

        The bytes come first because compatible servers are known to ignore `response_format`
        (returning WAV for opus) while the label follows the request.
        """
        content = response.content
        if not content:
            raise Transient("malformed response: no audio", provider=self.name, status=200)
        sniffed = sniff_media_type(content[:16])
        if sniffed:
            return sniffed
        declared = _main_type(response.headers.get("content-type", ""))
        if declared.startswith("audio/"):
            return _AUDIO_ALIASES.get(declared, declared)
        if declared in ("application/json", "text/html", "text/plain"):
            data = decode_json(content)
            if isinstance(data, dict) and "error" in data:
                self._raise_body_error(data, response, expected="")
            raise Transient(
                f"malformed response: {declared}, not audio", provider=self.name, status=200
            )
        return _FORMAT_MEDIA_TYPES.get(fmt, "application/octet-stream")

    # -- model list --------------------------------------------------------------------------

    async def list_models(self) -> list[ModelInfo]:
        """`GET /models`: OpenAI's envelope (Groq, Mistral, DeepInfra, Fireworks, local servers),
        OpenRouter's with prices and `:free` ids, or Together's bare list."""
        from scheduler.providers.listing import get_json, parse_openai

        headers = self._auth()
        data = await get_json(
            self.http,
            f"{self.base_url}/models",
            provider=self.name,
            timeout_s=self.timeout_s,
            headers=headers,
            classify=self._classify,
        )
        return parse_openai(data if "data" in data else data.get("models", data))

    # -- shared ------------------------------------------------------------------------------

    def _raise_body_error(
        self, data: dict[str, Any], response: httpx.Response, *, expected: str
    ) -> None:
        """An error object in a 200 answer (OpenRouter reports late errors so), classified by
        the status in its numeric `code` rather than by the 200."""
        if "error" not in data or (expected and expected in data):
            return
        code = data["error"].get("code") if isinstance(data["error"], dict) else None
        status = code if isinstance(code, int) and 400 <= code <= 599 else 200
        raise self._classify(status, response.headers, response.content)

    def _classify(self, status: int, headers: Mapping[str, str], raw: bytes) -> ProviderError:
        """The taxonomy class of one error answer; subclasses add their provider's codes."""
        return classify_error(status, headers, raw, provider=self.name, secret=self.api_key)

    async def _read(self, path: Path) -> bytes:
        """The media file's bytes, off the event loop; the CLI checked it, but it may be gone."""
        try:
            return await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise RejectedInput(
                f"cannot read {path.name}: {exc.strerror or type(exc).__name__}",
                provider=self.name,
            ) from None

    async def _post(
        self,
        path: str,
        body: dict[str, Any],
        *,
        files: Sequence[FileField] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One POST on the shared client: JSON, or multipart form fields plus `files` (httpx
        writes the boundary into the content type). Any answer but a 2xx is classified."""
        # A local server needs no key; the header it got from the SDK ("no-key") stays.
        key = self.api_key or "no-key"
        sent = {"Accept": "application/json", "Authorization": f"Bearer {key}", **(headers or {})}
        url = f"{self.base_url}{path}"
        try:
            if files is not None:
                form = {key: str(value) for key, value in body.items()}
                response = await self.http.post(
                    url, data=form, files=files, headers=sent, timeout=self.timeout_s
                )
            else:
                sent["Content-Type"] = "application/json"
                response = await self.http.post(
                    url, content=json.dumps(body).encode(), headers=sent, timeout=self.timeout_s
                )
        except httpx.HTTPError as exc:
            raise transport_error(exc, provider=self.name, timeout_s=self.timeout_s) from None
        if not response.is_success:
            raise self._classify(*error_parts(response)) from None  # never chain the answer
        return response

    def _auth(self) -> dict[str, str]:
        # Local servers need no key: no header at all rather than a made-up one.
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def _delta_text(chunk: dict[str, Any]) -> str:
    """The text of one streamed chunk: `choices[0].delta.content` (a string, or parts)."""
    choices = chunk.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ""
    delta = choices[0].get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


# The image types an OpenAI-compatible images endpoint answers with.
_ANSWER_IMAGES = frozenset({"image/png", "image/jpeg", "image/webp"})


def image_media_type(data: bytes, *, provider: str) -> str:
    """The image's type from its bytes; bytes that are no known image are a broken answer."""
    media_type = sniff_media_type(data[:16])
    if media_type not in _ANSWER_IMAGES:
        raise Transient(
            "malformed response: not a PNG, JPEG or WEBP image", provider=provider, status=200
        )
    return media_type


def decode_base64(text: str, *, provider: str) -> bytes:
    """Base64 image data, with or without a `data:<mime>;base64,` prefix."""
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Transient(
            "malformed response: image is not valid base64", provider=provider, status=200
        ) from None


def transcript_segments(value: object) -> tuple[Segment, ...]:
    """`segments` of a verbose_json transcript; entries without numeric start/end are dropped."""
    if not isinstance(value, list):
        return ()
    segments = []
    for item in value:
        if not isinstance(item, dict):
            continue
        start, end, text = item.get("start"), item.get("end"), item.get("text")
        if (
            isinstance(start, int | float)
            and isinstance(end, int | float)
            and not isinstance(start, bool)
            and not isinstance(end, bool)
            and math.isfinite(start)
            and math.isfinite(end)
            and isinstance(text, str)
        ):
            segments.append(Segment(float(start), float(end), text.strip()))
    return tuple(segments)


def _main_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _int(value: object, fallback: float) -> int:
    count = reported_count(value)
    return count if count is not None else int(fallback)


def _envelope(body: object) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(body, its `error` object) of any OpenAI-like error body; None for another body."""
    if isinstance(body, list) and body and isinstance(body[0], dict):  # Gemini-compat wraps
        body = body[0]
    if not isinstance(body, dict):
        return None
    error = body.get("error", body)
    if not isinstance(error, dict):
        error = {"message": str(error)}
    return body, error


def _message(body: object) -> str | None:
    """The message of any OpenAI-like error body; None for another body."""
    envelope = _envelope(body)
    if envelope is None:
        return None
    outer, error = envelope
    message = error.get("message") or outer.get("detail") or outer.get("message") or ""
    if isinstance(message, dict):  # FastAPI-style {"detail": {...}}
        message = message.get("message") or json.dumps(message)
    return str(message)


def _error_fields(body: object) -> tuple[str, str, str, dict[str, Any]]:
    """(type, code, google_status, metadata) from any OpenAI-like error body."""
    _, error = _envelope(body) or ({}, {})
    metadata = error.get("metadata") if isinstance(error.get("metadata"), dict) else {}
    return (
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
    answer = read_error(status, headers, raw, secret=secret, now=now, message_of=_message)
    body, message, text, hint = answer.body, answer.message, answer.text, answer.retry_after
    kwargs = answer.fields(provider)
    etype, code, google_status, metadata = _error_fields(body)
    quota_signal = etype in _QUOTA_CODES or code in _QUOTA_CODES or _CREDIT_TEXT.search(message)

    if status == 402:
        if metadata.get("reason") == "in_flight_budget_exhausted":
            return Transient(text, **kwargs)
        return QuotaExhausted(text, **kwargs)
    if status == 429 or google_status == "RESOURCE_EXHAUSTED":
        if _GOOGLE_NO_FREE_QUOTA.search(message) or _google_per_day(body):
            # Google's retryDelay (~40 s) is wrong for a daily quota: the window resets at
            # midnight Pacific, which the provider's own day rule knows.
            return QuotaExhausted(text, **answer.fields(provider, with_hint=False))
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
    if answer.model_gone:
        return ModelUnavailable(text, **kwargs)
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


__all__ = [
    "OpenAICompatAdapter",
    "classify_error",
    "decode_base64",
    "image_media_type",
    "rate_limit_reports",
    "transcript_segments",
]
