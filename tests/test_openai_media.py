"""The OpenAI-compatible adapter's media kinds (image, stt, tts, multimodal) on the real wire.

Every test drives `OpenAICompatAdapter` through the `openai` SDK against the local `FakeServer`,
so the adapter's real paths, headers and bodies (JSON and multipart) are what gets asserted.
Documented facts the fake reproduces (builders in `tests/fakes/openai_shapes.py`):

- Images (OpenAI API reference, images/create; media.md "OpenAI images"): `POST
  /images/generations` `{"model", "prompt", "n", "size"}`; `response_format` is DALL-E only
  (`url` default, links expire in 60 min; `b64_json`); gpt-image-1 always answers base64.
  Answer `{"created", "data": [{"b64_json"} | {"url"}, "revised_prompt"?]}`.
- DeepInfra (deepinfra.com docs; media.md "DeepInfra"): the same request at
  `https://api.deepinfra.com/v1/openai/images/generations`, answer `data[0].b64_json` plus
  `revised_prompt`; out of payment method -> 402 "inference prohibited, please enter a payment
  method" (observed, undated) in the `{"error": {"message"}}` envelope.
- Transcriptions (OpenAI API reference audio/createTranscription; Groq speech-to-text guide):
  multipart `file`, `model`, `language`?, `response_format`; `verbose_json` (whisper-1, Groq
  whisper-large-v3[-turbo]) answers `{"task", "language", "duration", "text", "segments":
  [{"id", "seek", "start", "end", "text", ...}]}` (Groq adds `x_groq`); gpt-4o*-transcribe take
  only `json`: `{"text", "usage"}`. Whisper's texts begin with a space.
- Speech (audio/createSpeech): JSON `{"model", "input", "voice", "response_format"}` -> the raw
  audio (mp3 by default, `Content-Type: audio/mpeg`); the SDK sends `Accept:
  application/octet-stream`.
- Vision chat (chat/create, image input): content parts `{"type": "text"}` and `{"type":
  "image_url", "image_url": {"url": "data:<mime>;base64,..."}}`.
- Errors: every endpoint shares the `{"error": {"message", "type", "param", "code"}}` envelope
  (media.md "OpenAI audio"): 429 insufficient_quota / credit_balance_exhausted, 429
  rate_limit_exceeded with retry-after, 401 invalid_api_key, 400 invalid_request_error for a bad
  file or a moderated prompt, 500 server_error.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path

import pytest
from PIL import Image

from scheduler.config.schema import ProviderConfig
from scheduler.errors import (
    AuthFailed,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    RejectedInput,
    Transient,
)
from scheduler.media import sniff_media_type
from scheduler.providers.http import make_client
from scheduler.providers.openai_compat import OpenAICompatAdapter
from scheduler.tasks import (
    ImageTask,
    MultimodalTask,
    ProviderResult,
    Segment,
    SttTask,
    Task,
    TtsTask,
)
from tests.conftest import clean_env, run_cli, write_config
from tests.fakes import openai_shapes as shapes
from tests.fakes.audio import write_wav
from tests.fakes.server import FakeServer, Recorded, Reply

KEY = "sk-test-0123456789abcdef"
GROQ_KEY = "gsk_test_0123456789abcdef"


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def call(
    task: Task, *, base_url: str, model: str, api_key: str | None = KEY
) -> ProviderResult | ProviderError:
    """Run one task through the adapter over real HTTP; return the result or the error."""

    async def go() -> ProviderResult:
        async with make_client(5) as http:
            adapter = OpenAICompatAdapter(
                name="p",
                config=ProviderConfig(adapter="openai", base_url=base_url),
                api_key=api_key,
                http=http,
                timeout_s=5,
            )
            return await adapter.run(task, model=model)

    try:
        return asyncio.run(go())
    except ProviderError as exc:
        return exc


def ok(task: Task, **kwargs: object) -> ProviderResult:
    result = call(task, **kwargs)  # type: ignore[arg-type]
    assert isinstance(result, ProviderResult), result
    return result


def failed(task: Task, **kwargs: object) -> ProviderError:
    error = call(task, **kwargs)  # type: ignore[arg-type]
    assert isinstance(error, ProviderError), error
    return error


def form(request: Recorded) -> dict[str, tuple[str | None, str, bytes]]:
    """A multipart/form-data body as name -> (filename, content type, bytes)."""
    content_type = request.headers["content-type"]
    assert content_type.startswith("multipart/form-data; boundary=")
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + request.body)
    assert isinstance(message, EmailMessage) and message.is_multipart()
    fields: dict[str, tuple[str | None, str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        assert isinstance(name, str) and isinstance(payload, bytes)
        fields[name] = (part.get_filename(), part.get_content_type(), payload)
    return fields


def sine_wav(path: Path, seconds: float = 1.5, rate: int = 16000) -> Path:
    return write_wav(path, seconds, rate)


def image_bytes(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (3, 2), (0, 128, 255)).save(buffer, format=fmt)
    return buffer.getvalue()


def stt_task(tmp_path: Path, *, language: str | None = "en") -> SttTask:
    audio = sine_wav(tmp_path / "speech.wav")
    return SttTask(audio=audio, audio_seconds=1.5, mime_type="audio/wav", language=language)


def png_task(tmp_path: Path, prompt: str = "What colour is this?") -> MultimodalTask:
    path = tmp_path / "red.png"
    path.write_bytes(shapes.tiny_png())
    return MultimodalTask(prompt=prompt, media=path, mime_type="image/png", max_tokens=50)


# --------------------------------------------------------------------------------------------
# Image
# --------------------------------------------------------------------------------------------


def test_image_request_and_png_result(fake: FakeServer) -> None:
    png = shapes.tiny_png()
    fake.route("POST", shapes.images_path("oa"), shapes.images_b64(png))
    result = ok(
        ImageTask("a red square", size="1024x1024"),
        base_url=fake.base_url("oa"),
        model="gpt-image-1",
    )
    [request] = fake.requests()
    assert (request.method, request.path) == ("POST", "/oa/v1/images/generations")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json() == {
        "model": "gpt-image-1",
        "prompt": "a red square",
        "n": 1,
        "size": "1024x1024",
    }
    assert result == ProviderResult(
        output="",
        model="gpt-image-1",
        usage={"requests": 1, "images": 1},
        data=png,
        media_type="image/png",
    )


def test_dalle_is_asked_for_b64_json_and_size_is_omitted_when_unset(fake: FakeServer) -> None:
    fake.route("POST", shapes.images_path("oa"), shapes.images_b64(shapes.tiny_png()))
    ok(ImageTask("a cat"), base_url=fake.base_url("oa"), model="dall-e-3")
    assert fake.requests()[0].json() == {
        "model": "dall-e-3",
        "prompt": "a cat",
        "n": 1,
        "response_format": "b64_json",
    }


@pytest.mark.parametrize(
    ("fmt", "media_type"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")],
)
def test_deepinfra_path_and_media_type_sniffed_from_bytes(
    fake: FakeServer, fmt: str, media_type: str
) -> None:
    image = image_bytes(fmt)
    fake.route(
        "POST",
        "/v1/openai/images/generations",
        shapes.images_b64(image, revised_prompt="a red square, studio light"),
    )
    result = ok(
        ImageTask("a red square", size="512x512"),
        base_url=f"{fake.url}/v1/openai",
        model="black-forest-labs/FLUX-1-schnell",
    )
    assert fake.requests()[0].json() == {
        "model": "black-forest-labs/FLUX-1-schnell",
        "prompt": "a red square",
        "n": 1,
        "size": "512x512",
    }
    assert (result.data, result.media_type) == (image, media_type)


def test_url_only_answer_is_downloaded_without_our_key(fake: FakeServer) -> None:
    png = shapes.tiny_png((0, 255, 0))
    url = f"{fake.url}/blob/img-abc.png?se=2026-11-21T10%3A00Z&sig=xyz"
    fake.route("POST", shapes.images_path("oa"), shapes.images_url(url))
    fake.route("GET", "/blob/img-abc.png", Reply(body=png, headers={"content-type": "image/png"}))
    result = ok(ImageTask("a green square"), base_url=fake.base_url("oa"), model="dall-e-2")
    post, get = fake.requests()
    assert (get.method, get.path, get.query) == (
        "GET",
        "/blob/img-abc.png",
        {"se": ["2026-11-21T10:00Z"], "sig": ["xyz"]},
    )
    assert "authorization" not in get.headers
    assert (result.data, result.media_type) == (png, "image/png")


def test_expired_url_is_transient(fake: FakeServer) -> None:
    fake.route("POST", shapes.images_path("oa"), shapes.images_url(f"{fake.url}/blob/x.png"))
    fake.route("GET", "/blob/x.png", Reply(status=403, body="AuthenticationFailed"))
    error = failed(ImageTask("x"), base_url=fake.base_url("oa"), model="dall-e-2")
    assert type(error) is Transient
    assert (str(error), error.status) == ("image download failed: HTTP 403", 403)


def test_image_rate_limit_headers_are_reported(fake: FakeServer) -> None:
    headers = {"x-ratelimit-remaining-requests": "4", "x-ratelimit-limit-requests": "5"}
    fake.route(
        "POST", shapes.images_path("oa"), shapes.images_b64(shapes.tiny_png(), headers=headers)
    )
    result = ok(ImageTask("x"), base_url=fake.base_url("oa"), model="gpt-image-1")
    [report] = result.rate_limits
    assert (report.metric, report.remaining, report.limit) == ("requests", 4, 5)


# --------------------------------------------------------------------------------------------
# Speech to text
# --------------------------------------------------------------------------------------------


def test_groq_whisper_sends_multipart_verbose_json_and_reads_segments(
    fake: FakeServer, tmp_path: Path
) -> None:
    task = stt_task(tmp_path)
    fake.route(
        "POST",
        "/openai/v1/audio/transcriptions",
        shapes.transcription_verbose(
            " Hello there. General Kenobi.",
            [(0.0, 0.7, " Hello there."), (0.7, 1.5, " General Kenobi.")],
            duration=1.5,
            groq=True,
        ),
    )
    result = ok(
        task, base_url=f"{fake.url}/openai/v1", model="whisper-large-v3-turbo", api_key=GROQ_KEY
    )
    [request] = fake.requests()
    assert (request.method, request.path) == ("POST", "/openai/v1/audio/transcriptions")
    assert request.headers["authorization"] == f"Bearer {GROQ_KEY}"
    assert form(request) == {
        "model": (None, "text/plain", b"whisper-large-v3-turbo"),
        "response_format": (None, "text/plain", b"verbose_json"),
        "language": (None, "text/plain", b"en"),
        "file": ("speech.wav", "audio/wav", task.audio.read_bytes()),
    }
    assert result == ProviderResult(
        output="Hello there. General Kenobi.",
        model="whisper-large-v3-turbo",
        usage={"requests": 1, "audio_seconds": 1.5},
        segments=(Segment(0.0, 0.7, "Hello there."), Segment(0.7, 1.5, "General Kenobi.")),
    )


def test_gpt4o_transcribe_asks_for_json_and_omits_unset_language(
    fake: FakeServer, tmp_path: Path
) -> None:
    task = stt_task(tmp_path, language=None)
    fake.route("POST", shapes.transcriptions_path("oa"), shapes.transcription_json("Hi."))
    result = ok(task, base_url=fake.base_url("oa"), model="gpt-4o-mini-transcribe")
    fields = form(fake.requests()[0])
    assert sorted(fields) == ["file", "model", "response_format"]
    assert fields["response_format"][2] == b"json"
    assert (result.output, result.segments) == ("Hi.", ())
    assert result.usage == {"requests": 1, "audio_seconds": 1.5}


def test_malformed_segments_are_dropped_not_fatal(fake: FakeServer, tmp_path: Path) -> None:
    body = {
        "text": "a b",
        "segments": [
            {"start": 0, "end": 1, "text": " a"},
            {"start": "0", "end": 1, "text": "x"},
            {"start": 1, "end": None, "text": "y"},
            "junk",
            {"start": 1.0, "end": 2.5, "text": " b "},
        ],
    }
    fake.route("POST", shapes.transcriptions_path("oa"), Reply(json=body))
    result = ok(stt_task(tmp_path), base_url=fake.base_url("oa"), model="whisper-1")
    assert result.segments == (Segment(0.0, 1.0, "a"), Segment(1.0, 2.5, "b"))


def test_vanished_audio_file_is_rejected_input_without_a_call(
    fake: FakeServer, tmp_path: Path
) -> None:
    task = SttTask(audio=tmp_path / "gone.wav", audio_seconds=1.0, mime_type="audio/wav")
    error = failed(task, base_url=fake.base_url("oa"), model="whisper-1")
    assert type(error) is RejectedInput
    assert str(error).startswith("cannot read gone.wav: ")
    assert fake.requests() == []


# --------------------------------------------------------------------------------------------
# Text to speech
# --------------------------------------------------------------------------------------------


def test_speech_request_and_mp3_result(fake: FakeServer) -> None:
    mp3 = shapes.tiny_mp3()
    fake.route("POST", shapes.speech_path("oa"), shapes.speech_ok(mp3))
    result = ok(TtsTask("Hello there!"), base_url=fake.base_url("oa"), model="tts-1")
    [request] = fake.requests()
    assert (request.method, request.path) == ("POST", "/oa/v1/audio/speech")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["accept"] == "application/octet-stream"
    assert request.json() == {
        "model": "tts-1",
        "input": "Hello there!",
        "voice": "alloy",
        "response_format": "mp3",
    }
    assert result == ProviderResult(
        output="",
        model="tts-1",
        usage={"requests": 1, "characters": 12},
        data=mp3,
        media_type="audio/mpeg",
    )


def test_speech_passes_voice_and_format(fake: FakeServer) -> None:
    fake.route("POST", shapes.speech_path("oa"), shapes.speech_ok(b"RIFF\0\0\0\0WAVEfmt "))
    result = ok(
        TtsTask("Hi", voice="nova", format="wav"),
        base_url=fake.base_url("oa"),
        model="gpt-4o-mini-tts",
    )
    assert fake.requests()[0].json()["voice"] == "nova"
    assert fake.requests()[0].json()["response_format"] == "wav"
    assert result.media_type == "audio/wav"


WAV = b"RIFF\x24\x00\x00\x00WAVEfmt "
OGG = b"OggS\x00\x02" + b"\x00" * 20
UNKNOWN = b"\x00\x01\x02\x03 raw"


@pytest.mark.parametrize(
    ("audio", "content_type", "fmt", "expected"),
    [
        pytest.param(b"ID3\x04\x00", "audio/mpeg", "mp3", "audio/mpeg", id="id3-mp3"),
        pytest.param(b"\xff\xfb\x90\x00", "audio/mpeg", "mp3", "audio/mpeg", id="bare-mp3-frame"),
        pytest.param(WAV, "audio/mpeg", "opus", "audio/wav", id="bytes-beat-label"),
        pytest.param(OGG, "audio/opus", "opus", "audio/ogg", id="ogg-opus"),
        pytest.param(b"\xff\xf1\x50\x80", "audio/aac", "mp3", "audio/aac", id="adts-is-not-mp3"),
        pytest.param(UNKNOWN, "audio/x-wav", "wav", "audio/wav", id="alias-normalised"),
        pytest.param(UNKNOWN, "audio/opus", "opus", "audio/opus", id="opus-label"),
        pytest.param(UNKNOWN, "application/octet-stream", "opus", "audio/ogg", id="format-last"),
    ],
)
def test_speech_media_type(
    fake: FakeServer, audio: bytes, content_type: str, fmt: str, expected: str
) -> None:
    fake.route("POST", shapes.speech_path("oa"), shapes.speech_ok(audio, content_type))
    result = ok(TtsTask("Hi", format=fmt), base_url=fake.base_url("oa"), model="tts-1")  # type: ignore[arg-type]
    assert (result.data, result.media_type) == (audio, expected)


def test_sniffers_know_what_pyav_writes() -> None:
    assert sniff_media_type(shapes.tiny_mp3()) == "audio/mpeg"


# --------------------------------------------------------------------------------------------
# Multimodal
# --------------------------------------------------------------------------------------------


def test_multimodal_sends_image_as_data_url_content_part(fake: FakeServer, tmp_path: Path) -> None:
    task = png_task(tmp_path)
    fake.route(
        "POST",
        shapes.chat_path("oa"),
        shapes.chat_ok("Red.", model="gpt-4o-mini-2024-07-18", prompt_tokens=300),
    )
    result = ok(task, base_url=fake.base_url("oa"), model="gpt-4o-mini")
    [request] = fake.requests()
    encoded = base64.b64encode(shapes.tiny_png()).decode("ascii")
    assert request.path == "/oa/v1/chat/completions"
    assert request.json() == {
        "model": "gpt-4o-mini",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What colour is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{encoded}"}},
                ],
            }
        ],
        "max_tokens": 50,
    }
    assert result == ProviderResult(
        output="Red.",
        model="gpt-4o-mini-2024-07-18",
        usage={"requests": 1, "input_tokens": 300, "output_tokens": 7, "tokens": 307},
    )


def test_multimodal_audio_is_refused_before_any_call(fake: FakeServer, tmp_path: Path) -> None:
    audio = sine_wav(tmp_path / "a.wav")
    task = MultimodalTask("Transcribe", media=audio, mime_type="audio/wav", audio_seconds=1.5)
    error = failed(task, base_url=fake.base_url("oa"), model="gpt-4o-mini")
    assert type(error) is RejectedInput
    assert (str(error), error.provider) == ("p takes images, not audio, in chat", "p")
    assert fake.requests() == []


# --------------------------------------------------------------------------------------------
# Errors: one envelope, every endpoint
# --------------------------------------------------------------------------------------------

ENDPOINTS = {
    "image": (shapes.images_path("oa"), "gpt-image-1"),
    "stt": (shapes.transcriptions_path("oa"), "whisper-1"),
    "tts": (shapes.speech_path("oa"), "tts-1"),
    "multimodal": (shapes.chat_path("oa"), "gpt-4o-mini"),
}


def endpoint_task(kind: str, tmp_path: Path) -> Task:
    if kind == "image":
        return ImageTask("a cat")
    if kind == "stt":
        return stt_task(tmp_path)
    if kind == "tts":
        return TtsTask("Hello")
    return png_task(tmp_path)


def _openai_error(status: int, message: str, type_: str, code: str | None) -> Reply:
    return Reply(
        status=status,
        json={"error": {"message": message, "type": type_, "param": None, "code": code}},
    )


ERRORS = [
    pytest.param(shapes.insufficient_quota(), QuotaExhausted, 429, None, id="insufficient-quota"),
    pytest.param(
        _openai_error(
            429, "You have no credits remaining.", "insufficient_quota", "credit_balance_exhausted"
        ),
        QuotaExhausted,
        429,
        None,
        id="credit-balance-exhausted",
    ),
    pytest.param(
        Reply(
            status=402,
            json={"error": {"message": "inference prohibited, please enter a payment method"}},
        ),
        QuotaExhausted,
        402,
        None,
        id="deepinfra-402",
    ),
    pytest.param(shapes.rate_limited("2"), RateLimited, 429, 2.0, id="rate-limited"),
    pytest.param(shapes.invalid_key(), AuthFailed, 401, None, id="bad-key"),
    pytest.param(shapes.server_error(), Transient, 500, None, id="500"),
    pytest.param(
        Reply(
            status=502,
            body="<html><head><title>502 Bad Gateway</title></head></html>",
            headers={"content-type": "text/html"},
        ),
        Transient,
        502,
        None,
        id="502-html",
    ),
    pytest.param(
        _openai_error(
            400,
            "Your request was rejected as a result of our safety system.",
            "invalid_request_error",
            "content_policy_violation",
        ),
        RejectedInput,
        400,
        None,
        id="moderation-400",
    ),
    pytest.param(
        _openai_error(
            400,
            "Invalid file format. Supported formats: ['flac', 'm4a', 'mp3', 'mp4', 'mpeg', "
            "'mpga', 'oga', 'ogg', 'wav', 'webm']",
            "invalid_request_error",
            None,
        ),
        RejectedInput,
        400,
        None,
        id="bad-file-400",
    ),
]


@pytest.mark.parametrize("kind", list(ENDPOINTS))
@pytest.mark.parametrize(("reply", "cls", "status", "retry_after"), ERRORS)
def test_error_classification_on_every_endpoint(
    fake: FakeServer,
    tmp_path: Path,
    kind: str,
    reply: Reply,
    cls: type[ProviderError],
    status: int,
    retry_after: float | None,
) -> None:
    path, model = ENDPOINTS[kind]
    fake.route("POST", path, reply)
    error = failed(endpoint_task(kind, tmp_path), base_url=fake.base_url("oa"), model=model)
    assert type(error) is cls, f"{type(error).__name__}: {error}"
    assert (error.provider, error.status, error.retry_after) == ("p", status, retry_after)
    assert fake.count(path) == 1  # the SDK's retries are off


MALFORMED = [
    pytest.param("image", Reply(json={"created": 1, "data": []}), "no data[0].b64_json or url"),
    pytest.param(
        "image", Reply(json={"data": [{"b64_json": "%%not base64%%"}]}), "not valid base64"
    ),
    pytest.param(
        "image",
        Reply(json={"data": [{"b64_json": base64.b64encode(b"GIF89a...").decode()}]}),
        "not a PNG, JPEG or WEBP image",
    ),
    pytest.param(
        "image", Reply(json={"data": [{"url": "file:///etc/passwd"}]}), "image url is not http(s)"
    ),
    pytest.param(
        "image",
        Reply(body="<html>nginx</html>", headers={"content-type": "text/html"}),
        "not JSON (text/html)",
    ),
    pytest.param("stt", Reply(json={"task": "transcribe"}), "no text"),
    pytest.param("stt", Reply(body="Hello", headers={"content-type": "text/plain"}), "not JSON"),
    pytest.param("tts", Reply(body=b"", headers={"content-type": "audio/mpeg"}), "no audio"),
    pytest.param("tts", Reply(json={"ok": True}), "application/json, not audio"),
    pytest.param("multimodal", Reply(json={"choices": []}), "no choices[0].message"),
]


@pytest.mark.parametrize(("kind", "reply", "problem"), MALFORMED)
def test_malformed_success_is_transient(
    fake: FakeServer, tmp_path: Path, kind: str, reply: Reply, problem: str
) -> None:
    path, model = ENDPOINTS[kind]
    fake.route("POST", path, reply)
    error = failed(endpoint_task(kind, tmp_path), base_url=fake.base_url("oa"), model=model)
    assert type(error) is Transient
    assert str(error).startswith("malformed response: ") and problem in str(error)


@pytest.mark.parametrize("kind", ["image", "stt", "tts"])
def test_error_object_in_a_200_is_classified_by_its_code(
    fake: FakeServer, tmp_path: Path, kind: str
) -> None:
    path, model = ENDPOINTS[kind]
    fake.route("POST", path, Reply(json={"error": {"code": 429, "message": "slow down"}}))
    error = failed(endpoint_task(kind, tmp_path), base_url=fake.base_url("oa"), model=model)
    assert (type(error), error.status) == (RateLimited, 429)


@pytest.mark.parametrize("kind", list(ENDPOINTS))
def test_connection_refused_is_transient(tmp_path: Path, kind: str) -> None:
    with FakeServer() as server:
        base_url = server.base_url("oa")  # closed below: nothing listens there any more
    error = failed(endpoint_task(kind, tmp_path), base_url=base_url, model=ENDPOINTS[kind][1])
    assert type(error) is Transient
    assert re.fullmatch(r"connection to 127\.0\.0\.1:\d+ failed: ConnectError", str(error))


def test_echoed_key_never_reaches_the_message(fake: FakeServer, tmp_path: Path) -> None:
    secret = "local-secret-token"
    fake.route(
        "POST",
        shapes.transcriptions_path("oa"),
        Reply(status=401, json={"error": {"message": f"Bad token {secret}"}}),
    )
    error = failed(
        stt_task(tmp_path), base_url=fake.base_url("oa"), model="whisper-1", api_key=secret
    )
    assert type(error) is AuthFailed
    assert secret not in str(error) and str(error) == "HTTP 401: Bad token ***"


# --------------------------------------------------------------------------------------------
# The real CLI end to end
# --------------------------------------------------------------------------------------------


def _cli_has(kind: str) -> bool:
    from scheduler.cli.run_cmd import app

    names = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    return kind in names


def needs_cli(kind: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not _cli_has(kind), reason=f"`sched run {kind}` is not written yet")


def _provider(base_url: str, key_env: str, models: str) -> str:
    return f"adapter: openai\nbase_url: {base_url}\napi_key_env: {key_env}\nmodels: {models}"


@needs_cli("image")
def test_cli_image_on_deepinfra_writes_the_png(tmp_path: Path, fake: FakeServer) -> None:
    png = shapes.tiny_png((10, 20, 30))
    fake.route("POST", "/v1/openai/images/generations", shapes.images_b64(png))
    config = write_config(
        tmp_path / "providers.yaml",
        {
            "deepinfra": _provider(
                f"{fake.url}/v1/openai",
                "DEEPINFRA_API_KEY",
                "{image: black-forest-labs/FLUX-1-schnell}",
            )
        },
        {"image": ["deepinfra"]},
    )
    out = tmp_path / "out.png"
    result = run_cli(
        "--config", str(config), "run", "image", "a navy square", "-o", str(out),
        "--size", "1024x1024", "--json",
        env=clean_env(DEEPINFRA_API_KEY="di-test-key-1"),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    data = result.json()
    assert (data["ok"], data["task"], data["provider"]) == (True, "image", "deepinfra")
    assert data["model"] == "black-forest-labs/FLUX-1-schnell"
    assert data["usage"] == {"requests": 1, "images": 1}
    assert Path(str(data["path"])).resolve() == out.resolve()
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.read_bytes() == png
    # The fake drew a 4x3 image for a 1024x1024 request: the user is told.
    assert "sched: note: asked for 1024x1024, deepinfra drew 4x3" in result.stderr
    [request] = fake.requests()
    assert request.headers["authorization"] == "Bearer di-test-key-1"
    assert request.json() == {
        "model": "black-forest-labs/FLUX-1-schnell",
        "prompt": "a navy square",
        "n": 1,
        "size": "1024x1024",
    }


@needs_cli("stt")
def test_cli_stt_on_groq_whisper(tmp_path: Path, fake: FakeServer) -> None:
    audio = sine_wav(tmp_path / "speech.wav", seconds=1.5)
    fake.route(
        "POST",
        "/openai/v1/audio/transcriptions",
        shapes.transcription_verbose(
            " Testing one two.", [(0.0, 1.5, " Testing one two.")], duration=1.5, groq=True
        ),
    )
    config = write_config(
        tmp_path / "providers.yaml",
        {"groq": _provider(f"{fake.url}/openai/v1", "GROQ_API_KEY", "{stt: whisper-large-v3}")},
        {"stt": ["groq"]},
    )
    result = run_cli(
        "--config", str(config), "run", "stt", str(audio), "--language", "en", "--json",
        env=clean_env(GROQ_API_KEY=GROQ_KEY),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    data = result.json()
    assert (data["provider"], data["model"]) == ("groq", "whisper-large-v3")
    assert data["output"] == "Testing one two."
    usage = data["usage"]
    assert isinstance(usage, dict) and usage["requests"] == 1
    assert usage["audio_seconds"] == pytest.approx(1.5, abs=0.01)
    [request] = fake.requests()
    assert request.headers["authorization"] == f"Bearer {GROQ_KEY}"
    fields = form(request)
    assert fields["model"][2] == b"whisper-large-v3"
    assert fields["response_format"][2] == b"verbose_json"
    assert fields["language"][2] == b"en"
    filename, mime, payload = fields["file"]
    assert (filename, payload) == ("speech.wav", audio.read_bytes())
    assert mime in ("audio/wav", "audio/x-wav")


@needs_cli("tts")
def test_cli_tts_on_openai_writes_the_mp3(tmp_path: Path, fake: FakeServer) -> None:
    mp3 = shapes.tiny_mp3(0.5)
    fake.route("POST", shapes.speech_path("oa"), shapes.speech_ok(mp3))
    config = write_config(
        tmp_path / "providers.yaml",
        {"openai": _provider(fake.base_url("oa"), "OPENAI_API_KEY", "{tts: tts-1}")},
        {"tts": ["openai"]},
    )
    out = tmp_path / "hello.mp3"
    result = run_cli(
        "--config", str(config), "run", "tts", "Hello world", "-o", str(out),
        "--voice", "echo", "--json",
        env=clean_env(OPENAI_API_KEY=KEY),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    data = result.json()
    assert (data["provider"], data["model"]) == ("openai", "tts-1")
    assert data["usage"] == {"requests": 1, "characters": 11}
    assert Path(str(data["path"])).resolve() == out.resolve()
    assert out.read_bytes() == mp3
    assert fake.requests()[0].json() == {
        "model": "tts-1",
        "input": "Hello world",
        "voice": "echo",
        "response_format": "mp3",
    }


@needs_cli("multimodal")
def test_cli_multimodal_image_on_openai(tmp_path: Path, fake: FakeServer) -> None:
    png = shapes.tiny_png()
    image = tmp_path / "red.png"
    image.write_bytes(png)
    fake.route("POST", shapes.chat_path("oa"), shapes.chat_ok("It is red.", model="gpt-4o-mini"))
    config = write_config(
        tmp_path / "providers.yaml",
        {"openai": _provider(fake.base_url("oa"), "OPENAI_API_KEY", "{multimodal: gpt-4o-mini}")},
        {"multimodal": ["openai"]},
    )
    result = run_cli(
        "--config", str(config), "run", "multimodal", "What colour?", "--image", str(image),
        "--json",
        env=clean_env(OPENAI_API_KEY=KEY),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    data = result.json()
    assert (data["provider"], data["output"]) == ("openai", "It is red.")
    assert data["usage"] == {"requests": 1, "input_tokens": 5, "output_tokens": 7, "tokens": 12}
    body = fake.requests()[0].json()
    [message] = body["messages"]
    assert message["content"][0] == {"type": "text", "text": "What colour?"}
    url = message["content"][1]["image_url"]["url"]
    assert url == "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    assert json.dumps(body).count("base64,") == 1
