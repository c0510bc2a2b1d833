"""The Cohere adapter, through the real `cohere` SDK, against a local fake of v2 Chat.

What the fake reproduces (tests/fakes/cohere_shapes.py), and from where:

- request: `POST /v2/chat` with `Authorization: Bearer`, body `{"model", "messages", "stream":
  false, "max_tokens"?}`, the system prompt as a `system` message (Cohere API reference "Chat
  (v2)"; the SDK 7.x `AsyncRawV2Client.chat` adds `"stream": false` itself);
- success: `message.content[]` text parts, `usage.tokens` and `usage.billed_units`,
  `finish_reason` (SDK `V2ChatResponse`); the trial key's undocumented but observed
  `x-trial-endpoint-call-{limit,remaining}` and `x-endpoint-monthly-call-limit` headers;
- errors `{"id", "message"}` (docs "Errors"): 429 trial per-minute and per-month texts with no
  `retry-after` and no rate-limit headers (docs "Rate limits"), 402 billing limit, 401 invalid
  api token, 404 model not found, 400 too many tokens, 500.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

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
from scheduler.providers.cohere import CohereAdapter, classify_error, rate_limit_reports
from scheduler.providers.http import make_client
from scheduler.tasks import ProviderResult, RateLimitReport, TextTask
from tests.conftest import REPO, clean_env, run_cli, write_config
from tests.fakes import cohere_shapes as shapes
from tests.fakes.server import FakeServer, Reply

KEY = "co-test-key-0123"
MODEL = "command-a-03-2025"


@dataclass
class Outcome:
    result: ProviderResult | None
    error: ProviderError | None
    before: float
    after: float


def call(
    fake: FakeServer,
    *,
    task: TextTask | None = None,
    api_key: str | None = KEY,
    timeout_s: float = 5.0,
    base_url: str | None = None,
    runs: int = 1,
) -> Outcome:
    """`runs` text tasks through one adapter against the fake; the taxonomy's errors caught."""

    async def go() -> ProviderResult:
        async with make_client(timeout_s) as http:
            adapter = CohereAdapter(
                name="cohere",
                config=ProviderConfig(adapter="cohere", base_url=base_url or fake.url),
                api_key=api_key,
                http=http,
                timeout_s=timeout_s,
            )
            for _ in range(runs - 1):
                await adapter.run(task or TextTask("Hi"), model=MODEL)
            return await adapter.run(task or TextTask("Hi"), model=MODEL)

    before = time.time()
    try:
        result, error = asyncio.run(go()), None
    except ProviderError as exc:
        result, error = None, exc
    return Outcome(result, error, before, time.time())


def succeed(fake: FakeServer, reply: Reply, **kwargs: object) -> Outcome:
    fake.route("POST", shapes.chat_path(), default=reply)
    outcome = call(fake, **kwargs)  # type: ignore[arg-type]
    assert outcome.error is None, outcome.error
    assert outcome.result is not None
    return outcome


def fail(fake: FakeServer, reply: Reply, **kwargs: object) -> ProviderError:
    fake.route("POST", shapes.chat_path(), default=reply)
    outcome = call(fake, **kwargs)  # type: ignore[arg-type]
    assert outcome.result is None
    assert outcome.error is not None
    assert fake.count(shapes.chat_path()) == 1  # the SDK's retries are off
    return outcome.error


# --------------------------------------------------------------------------------------------
# Request shape, SDK wiring
# --------------------------------------------------------------------------------------------


def test_request_path_auth_and_full_body(fake: FakeServer) -> None:
    succeed(fake, shapes.chat_ok(), task=TextTask("Hi", system="Be brief.", max_tokens=64))
    [request] = fake.requests()
    assert (request.method, request.path, request.query) == ("POST", "/v2/chat", {})
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ],
        "max_tokens": 64,
        "stream": False,
    }


def test_unset_fields_are_not_sent(fake: FakeServer) -> None:
    succeed(fake, shapes.chat_ok())
    assert fake.requests()[0].json() == {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": False,
    }


def test_base_url_with_a_path_prefix(fake: FakeServer) -> None:
    fake.route("POST", shapes.chat_path("proxy"), shapes.chat_ok())
    outcome = call(fake, base_url=f"{fake.url}/proxy")
    assert outcome.error is None, outcome.error
    assert [r.path for r in fake.requests()] == ["/proxy/v2/chat"]


def test_client_is_built_once_per_adapter(fake: FakeServer) -> None:
    fake.route("POST", shapes.chat_path(), default=shapes.chat_ok())
    outcome = call(fake, runs=3)
    assert outcome.error is None
    assert fake.count(shapes.chat_path()) == 3


@pytest.mark.parametrize(
    "reply",
    [shapes.server_error(), shapes.trial_per_minute(), Reply(status=503, json={"message": "x"})],
    ids=["500", "429", "503"],
)
def test_sdk_does_not_retry(fake: FakeServer, reply: Reply) -> None:
    fail(fake, reply)


def test_importing_the_adapter_does_not_import_the_sdk() -> None:
    code = "import sys, scheduler.providers.cohere; print('cohere' in sys.modules)"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert proc.stdout.strip() == "False"


# --------------------------------------------------------------------------------------------
# Success parsing
# --------------------------------------------------------------------------------------------


def test_answer_usage_and_trial_rate_limit(fake: FakeServer) -> None:
    parts: list[dict[str, object]] = [
        {"type": "thinking", "thinking": "hmm"},
        {"type": "text", "text": "Hel"},
        {"type": "text", "text": "lo!"},
    ]
    outcome = succeed(
        fake,
        shapes.chat_ok(parts, input_tokens=71, output_tokens=9, headers=shapes.trial_headers(17)),
    )
    result = outcome.result
    assert result is not None
    assert (result.output, result.model) == ("Hello!", MODEL)
    assert result.usage == {"requests": 1, "input_tokens": 71, "output_tokens": 9, "tokens": 80}
    [report] = result.rate_limits
    assert (report.metric, report.remaining, report.limit) == ("requests", 17, 20)
    assert report.resets_at is not None
    assert outcome.before + 60 <= report.resets_at <= outcome.after + 60


def test_usage_falls_back_to_billed_units_then_estimates(fake: FakeServer) -> None:
    reply = Reply(
        status=200,
        json={
            "id": "x",
            "finish_reason": "COMPLETE",
            "message": {"role": "assistant", "content": [{"type": "text", "text": "abcdef"}]},
            "usage": {"billed_units": {"input_tokens": 5}},
        },
    )
    result = succeed(fake, reply).result
    assert result is not None
    # input from billed_units; output estimated from "abcdef" (6 // 3 + 1)
    assert result.usage == {"requests": 1, "input_tokens": 5, "output_tokens": 3, "tokens": 8}
    assert result.rate_limits == ()


def test_answer_without_content_is_empty(fake: FakeServer) -> None:
    reply = Reply(
        status=200,
        json={"id": "x", "finish_reason": "MAX_TOKENS", "message": {"role": "assistant"}},
    )
    result = succeed(fake, reply).result
    assert result is not None
    assert result.output == ""


# --------------------------------------------------------------------------------------------
# Classification on the wire
# --------------------------------------------------------------------------------------------

CASES = [
    pytest.param(shapes.trial_per_minute(), RateLimited, 429, id="429-trial-minute"),
    pytest.param(
        shapes.error(429, "You are past the per minute request limit, please wait and try again"),
        RateLimited,
        429,
        id="429-past-per-minute",
    ),
    pytest.param(shapes.trial_per_month(), QuotaExhausted, 429, id="429-trial-month"),
    pytest.param(shapes.payment_required(), QuotaExhausted, 402, id="402"),
    pytest.param(shapes.invalid_token(), AuthFailed, 401, id="401"),
    pytest.param(shapes.error(403, "forbidden"), AuthFailed, 403, id="403"),
    pytest.param(shapes.bad_request_too_many_tokens(), RejectedInput, 400, id="400-tokens"),
    pytest.param(shapes.model_not_found(), ModelUnavailable, 404, id="404-model"),
    pytest.param(shapes.error(422, "invalid request"), RejectedInput, 422, id="422"),
    pytest.param(shapes.error(498, "blocked: unsafe request"), RejectedInput, 498, id="498"),
    pytest.param(shapes.server_error(), Transient, 500, id="500"),
    pytest.param(shapes.error(503, "service unavailable"), Transient, 503, id="503"),
    pytest.param(
        Reply(status=502, body="<html><title>502 Bad Gateway</title></html>"),
        Transient,
        502,
        id="502-html",
    ),
    pytest.param(Reply(status=200, body="<html>hi</html>"), Transient, 200, id="200-html"),
    pytest.param(Reply(status=200, json={"id": "x"}), Transient, 200, id="200-no-message"),
    pytest.param(
        shapes.chat_ok("partial", finish_reason="ERROR"), Transient, 200, id="200-finish-error"
    ),
    pytest.param(
        Reply(status=200, json={"id": "x", "message": {"content": 5}}),
        Transient,
        200,
        id="200-content-not-list",
    ),
]


@pytest.mark.parametrize(("reply", "cls", "status"), CASES)
def test_classification(
    fake: FakeServer, reply: Reply, cls: type[ProviderError], status: int
) -> None:
    error = fail(fake, reply)
    assert type(error) is cls, f"{type(error).__name__}: {error}"
    assert (error.provider, error.status) == ("cohere", status)
    # Cohere sends no retry-after and no reset date: the ledger's own rules decide.
    assert (error.retry_after, error.resets_at) == (None, None)


def test_messages_carry_the_provider_text(fake: FakeServer) -> None:
    assert str(fail(fake, shapes.invalid_token())) == "HTTP 401: invalid api token"
    fake.reset()
    error = fail(fake, Reply(status=502, body="<html><title>502 Bad Gateway</title></html>"))
    assert str(error) == "HTTP 502: 502 Bad Gateway"


def test_a_429_retry_after_is_honoured_if_cohere_ever_sends_one(fake: FakeServer) -> None:
    error = fail(fake, shapes.error(429, "slow down", headers={"retry-after": "12"}))
    assert isinstance(error, RateLimited)
    assert error.retry_after == 12


def test_key_echoed_in_an_error_is_redacted(fake: FakeServer) -> None:
    secret = "my-cohere-secret"
    error = fail(fake, shapes.error(401, f"invalid api token {secret}"), api_key=secret)
    assert isinstance(error, AuthFailed)
    assert secret not in str(error) and secret not in repr(error)


def test_dropped_connection_is_transient(fake: FakeServer) -> None:
    error = fail(fake, Reply(close=True))
    assert type(error) is Transient
    assert str(error).startswith("connection to 127.0.0.1:")


def test_timeout_is_transient_and_says_so(fake: FakeServer) -> None:
    error = fail(fake, Reply(delay_s=2.0, json={}), timeout_s=0.2)
    assert type(error) is Transient
    assert str(error) == "timed out after 0.2 s"


def test_refused_connection_is_transient() -> None:
    with FakeServer() as gone:
        url = gone.url  # a port nobody listens on once the server is closed

    async def go() -> ProviderResult:
        async with make_client(2) as http:
            adapter = CohereAdapter(
                name="cohere",
                config=ProviderConfig(adapter="cohere", base_url=url),
                api_key=KEY,
                http=http,
                timeout_s=2,
            )
            return await adapter.run(TextTask("Hi"), model=MODEL)

    with pytest.raises(Transient, match=r"^connection to 127\.0\.0\.1:\d+ failed: ConnectError$"):
        asyncio.run(go())


# --------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------


def test_classify_accepts_the_sdks_undecoded_text_body() -> None:
    error = classify_error(429, {}, '{"message": "' + shapes.TRIAL_MONTH + '"}', provider="c")
    assert isinstance(error, QuotaExhausted)
    error = classify_error(500, {}, "upstream connect error", provider="c")
    assert isinstance(error, Transient)
    assert str(error) == "HTTP 500: upstream connect error"


def test_rate_limit_reports_need_a_remaining_count() -> None:
    assert rate_limit_reports({"x-endpoint-monthly-call-limit": "1000"}, now=100.0) == ()
    assert rate_limit_reports({"x-trial-endpoint-call-remaining": "n/a"}, now=100.0) == ()
    assert rate_limit_reports({"X-Trial-Endpoint-Call-Remaining": "4"}, now=100.0) == (
        RateLimitReport("requests", 4, 160.0, None),
    )


# --------------------------------------------------------------------------------------------
# The real CLI end to end
# --------------------------------------------------------------------------------------------


def test_cli_run_text_through_cohere(tmp_path: Path, fake: FakeServer) -> None:
    base = shapes.mount_cohere_ok(fake, "cohere", text="Hello from Cohere")
    config = write_config(
        tmp_path / "providers.yaml",
        {
            "cohere": f"adapter: cohere\nbase_url: {base}\napi_key_env: COHERE_API_KEY\n"
            f"models: {{text: {MODEL}}}"
        },
        {"text": ["cohere"]},
    )
    result = run_cli(
        "--config",
        str(config),
        "run",
        "text",
        "hi",
        "--max-tokens",
        "50",
        "--json",
        env=clean_env(COHERE_API_KEY=KEY),
    )
    assert result.code == 0, result.stderr
    data = result.json()
    assert (data["provider"], data["output"], data["model"]) == (
        "cohere",
        "Hello from Cohere",
        MODEL,
    )
    assert data["usage"] == {"requests": 1, "input_tokens": 71, "output_tokens": 9, "tokens": 80}
    [request] = fake.requests(shapes.chat_path("cohere"))
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json() == {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 50,
        "stream": False,
    }
