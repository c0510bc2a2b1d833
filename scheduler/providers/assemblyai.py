"""AssemblyAI asynchronous speech-to-text, through the official `assemblyai` SDK's async client.

The wire flow (AssemblyAI API reference and the SDK 1.8 source): `POST /v2/upload` with the raw
audio bytes answers `{"upload_url"}`; `POST /v2/transcript` with `{"audio_url", "speech_models":
[model], "language_code" | "language_detection"}` answers the transcript object `{"id",
"status"}`; `GET /v2/transcript/{id}` is polled until `status` is `completed` or `error`. Auth is
`Authorization: <key>`, without "Bearer".

How the SDK is used, and why:

- One `aai.Settings` per adapter instance (key, base URL, HTTP timeout, polling interval), never
  the process-wide `aai.settings`: several providers may use this adapter with different keys or
  regional base URLs in one process. The SDK never retries, so ours stays the only retry loop.
- The SDK cannot take our shared `httpx.AsyncClient`: `aai.AsyncClient` builds its own pool, bound
  to the event loop that first used it, and adapters have no close hook. So the pool is opened per
  call with `async with` and closed before the call returns; no socket outlives a call (one TLS
  handshake per transcription is nothing next to a job that takes seconds).
- Upload, submit and polling together must finish within `timeout_s`; polling sleeps
  `poll_interval_s` between looks (class attribute, tests set it small).
- The SDK raises `TranscriptError(status_code)` for HTTP errors; the body and headers we classify
  come from `client.last_response` (per-call client, so it is this call's response). A transcript
  that ends in `status: error` is returned, not raised: its `error` text decides between
  RejectedInput (the audio cannot be used) and Transient (server-side failure).
- Under pydantic 2 the SDK calls pydantic's deprecated `.dict()`/`.parse_obj()`, which emit
  `PydanticDeprecatedSince20` (ignored by Python's default filters; test modules that run this
  adapter with warnings as errors must ignore that category).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
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
    redact,
)
from scheduler.providers.base import Adapter
from scheduler.providers.http_errors import error_parts, not_json, read_error, transport_error
from scheduler.providers.http_guard import install
from scheduler.tasks import ProviderResult, Segment, SttTask, TaskKind

if TYPE_CHECKING:
    import assemblyai as aai

DEFAULT_BASE_URL = "https://api.assemblyai.com"

# 400 "Your current account balance is negative. Please top up to continue using the API."
_NO_CREDIT = re.compile(
    r"balance is negative|top up|insufficient (?:funds|balance|credits?)|out of credits?",
    re.IGNORECASE,
)
_BAD_KEY = re.compile(r"invalid api key|api token missing|authentication error", re.IGNORECASE)
# Transcript `error` texts that mean this audio can never be transcribed (AssemblyAI "Troubleshoot
# common errors": download errors, "File does not appear to contain audio", transcoding failures).
_UNUSABLE_AUDIO = re.compile(
    r"download error|unable to download|does not appear to contain audio|no spoken audio"
    r"|transcod|could not (?:decode|process)|unsupported|too short|audio duration|file type",
    re.IGNORECASE,
)


class AssemblyAIAdapter(Adapter):
    """Pre-recorded transcription: upload, submit, poll."""

    kinds: ClassVar[frozenset[TaskKind]] = frozenset({"stt"})
    default_base_url: ClassVar[str | None] = DEFAULT_BASE_URL
    poll_interval_s: ClassVar[float] = 3.0  # the SDK's and the docs' polling interval

    _settings: Any = None

    def _sdk_settings(self) -> aai.Settings:
        """This instance's SDK settings (rebuilt only if a test changed the poll interval)."""
        import assemblyai as aai  # imported when this provider is first called

        settings: aai.Settings | None = self._settings
        if settings is None or settings.polling_interval != self.poll_interval_s:
            settings = aai.Settings(
                api_key=self.api_key,
                base_url=self.base_url,
                http_timeout=self.timeout_s,
                polling_interval=self.poll_interval_s,
            )
            self._settings = settings
        return settings

    async def stt(self, task: SttTask, *, model: str) -> ProviderResult:
        import assemblyai as aai

        if not self.api_key:
            raise AuthFailed("no API key", provider=self.name)
        if task.language:
            config = aai.TranscriptionConfig(speech_models=[model], language_code=task.language)
        else:  # without a language AssemblyAI assumes English; let it detect instead
            config = aai.TranscriptionConfig(speech_models=[model], language_detection=True)
        transcript: aai.AsyncTranscript | None = None
        async with aai.AsyncClient(settings=self._sdk_settings()) as client:
            # The SDK builds its own httpx client: give it the shared client's guards.
            install(client.http_client, like=self.http)
            transcriber = aai.AsyncTranscriber(client=client, config=config)
            try:
                async with asyncio.timeout(self.timeout_s):
                    transcript = await transcriber.submit(task.audio)
                    await transcript.wait_for_completion()
            except TimeoutError:  # our total budget (asyncio.timeout), not a socket timeout
                raise self._timed_out(transcript) from None
            except aai.AssemblyAIError as exc:
                raise self._sdk_error(exc, client.last_response) from None
            except httpx.HTTPError as exc:
                raise transport_error(exc, provider=self.name, timeout_s=self.timeout_s) from None
            except OSError as exc:  # the SDK reads the file while uploading it
                raise RejectedInput(
                    f"cannot read {task.audio.name}: {exc.strerror or type(exc).__name__}",
                    provider=self.name,
                ) from None
            except (ValueError, KeyError, TypeError):  # non-JSON body, or not the documented shape
                raise _malformed(client.last_response, self.name) from None
        return self._result(transcript, task, model)

    def _result(self, transcript: aai.AsyncTranscript, task: SttTask, model: str) -> ProviderResult:
        import assemblyai as aai

        if transcript.status == aai.TranscriptStatus.error:
            raise classify_job_error(transcript.error, provider=self.name, secret=self.api_key)
        # Utterances (speaker turns) when the request asked for them, else words; both in ms.
        pieces = transcript.utterances or transcript.words or []
        segments = tuple(Segment(p.start / 1000, p.end / 1000, p.text) for p in pieces)
        duration = transcript.audio_duration
        seconds = float(duration) if duration is not None and duration >= 0 else task.audio_seconds
        return ProviderResult(
            output=transcript.text or "",
            model=transcript.speech_model_used or model,
            usage={"requests": 1, "audio_seconds": seconds},
            segments=segments,
        )

    def _timed_out(self, transcript: aai.AsyncTranscript | None) -> Transient:
        where = "before the transcript was created"
        if transcript is not None:
            try:
                status = getattr(transcript.status, "value", transcript.status)
                where = f"waiting for transcript {transcript.id} (last status: {status})"
            except ValueError:  # no response stored yet
                where = f"waiting for transcript {transcript.id}"
        return Transient(f"timed out after {self.timeout_s:g} s {where}", provider=self.name)

    def _sdk_error(self, exc: Exception, response: httpx.Response | None) -> ProviderError:
        status = getattr(exc, "status_code", None)
        if response is not None and isinstance(status, int) and response.status_code == status:
            return classify_error(*error_parts(response), provider=self.name, secret=self.api_key)
        return Transient(redact(str(exc), self.api_key)[:300], provider=self.name, status=status)


def _malformed(response: httpx.Response | None, provider: str) -> Transient:
    status = response.status_code if response is not None else None
    if response is not None:
        try:
            json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            return not_json(response, provider=provider)
    where = f" from {response.request.url.path}" if response is not None else ""
    return Transient(
        f"malformed response: unexpected shape{where}", provider=provider, status=status
    )


def _message(body: object) -> str | None:
    """AssemblyAI errors are `{"error": "..."}`; the upload endpoint may answer plain text."""
    if isinstance(body, dict):
        error = body.get("error") or body.get("message") or body.get("detail")
        if isinstance(error, str):
            return error
        if error is not None:
            return json.dumps(error)
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
    """Map one failed AssemblyAI HTTP response to the taxonomy, reading the body."""
    answer = read_error(status, headers, raw, secret=secret, now=now, message_of=_message)
    message, text, kwargs = answer.message, answer.text, answer.fields(provider)
    if status == 402 or (status in (400, 403, 429) and _NO_CREDIT.search(message)):
        return QuotaExhausted(text, **kwargs)
    if status == 429:
        return RateLimited(text, **kwargs)
    if status in (401, 403) or (status == 400 and _BAD_KEY.search(message)):
        return AuthFailed(text, **kwargs)
    if status in (408, 409, 425) or status >= 500:
        return Transient(text, **kwargs)
    if status < 400:
        return Transient(text, **kwargs)
    if answer.model_gone:
        return ModelUnavailable(text, **kwargs)
    return RejectedInput(text, **kwargs)


def classify_job_error(
    error: str | None, *, provider: str, secret: str | None = None
) -> ProviderError:
    """A transcript that ended in `status: error`: unusable audio, or AssemblyAI's own failure."""
    message = redact(f"transcription failed: {error or 'no reason given'}", secret)[:300]
    if error and _UNUSABLE_AUDIO.search(error):
        return RejectedInput(message, provider=provider)
    return Transient(message, provider=provider)


__all__ = ["AssemblyAIAdapter", "classify_error", "classify_job_error"]
