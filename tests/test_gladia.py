"""The Gladia adapter driven through its real wire format against a local fake of the v2 API.

What the fake reproduces (tests/fakes/gladia_shapes.py), and from where:
- the job flow: `POST /v2/upload` multipart with the file in field `audio` -> `{"audio_url",
  "audio_metadata"}`; `POST /v2/pre-recorded` JSON -> 201 `{"id", "result_url"}`; `GET
  /v2/pre-recorded/{id}` -> `status` queued|processing|done|error, `error_code` (HTTP status) on
  error; auth header `x-gladia-key` (Gladia API reference v2);
- `result.metadata` `{audio_duration, number_of_distinct_channels, billing_time,
  transcription_time}` and `result.transcription` `{full_transcript, languages, utterances}`
  with times in seconds (API reference, SDK types);
- Audio-to-LLM: request `audio_to_llm: true`, `audio_to_llm_config: {"prompts": [...]}`; answer
  in `result.audio_to_llm.results[i].results.response` with per-level `success`/`is_empty`/
  `error` (Gladia "Audio-to-LLM" guide, generated SDK models AudioToLlmListDTO/AudioToLlmDTO);
- errors `{timestamp, path, request_id, statusCode, message, validation_errors?}` (SDK error DTOs).
  The out-of-credit status is not documented: the 402 here is our assumption (see the adapter).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import socket
import time
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
from scheduler.providers.gladia import GladiaAdapter
from scheduler.tasks import MultimodalTask, ProviderResult, Segment, SttTask, Task
from tests.conftest import clean_env, run_cli, write_config
from tests.fakes import gladia_shapes as shapes
from tests.fakes.audio import write_wav
from tests.fakes.server import FakeServer, Recorded, Reply

KEY = "gladia-test-0123456789"
PREFIX = "/gladia"


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(GladiaAdapter, "poll_interval_s", 0.01)


@pytest.fixture
def audio(tmp_path: Path) -> Path:
    return write_wav(tmp_path / "hello.wav")


@dataclass
class Outcome:
    result: ProviderResult | None
    error: ProviderError | None


def run_task(
    base_url: str, task: Task, *, model: str = "solaria-1", api_key: str | None = KEY,
    timeout_s: float = 5.0,
) -> Outcome:  # fmt: skip
    async def go() -> ProviderResult:
        async with httpx.AsyncClient() as http:
            adapter = GladiaAdapter(
                name="gladia",
                config=ProviderConfig(adapter="gladia", base_url=base_url),
                api_key=api_key,
                http=http,
                timeout_s=timeout_s,
            )
            return await adapter.run(task, model=model)

    try:
        return Outcome(asyncio.run(go()), None)
    except ProviderError as exc:
        return Outcome(None, exc)


def stt_task(audio: Path, language: str | None = "en", seconds: float = 1.0) -> SttTask:
    return SttTask(audio, audio_seconds=seconds, mime_type="audio/wav", language=language)


def ask_task(audio: Path, prompt: str = "Who speaks?") -> MultimodalTask:
    return MultimodalTask(prompt=prompt, media=audio, mime_type="audio/wav", audio_seconds=1.0)


def succeed(fake: FakeServer, task: Task, **kwargs: object) -> ProviderResult:
    outcome = run_task(fake.url + PREFIX, task, **kwargs)  # type: ignore[arg-type]
    assert outcome.error is None, outcome.error
    assert outcome.result is not None
    return outcome.result


def fail(fake: FakeServer, task: Task, **kwargs: object) -> ProviderError:
    outcome = run_task(fake.url + PREFIX, task, **kwargs)  # type: ignore[arg-type]
    assert outcome.result is None, outcome.result
    assert outcome.error is not None
    return outcome.error


def multipart_parts(request: Recorded) -> dict[str, tuple[str | None, str, bytes]]:
    """name -> (filename, content type, payload) of a multipart/form-data body."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = email.message_from_bytes(head + request.body, policy=email.policy.HTTP)
    parts = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        assert isinstance(name, str) and isinstance(payload, bytes)
        parts[name] = (part.get_filename(), part.get_content_type(), payload)
    return parts


# --------------------------------------------------------------------------------------------
# Speech to text
# --------------------------------------------------------------------------------------------


def test_stt_upload_create_poll_requests(fake: FakeServer, audio: Path) -> None:
    shapes.mount_gladia_ok(fake, PREFIX)
    succeed(fake, stt_task(audio, language="fr"))
    upload, create, poll = fake.requests()
    assert (upload.method, upload.path) == ("POST", "/gladia/v2/upload")
    assert upload.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert multipart_parts(upload) == {"audio": ("hello.wav", "audio/wav", audio.read_bytes())}
    assert (create.method, create.path) == ("POST", "/gladia/v2/pre-recorded")
    assert create.json() == {
        "audio_url": shapes.AUDIO_URL,
        "language_config": {"languages": ["fr"]},
    }
    assert (poll.method, poll.path) == ("GET", f"/gladia/v2/pre-recorded/{shapes.JOB_ID}")
    for request in (upload, create, poll):
        assert request.headers["x-gladia-key"] == KEY
        assert "authorization" not in request.headers


def test_stt_without_language_lets_gladia_detect(fake: FakeServer, audio: Path) -> None:
    shapes.mount_gladia_ok(fake, PREFIX)
    succeed(fake, stt_task(audio, language=None))
    assert fake.requests(shapes.create_path(PREFIX))[0].json() == {"audio_url": shapes.AUDIO_URL}


def test_stt_result_text_segments_and_billed_seconds(fake: FakeServer, audio: Path) -> None:
    fake.route("POST", shapes.upload_path(PREFIX), shapes.upload_ok())
    fake.route("POST", shapes.create_path(PREFIX), shapes.create_ok())
    fake.route(
        "GET",
        shapes.poll_path(PREFIX),
        shapes.queued(),
        shapes.processing(),
        shapes.done(
            "Hi. Bye.",
            utterances=[("Hi.", 0.0, 0.9), ("Bye.", 1.5, 2.25)],
            audio_duration=2.25,
            billing_time=4.5,  # two distinct channels: billed twice the duration
        ),
    )
    result = succeed(fake, stt_task(audio, seconds=2.25))
    assert result == ProviderResult(
        output="Hi. Bye.",
        model="solaria-1",
        usage={"requests": 1, "audio_seconds": 4.5},
        segments=(Segment(0.0, 0.9, "Hi."), Segment(1.5, 2.25, "Bye.")),
    )
    assert fake.count(shapes.poll_path(PREFIX)) == 3


@pytest.mark.parametrize(
    ("audio_duration", "billing_time", "upload_duration", "expected"),
    [
        (3.0, None, 1.0, 3.0),  # no billing_time: the job's audio duration
        (None, None, 1.5, 1.5),  # neither: what the upload measured
        (None, None, None, 2.5),  # nothing from Gladia: measured before the call
    ],
    ids=["audio-duration", "upload-metadata", "measured"],
)
def test_stt_usage_falls_back(
    fake: FakeServer,
    audio: Path,
    audio_duration: float | None,
    billing_time: float | None,
    upload_duration: float | None,
    expected: float,
) -> None:
    upload = shapes.upload_ok(upload_duration or 0.0)
    if upload_duration is None:
        upload = Reply(json={"audio_url": shapes.AUDIO_URL, "audio_metadata": None})
    fake.route("POST", shapes.upload_path(PREFIX), upload)
    fake.route("POST", shapes.create_path(PREFIX), shapes.create_ok())
    fake.route(
        "GET",
        shapes.poll_path(PREFIX),
        shapes.done(audio_duration=audio_duration, billing_time=billing_time),
    )
    result = succeed(fake, stt_task(audio, seconds=2.5))
    assert result.usage == {"requests": 1, "audio_seconds": expected}


# --------------------------------------------------------------------------------------------
# Multimodal (Audio-to-LLM)
# --------------------------------------------------------------------------------------------


def test_multimodal_asks_audio_to_llm_and_returns_its_answer(fake: FakeServer, audio: Path) -> None:
    shapes.mount_gladia_ok(fake, PREFIX, llm=("Who speaks?", "One person greets the world."))
    result = succeed(fake, ask_task(audio, "Who speaks?"))
    assert result == ProviderResult(
        output="One person greets the world.",
        model="solaria-1",
        usage={"requests": 1, "audio_seconds": 1.0},
    )
    assert fake.requests(shapes.create_path(PREFIX))[0].json() == {
        "audio_url": shapes.AUDIO_URL,
        "audio_to_llm": True,
        "audio_to_llm_config": {"prompts": ["Who speaks?"]},
    }
    assert multipart_parts(fake.requests(shapes.upload_path(PREFIX))[0])["audio"][2] == (
        audio.read_bytes()
    )


def test_multimodal_empty_answer_is_empty_text(fake: FakeServer, audio: Path) -> None:
    shapes.mount_gladia_ok(fake, PREFIX)
    fake.route("GET", shapes.poll_path(PREFIX), shapes.llm_done("Who speaks?", None))
    assert succeed(fake, ask_task(audio)).output == ""


@pytest.mark.parametrize(
    ("error", "cls", "status", "message"),
    [
        ({"status_code": 500, "exception": "LLMError", "message": "LLM unavailable"},
         Transient, 500, "audio_to_llm failed: LLM unavailable"),
        ({"status_code": 400, "exception": "BadRequest", "message": "Prompt too long"},
         RejectedInput, 400, "audio_to_llm failed: Prompt too long"),
        (None, Transient, None, "audio_to_llm failed: no reason given"),
    ],
    ids=["500", "400", "no-detail"],
)  # fmt: skip
def test_multimodal_failed_addon_is_classified(
    fake: FakeServer,
    audio: Path,
    error: dict[str, object] | None,
    cls: type[ProviderError],
    status: int | None,
    message: str,
) -> None:
    shapes.mount_gladia_ok(fake, PREFIX)
    fake.route(
        "GET",
        shapes.poll_path(PREFIX),
        shapes.llm_done("Who speaks?", None, success=False, error=error),
    )
    failure = fail(fake, ask_task(audio))
    assert type(failure) is cls
    assert (failure.status, str(failure)) == (status, message)


def test_multimodal_refuses_images_without_a_call(fake: FakeServer, tmp_path: Path) -> None:
    image = tmp_path / "x.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")
    task = MultimodalTask(prompt="What is this?", media=image, mime_type="image/png")
    failure = fail(fake, task)
    assert type(failure) is RejectedInput
    assert str(failure) == "gladia answers questions about audio only, not image/png"
    assert fake.requests() == []


def test_multimodal_without_audio_to_llm_result_is_malformed(fake: FakeServer, audio: Path) -> None:
    shapes.mount_gladia_ok(fake, PREFIX)  # a plain transcription result, no audio_to_llm
    failure = fail(fake, ask_task(audio))
    assert type(failure) is Transient
    assert str(failure) == "malformed response: no result.audio_to_llm"


# --------------------------------------------------------------------------------------------
# Failures
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error_code", "cls"),
    [(422, RejectedInput), (400, RejectedInput), (500, Transient), (None, Transient)],
    ids=["422", "400", "500", "none"],
)
def test_failed_job_is_classified_by_error_code(
    fake: FakeServer, audio: Path, error_code: int | None, cls: type[ProviderError]
) -> None:
    shapes.mount_gladia_ok(fake, PREFIX)
    fake.route("GET", shapes.poll_path(PREFIX), shapes.processing(), shapes.failed(error_code))
    failure = fail(fake, stt_task(audio))
    assert type(failure) is cls
    code = "unknown" if error_code is None else error_code
    assert str(failure) == f"job {shapes.JOB_ID} failed with error code {code}"
    assert failure.status == error_code


BAD_GATEWAY = Reply(
    status=502,
    body="<html><head><title>502 Bad Gateway</title></head></html>",
    headers={"content-type": "text/html"},
)


@pytest.mark.parametrize(
    ("endpoint", "reply", "cls", "status", "message", "retry_after"),
    [
        ("upload", shapes.bad_key(), AuthFailed, 401, "HTTP 401: Invalid or missing API key",
         None),
        ("create", shapes.error_dto(403, "Forbidden resource"), AuthFailed, 403,
         "HTTP 403: Forbidden resource", None),
        ("create", shapes.out_of_credit(), QuotaExhausted, 402,
         "HTTP 402: Your credit balance is exhausted. Please top up your wallet.", None),
        ("create", shapes.error_dto(429, "You have exceeded your monthly usage limit"),
         QuotaExhausted, 429, "HTTP 429: You have exceeded your monthly usage limit", None),
        ("upload", shapes.error_dto(403, "Free plan quota reached"), QuotaExhausted, 403,
         "HTTP 403: Free plan quota reached", None),
        ("create", shapes.rate_limited("5"), RateLimited, 429,
         "HTTP 429: Too many concurrent transcriptions", 5.0),
        ("create", shapes.validation_error(), RejectedInput, 400,
         "HTTP 400: Validation failed "
         "(language_config.languages.0 must be a valid language code)", None),
        ("upload", shapes.error_dto(413, "File too large"), RejectedInput, 413,
         "HTTP 413: File too large", None),
        ("upload", shapes.error_dto(415, "Unsupported audio format"), RejectedInput, 415,
         "HTTP 415: Unsupported audio format", None),
        ("poll", shapes.server_error(), Transient, 500, "HTTP 500: Internal server error", None),
        ("create", BAD_GATEWAY, Transient, 502, "HTTP 502: 502 Bad Gateway", None),
        ("poll", Reply(body="<html></html>", headers={"content-type": "text/html"}),
         Transient, 200, "malformed response: not JSON (text/html)", None),
        ("upload", Reply(json={"audio_metadata": {}}), Transient, 200,
         "malformed response: upload answered without audio_url", None),
        ("create", Reply(status=201, json={"result_url": "x"}), Transient, 200,
         "malformed response: job created without an id", None),
        ("poll", Reply(json={"id": shapes.JOB_ID, "status": "done"}), Transient, 200,
         "malformed response: job done without a result", None),
        ("poll", Reply(json={"id": shapes.JOB_ID, "status": "paused"}), Transient, 200,
         "malformed response: unknown job status 'paused'", None),
        ("poll", Reply(json=[1, 2]), Transient, 200,
         "malformed response: not a JSON object", None),
    ],
    ids=[
        "401", "403", "402-credit", "429-monthly-limit", "403-quota", "429-rate",
        "400-validation", "413", "415", "500", "502-html", "200-not-json", "no-audio-url",
        "no-job-id", "done-no-result", "unknown-status", "not-an-object",
    ],
)  # fmt: skip
def test_http_failures_are_classified(
    fake: FakeServer,
    audio: Path,
    endpoint: str,
    reply: Reply,
    cls: type[ProviderError],
    status: int,
    message: str,
    retry_after: float | None,
) -> None:
    shapes.mount_gladia_ok(fake, PREFIX)
    path = {
        "upload": shapes.upload_path(PREFIX),
        "create": shapes.create_path(PREFIX),
        "poll": shapes.poll_path(PREFIX),
    }[endpoint]
    fake.route("GET" if endpoint == "poll" else "POST", path, reply)
    failure = fail(fake, stt_task(audio))
    assert type(failure) is cls, f"{type(failure).__name__}: {failure}"
    assert (failure.provider, failure.status, str(failure)) == ("gladia", status, message)
    assert failure.retry_after == retry_after
    assert fake.count(path) == 1  # no retries inside the adapter
    if endpoint == "upload":
        assert fake.count(shapes.create_path(PREFIX)) == 0


def test_running_past_the_timeout_is_transient(fake: FakeServer, audio: Path) -> None:
    fake.route("POST", shapes.upload_path(PREFIX), shapes.upload_ok())
    fake.route("POST", shapes.create_path(PREFIX), shapes.create_ok())
    fake.route("GET", shapes.poll_path(PREFIX), default=shapes.processing())
    started = time.monotonic()
    failure = fail(fake, stt_task(audio), timeout_s=0.3)
    assert time.monotonic() - started < 2.0
    assert type(failure) is Transient
    assert str(failure) == (
        f"timed out after 0.3 s waiting for job {shapes.JOB_ID} (last status: processing)"
    )


def test_connection_refused_is_transient(audio: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    outcome = run_task(f"http://127.0.0.1:{port}", stt_task(audio))
    assert type(outcome.error) is Transient
    assert re.fullmatch(r"connection to 127\.0\.0\.1:\d+ failed: ConnectError", str(outcome.error))


def test_missing_key_and_unreadable_file_fail_without_a_call(
    fake: FakeServer, audio: Path, tmp_path: Path
) -> None:
    assert type(fail(fake, stt_task(audio), api_key=None)) is AuthFailed
    missing = fail(fake, stt_task(tmp_path / "gone.wav"))
    assert type(missing) is RejectedInput
    assert str(missing) == "cannot read gone.wav: No such file or directory"
    assert fake.requests() == []


def test_echoed_key_is_redacted(fake: FakeServer, audio: Path) -> None:
    secret = "gladia-live-RECOGNISABLE"
    shapes.mount_gladia_ok(fake, PREFIX)
    fake.route("POST", shapes.upload_path(PREFIX), shapes.error_dto(401, f"Unknown key {secret}"))
    failure = fail(fake, stt_task(audio), api_key=secret)
    assert isinstance(failure, AuthFailed)
    assert str(failure) == "HTTP 401: Unknown key ***"
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


def _config(tmp_path: Path, fake: FakeServer, kind: str) -> Path:
    return write_config(
        tmp_path / "providers.yaml",
        {
            "gl": f"adapter: gladia\nbase_url: {fake.url}{PREFIX}\napi_key_env: GLADIA_TEST_KEY\n"
            f"models: {{{kind}: solaria-1}}"
        },
        {kind: ["gl"]},
    )


@pytest.mark.skipif(not _cli_has("stt"), reason="`sched run stt` is not written yet")
def test_cli_run_stt_end_to_end(tmp_path: Path, fake: FakeServer) -> None:
    shapes.mount_gladia_ok(fake, PREFIX, text="Bonjour.", billing_time=1.5)
    config = _config(tmp_path, fake, "stt")
    audio = write_wav(tmp_path / "speech.wav", seconds=1.5)
    result = run_cli(
        "--config", str(config), "run", "stt", str(audio), "--language", "fr", "--json",
        env=clean_env(GLADIA_TEST_KEY=KEY),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    data = result.json()
    assert (data["provider"], data["model"], data["output"]) == ("gl", "solaria-1", "Bonjour.")
    assert data["usage"] == {"requests": 1, "audio_seconds": 1.5}
    upload = fake.requests(shapes.upload_path(PREFIX))[0]
    assert multipart_parts(upload)["audio"][2] == audio.read_bytes()
    assert fake.requests(shapes.create_path(PREFIX))[0].json()["language_config"] == {
        "languages": ["fr"]
    }


@pytest.mark.skipif(not _cli_has("multimodal"), reason="`sched run multimodal` not written yet")
def test_cli_run_multimodal_audio_end_to_end(tmp_path: Path, fake: FakeServer) -> None:
    shapes.mount_gladia_ok(fake, PREFIX, llm=("How many speakers?", "One."))
    config = _config(tmp_path, fake, "multimodal")
    audio = write_wav(tmp_path / "speech.wav", seconds=1.0)
    result = run_cli(
        "--config", str(config), "run", "multimodal", "How many speakers?", "--audio", str(audio),
        "--json", env=clean_env(GLADIA_TEST_KEY=KEY),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    data = result.json()
    assert (data["provider"], data["model"], data["output"]) == ("gl", "solaria-1", "One.")
    assert data["usage"] == {"requests": 1, "audio_seconds": 1.0}
    body = fake.requests(shapes.create_path(PREFIX))[0].json()
    assert body["audio_to_llm_config"] == {"prompts": ["How many speakers?"]}
