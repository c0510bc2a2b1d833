"""The Anthropic adapter against a local fake of the Messages API, at the HTTP level.

What the fake reproduces (tests/fakes/anthropic_shapes.py), and from where:

- request: `POST /v1/messages`, headers `x-api-key` and `anthropic-version: 2023-06-01`,
  `max_tokens` required, system prompt top-level (Anthropic docs "Messages");
- success: `content[]` blocks of several types, only `text` ones are the answer; `usage.
  input_tokens`/`output_tokens` plus the prompt-cache counts (docs; SDK `types/message.py`);
- `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`,
  reset as RFC 3339 (docs "Rate limits"; recorded exchange of 2025-08-21);
- errors in the `{"type": "error", "error": {...}}` envelope (docs "Errors"): 429
  rate_limit_error with `retry-after`; 429 tier spend cap with `details.error_code
  enforced_spend_limit_reached` and no `retry-after` (docs "Rate limits"); 400 "You have reached
  your specified API usage limits ... regain access on ..." (claude-code #2127, #38035); 400
  "credit balance is too low" (askimo #277, openai_compat fixtures); 402 billing_error; 401, 403,
  404, 413 (HTML from the edge), 500 api_error, 529 overloaded_error.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
from scheduler.providers.anthropic import AnthropicAdapter, classify_error, rate_limit_reports
from scheduler.providers.http import make_client
from scheduler.tasks import ProviderResult, RateLimitReport, TextTask
from tests.conftest import clean_env, run_cli, write_config
from tests.fakes import anthropic_shapes as shapes
from tests.fakes.server import FakeServer, Reply

KEY = "sk-ant-api03-test-0123456789"
MODEL = "claude-haiku-4-5"
TOLERANCE_S = 0.05


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
    prefix: str = "",
    api_key: str | None = KEY,
    timeout_s: float = 5.0,
    base_url: str | None = None,
) -> Outcome:
    """One text task through the adapter against the fake; the taxonomy's errors are caught."""

    async def go() -> ProviderResult:
        async with make_client(timeout_s) as http:
            adapter = AnthropicAdapter(
                name="claude",
                config=ProviderConfig(
                    adapter="anthropic", base_url=base_url or shapes.base_url(fake, prefix)
                ),
                api_key=api_key,
                http=http,
                timeout_s=timeout_s,
            )
            return await adapter.run(task or TextTask("Hi"), model=MODEL)

    before = time.time()
    try:
        result, error = asyncio.run(go()), None
    except ProviderError as exc:
        result, error = None, exc
    return Outcome(result, error, before, time.time())


def succeed(fake: FakeServer, reply: Reply, **kwargs: object) -> Outcome:
    fake.route("POST", shapes.messages_path(), reply)
    outcome = call(fake, **kwargs)  # type: ignore[arg-type]
    assert outcome.error is None, outcome.error
    assert outcome.result is not None
    return outcome


def fail(fake: FakeServer, reply: Reply, **kwargs: object) -> ProviderError:
    fake.route("POST", shapes.messages_path(), reply)
    outcome = call(fake, **kwargs)  # type: ignore[arg-type]
    assert outcome.result is None
    assert outcome.error is not None
    assert fake.count(shapes.messages_path()) == 1  # no retry inside the adapter
    return outcome.error


def _utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


# --------------------------------------------------------------------------------------------
# Request shape
# --------------------------------------------------------------------------------------------


def test_request_path_headers_and_full_body(fake: FakeServer) -> None:
    succeed(fake, shapes.message_ok(), task=TextTask("Hi", system="Be brief.", max_tokens=64))
    [request] = fake.requests()
    assert (request.method, request.path, request.query) == ("POST", "/v1/messages", {})
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert request.json() == {
        "model": MODEL,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Hi"}],
        "system": "Be brief.",
    }


def test_max_tokens_is_always_sent_and_system_only_when_set(fake: FakeServer) -> None:
    succeed(fake, shapes.message_ok())
    assert fake.requests()[0].json() == {
        "model": MODEL,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hi"}],
    }


def test_base_url_prefix_and_trailing_slash(fake: FakeServer) -> None:
    fake.route("POST", shapes.messages_path("proxy"), shapes.message_ok())
    outcome = call(fake, base_url=f"{fake.url}/proxy/")
    assert outcome.error is None
    assert [r.path for r in fake.requests()] == ["/proxy/v1/messages"]


# --------------------------------------------------------------------------------------------
# Success parsing
# --------------------------------------------------------------------------------------------


def test_answer_usage_model_and_rate_limits(fake: FakeServer) -> None:
    reset = datetime(2099, 1, 1, 12, 40, 59, tzinfo=UTC)
    blocks: list[dict[str, object]] = [
        {"type": "thinking", "thinking": "hmm", "signature": "x"},
        {"type": "text", "text": "Hel"},
        {"type": "tool_use", "id": "t", "name": "f", "input": {}},
        {"type": "text", "text": "lo!"},
    ]
    headers = shapes.ratelimit_headers(
        reset,
        requests=(1000, 999),
        tokens=(96000, 95000),
        input_tokens=(80000, 79000),
        output_tokens=(16000, 15500),
    )
    outcome = succeed(
        fake,
        shapes.message_ok(
            blocks, model="claude-haiku-4-5-20251001", input_tokens=21, headers=headers
        ),
    )
    result = outcome.result
    assert result is not None
    assert result.output == "Hello!"
    assert result.model == "claude-haiku-4-5-20251001"
    assert result.usage == {"requests": 1, "input_tokens": 21, "output_tokens": 5, "tokens": 26}
    got = {(r.metric, r.remaining, r.limit) for r in result.rate_limits}
    assert got == {
        ("requests", 999, 1000),
        ("tokens", 95000, 96000),
        ("input_tokens", 79000, 80000),
        ("output_tokens", 15500, 16000),
    }
    for report in result.rate_limits:
        assert report.resets_at == pytest.approx(reset.timestamp(), abs=1e-3)


def test_prompt_cache_counts_are_input(fake: FakeServer) -> None:
    reply = Reply(
        status=200,
        json={
            "type": "message",
            "content": [{"type": "text", "text": "ok"}],
            "usage": {
                "input_tokens": 10,
                "cache_creation_input_tokens": 100,
                "cache_read_input_tokens": 1000,
                "output_tokens": 3,
            },
        },
    )
    result = succeed(fake, reply).result
    assert result is not None
    assert result.usage == {"requests": 1, "input_tokens": 1110, "output_tokens": 3, "tokens": 1113}
    assert result.model == MODEL  # no model in the answer: the one we asked for
    assert result.rate_limits == ()


def test_missing_usage_falls_back_to_estimates(fake: FakeServer) -> None:
    reply = Reply(status=200, json={"type": "message", "content": [{"type": "text", "text": "x"}]})
    task = TextTask("Hello there, model", system="Be brief.")  # estimates: 7 + 4 + 1 priming
    result = succeed(fake, reply, task=task).result
    assert result is not None
    assert result.usage == {"requests": 1, "input_tokens": 12, "output_tokens": 1, "tokens": 13}


def test_empty_content_is_an_empty_answer(fake: FakeServer) -> None:
    reply = shapes.message_ok([], output_tokens=0)
    result = succeed(fake, reply).result
    assert result is not None
    assert (result.output, result.usage["output_tokens"]) == ("", 0)


# --------------------------------------------------------------------------------------------
# Classification on the wire
# --------------------------------------------------------------------------------------------


CASES = [
    pytest.param(shapes.rate_limited("7"), RateLimited, 429, 7.0, None, id="429-retry-after"),
    pytest.param(
        shapes.tier_spend_cap("2026-09-01"),
        QuotaExhausted,
        429,
        None,
        _utc("2026-09-01T00:00:00"),
        id="429-tier-monthly-spend-cap",
    ),
    pytest.param(
        shapes.spend_limit_reached("2026-04-01"),
        QuotaExhausted,
        400,
        None,
        _utc("2026-04-01T00:00:00"),
        id="400-own-spend-limit",
    ),
    pytest.param(
        shapes.spend_limit_reached("2026-07-01", workspace=True),
        QuotaExhausted,
        400,
        None,
        _utc("2026-07-01T00:00:00"),
        id="400-workspace-spend-limit",
    ),
    pytest.param(shapes.credit_too_low(), QuotaExhausted, 400, None, None, id="400-credit"),
    pytest.param(shapes.billing_error(), QuotaExhausted, 402, None, None, id="402-billing"),
    pytest.param(shapes.invalid_key(), AuthFailed, 401, None, None, id="401"),
    pytest.param(shapes.permission_denied(), AuthFailed, 403, None, None, id="403"),
    pytest.param(shapes.prompt_too_long(), RejectedInput, 400, None, None, id="400-too-long"),
    pytest.param(shapes.model_not_found(), ModelUnavailable, 404, None, None, id="404-model"),
    pytest.param(shapes.request_too_large_html(), RejectedInput, 413, None, None, id="413"),
    pytest.param(shapes.api_error(), Transient, 500, None, None, id="500"),
    pytest.param(shapes.overloaded(), Transient, 529, None, None, id="529"),
    pytest.param(
        Reply(status=502, body="<html><title>502 Bad Gateway</title></html>"),
        Transient,
        502,
        None,
        None,
        id="502-html",
    ),
    pytest.param(
        Reply(status=200, body="<html>hi</html>", headers={"content-type": "text/html"}),
        Transient,
        200,
        None,
        None,
        id="200-html",
    ),
    pytest.param(Reply(status=200, json=[1]), Transient, 200, None, None, id="200-array"),
    pytest.param(
        Reply(status=200, json={"type": "message"}), Transient, 200, None, None, id="200-no-content"
    ),
    pytest.param(
        Reply(status=200, json={"type": "message", "content": "text"}),
        Transient,
        200,
        None,
        None,
        id="200-content-not-list",
    ),
    pytest.param(
        Reply(
            status=200,
            json={"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        ),
        Transient,
        200,
        None,
        None,
        id="200-error-envelope",
    ),
]


@pytest.mark.parametrize(("reply", "cls", "status", "retry_after", "resets_at"), CASES)
def test_classification(
    fake: FakeServer,
    reply: Reply,
    cls: type[ProviderError],
    status: int,
    retry_after: float | None,
    resets_at: float | None,
) -> None:
    fake.route("POST", shapes.messages_path(), reply)
    outcome = call(fake)
    error = outcome.error
    assert type(error) is cls, f"{type(error).__name__}: {error}"
    assert (error.provider, error.status) == ("claude", status)
    assert error.retry_after == retry_after
    assert error.resets_at == (pytest.approx(resets_at) if resets_at is not None else None)
    assert fake.count(shapes.messages_path()) == 1


def test_429_without_retry_after_waits_for_the_exhausted_bucket(fake: FakeServer) -> None:
    reset = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=30)
    fake.route("POST", shapes.messages_path(), shapes.rate_limited(None, reset=reset))
    outcome = call(fake)
    error = outcome.error
    assert type(error) is RateLimited
    assert error.retry_after is not None
    # The requests bucket reads 0 remaining: its RFC 3339 reset is the wait.
    assert reset.timestamp() - outcome.after - TOLERANCE_S <= error.retry_after
    assert error.retry_after <= reset.timestamp() - outcome.before + TOLERANCE_S


def test_messages_name_the_problem(fake: FakeServer) -> None:
    assert str(fail(fake, shapes.prompt_too_long())) == f"HTTP 400: {shapes.PROMPT_TOO_LONG}"
    fake.reset()
    assert (
        str(fail(fake, shapes.request_too_large_html())) == "HTTP 413: 413 Request Entity Too Large"
    )
    fake.reset()
    assert str(fail(fake, Reply(status=200, json={"type": "message"}))) == (
        "malformed response: no content[]"
    )


def test_key_echoed_in_an_error_is_redacted(fake: FakeServer) -> None:
    secret = "my-own-unusual-secret"
    error = fail(
        fake, shapes.error(401, "authentication_error", f"bad key {secret}"), api_key=secret
    )
    assert isinstance(error, AuthFailed)
    assert secret not in str(error) and secret not in repr(error)
    assert str(error) == "HTTP 401: bad key ***"


def test_dropped_connection_is_transient(fake: FakeServer) -> None:
    error = fail(fake, Reply(close=True))
    assert type(error) is Transient
    assert str(error).startswith("connection to 127.0.0.1:")


def test_timeout_is_transient_and_says_so(fake: FakeServer) -> None:
    error = fail(fake, Reply(delay_s=2.0, json={}), timeout_s=0.2)
    assert type(error) is Transient
    assert str(error) == "timed out after 0.2 s"


# --------------------------------------------------------------------------------------------
# The pure helpers, at a fixed clock
# --------------------------------------------------------------------------------------------

NOW = _utc("2026-12-15T10:00:00")


def test_tier_cap_without_a_date_lifts_at_the_next_month_in_utc() -> None:
    body = {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "You have reached your API usage limits.",
            "details": {"error_code": "enforced_spend_limit_reached"},
        },
    }
    error = classify_error(429, {}, json.dumps(body).encode(), provider="a", now=NOW)
    assert isinstance(error, QuotaExhausted)
    assert error.resets_at == _utc("2027-01-01T00:00:00")


def test_plain_429_without_retry_after_is_a_rate_limit_without_a_hint() -> None:
    body = {"type": "error", "error": {"type": "rate_limit_error", "message": "Slow down"}}
    error = classify_error(429, {}, json.dumps(body).encode(), provider="a", now=NOW)
    assert isinstance(error, RateLimited)
    assert error.retry_after is None


def test_server_errors_take_only_an_explicit_retry_after() -> None:
    body = json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "O"}})
    buckets = {
        "anthropic-ratelimit-requests-remaining": "40",
        "anthropic-ratelimit-requests-reset": "2026-12-15T10:05:00Z",
    }
    error = classify_error(529, buckets, body.encode(), provider="a", now=NOW)
    assert isinstance(error, Transient)
    assert error.retry_after is None  # a bucket's refill time is not a wait for an overload
    error = classify_error(
        529, {**buckets, "retry-after": "3"}, body.encode(), provider="a", now=NOW
    )
    assert isinstance(error, Transient)
    assert error.retry_after == 3


def test_undated_spend_limit_with_retry_after_resets_after_that_wait() -> None:
    body = {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "You have reached your specified workspace API usage limits.",
        },
    }
    error = classify_error(
        429, {"retry-after": "600"}, json.dumps(body).encode(), provider="a", now=NOW
    )
    assert isinstance(error, QuotaExhausted)
    assert error.resets_at == NOW + 600


def test_rate_limit_reports_skip_families_without_a_remaining_count() -> None:
    headers = {
        "Anthropic-RateLimit-Requests-Remaining": "3",
        "anthropic-ratelimit-requests-reset": "2026-12-15T10:00:30Z",
        "anthropic-ratelimit-tokens-limit": "96000",  # no remaining: no report
        "anthropic-ratelimit-output-tokens-remaining": "lots",  # garbage: no report
    }
    assert rate_limit_reports(headers, now=NOW) == (RateLimitReport("requests", 3, NOW + 30, None),)


# --------------------------------------------------------------------------------------------
# The real CLI end to end
# --------------------------------------------------------------------------------------------


def test_cli_run_text_through_anthropic(tmp_path: Path, fake: FakeServer) -> None:
    base = shapes.mount_anthropic_ok(fake, "anthropic", text="Hello from Claude")
    config = write_config(
        tmp_path / "providers.yaml",
        {
            "claude": f"adapter: anthropic\nbase_url: {base}\napi_key_env: ANTHROPIC_API_KEY\n"
            f"models: {{text: {MODEL}}}"
        },
        {"text": ["claude"]},
    )
    result = run_cli(
        "--config",
        str(config),
        "run",
        "text",
        "hi",
        "--system",
        "Be brief.",
        "--json",
        env=clean_env(ANTHROPIC_API_KEY=KEY),
    )
    assert result.code == 0, result.stderr
    data = result.json()
    assert (data["provider"], data["output"]) == ("claude", "Hello from Claude")
    assert data["model"] == "claude-haiku-4-5-20251001"
    assert data["usage"] == {"requests": 1, "input_tokens": 12, "output_tokens": 5, "tokens": 17}
    [request] = fake.requests(shapes.messages_path("anthropic"))
    assert request.headers["x-api-key"] == KEY
    assert request.json() == {
        "model": MODEL,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "hi"}],
        "system": "Be brief.",
    }
