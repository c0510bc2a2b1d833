"""The ElevenLabs adapter driven through its real wire format against a local fake.

What the fake reproduces (tests/fakes/elevenlabs_shapes.py), and from where:
- `POST /v1/text-to-speech/{voice_id}?output_format=...`, header `xi-api-key`, JSON `{"text",
  "model_id"}` -> the raw audio bytes: a real MP3 for `mp3_44100_128`, Ogg Opus for
  `opus_48000_64`, headerless 16-bit mono PCM for `pcm_24000` (ElevenLabs API reference);
- errors `{"detail": {"status", "message"}}`: 401 `quota_exceeded` (real body from
  home-assistant/core#160414, 2026-01), 401 `invalid_api_key`, 401 `detected_unusual_activity`
  (OWASP/Nest#3861), 402 `paid_plan_required` with the newer `type`/`code`/`request_id` fields
  (dograh-hq/dograh#290), 429 `too_many_concurrent_requests`/`system_busy` and 422 FastAPI
  validation errors (API reference).
"""

from __future__ import annotations

import asyncio
import io
import re
import socket
import wave
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from scheduler.config.schema import ProviderConfig
from scheduler.errors import (
    AuthFailed,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    RejectedInput,
    Transient,
)
from scheduler.providers.elevenlabs import DEFAULT_VOICE, ElevenLabsAdapter, pcm_to_wav
from scheduler.tasks import AudioFormat, ProviderResult, TtsTask
from tests.conftest import clean_env, run_cli, write_config
from tests.fakes import elevenlabs_shapes as shapes
from tests.fakes.server import FakeServer, Reply

KEY = "el-test-0123456789abcdef"
PREFIX = "/el"
MODEL = "eleven_flash_v2_5"


@dataclass
class Outcome:
    result: ProviderResult | None
    error: ProviderError | None


def speak(
    base_url: str, task: TtsTask, *, api_key: str | None = KEY, model: str = MODEL
) -> Outcome:
    async def go() -> ProviderResult:
        async with httpx.AsyncClient() as http:
            adapter = ElevenLabsAdapter(
                name="el",
                config=ProviderConfig(adapter="elevenlabs", base_url=base_url),
                api_key=api_key,
                http=http,
                timeout_s=5,
            )
            return await adapter.run(task, model=model)

    try:
        return Outcome(asyncio.run(go()), None)
    except ProviderError as exc:
        return Outcome(None, exc)


def succeed(fake: FakeServer, task: TtsTask, **kwargs: object) -> ProviderResult:
    outcome = speak(fake.url + PREFIX, task, **kwargs)  # type: ignore[arg-type]
    assert outcome.error is None, outcome.error
    assert outcome.result is not None
    return outcome.result


def fail(fake: FakeServer, task: TtsTask, **kwargs: object) -> ProviderError:
    outcome = speak(fake.url + PREFIX, task, **kwargs)  # type: ignore[arg-type]
    assert outcome.result is None, outcome.result
    assert outcome.error is not None
    return outcome.error


def wav_params(data: bytes) -> tuple[int, int, int, bytes]:
    with wave.open(io.BytesIO(data), "rb") as wav:
        return wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.readframes(10**9)


# --------------------------------------------------------------------------------------------
# Requests and results
# --------------------------------------------------------------------------------------------


def test_request_path_query_auth_and_body(fake: FakeServer) -> None:
    shapes.mount_elevenlabs_ok(fake, PREFIX)
    succeed(fake, TtsTask("Hello there."))
    [request] = fake.requests()
    assert (request.method, request.path) == ("POST", f"/el/v1/text-to-speech/{DEFAULT_VOICE}")
    assert request.query == {"output_format": ["mp3_44100_128"]}
    assert request.headers["xi-api-key"] == KEY
    assert "authorization" not in request.headers
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {"text": "Hello there.", "model_id": MODEL}


def test_task_voice_is_used(fake: FakeServer) -> None:
    shapes.mount_elevenlabs_ok(fake, PREFIX, voice="21m00Tcm4TlvDq8ikWAM")
    succeed(fake, TtsTask("Hi", voice="21m00Tcm4TlvDq8ikWAM"))
    assert fake.requests()[0].path == "/el/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM"


def test_mp3_is_handed_back_as_is(fake: FakeServer) -> None:
    shapes.mount_elevenlabs_ok(fake, PREFIX)
    result = succeed(fake, TtsTask("Hello there.", format="mp3"))
    assert result == ProviderResult(
        output="",
        model=MODEL,
        usage={"requests": 1, "characters": 12},
        data=shapes.mp3_bytes(),
        media_type="audio/mpeg",
    )


def test_opus_asks_for_ogg_opus(fake: FakeServer) -> None:
    shapes.mount_elevenlabs_ok(fake, PREFIX, audio=shapes.opus_bytes(), media_type="audio/ogg")
    result = succeed(fake, TtsTask("Hi", format="opus"))
    assert fake.requests()[0].query == {"output_format": ["opus_48000_64"]}
    assert (result.data, result.media_type) == (shapes.opus_bytes(), "audio/ogg")


def test_wav_asks_for_pcm_and_wraps_it_in_a_wav_container(fake: FakeServer) -> None:
    pcm = shapes.pcm_bytes(0.25)
    shapes.mount_elevenlabs_ok(fake, PREFIX, audio=pcm, media_type="audio/pcm")
    result = succeed(fake, TtsTask("Hi", format="wav"))
    assert fake.requests()[0].query == {"output_format": ["pcm_24000"]}
    assert result.media_type == "audio/wav"
    assert result.data is not None and result.data[:4] == b"RIFF"
    assert wav_params(result.data) == (1, 2, 24000, pcm)


def test_odd_pcm_byte_is_dropped() -> None:
    assert wav_params(pcm_to_wav(b"\x01\x02\x03", 24000)) == (1, 2, 24000, b"\x01\x02")


# --------------------------------------------------------------------------------------------
# Failures
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "cls", "status", "message", "retry_after"),
    [
        (shapes.quota_exceeded(), QuotaExhausted, 401,
         f"HTTP 401: quota_exceeded: {shapes.QUOTA_MESSAGE}", None),
        (shapes.bad_key(), AuthFailed, 401, "HTTP 401: invalid_api_key: Invalid API key", None),
        (shapes.unusual_activity(), AuthFailed, 401,
         "HTTP 401: detected_unusual_activity: Unusual activity detected. Free Tier usage "
         "disabled.", None),
        (shapes.paid_plan_required(), RejectedInput, 402,
         f"HTTP 402: paid_plan_required: {shapes.PLAN_MESSAGE}", None),
        (shapes.detail_error(402, "payment_required", "Payment required"), QuotaExhausted, 402,
         "HTTP 402: payment_required: Payment required", None),
        (shapes.busy("too_many_concurrent_requests", retry_after="3"), RateLimited, 429,
         "HTTP 429: too_many_concurrent_requests: Too many concurrent requests for your "
         "subscription.", 3.0),
        (shapes.busy("system_busy"), RateLimited, 429,
         "HTTP 429: system_busy: The system is busy, please try again later.", None),
        (shapes.validation_error(), RejectedInput, 422,
         "HTTP 422: validation_error: Field required", None),
        (shapes.detail_error(404, "voice_not_found", "A voice with that ID was not found."),
         RejectedInput, 404, "HTTP 404: voice_not_found: A voice with that ID was not found.",
         None),
        (shapes.detail_error(400, "max_character_limit_exceeded", "Text is too long."),
         RejectedInput, 400, "HTTP 400: max_character_limit_exceeded: Text is too long.", None),
        (Reply(status=500, json={"detail": "Internal Server Error"}), Transient, 500,
         "HTTP 500: Internal Server Error", None),
        (Reply(status=503, body="<html><title>503 Service Unavailable</title></html>",
               headers={"content-type": "text/html"}), Transient, 503,
         "HTTP 503: 503 Service Unavailable", None),
        (Reply(status=200, json={"detail": "ok?"}), Transient, 200,
         "malformed response: no audio (application/json)", None),
        (Reply(status=200, body=b""), Transient, 200,
         "malformed response: no audio (application/octet-stream)", None),
    ],
    ids=[
        "401-quota", "401-bad-key", "401-unusual", "402-paid-plan", "402-other",
        "429-concurrent", "429-busy", "422", "404-voice", "400-too-long", "500", "503-html",
        "200-json", "200-empty",
    ],
)  # fmt: skip
def test_failures_are_classified(
    fake: FakeServer,
    reply: Reply,
    cls: type[ProviderError],
    status: int,
    message: str,
    retry_after: float | None,
) -> None:
    fake.route("POST", shapes.tts_path(DEFAULT_VOICE, PREFIX), reply)
    failure = fail(fake, TtsTask("Hello"))
    assert type(failure) is cls, f"{type(failure).__name__}: {failure}"
    assert (failure.provider, failure.status, str(failure)) == ("el", status, message)
    assert failure.retry_after == retry_after
    assert fake.count(shapes.tts_path(DEFAULT_VOICE, PREFIX)) == 1


def test_connection_refused_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    outcome = speak(f"http://127.0.0.1:{port}", TtsTask("Hi"))
    assert type(outcome.error) is Transient
    assert re.fullmatch(r"connection to 127\.0\.0\.1:\d+ failed: ConnectError", str(outcome.error))


def test_missing_key_fails_without_a_call(fake: FakeServer) -> None:
    assert type(fail(fake, TtsTask("Hi"), api_key=None)) is AuthFailed
    assert fake.requests() == []


def test_echoed_key_is_redacted(fake: FakeServer) -> None:
    secret = "sk_live_RECOGNISABLE"
    fake.route(
        "POST",
        shapes.tts_path(DEFAULT_VOICE, PREFIX),
        shapes.detail_error(401, "invalid_api_key", f"Invalid API key {secret}"),
    )
    failure = fail(fake, TtsTask("Hi"), api_key=secret)
    assert str(failure) == "HTTP 401: invalid_api_key: Invalid API key ***"
    assert "RECOGNISABLE" not in repr(failure)


# --------------------------------------------------------------------------------------------
# The real CLI
# --------------------------------------------------------------------------------------------


def _cli_has(kind: str) -> bool:
    from scheduler.cli import run_cmd

    return any(
        (command.name or getattr(command.callback, "__name__", "")) == kind
        for command in run_cmd.app.registered_commands
    )


def _config(tmp_path: Path, fake: FakeServer) -> Path:
    return write_config(
        tmp_path / "providers.yaml",
        {
            "el": f"adapter: elevenlabs\nbase_url: {fake.url}{PREFIX}\n"
            f"api_key_env: EL_TEST_KEY\nmodels: {{tts: {MODEL}}}"
        },
        {"tts": ["el"]},
    )


@pytest.mark.skipif(not _cli_has("tts"), reason="`sched run tts` is not written yet")
@pytest.mark.parametrize("audio_format", ["mp3", "wav"])
def test_cli_run_tts_end_to_end(
    tmp_path: Path, fake: FakeServer, audio_format: AudioFormat
) -> None:
    import av

    config = _config(tmp_path, fake)
    pcm = shapes.pcm_bytes(0.25)
    if audio_format == "mp3":
        shapes.mount_elevenlabs_ok(fake, PREFIX)
    else:
        shapes.mount_elevenlabs_ok(fake, PREFIX, audio=pcm, media_type="audio/pcm")
    out = tmp_path / f"speech.{audio_format}"
    result = run_cli(
        "--config", str(config), "run", "tts", "Hello there.", "-o", str(out),
        "--format", audio_format, "--json", env=clean_env(EL_TEST_KEY=KEY),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    data = result.json()
    assert (data["provider"], data["model"]) == ("el", MODEL)
    assert data["usage"] == {"requests": 1, "characters": 12}
    assert Path(str(data["path"])).resolve() == out.resolve()
    [request] = fake.requests()
    expected_format = "mp3_44100_128" if audio_format == "mp3" else "pcm_24000"
    assert request.query == {"output_format": [expected_format]}
    assert request.headers["xi-api-key"] == KEY
    written = out.read_bytes()
    if audio_format == "mp3":
        assert written == shapes.mp3_bytes()  # already mp3: written untouched
    else:
        assert wav_params(written) == (1, 2, 24000, pcm)
    with av.open(str(out)) as container:  # and it plays
        stream = container.streams.audio[0]
        decoded = sum(frame.samples for frame in container.decode(stream))
    assert decoded >= 0.2 * stream.rate
