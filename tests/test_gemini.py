"""The Gemini adapter, driven through the real `google-genai` SDK against the local fake server.

What the fake reproduces, and from where (builders in tests/fakes/gemini_shapes.py):

- Endpoint and auth: `POST {base}/v1beta/models/{model}:generateContent`, key in the
  `x-goog-api-key` header (ai.google.dev/api/generate-content; the SDK sets the header in
  google/genai/_api_client.py and joins base_url + api_version + path).
- Request: `contents[{role: user, parts: [{text}, {inlineData: {data: base64, mime type}}]}]`,
  `systemInstruction.parts[{text}]`, `generationConfig.maxOutputTokens` (same reference; media.md
  "Google Gemini (multimodal)").
- Response: text parts concatenated, `thought: true` parts skipped, `usageMetadata` token counts,
  `modelVersion`; a blocked prompt is a 200 with `promptFeedback.blockReason` and no candidates.
- Errors: the Google RPC envelope `{"error": {code, message, status, details}}` with QuotaFailure
  `quotaId` per minute / per day, RetryInfo `retryDelay`, "limit: 0", 402 prepaid depletion,
  400 API_KEY_INVALID, 400 FAILED_PRECONDITION location, 403, 404, 400 token limit, 500, 503
  (issue threads named in gemini_shapes.py; /work/shared/providers/text-llm.md).
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from scheduler.config.schema import ProviderConfig
from scheduler.errors import (
    AuthFailed,
    ModelUnavailable,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    RejectedInput,
    Transient,
)
from scheduler.providers.gemini import GeminiAdapter, classify_error
from scheduler.providers.http import make_client
from scheduler.tasks import MultimodalTask, ProviderResult, TextTask
from tests.conftest import clean_env, run_cli, write_config
from tests.fakes import gemini_shapes as shapes
from tests.fakes.audio import sine_wav
from tests.fakes.server import FakeServer, Recorded, Reply

KEY = "AIzaSyFAKE-0123456789abcdefghijklmnopq"
MODEL = shapes.DEFAULT_MODEL
PATH = shapes.generate_path(MODEL)

Task = TextTask | MultimodalTask


@dataclass
class Outcome:
    result: ProviderResult | None
    error: ProviderError | None
    sent_through_our_client: list[str]


def call(
    fake: FakeServer,
    task: Task | None = None,
    *,
    base_url: str | None = None,
    api_key: str | None = KEY,
    model: str = MODEL,
    timeout_s: float = 5.0,
) -> Outcome:
    """One task through the adapter against the fake; taxonomy errors are caught and returned."""
    seen: list[str] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request.url.path)

    async def go() -> ProviderResult:
        async with make_client(timeout_s) as http:
            http.event_hooks["request"].append(record)
            adapter = GeminiAdapter(
                name="gemini",
                config=ProviderConfig(adapter="gemini", base_url=base_url or fake.url),
                api_key=api_key,
                http=http,
                timeout_s=timeout_s,
            )
            return await adapter.run(task or TextTask("Hi"), model=model)

    try:
        return Outcome(asyncio.run(go()), None, seen)
    except ProviderError as exc:
        return Outcome(None, exc, seen)


def succeed(
    fake: FakeServer, reply: Reply, task: Task | None = None, *, model: str = MODEL
) -> ProviderResult:
    fake.route("POST", shapes.generate_path(model), reply)
    outcome = call(fake, task, model=model)
    assert outcome.error is None, outcome.error
    assert outcome.result is not None
    return outcome.result


def fail(fake: FakeServer, reply: Reply, task: Task | None = None) -> ProviderError:
    fake.route("POST", PATH, reply, default=shapes.generate_ok("second call must not happen"))
    outcome = call(fake, task)
    assert outcome.result is None, outcome.result
    assert outcome.error is not None
    assert fake.count(PATH) == 1  # the SDK's own retries are off: ours is the only loop
    return outcome.error


def png(path: Path) -> bytes:
    from PIL import Image

    Image.new("RGB", (3, 2), (10, 200, 30)).save(path, format="PNG")
    return path.read_bytes()


def inline_part(request: Recorded) -> tuple[bytes, str]:
    """(decoded data, mime type) of the inline media part the SDK sent."""
    parts = request.json()["contents"][0]["parts"]
    assert len(parts) == 2
    inline = parts[1].get("inlineData") or parts[1]["inline_data"]
    mime = inline.get("mimeType") or inline["mime_type"]
    # proto3 JSON takes bytes as standard or URL-safe base64, padded or not; the SDK sends the
    # URL-safe alphabet.
    data = inline["data"]
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)), mime


# --------------------------------------------------------------------------------------------
# Request shape
# --------------------------------------------------------------------------------------------


def test_text_request_path_key_header_and_body(fake: FakeServer) -> None:
    succeed(fake, shapes.generate_ok("ok"), TextTask("Hi there", system="Be brief.", max_tokens=64))
    [request] = fake.requests(PATH)
    assert request.method == "POST"
    assert request.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert request.headers["x-goog-api-key"] == KEY
    assert "authorization" not in request.headers
    assert request.query == {}  # the key travels in the header, never in the URL
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert set(body) == {"contents", "systemInstruction", "generationConfig"}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Hi there"}]}]
    assert body["systemInstruction"]["parts"] == [{"text": "Be brief."}]
    assert body["generationConfig"] == {"maxOutputTokens": 64}


def test_text_request_without_system_or_max_tokens_sends_only_contents(fake: FakeServer) -> None:
    succeed(fake, shapes.generate_ok("ok"))
    body = fake.requests(PATH)[0].json()
    # No systemInstruction and no maxOutputTokens; the SDK always sends a (here empty) config.
    assert body == {
        "contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
        "generationConfig": {},
    }


@pytest.mark.parametrize("suffix", ["/proxy", "/proxy/"])
def test_base_url_path_prefix_is_kept(fake: FakeServer, suffix: str) -> None:
    path = shapes.generate_path(MODEL, "proxy")
    assert path == "/proxy/v1beta/models/gemini-2.5-flash:generateContent"
    fake.route("POST", path, shapes.generate_ok("via proxy"))
    outcome = call(fake, base_url=fake.url + suffix)
    assert outcome.result is not None and outcome.result.output == "via proxy"
    assert fake.count(path) == 1


def test_requests_go_through_the_shared_http_client(fake: FakeServer) -> None:
    fake.route("POST", PATH, shapes.generate_ok("ok"))
    outcome = call(fake)
    assert outcome.sent_through_our_client == [PATH]


def test_multimodal_image_sends_text_then_inline_image(fake: FakeServer, tmp_path: Path) -> None:
    data = png(tmp_path / "pic.png")
    task = MultimodalTask("What colour is this?", tmp_path / "pic.png", "image/png", max_tokens=20)
    result = succeed(
        fake,
        shapes.generate_ok("Green.", prompt_tokens=265, candidates_tokens=2),
        task,
    )
    [request] = fake.requests(PATH)
    body = request.json()
    assert body["contents"][0]["role"] == "user"
    assert body["contents"][0]["parts"][0] == {"text": "What colour is this?"}
    assert inline_part(request) == (data, "image/png")
    assert body["generationConfig"] == {"maxOutputTokens": 20}
    assert "systemInstruction" not in body
    assert result == ProviderResult(
        output="Green.",
        model=MODEL,
        usage={"requests": 1, "input_tokens": 265, "output_tokens": 2, "tokens": 267},
    )


def test_multimodal_audio_reports_audio_seconds(fake: FakeServer, tmp_path: Path) -> None:
    data = sine_wav(tmp_path / "tone.wav", seconds=0.5)
    task = MultimodalTask("What is this sound?", tmp_path / "tone.wav", "audio/wav", 0.5)
    result = succeed(
        fake, shapes.generate_ok("A ", "beep.", prompt_tokens=24, candidates_tokens=3), task
    )
    assert inline_part(fake.requests(PATH)[0]) == (data, "audio/wav")
    assert result.output == "A beep."
    assert result.usage == {
        "requests": 1,
        "input_tokens": 24,
        "output_tokens": 3,
        "tokens": 27,
        "audio_seconds": 0.5,
    }


# --------------------------------------------------------------------------------------------
# Success parsing
# --------------------------------------------------------------------------------------------


def test_text_parts_are_joined_thoughts_skipped_and_thinking_tokens_counted(
    fake: FakeServer,
) -> None:
    reply = shapes.generate_ok(
        "Hello",
        ", world",
        thought="**Greeting** I should say hello.",
        model_version="gemini-2.5-flash-001",
        prompt_tokens=4,
        candidates_tokens=3,
        thoughts_tokens=40,
    )
    result = succeed(fake, reply)
    assert result == ProviderResult(
        output="Hello, world",
        model="gemini-2.5-flash-001",
        usage={"requests": 1, "input_tokens": 4, "output_tokens": 43, "tokens": 47},
    )


def test_missing_usage_and_model_version_fall_back_to_estimates(fake: FakeServer) -> None:
    reply = Reply(
        json={"candidates": [{"content": {"role": "model", "parts": [{"text": "abcdefghij"}]}}]}
    )
    result = succeed(fake, reply, TextTask("Hello there, model"), model="gemini-2.0-flash")
    # 18 prompt characters -> 7 estimated tokens (+1 for the empty system prompt, as the
    # reservation counted it), 10 answer characters -> 4.
    assert result == ProviderResult(
        output="abcdefghij",
        model="gemini-2.0-flash",
        usage={"requests": 1, "input_tokens": 8, "output_tokens": 4, "tokens": 12},
    )


def test_blocked_prompt_is_rejected_input(fake: FakeServer) -> None:
    error = fail(fake, shapes.blocked_prompt("PROHIBITED_CONTENT"))
    assert type(error) is RejectedInput
    assert str(error) == "prompt blocked: PROHIBITED_CONTENT"


def test_candidate_withheld_for_safety_is_rejected_input(fake: FakeServer) -> None:
    reply = Reply(json={"candidates": [{"finishReason": "SAFETY", "index": 0}]})
    error = fail(fake, reply)
    assert type(error) is RejectedInput
    assert "SAFETY" in str(error)


def test_max_tokens_with_empty_text_is_not_an_error(fake: FakeServer) -> None:
    result = succeed(fake, shapes.generate_ok(finish_reason="MAX_TOKENS", candidates_tokens=0))
    assert (result.output, result.usage["output_tokens"]) == ("", 0)


# --------------------------------------------------------------------------------------------
# Failures, in the provider's documented shapes
# --------------------------------------------------------------------------------------------

ERROR_TABLE = [
    # reply, class, HTTP status, retry_after
    (shapes.per_minute_quota(delay_s=36.42976), RateLimited, 429, 36.0),
    (shapes.per_day_quota(delay_s=7.5), QuotaExhausted, 429, None),
    (shapes.no_free_quota(), QuotaExhausted, 429, None),
    (shapes.prepayment_depleted(), QuotaExhausted, 402, None),
    (shapes.invalid_key(), AuthFailed, 400, None),
    (shapes.permission_denied(), AuthFailed, 403, None),
    (shapes.location_unsupported(), AuthFailed, 400, None),
    (shapes.token_limit(), RejectedInput, 400, None),
    (shapes.model_not_found(), ModelUnavailable, 404, None),
    (shapes.server_error(), Transient, 500, None),
    (shapes.unavailable(), Transient, 503, None),
    (
        Reply(
            status=502,
            body="<html><title>502 Bad Gateway</title></html>",
            headers={"content-type": "text/html"},
        ),
        Transient,
        502,
        None,
    ),
]


@pytest.mark.parametrize(
    ("reply", "cls", "status", "retry_after"),
    ERROR_TABLE,
    ids=[
        "429-per-minute",
        "429-per-day",
        "429-limit-0",
        "402-prepaid",
        "400-bad-key",
        "403-denied",
        "400-location",
        "400-too-long",
        "404-model",
        "500",
        "503",
        "502-html",
    ],
)
def test_error_classification(
    fake: FakeServer,
    reply: Reply,
    cls: type[ProviderError],
    status: int,
    retry_after: float | None,
) -> None:
    error = fail(fake, reply)
    assert type(error) is cls
    assert error.provider == "gemini"
    assert error.status == status
    assert error.retry_after == retry_after
    assert error.resets_at is None  # the provider's own day rule decides (midnight Pacific)
    assert str(error).startswith(f"HTTP {status}")
    assert KEY not in str(error)


def test_messages_carry_the_provider_text(fake: FakeServer) -> None:
    error = fail(fake, shapes.prepayment_depleted())
    assert str(error).startswith(
        "HTTP 402 RESOURCE_EXHAUSTED: Your prepayment credits are depleted"
    )


def test_per_day_violation_wins_over_per_minute_in_the_same_body() -> None:
    body = json.loads(shapes.per_minute_quota().encode()[0])
    day = json.loads(shapes.per_day_quota().encode()[0])
    body["error"]["details"][0]["violations"] += day["error"]["details"][0]["violations"]
    error = classify_error(429, body, {}, provider="gemini")
    assert type(error) is QuotaExhausted and error.retry_after is None


def test_retry_in_message_is_the_hint_when_retryinfo_is_missing() -> None:
    body = json.loads(shapes.per_minute_quota(delay_s=12.5).encode()[0])
    body["error"]["details"] = body["error"]["details"][:1]  # QuotaFailure only
    error = classify_error(429, body, {}, provider="gemini")
    assert type(error) is RateLimited and error.retry_after == 12.5


def test_key_echoed_in_an_error_body_is_redacted(fake: FakeServer) -> None:
    error = fail(fake, shapes.google_error(400, "INVALID_ARGUMENT", f"bad request for key {KEY}"))
    assert type(error) is RejectedInput
    assert KEY not in str(error) and "***" in str(error)


@pytest.mark.parametrize(
    "reply",
    [
        Reply(status=200, body="<html>not json</html>", headers={"content-type": "text/html"}),
        Reply(status=200, json={"candidates": []}),
        Reply(status=200, json={"candidates": "nope"}),
        Reply(status=200, json=["not", "an", "object"]),
    ],
    ids=["html", "no-candidates", "candidates-not-a-list", "array"],
)
def test_malformed_success_is_transient(fake: FakeServer, reply: Reply) -> None:
    error = fail(fake, reply)
    assert type(error) is Transient
    assert str(error).startswith("malformed response")


def test_dropped_connection_is_transient_and_not_retried(fake: FakeServer) -> None:
    error = fail(fake, Reply(close=True))
    assert type(error) is Transient
    assert str(error).startswith("connection to 127.0.0.1:")


def test_timeout_is_transient(fake: FakeServer) -> None:
    fake.route("POST", PATH, Reply(json={}, delay_s=2.0))
    started = time.monotonic()
    outcome = call(fake, timeout_s=0.3)
    assert time.monotonic() - started < 1.8
    assert type(outcome.error) is Transient
    assert str(outcome.error) == "timed out after 0.3 s"
    assert fake.count(PATH) == 1


def test_missing_key_is_auth_failed_without_a_request(fake: FakeServer) -> None:
    outcome = call(fake, api_key=None)
    assert type(outcome.error) is AuthFailed
    assert fake.count(PATH) == 0


def test_module_import_does_not_import_the_sdk() -> None:
    code = (
        "import sys, scheduler.providers.gemini;"
        "sys.exit(1 if any(m.startswith('google.genai') for m in sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --------------------------------------------------------------------------------------------
# The real CLI, end to end
# --------------------------------------------------------------------------------------------


def _config(tmp_path: Path, fake: FakeServer) -> Path:
    return write_config(
        tmp_path / "providers.yaml",
        {
            "gemini": (
                f"adapter: gemini\nbase_url: {fake.url}/g\napi_key_env: GEMINI_TEST_KEY\n"
                f"models: {{text: {MODEL}, multimodal: {MODEL}}}"
            )
        },
        {"text": ["gemini"], "multimodal": ["gemini"]},
    )


def test_cli_text(tmp_path: Path, fake: FakeServer) -> None:
    config = _config(tmp_path, fake)
    path = shapes.mount_gemini_ok(fake, "g", text="Bonjour.", prompt_tokens=6, candidates_tokens=2)
    result = run_cli(
        "--config", str(config), "run", "text", "Say hi in French", "--json",
        env=clean_env(GEMINI_TEST_KEY=KEY),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    data = result.json()
    assert (data["provider"], data["model"], data["output"]) == ("gemini", MODEL, "Bonjour.")
    assert data["usage"] == {"requests": 1, "input_tokens": 6, "output_tokens": 2, "tokens": 8}
    [request] = fake.requests(path)
    assert request.headers["x-goog-api-key"] == KEY
    assert request.json()["contents"][0]["parts"] == [{"text": "Say hi in French"}]


def test_cli_multimodal_image(tmp_path: Path, fake: FakeServer) -> None:
    config = _config(tmp_path, fake)
    data = png(tmp_path / "pic.png")
    path = shapes.mount_gemini_ok(fake, "g", text="A green square.")
    result = run_cli(
        "--config", str(config), "run", "multimodal", "Describe it", "--image",
        str(tmp_path / "pic.png"), "--json", env=clean_env(GEMINI_TEST_KEY=KEY),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    out = result.json()
    assert (out["provider"], out["output"]) == ("gemini", "A green square.")
    assert out["usage"] == {"requests": 1, "input_tokens": 8, "output_tokens": 5, "tokens": 13}
    assert inline_part(fake.requests(path)[0]) == (data, "image/png")


def test_cli_multimodal_audio(tmp_path: Path, fake: FakeServer) -> None:
    config = _config(tmp_path, fake)
    data = sine_wav(tmp_path / "tone.wav", seconds=1.0)
    path = shapes.mount_gemini_ok(fake, "g", text="A steady tone.")
    result = run_cli(
        "--config", str(config), "run", "multimodal", "What is this?", "--audio",
        str(tmp_path / "tone.wav"), "--json", env=clean_env(GEMINI_TEST_KEY=KEY),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    out = result.json()
    assert (out["provider"], out["output"]) == ("gemini", "A steady tone.")
    usage = out["usage"]
    assert isinstance(usage, dict)
    assert usage["audio_seconds"] == pytest.approx(1.0, abs=0.01)
    assert {k: usage[k] for k in ("requests", "input_tokens", "output_tokens", "tokens")} == {
        "requests": 1,
        "input_tokens": 8,
        "output_tokens": 5,
        "tokens": 13,
    }
    sent, mime = inline_part(fake.requests(path)[0])
    assert sent == data
    assert mime == "audio/wav"


def test_cli_per_day_quota_skips_until_the_day_rule_resets(
    tmp_path: Path, fake: FakeServer
) -> None:
    config = write_config(
        tmp_path / "providers.yaml",
        {
            "gemini": (
                f"adapter: gemini\nbase_url: {fake.url}\napi_key_env: GEMINI_TEST_KEY\n"
                f"models: {{text: {MODEL}}}\nquotas:\n"
                '  - {metric: requests, limit: 20, per: day, reset: "00:00", '
                "tz: America/Los_Angeles}"
            )
        },
        {"text": ["gemini"]},
    )
    fake.route("POST", PATH, shapes.per_day_quota())
    env = clean_env(GEMINI_TEST_KEY=KEY)
    first = run_cli("--config", str(config), "run", "text", "hi", "--json", env=env)
    assert first.code == 1, (first.stdout, first.stderr)
    attempts = cast(list[dict[str, Any]], first.json()["attempts"])
    assert [a["outcome"] for a in attempts] == ["quota_exhausted"]
    again = run_cli("--config", str(config), "run", "text", "hi", "--json", env=env)
    assert again.code == 3  # skipped without a call until midnight in Los Angeles
    assert fake.count(PATH) == 1
