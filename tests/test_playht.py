"""The Play.ht adapter against a local fake of its historical v2 streaming API.

Play.ht closed its API on 2025-12-31; these tests pin the last documented wire format the adapter
keeps (tests/fakes/playht_shapes.py): `POST /api/v2/tts/stream` with `AUTHORIZATION: <key>`,
`X-USER-ID: <user id>`, `accept: audio/mpeg` and JSON `{"text", "voice", "output_format",
"voice_engine"}` answering the audio bytes (archived Play.ht API reference and client code quoted
in public repositories). Error bodies `{"error_message", "error_id"}` were reported by clients;
their texts and the status-to-class table are our assumptions, since Play.ht never documented
them.
"""

from __future__ import annotations

import asyncio
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
from scheduler.providers.playht import DEFAULT_VOICE, USER_ID_ENV, PlayHTAdapter
from scheduler.tasks import ProviderResult, TtsTask
from tests.conftest import clean_env, run_cli, write_config
from tests.fakes import playht_shapes as shapes
from tests.fakes.server import FakeServer, Reply

KEY = "playht-secret-0123456789"
USER_ID = "0XcJ8TomjCW0Z6tKARcA8ZTM0Vo1"
PREFIX = "/playht"
ENGINE = "Play3.0-mini"


@pytest.fixture(autouse=True)
def user_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(USER_ID_ENV, USER_ID)


@dataclass
class Outcome:
    result: ProviderResult | None
    error: ProviderError | None


def speak(base_url: str, task: TtsTask, *, api_key: str | None = KEY) -> Outcome:
    async def go() -> ProviderResult:
        async with httpx.AsyncClient() as http:
            adapter = PlayHTAdapter(
                name="playht",
                config=ProviderConfig(adapter="playht", base_url=base_url),
                api_key=api_key,
                http=http,
                timeout_s=5,
            )
            return await adapter.run(task, model=ENGINE)

    try:
        return Outcome(asyncio.run(go()), None)
    except ProviderError as exc:
        return Outcome(None, exc)


def fail(fake: FakeServer, task: TtsTask, **kwargs: object) -> ProviderError:
    outcome = speak(fake.url + PREFIX, task, **kwargs)  # type: ignore[arg-type]
    assert outcome.result is None, outcome.result
    assert outcome.error is not None
    return outcome.error


def test_request_headers_and_body(fake: FakeServer) -> None:
    shapes.mount_playht_ok(fake, PREFIX)
    outcome = speak(fake.url + PREFIX, TtsTask("Hello there."))
    assert outcome.result == ProviderResult(
        output="",
        model=ENGINE,
        usage={"requests": 1, "characters": 12},
        data=shapes.MP3,
        media_type="audio/mpeg",
    )
    [request] = fake.requests()
    assert (request.method, request.path) == ("POST", "/playht/api/v2/tts/stream")
    assert request.headers["authorization"] == KEY  # the bare key, no "Bearer"
    assert request.headers["x-user-id"] == USER_ID
    assert request.headers["accept"] == "audio/mpeg"
    assert request.json() == {
        "text": "Hello there.",
        "voice": DEFAULT_VOICE,
        "output_format": "mp3",
        "voice_engine": ENGINE,
    }


def test_wav_and_voice_are_passed_through(fake: FakeServer) -> None:
    fake.route("POST", shapes.stream_path(PREFIX), shapes.speech_ok(b"RIFF0000WAVE", "audio/wav"))
    voice = "s3://voice-cloning-zero-shot/abc/manifest.json"
    outcome = speak(fake.url + PREFIX, TtsTask("Hi", voice=voice, format="wav"))
    assert outcome.result is not None and outcome.result.media_type == "audio/wav"
    [request] = fake.requests()
    assert request.headers["accept"] == "audio/wav"
    assert (request.json()["voice"], request.json()["output_format"]) == (voice, "wav")


def test_opus_is_asked_as_mp3_for_the_cli_to_convert(fake: FakeServer) -> None:
    shapes.mount_playht_ok(fake, PREFIX)
    outcome = speak(fake.url + PREFIX, TtsTask("Hi", format="opus"))
    assert outcome.result is not None and outcome.result.media_type == "audio/mpeg"
    assert fake.requests()[0].json()["output_format"] == "mp3"


def test_missing_user_id_is_auth_failed_naming_the_variable(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(USER_ID_ENV)
    failure = fail(fake, TtsTask("Hi"))
    assert type(failure) is AuthFailed
    assert str(failure) == "no PLAYHT_USER_ID: Play.ht needs the account's user id beside the key"
    assert fake.requests() == []


def test_missing_key_is_auth_failed(fake: FakeServer) -> None:
    assert type(fail(fake, TtsTask("Hi"), api_key=None)) is AuthFailed
    assert fake.requests() == []


@pytest.mark.parametrize(
    ("reply", "cls", "status", "message", "retry_after"),
    [
        (shapes.error_reply(401, "Invalid credentials.", "UNAUTHORIZED"), AuthFailed, 401,
         "HTTP 401: Invalid credentials.", None),
        (shapes.error_reply(403, "Forbidden: insufficient permissions", "FORBIDDEN"),
         AuthFailed, 403, "HTTP 403: Forbidden: insufficient permissions", None),
        (shapes.error_reply(402, "Payment required", "PAYMENT_REQUIRED"), QuotaExhausted, 402,
         "HTTP 402: Payment required", None),
        (shapes.error_reply(403, "You have no credits left on your plan.", "NO_CREDITS"),
         QuotaExhausted, 403, "HTTP 403: You have no credits left on your plan.", None),
        (shapes.error_reply(429, "Rate limit exceeded, slow down.", "RATE_LIMITED",
                            {"retry-after": "4"}),
         RateLimited, 429, "HTTP 429: Rate limit exceeded, slow down.", 4.0),
        (shapes.error_reply(429, "Monthly quota exceeded.", "QUOTA"), QuotaExhausted, 429,
         "HTTP 429: Monthly quota exceeded.", None),
        (shapes.error_reply(400, "Invalid voice.", "BAD_REQUEST"), RejectedInput, 400,
         "HTTP 400: Invalid voice.", None),
        (shapes.error_reply(500, "Internal error.", "INTERNAL"), Transient, 500,
         "HTTP 500: Internal error.", None),
        (Reply(status=404, body="<html><title>404 Not Found</title></html>",
               headers={"content-type": "text/html"}), RejectedInput, 404,
         "HTTP 404: 404 Not Found", None),
        (Reply(status=200, json={"status": "ok"}), Transient, 200,
         "malformed response: no audio (application/json)", None),
    ],
    ids=[
        "401", "403-permissions", "402", "403-credits", "429-rate", "429-quota", "400", "500",
        "404-html", "200-json",
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
    fake.route("POST", shapes.stream_path(PREFIX), reply)
    failure = fail(fake, TtsTask("Hi"))
    assert type(failure) is cls, f"{type(failure).__name__}: {failure}"
    assert (failure.provider, failure.status, str(failure)) == ("playht", status, message)
    assert failure.retry_after == retry_after
    assert fake.count(shapes.stream_path(PREFIX)) == 1


def test_echoed_key_is_redacted(fake: FakeServer) -> None:
    secret = "playht-RECOGNISABLE-key"
    fake.route(
        "POST",
        shapes.stream_path(PREFIX),
        shapes.error_reply(401, f"Bad key {secret}", "UNAUTHORIZED"),
    )
    failure = fail(fake, TtsTask("Hi"), api_key=secret)
    assert str(failure) == "HTTP 401: Bad key ***"


def _cli_has(kind: str) -> bool:
    from scheduler.cli import run_cmd

    return any(
        (command.name or getattr(command.callback, "__name__", "")) == kind
        for command in run_cmd.app.registered_commands
    )


@pytest.mark.skipif(not _cli_has("tts"), reason="`sched run tts` is not written yet")
def test_cli_run_tts_end_to_end_when_enabled(tmp_path: Path, fake: FakeServer) -> None:
    shapes.mount_playht_ok(fake, PREFIX)
    config = write_config(
        tmp_path / "providers.yaml",
        {
            "playht": f"adapter: playht\nenabled: true\nbase_url: {fake.url}{PREFIX}\n"
            f"api_key_env: PLAYHT_TEST_KEY\nmodels: {{tts: {ENGINE}}}"
        },
        {"tts": ["playht"]},
    )
    out = tmp_path / "hello.mp3"
    result = run_cli(
        "--config", str(config), "run", "tts", "Hello there.", "-o", str(out), "--json",
        env=clean_env(PLAYHT_TEST_KEY=KEY, PLAYHT_USER_ID=USER_ID),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    data = result.json()
    assert (data["provider"], data["model"]) == ("playht", ENGINE)
    assert data["usage"] == {"requests": 1, "characters": 12}
    assert out.read_bytes() == shapes.MP3
    [request] = fake.requests()
    assert (request.headers["authorization"], request.headers["x-user-id"]) == (KEY, USER_ID)


@pytest.mark.skipif(not _cli_has("tts"), reason="`sched run tts` is not written yet")
def test_cli_without_user_id_fails_with_the_variable_named(
    tmp_path: Path, fake: FakeServer
) -> None:
    config = write_config(
        tmp_path / "providers.yaml",
        {
            "playht": f"adapter: playht\nenabled: true\nbase_url: {fake.url}{PREFIX}\n"
            f"api_key_env: PLAYHT_TEST_KEY\nmodels: {{tts: {ENGINE}}}"
        },
        {"tts": ["playht"]},
    )
    env = clean_env(PLAYHT_TEST_KEY=KEY)
    env.pop(USER_ID_ENV, None)
    result = run_cli(
        "--config", str(config), "run", "tts", "Hi", "-o", str(tmp_path / "x.mp3"), "--json",
        env=env,
    )  # fmt: skip
    assert result.code == 1, result.stderr
    attempts = result.json()["attempts"]
    assert isinstance(attempts, list) and len(attempts) == 1
    assert attempts[0]["outcome"] == "auth_failed"
    assert USER_ID_ENV in str(attempts[0]["error"])
    assert fake.requests() == []
