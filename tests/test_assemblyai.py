"""The AssemblyAI adapter through the real `assemblyai` SDK against a local fake of the API.

What the fake reproduces (tests/fakes/assemblyai_shapes.py), and from where:
- the three-step flow: `POST /v2/upload` (raw bytes) -> `{"upload_url"}`, `POST /v2/transcript`
  -> the transcript object, `GET /v2/transcript/{id}` until `completed` or `error`; auth header
  `Authorization: <key>` with no "Bearer" (AssemblyAI API reference; SDK 1.8 source);
- the transcript object with `audio_url`, `status`, `text`, `words` (ms), `utterances`,
  `audio_duration` (integer seconds), `speech_model_used` (API reference, SDK `TranscriptResponse`);
- a failed job is HTTP 200 with `status: error` and an `error` text such as "Download error, ..."
  or "File does not appear to contain audio ..." (AssemblyAI cookbook, common errors guide);
- errors `{"error": "..."}`: 400 "Your current account balance is negative ..." (out of credit),
  401 "Authentication error, API token missing/invalid.", 500 "Server error, developers have been
  alerted." (same guide), 429 on rate/concurrency limits (FAQ), and the upload endpoint's plain
  text 401 `Invalid API key` (media.md, obs 2025).
"""

from __future__ import annotations

import asyncio
import json
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
from scheduler.providers.assemblyai import AssemblyAIAdapter, classify_job_error
from scheduler.tasks import ProviderResult, Segment, SttTask
from tests.conftest import clean_env, run_cli, write_config
from tests.fakes import assemblyai_shapes as shapes
from tests.fakes.audio import write_wav
from tests.fakes.server import FakeServer, Reply

# The SDK calls pydantic's deprecated `.dict()`/`.parse_obj()` under pydantic 2.
pytestmark = pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")

KEY = "aai-test-0123456789"
PREFIX = "/aai"


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AssemblyAIAdapter, "poll_interval_s", 0.01)


@pytest.fixture
def audio(tmp_path: Path) -> Path:
    return write_wav(tmp_path / "hello.wav")


@dataclass
class Outcome:
    result: ProviderResult | None
    error: ProviderError | None
    before: float
    after: float


def transcribe(
    base_url: str,
    audio: Path,
    *,
    language: str | None = "en",
    model: str = "universal-2",
    api_key: str | None = KEY,
    timeout_s: float = 5.0,
    audio_seconds: float = 1.0,
) -> Outcome:
    task = SttTask(audio, audio_seconds=audio_seconds, mime_type="audio/wav", language=language)

    async def go() -> ProviderResult:
        async with httpx.AsyncClient() as http:
            adapter = AssemblyAIAdapter(
                name="aai",
                config=ProviderConfig(adapter="assemblyai", base_url=base_url),
                api_key=api_key,
                http=http,
                timeout_s=timeout_s,
            )
            return await adapter.run(task, model=model)

    before = time.time()
    try:
        result, error = asyncio.run(go()), None
    except ProviderError as exc:
        result, error = None, exc
    return Outcome(result, error, before, time.time())


def fail(fake: FakeServer, audio: Path, **kwargs: object) -> ProviderError:
    outcome = transcribe(fake.url + PREFIX, audio, **kwargs)  # type: ignore[arg-type]
    assert outcome.result is None, outcome.result
    assert outcome.error is not None
    return outcome.error


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------


def test_upload_submit_poll_requests(fake: FakeServer, audio: Path) -> None:
    shapes.mount_assemblyai_ok(fake, PREFIX)
    outcome = transcribe(fake.url + PREFIX, audio, language="en")
    assert outcome.error is None, outcome.error

    upload, submit, poll = fake.requests()
    assert (upload.method, upload.path) == ("POST", "/aai/v2/upload")
    assert upload.body == audio.read_bytes()
    assert (submit.method, submit.path) == ("POST", "/aai/v2/transcript")
    assert submit.json() == {
        "audio_url": shapes.UPLOAD_URL,
        "speech_models": ["universal-2"],
        "language_code": "en",
    }
    assert (poll.method, poll.path) == ("GET", f"/aai/v2/transcript/{shapes.TRANSCRIPT_ID}")
    for request in (upload, submit, poll):
        assert request.headers["authorization"] == KEY  # no "Bearer"


def test_without_a_language_assemblyai_is_asked_to_detect_it(fake: FakeServer, audio: Path) -> None:
    shapes.mount_assemblyai_ok(fake, PREFIX)
    outcome = transcribe(fake.url + PREFIX, audio, language=None, model="universal-3-pro")
    assert outcome.error is None, outcome.error
    assert fake.requests(shapes.submit_path(PREFIX))[0].json() == {
        "audio_url": shapes.UPLOAD_URL,
        "speech_models": ["universal-3-pro"],
        "language_detection": True,
    }


def test_polls_until_completed(fake: FakeServer, audio: Path) -> None:
    fake.route("POST", shapes.upload_path(PREFIX), shapes.upload_ok())
    fake.route("POST", shapes.submit_path(PREFIX), shapes.queued())
    fake.route(
        "GET",
        shapes.poll_path(PREFIX),
        shapes.queued(),
        shapes.processing(),
        shapes.processing(),
        shapes.completed("Done."),
    )
    outcome = transcribe(fake.url + PREFIX, audio)
    assert outcome.result is not None, outcome.error
    assert outcome.result.output == "Done."
    assert fake.count(shapes.poll_path(PREFIX)) == 4


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


def test_result_text_words_model_and_usage(fake: FakeServer, audio: Path) -> None:
    fake.route("POST", shapes.upload_path(PREFIX), shapes.upload_ok())
    fake.route("POST", shapes.submit_path(PREFIX), shapes.queued())
    fake.route(
        "GET",
        shapes.poll_path(PREFIX),
        shapes.completed(
            "Hello world.",
            words=[("Hello", 120, 480), ("world.", 520, 1010)],
            audio_duration=3,
            speech_model_used="universal-2",
        ),
    )
    outcome = transcribe(fake.url + PREFIX, audio, model="best", audio_seconds=2.6)
    assert outcome.result == ProviderResult(
        output="Hello world.",
        model="universal-2",  # the model AssemblyAI says it used, not the one we asked for
        usage={"requests": 1, "audio_seconds": 3.0},  # billed length from the provider
        segments=(Segment(0.12, 0.48, "Hello"), Segment(0.52, 1.01, "world.")),
    )


def test_utterances_are_preferred_over_words(fake: FakeServer, audio: Path) -> None:
    fake.route("POST", shapes.upload_path(PREFIX), shapes.upload_ok())
    fake.route("POST", shapes.submit_path(PREFIX), shapes.queued())
    fake.route(
        "GET",
        shapes.poll_path(PREFIX),
        shapes.completed(
            "Hi. Bye.", utterances=[("Hi.", 0, 900), ("Bye.", 1500, 2250)], audio_duration=None
        ),
    )
    outcome = transcribe(fake.url + PREFIX, audio, audio_seconds=2.25)
    assert outcome.result is not None, outcome.error
    assert outcome.result.segments == (Segment(0.0, 0.9, "Hi."), Segment(1.5, 2.25, "Bye."))
    # No audio_duration in the answer: the length measured before the call is the usage.
    assert outcome.result.usage == {"requests": 1, "audio_seconds": 2.25}


def test_missing_speech_model_used_reports_the_requested_model(
    fake: FakeServer, audio: Path
) -> None:
    fake.route("POST", shapes.upload_path(PREFIX), shapes.upload_ok())
    fake.route("POST", shapes.submit_path(PREFIX), shapes.queued())
    fake.route("GET", shapes.poll_path(PREFIX), shapes.completed(speech_model_used=None))
    outcome = transcribe(fake.url + PREFIX, audio, model="universal-2")
    assert outcome.result is not None and outcome.result.model == "universal-2"


# --------------------------------------------------------------------------------------------
# Failures
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "cls"),
    [
        (shapes.DOWNLOAD_ERROR, RejectedInput),
        (shapes.NOT_AUDIO_ERROR, RejectedInput),
        ("Transcoding failed. Please try again with a different file.", RejectedInput),
        ("Internal server error. Please resubmit the file.", Transient),
    ],
    ids=["download", "not-audio", "transcoding", "server-side"],
)
def test_failed_job_is_classified_by_its_error_text(
    fake: FakeServer, audio: Path, error: str, cls: type[ProviderError]
) -> None:
    fake.route("POST", shapes.upload_path(PREFIX), shapes.upload_ok())
    fake.route("POST", shapes.submit_path(PREFIX), shapes.queued())
    fake.route("GET", shapes.poll_path(PREFIX), shapes.processing(), shapes.failed(error))
    failure = fail(fake, audio)
    assert type(failure) is cls
    assert str(failure) == f"transcription failed: {error}"
    assert failure.provider == "aai"


NOT_JSON = Reply(
    status=200, body="<html><title>Hi</title></html>", headers={"content-type": "text/html"}
)
BAD_GATEWAY = Reply(
    status=502,
    body="<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
    headers={"content-type": "text/html"},
)
LANGUAGE_400 = shapes.error_reply(
    400, "The following models are not available in this language: speaker_labels"
)


@pytest.mark.parametrize(
    ("endpoint", "reply", "cls", "status", "message"),
    [
        ("submit", shapes.balance_negative(), QuotaExhausted, 400,
         f"HTTP 400: {shapes.BALANCE_NEGATIVE}"),
        ("upload", shapes.balance_negative(), QuotaExhausted, 400,
         f"HTTP 400: {shapes.BALANCE_NEGATIVE}"),
        ("upload", shapes.auth_error(), AuthFailed, 401, f"HTTP 401: {shapes.AUTH_ERROR}"),
        ("upload", shapes.invalid_key_text(), AuthFailed, 401, "HTTP 401: Invalid API key"),
        ("poll", shapes.auth_error(), AuthFailed, 401, f"HTTP 401: {shapes.AUTH_ERROR}"),
        ("submit", shapes.rate_limited("7"), RateLimited, 429, "HTTP 429: Too Many Requests"),
        ("upload", shapes.server_error(), Transient, 500, f"HTTP 500: {shapes.SERVER_ERROR}"),
        ("poll", shapes.server_error(), Transient, 500, f"HTTP 500: {shapes.SERVER_ERROR}"),
        ("poll", BAD_GATEWAY, Transient, 502, "HTTP 502: 502 Bad Gateway"),
        ("submit", LANGUAGE_400, RejectedInput, 400,
         "HTTP 400: The following models are not available in this language: speaker_labels"),
        ("poll", NOT_JSON, Transient, 200, "malformed response: not JSON (text/html)"),
        ("poll", Reply(json={"id": shapes.TRANSCRIPT_ID}), Transient, 200,
         f"malformed response: unexpected shape from {PREFIX}/v2/transcript/"
         f"{shapes.TRANSCRIPT_ID}"),
        ("upload", Reply(json={}), Transient, 200,
         f"malformed response: unexpected shape from {PREFIX}/v2/upload"),
    ],
    ids=[
        "submit-balance-negative",
        "upload-balance-negative",
        "upload-401-json",
        "upload-401-plain-text",
        "poll-401",
        "submit-429",
        "upload-500",
        "poll-500",
        "poll-502-html",
        "submit-400-rejected",
        "poll-200-not-json",
        "poll-200-no-status",
        "upload-200-no-upload-url",
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
) -> None:
    shapes.mount_assemblyai_ok(fake, PREFIX)
    path = {
        "upload": shapes.upload_path(PREFIX),
        "submit": shapes.submit_path(PREFIX),
        "poll": shapes.poll_path(PREFIX),
    }[endpoint]
    fake.route("GET" if endpoint == "poll" else "POST", path, reply)
    failure = fail(fake, audio)
    assert type(failure) is cls, f"{type(failure).__name__}: {failure}"
    assert (failure.provider, failure.status, str(failure)) == ("aai", status, message)
    assert fake.count(path) == 1  # the SDK does not retry
    later = {"upload": ["submit", "poll"], "submit": ["poll"], "poll": []}[endpoint]
    for name in later:  # a failure stops the flow
        later_path = shapes.submit_path(PREFIX) if name == "submit" else shapes.poll_path(PREFIX)
        assert fake.count(later_path) == 0


def test_rate_limit_carries_the_retry_after_hint(fake: FakeServer, audio: Path) -> None:
    shapes.mount_assemblyai_ok(fake, PREFIX)
    fake.route("POST", shapes.submit_path(PREFIX), shapes.rate_limited("7"))
    failure = fail(fake, audio)
    assert isinstance(failure, RateLimited)
    assert failure.retry_after == 7.0


def test_running_past_the_timeout_is_transient(fake: FakeServer, audio: Path) -> None:
    fake.route("POST", shapes.upload_path(PREFIX), shapes.upload_ok())
    fake.route("POST", shapes.submit_path(PREFIX), shapes.queued())
    fake.route("GET", shapes.poll_path(PREFIX), default=shapes.processing())
    started = time.monotonic()
    failure = fail(fake, audio, timeout_s=0.3)
    assert time.monotonic() - started < 2.0
    assert type(failure) is Transient
    assert str(failure) == (
        f"timed out after 0.3 s waiting for transcript {shapes.TRANSCRIPT_ID} "
        "(last status: processing)"
    )
    assert fake.count(shapes.poll_path(PREFIX)) >= 2


def test_connection_refused_is_transient(audio: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    outcome = transcribe(f"http://127.0.0.1:{port}", audio)
    assert type(outcome.error) is Transient
    assert re.fullmatch(r"connection to 127\.0\.0\.1:\d+ failed: ConnectError", str(outcome.error))


def test_unreadable_audio_is_rejected_input(fake: FakeServer, tmp_path: Path) -> None:
    failure = fail(fake, tmp_path / "gone.wav")
    assert type(failure) is RejectedInput
    assert str(failure) == "cannot read gone.wav: No such file or directory"
    assert fake.requests() == []


def test_missing_key_fails_before_any_request(fake: FakeServer, audio: Path) -> None:
    failure = fail(fake, audio, api_key=None)
    assert type(failure) is AuthFailed
    assert fake.requests() == []


def test_echoed_key_is_redacted(fake: FakeServer, audio: Path) -> None:
    secret = "aai-live-RECOGNISABLE"
    shapes.mount_assemblyai_ok(fake, PREFIX)
    fake.route(
        "POST", shapes.upload_path(PREFIX), shapes.error_reply(401, f"Invalid API key {secret}")
    )
    failure = fail(fake, audio, api_key=secret)
    assert isinstance(failure, AuthFailed)
    assert secret not in str(failure) and "RECOGNISABLE" not in repr(failure)
    assert str(failure) == "HTTP 401: Invalid API key ***"


def test_job_error_text_is_redacted() -> None:
    error = classify_job_error(
        "Download error for token=secret-value", provider="p", secret="secret-value"
    )
    assert str(error) == "transcription failed: Download error for token=***"


def test_request_body_is_json(fake: FakeServer, audio: Path) -> None:
    shapes.mount_assemblyai_ok(fake, PREFIX)
    transcribe(fake.url + PREFIX, audio)
    submit = fake.requests(shapes.submit_path(PREFIX))[0]
    assert submit.headers["content-type"] == "application/json"
    assert isinstance(json.loads(submit.body), dict)


# --------------------------------------------------------------------------------------------
# The real CLI
# --------------------------------------------------------------------------------------------


def _cli_has(kind: str) -> bool:
    from scheduler.cli import run_cmd

    return any(
        (command.name or getattr(command.callback, "__name__", "")) == kind
        for command in run_cmd.app.registered_commands
    )


@pytest.mark.skipif(not _cli_has("stt"), reason="`sched run stt` is not written yet")
def test_cli_run_stt_end_to_end(tmp_path: Path, fake: FakeServer) -> None:
    shapes.mount_assemblyai_ok(fake, PREFIX, text="Hello world.", audio_duration=2)
    config = write_config(
        tmp_path / "providers.yaml",
        {
            "aai": f"adapter: assemblyai\nbase_url: {fake.url}{PREFIX}\n"
            "api_key_env: AAI_TEST_KEY\nmodels: {stt: universal-2}"
        },
        {"stt": ["aai"]},
    )
    audio = write_wav(tmp_path / "speech.wav", seconds=1.5)
    result = run_cli(
        "--config", str(config), "run", "stt", str(audio), "--language", "en", "--json",
        env=clean_env(AAI_TEST_KEY=KEY),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    data = result.json()
    assert (data["provider"], data["model"], data["output"]) == (
        "aai",
        "universal-2",
        "Hello world.",
    )
    assert data["usage"] == {"requests": 1, "audio_seconds": 2}
    attempts = data["attempts"]
    assert isinstance(attempts, list) and [a["outcome"] for a in attempts] == ["ok"]
    assert fake.requests(shapes.upload_path(PREFIX))[0].body == audio.read_bytes()
    assert fake.requests(shapes.submit_path(PREFIX))[0].json()["language_code"] == "en"
