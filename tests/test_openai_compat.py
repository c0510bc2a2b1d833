"""The OpenAI-compatible adapter, driven through its real wire format at the transport level.

Every test builds an `httpx.AsyncClient` on an `httpx.MockTransport`, so requests go through the
`openai` SDK exactly as in production (URL joining, auth header, status-error mapping, retries
off) and the replies are the exact bytes and headers the providers document or were observed to
send (`tests/fakes/openai_shapes.py`, `/work/shared/providers/text-llm.md`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

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
from scheduler.providers.openai_compat import (
    OpenAICompatAdapter,
    classify_error,
    rate_limit_reports,
)
from scheduler.tasks import ProviderResult, RateLimitReport, TextTask
from tests.fakes import openai_shapes as shapes
from tests.fakes.server import Reply

OPENAI_URL = "https://api.openai.com/v1"
GROQ_URL = "https://api.groq.com/openai/v1"
PERPLEXITY_URL = "https://api.perplexity.ai"
KEY = "sk-test-0123456789abcdef"

# Next 00:00 UTC in epoch milliseconds, where OpenRouter's free-model day resets.
RESET_MS = (int(time.time()) // 86_400 + 1) * 86_400 * 1000
TOLERANCE_S = 0.05


Handler = Callable[[httpx.Request], httpx.Response]


def to_response(reply: Reply) -> httpx.Response:
    """A scripted `Reply` as the bytes and headers a provider would put on the wire."""
    payload, headers = reply.encode()
    return httpx.Response(reply.status, content=payload, headers=headers)


@dataclass
class Wire:
    """The transport: answers every request with `respond` and records what it was sent."""

    respond: Handler
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.respond(request)


@dataclass
class Outcome:
    """What one adapter call did, with the wall-clock window it ran in."""

    result: ProviderResult | None
    error: ProviderError | None
    requests: list[httpx.Request]
    before: float
    after: float


def call(
    answer: Reply | httpx.Response | Handler,
    *,
    base_url: str = OPENAI_URL,
    api_key: str | None = KEY,
    task: TextTask | None = None,
    model: str = "m",
) -> Outcome:
    """Run one text task through the adapter against `answer`; catch the taxonomy's errors."""
    if isinstance(answer, Reply):
        respond: Handler = lambda _request, reply=answer: to_response(reply)  # noqa: E731
    elif isinstance(answer, httpx.Response):
        respond = lambda _request, response=answer: response  # noqa: E731
    else:
        respond = answer
    wire = Wire(respond)

    async def go() -> ProviderResult:
        async with httpx.AsyncClient(transport=httpx.MockTransport(wire)) as http:
            adapter = OpenAICompatAdapter(
                name="p",
                config=ProviderConfig(adapter="openai", base_url=base_url),
                api_key=api_key,
                http=http,
                timeout_s=5,
            )
            return await adapter.run(task or TextTask("Hi"), model=model)

    before = time.time()
    try:
        result, error = asyncio.run(go()), None
    except ProviderError as exc:
        result, error = None, exc
    after = time.time()
    return Outcome(result, error, wire.requests, before, after)


def succeed(answer: Reply | httpx.Response | Handler, **kwargs: object) -> Outcome:
    outcome = call(answer, **kwargs)  # type: ignore[arg-type]
    assert outcome.error is None, outcome.error
    assert outcome.result is not None
    return outcome


def fail(answer: Reply | httpx.Response | Handler, **kwargs: object) -> ProviderError:
    outcome = call(answer, **kwargs)  # type: ignore[arg-type]
    assert outcome.result is None, outcome.result
    assert outcome.error is not None
    assert len(outcome.requests) == 1  # the SDK's own retries are off: ours is the only loop
    return outcome.error


def error_reply(status: int, error: object, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status=status, json=error, headers=headers or {})


# --------------------------------------------------------------------------------------------
# 1. Request shape
# --------------------------------------------------------------------------------------------


def test_groq_request_has_path_auth_and_full_body() -> None:
    outcome = succeed(
        shapes.chat_ok("ok"),
        base_url=GROQ_URL,
        api_key="gsk_test_key_0123456789",
        task=TextTask("Hi", system="Be brief.", max_tokens=64),
        model="llama-3.1-8b-instant",
    )
    [request] = outcome.requests
    assert request.method == "POST"
    assert request.url.scheme == "https"
    assert request.url.host == "api.groq.com"
    assert request.url.path == "/openai/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer gsk_test_key_0123456789"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "model": "llama-3.1-8b-instant",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ],
        "max_tokens": 64,
    }


def test_perplexity_request_has_no_v1_and_omits_unset_fields() -> None:
    outcome = succeed(
        shapes.chat_ok("ok"), base_url=PERPLEXITY_URL, api_key="pplx-abc", model="sonar"
    )
    [request] = outcome.requests
    assert request.url.host == "api.perplexity.ai"
    assert request.url.path == "/chat/completions"
    assert request.headers["authorization"] == "Bearer pplx-abc"
    # No system message and no max_tokens when the task sets neither.
    assert json.loads(request.content) == {
        "model": "sonar",
        "messages": [{"role": "user", "content": "Hi"}],
    }


def test_trailing_slash_in_base_url_does_not_double_the_slash() -> None:
    outcome = succeed(shapes.chat_ok("ok"), base_url="https://openrouter.ai/api/v1/")
    assert outcome.requests[0].url.path == "/api/v1/chat/completions"


def test_local_server_without_key_still_gets_a_request() -> None:
    outcome = succeed(shapes.chat_ok("ok"), base_url="http://localhost:11434/v1", api_key=None)
    [request] = outcome.requests
    assert str(request.url) == "http://localhost:11434/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer no-key"


@pytest.mark.parametrize(
    "reply",
    [shapes.server_error(), shapes.rate_limited("0"), shapes.overloaded_529()],
    ids=["500", "429", "529"],
)
def test_sdk_does_not_retry(reply: Reply) -> None:
    outcome = call(reply)
    assert isinstance(outcome.error, ProviderError)
    assert len(outcome.requests) == 1


def test_sdk_does_not_retry_connection_errors() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    outcome = call(refuse)
    assert isinstance(outcome.error, Transient)
    assert len(outcome.requests) == 1


# --------------------------------------------------------------------------------------------
# 2. Success parsing
# --------------------------------------------------------------------------------------------


def test_success_text_model_and_usage() -> None:
    outcome = succeed(
        shapes.chat_ok(
            "Hello!", model="gpt-4o-mini-2024-07-18", prompt_tokens=12, completion_tokens=3
        ),
        model="gpt-4o-mini",
    )
    assert outcome.result == ProviderResult(
        output="Hello!",
        model="gpt-4o-mini-2024-07-18",
        usage={"requests": 1, "input_tokens": 12, "output_tokens": 3, "tokens": 15},
        rate_limits=(),
    )


def _completion(message: object, **extra: object) -> Reply:
    return Reply(
        status=200,
        json={"object": "chat.completion", "choices": [{"index": 0, "message": message}], **extra},
    )


def test_missing_usage_and_model_fall_back_to_estimates_and_requested_model() -> None:
    task = TextTask(
        "Hello there, model", system="Be brief."
    )  # 18 chars -> 7, 9 chars -> 4, +1 priming the reply
    outcome = succeed(
        _completion({"role": "assistant", "content": "abcdefghij"}),  # 10 chars -> 4
        task=task,
        model="llama3.2",
    )
    assert outcome.result is not None
    assert outcome.result.output == "abcdefghij"
    assert outcome.result.model == "llama3.2"
    assert outcome.result.usage == {
        "requests": 1,
        "input_tokens": 12,
        "output_tokens": 4,
        "tokens": 16,
    }
    assert task.estimate()["input_tokens"] == 12


def test_partial_usage_fills_only_the_missing_count() -> None:
    outcome = succeed(
        _completion({"role": "assistant", "content": "abcdef"}, usage={"prompt_tokens": 9})
    )
    assert outcome.result is not None
    assert outcome.result.usage == {
        "requests": 1,
        "input_tokens": 9,
        "output_tokens": 3,
        "tokens": 12,
    }


@pytest.mark.parametrize(
    "body",
    [
        b'{"choices": [{"message": {"content": "abcdef"}}], "usage": "n/a"}',
        b'{"choices": [{"message": {"content": "abcdef"}}], "usage": ["x"]}',
        b'{"choices": [{"message": {"content": "abcdef"}}], '
        b'"usage": {"prompt_tokens": NaN, "completion_tokens": Infinity}}',
        b'{"choices": [{"message": {"content": "abcdef"}}], '
        b'"usage": {"prompt_tokens": "12", "completion_tokens": null}}',
    ],
    ids=["string", "list", "nan-infinity", "wrong-types"],
)
def test_malformed_usage_falls_back_to_estimates(body: bytes) -> None:
    outcome = succeed(httpx.Response(200, content=body))
    assert outcome.result is not None
    assert outcome.result.output == "abcdef"
    # TextTask("Hi"): 1 + 1 (empty system) input tokens; "abcdef": 6 // 3 + 1 output tokens.
    assert outcome.result.usage == {
        "requests": 1,
        "input_tokens": 2,
        "output_tokens": 3,
        "tokens": 5,
    }


def test_null_content_is_empty_text() -> None:
    outcome = succeed(_completion({"role": "assistant", "content": None}, usage=None))
    assert outcome.result is not None
    assert outcome.result.output == ""
    assert outcome.result.usage["output_tokens"] == 1  # estimate_tokens("")


def test_content_as_list_of_parts_is_joined() -> None:
    parts = [
        {"type": "text", "text": "Hel"},
        {"type": "image_url", "image_url": {"url": "x"}},
        "stray",
        {"type": "text", "text": "lo"},
    ]
    outcome = succeed(_completion({"role": "assistant", "content": parts}))
    assert outcome.result is not None
    assert outcome.result.output == "Hello"


def test_openai_groq_rate_limit_headers() -> None:
    headers = {
        "x-ratelimit-limit-requests": "14400",
        "x-ratelimit-remaining-requests": "14370",
        "x-ratelimit-reset-requests": "2m59.56s",
        "x-ratelimit-limit-tokens": "6000",
        "x-ratelimit-remaining-tokens": "5800",
        "x-ratelimit-reset-tokens": "7.66s",
    }
    outcome = succeed(shapes.chat_ok("ok", headers=headers), base_url=GROQ_URL)
    assert outcome.result is not None
    requests, tokens = outcome.result.rate_limits
    assert (requests.metric, requests.remaining, requests.limit) == ("requests", 14370, 14400)
    assert requests.resets_at is not None
    assert outcome.before + 179.56 - TOLERANCE_S <= requests.resets_at
    assert requests.resets_at <= outcome.after + 179.56 + TOLERANCE_S
    assert (tokens.metric, tokens.remaining, tokens.limit) == ("tokens", 5800, 6000)
    assert tokens.resets_at is not None
    assert outcome.before + 7.66 - TOLERANCE_S <= tokens.resets_at
    assert tokens.resets_at <= outcome.after + 7.66 + TOLERANCE_S


def test_mistral_rate_limit_headers_reset_at_the_next_minute() -> None:
    headers = {
        "x-ratelimit-limit-req-minute": "23",
        "x-ratelimit-remaining-req-minute": "22",
        "x-ratelimit-limit-tokens-minute": "500000",
        "x-ratelimit-remaining-tokens-minute": "499000",
        "x-ratelimit-tokens-query-cost": "1000",
    }
    outcome = succeed(shapes.chat_ok("ok", headers=headers), base_url="https://api.mistral.ai/v1")
    assert outcome.result is not None
    requests, tokens = outcome.result.rate_limits
    assert (requests.metric, requests.remaining, requests.limit) == ("requests", 22, 23)
    assert (tokens.metric, tokens.remaining, tokens.limit) == ("tokens", 499000, 500000)
    boundaries = {
        (int(outcome.before) // 60 + 1) * 60,
        (int(outcome.after) // 60 + 1) * 60,
    }
    for report in (requests, tokens):
        assert report.resets_at is not None
        assert any(report.resets_at == pytest.approx(b, abs=1e-6) for b in boundaries)


def test_together_rate_limit_headers() -> None:
    headers = {
        "x-ratelimit-limit": "60",
        "x-ratelimit-remaining": "59",
        "x-ratelimit-reset": "12",
        "x-tokenlimit-limit": "100000",
        "x-tokenlimit-remaining": "99000",
    }
    outcome = succeed(shapes.chat_ok("ok", headers=headers), base_url="https://api.together.xyz/v1")
    assert outcome.result is not None
    [report] = outcome.result.rate_limits
    assert (report.metric, report.remaining, report.limit) == ("requests", 59, 60)
    assert report.resets_at is not None
    assert outcome.before + 12 - TOLERANCE_S <= report.resets_at
    assert report.resets_at <= outcome.after + 12 + TOLERANCE_S


NOW = 1_792_567_650.0  # 2026-10-21T07:27:30Z: 30 s into a minute


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param(
            {
                "X-RateLimit-Remaining-Requests": "14370",
                "X-RateLimit-Reset-Requests": "2m59.56s",
                "X-RateLimit-Limit-Requests": "14400",
            },
            (RateLimitReport("requests", 14370, NOW + 179.56, 14400),),
            id="groq-mixed-case",
        ),
        pytest.param(
            {"x-ratelimit-remaining-req-minute": "22", "x-ratelimit-limit-req-minute": "23"},
            (RateLimitReport("requests", 22, NOW + 30, 23),),
            id="mistral-next-minute",
        ),
        pytest.param(
            {"x-ratelimit-remaining": "59", "x-ratelimit-reset": "12"},
            (RateLimitReport("requests", 59, NOW + 12, None),),
            id="together",
        ),
        pytest.param(
            {
                "x-ratelimit-remaining-requests": "100",
                "x-ratelimit-reset-requests": "1s",
                "x-ratelimit-remaining-req-minute": "3",
            },
            (RateLimitReport("requests", 3, NOW + 30, None),),
            id="tightest-per-metric",
        ),
        pytest.param(
            {"x-ratelimit-remaining-requests": "lots", "x-ratelimit-reset-requests": "soon"},
            (),
            id="garbage-ignored",
        ),
        pytest.param(
            {"x-ratelimit-remaining-tokens": "10", "x-ratelimit-reset-tokens": "soon"},
            (RateLimitReport("tokens", 10, None, None),),
            id="unparsable-reset",
        ),
        pytest.param({}, (), id="none"),
    ],
)
def test_rate_limit_reports_exact(
    headers: dict[str, str], expected: tuple[RateLimitReport, ...]
) -> None:
    reports = rate_limit_reports(headers, now=NOW)
    assert len(reports) == len(expected)
    for got, want in zip(reports, expected, strict=True):
        assert (got.metric, got.remaining, got.limit) == (want.metric, want.remaining, want.limit)
        if want.resets_at is None:
            assert got.resets_at is None
        else:
            assert got.resets_at == pytest.approx(want.resets_at, abs=1e-6)


# --------------------------------------------------------------------------------------------
# 3. Classification
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FromNow:
    """An absolute time this many seconds after the call."""

    seconds: float


@dataclass(frozen=True)
class Until:
    """A wait (in seconds) that ends at this POSIX instant."""

    instant: float


def _check(value: float | None, expected: object, outcome_window: tuple[float, float]) -> None:
    before, after = outcome_window
    if expected is None:
        assert value is None
    elif isinstance(expected, FromNow):
        assert value is not None
        assert before + expected.seconds - TOLERANCE_S <= value
        assert value <= after + expected.seconds + TOLERANCE_S
    elif isinstance(expected, Until):
        assert value is not None
        assert expected.instant - after - TOLERANCE_S <= value
        assert value <= expected.instant - before + TOLERANCE_S
    else:
        assert value == pytest.approx(expected, abs=1e-6)


def _openai_error(message: str, type_: str | None, code: str | None, param: object = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


ANTHROPIC_CREDIT = (
    "Your credit balance is too low to access the Anthropic API. "
    "Please go to Plans & Billing to upgrade or purchase credits."
)
GROQ_413 = (
    "Request too large for model `llama-3.3-70b-versatile` in organization `org_01` service "
    "tier `on_demand` on tokens per minute (TPM): Limit 6000, Requested 12328, please reduce "
    "your message size and try again. Need more tokens? Upgrade to Dev Tier today at "
    "https://console.groq.com/settings/billing"
)

CLASSIFICATION = [
    # --- out of quota or credit: terminal until the window resets
    pytest.param(shapes.insufficient_quota(), QuotaExhausted, 429, None, None, id="openai-quota"),
    pytest.param(
        error_reply(
            429,
            _openai_error(
                "Your credit balance is exhausted.",
                "invalid_request_error",
                "credit_balance_exhausted",
            ),
        ),
        QuotaExhausted,
        429,
        None,
        None,
        id="openai-2026-credit_balance_exhausted",
    ),
    pytest.param(
        error_reply(
            429,
            _openai_error(
                "Project spend limit reached.",
                "insufficient_quota",
                "project_spend_limit_exceeded",
            ),
        ),
        QuotaExhausted,
        429,
        None,
        None,
        id="openai-2026-project_spend_limit",
    ),
    pytest.param(
        shapes.groq_daily_tokens(), QuotaExhausted, 429, 578.0, FromNow(578), id="groq-tpd"
    ),
    pytest.param(shapes.openrouter_credits(), QuotaExhausted, 402, None, None, id="or-402-credits"),
    pytest.param(
        shapes.openrouter_free_daily(RESET_MS),
        QuotaExhausted,
        429,
        Until(RESET_MS / 1000),
        RESET_MS / 1000,
        id="or-free-models-per-day",
    ),
    pytest.param(
        error_reply(
            400,
            {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": ANTHROPIC_CREDIT},
            },
        ),
        QuotaExhausted,
        400,
        None,
        None,
        id="anthropic-compat-400-credit",
    ),
    pytest.param(
        error_reply(
            402,
            {"type": "error", "error": {"type": "billing_error", "message": "Billing problem."}},
        ),
        QuotaExhausted,
        402,
        None,
        None,
        id="anthropic-402-billing",
    ),
    pytest.param(
        error_reply(
            429,
            {
                "id": "x",
                "message": (
                    "You are using a Trial key, which is limited to 1000 API calls / month."
                ),
            },
        ),
        QuotaExhausted,
        429,
        None,
        None,
        id="cohere-compat-monthly",
    ),
    # --- slow down: cool down for the hint
    pytest.param(shapes.rate_limited("2"), RateLimited, 429, 2.0, None, id="openai-429-retry-2"),
    pytest.param(
        shapes.gemini_compat_exhausted_array(),
        RateLimited,
        429,
        None,
        None,
        id="gemini-compat-array-429",
    ),
    pytest.param(
        error_reply(
            429,
            {
                "object": "error",
                "message": "Rate limit exceeded",
                "type": "rate_limited",
                "param": None,
                "code": "1300",
            },
        ),
        RateLimited,
        429,
        None,
        None,
        id="mistral-429",
    ),
    # --- transient: retry with backoff
    pytest.param(
        error_reply(
            402,
            {
                "error": {
                    "code": 402,
                    "message": "In-flight budget exhausted; retry shortly.",
                    "metadata": {
                        "limit_source": "openrouter_in_flight_budget",
                        "reason": "in_flight_budget_exhausted",
                    },
                }
            },
            {"Retry-After": "3"},
        ),
        Transient,
        402,
        3.0,
        None,
        id="or-402-in-flight",
    ),
    pytest.param(shapes.server_error(), Transient, 500, None, None, id="500"),
    pytest.param(
        Reply(
            status=502,
            body="<html><head><title>502 Bad Gateway</title></head></html>",
            headers={"content-type": "text/html"},
        ),
        Transient,
        502,
        None,
        None,
        id="502-html",
    ),
    pytest.param(
        error_reply(503, _openai_error("The server is overloaded.", "server_error", None)),
        Transient,
        503,
        None,
        None,
        id="503",
    ),
    pytest.param(shapes.overloaded_529(), Transient, 529, None, None, id="529-overloaded"),
    pytest.param(
        error_reply(
            498,
            _openai_error("Flex tier capacity exceeded.", "capacity_exceeded", "capacity_exceeded"),
        ),
        Transient,
        498,
        None,
        None,
        id="groq-498-flex",
    ),
    # --- the key is wrong
    pytest.param(shapes.invalid_key(), AuthFailed, 401, None, None, id="openai-401"),
    pytest.param(
        error_reply(
            401, _openai_error("Invalid API Key", "invalid_request_error", "invalid_api_key")
        ),
        AuthFailed,
        401,
        None,
        None,
        id="groq-401",
    ),
    pytest.param(shapes.perplexity_html_401(), AuthFailed, 401, None, None, id="perplexity-html"),
    pytest.param(
        error_reply(401, {"detail": "Unauthorized"}),
        AuthFailed,
        401,
        None,
        None,
        id="mistral-401-detail",
    ),
    pytest.param(
        error_reply(
            400,
            {
                "error": {
                    "code": 400,
                    "message": "API key not valid. Please pass a valid API key.",
                    "status": "INVALID_ARGUMENT",
                    "details": [
                        {
                            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": "API_KEY_INVALID",
                            "domain": "googleapis.com",
                        }
                    ],
                }
            },
        ),
        AuthFailed,
        400,
        None,
        None,
        id="gemini-400-api-key-invalid",
    ),
    # --- the input is refused: next provider
    pytest.param(shapes.context_too_long(), RejectedInput, 400, None, None, id="context-length"),
    pytest.param(
        error_reply(
            404,
            _openai_error(
                "The model `gpt-9` does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            ),
        ),
        ModelUnavailable,  # a retired or unknown model, not a rejected input (issue 12)
        404,
        None,
        None,
        id="404-model-not-found",
    ),
    pytest.param(
        error_reply(
            413, {"error": {"message": GROQ_413, "type": "tokens", "code": "rate_limit_exceeded"}}
        ),
        RejectedInput,
        413,
        None,
        None,
        id="groq-413-too-large",
    ),
    pytest.param(
        error_reply(
            403,
            {
                "error": {
                    "code": 403,
                    "message": "Input was flagged by moderation",
                    "metadata": {"reasons": ["harassment"]},
                }
            },
        ),
        RejectedInput,
        403,
        None,
        None,
        id="or-403-moderation",
    ),
    # --- a 200 that is not an answer
    pytest.param(
        Reply(
            status=200,
            body='{"id": "x", "choices": [',
            headers={"content-type": "application/json"},
        ),
        Transient,
        200,
        None,
        None,
        id="200-truncated",
    ),
    pytest.param(
        Reply(status=200, body="{not json}", headers={"content-type": "application/json"}),
        Transient,
        200,
        None,
        None,
        id="200-malformed-json",
    ),
    pytest.param(
        Reply(
            status=200,
            body="<html><body>Welcome to nginx!</body></html>",
            headers={"content-type": "text/html"},
        ),
        Transient,
        200,
        None,
        None,
        id="200-html",
    ),
    pytest.param(Reply(status=200, body=b""), Transient, 200, None, None, id="200-empty"),
    pytest.param(Reply(status=200, json=[]), Transient, 200, None, None, id="200-json-array"),
    pytest.param(
        Reply(status=200, json={"id": "x", "object": "chat.completion"}),
        Transient,
        200,
        None,
        None,
        id="200-no-choices",
    ),
    pytest.param(
        Reply(status=200, json={"id": "x", "choices": []}),
        Transient,
        200,
        None,
        None,
        id="200-empty-choices",
    ),
    pytest.param(
        Reply(status=200, json={"id": "x", "choices": [{"index": 0, "message": None}]}),
        Transient,
        200,
        None,
        None,
        id="200-null-message",
    ),
    # OpenRouter: an error after generation started arrives in a 200 body; its code decides.
    pytest.param(
        Reply(status=200, json={"error": {"code": 502, "message": "Provider returned error"}}),
        Transient,
        502,
        None,
        None,
        id="200-or-error-502",
    ),
    pytest.param(
        Reply(
            status=200,
            json={
                "error": {
                    "code": 429,
                    "message": "Provider returned error",
                    "metadata": {"provider_name": "Chutes", "raw": "rate limited upstream"},
                }
            },
        ),
        RateLimited,
        429,
        None,
        None,
        id="200-or-error-429-upstream",
    ),
    pytest.param(
        Reply(
            status=200,
            json={
                "error": {
                    "code": 429,
                    "message": shapes.OPENROUTER_FREE_DAILY_MESSAGE,
                    "metadata": {"limit_source": "openrouter_free_tier_daily"},
                }
            },
        ),
        QuotaExhausted,
        429,
        None,
        None,
        id="200-or-error-free-daily",
    ),
    pytest.param(
        Reply(status=200, json={"error": {"message": "Something broke"}}),
        Transient,
        200,
        None,
        None,
        id="200-error-without-code",
    ),
]


@pytest.mark.parametrize(("reply", "cls", "status", "retry_after", "resets_at"), CLASSIFICATION)
def test_classification(
    reply: Reply, cls: type[ProviderError], status: int, retry_after: object, resets_at: object
) -> None:
    outcome = call(reply)
    error = outcome.error
    assert type(error) is cls, f"{type(error).__name__}: {error}"
    assert error.provider == "p"
    assert error.status == status
    window = (outcome.before, outcome.after)
    _check(error.retry_after, retry_after, window)
    _check(error.resets_at, resets_at, window)
    assert len(outcome.requests) == 1


def test_perplexity_html_401_message_is_the_title_not_the_page() -> None:
    error = fail(shapes.perplexity_html_401(), base_url=PERPLEXITY_URL, api_key="pplx-abc")
    assert isinstance(error, AuthFailed)
    assert str(error) == "HTTP 401: 401 Authorization Required"
    assert "<" not in str(error) and ">" not in str(error)


def test_error_message_carries_provider_text() -> None:
    error = fail(shapes.context_too_long())
    assert str(error) == f"HTTP 400: {shapes.CONTEXT_TOO_LONG_MESSAGE}"
    error = fail(Reply(status=401, json={"detail": "Unauthorized"}))
    assert str(error) == "HTTP 401: Unauthorized"


def test_malformed_200_messages_name_the_problem() -> None:
    error = fail(Reply(status=200, body="<html></html>", headers={"content-type": "text/html"}))
    assert str(error) == "malformed response: not JSON (text/html)"
    error = fail(Reply(status=200, json={"choices": []}))
    assert str(error) == "malformed response: no choices[0].message"


def test_connect_error_is_transient_and_named() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    error = fail(refuse)
    assert type(error) is Transient
    assert error.provider == "p"
    assert error.status is None
    assert str(error) == "connection to api.openai.com failed: ConnectError"  # the host, named


def test_read_timeout_is_transient_and_named() -> None:
    def stall(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    error = fail(stall)
    assert type(error) is Transient
    assert error.status is None
    assert str(error) == "timed out after 5 s"


def test_errors_do_not_chain_the_sdk_exception() -> None:
    error = fail(shapes.invalid_key())
    assert error.__cause__ is None
    assert error.__suppress_context__


# --------------------------------------------------------------------------------------------
# 4. Secrets
# --------------------------------------------------------------------------------------------


def _leaks(error: ProviderError, secret: str) -> bool:
    return any(secret in text for text in (str(error), repr(error), *map(str, error.args)))


def test_echoed_key_is_redacted_from_the_message() -> None:
    secret = "sk-live-RECOGNISABLE123456"
    error = fail(shapes.invalid_key(secret), api_key=secret)
    assert isinstance(error, AuthFailed)
    assert not _leaks(error, secret)
    assert "RECOGNISABLE" not in str(error)
    assert str(error).startswith("HTTP 401: Incorrect API key provided: ***")


def test_key_shaped_token_is_redacted_even_when_it_is_not_our_key() -> None:
    echoed = "sk-proj-SOMEONEELSES9876543210"
    error = fail(shapes.invalid_key(echoed), api_key=KEY)
    assert not _leaks(error, echoed)


def test_unusual_local_key_is_redacted_by_value() -> None:
    secret = "hunter2-local"  # not key-shaped: only the adapter knows it is a secret
    reply = Reply(status=401, json={"error": {"message": f"Bad token {secret}"}})
    error = fail(reply, base_url="http://localhost:8000/v1", api_key=secret)
    assert isinstance(error, AuthFailed)
    assert not _leaks(error, secret)


def test_key_echoed_in_a_200_error_body_is_redacted() -> None:
    secret = "hunter2-local"
    reply = Reply(status=200, json={"error": {"code": 401, "message": f"Key {secret} disabled"}})
    error = fail(reply, base_url="http://localhost:8000/v1", api_key=secret)
    assert not _leaks(error, secret)


GOOGLE_PER_DAY = {
    "error": {
        "code": 429,
        "message": "You exceeded your current quota, please check your plan and billing details. "
        "Please retry in 36.429760048s.",
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/"
                        "generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                        "quotaValue": "20",
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "36s"},
        ],
    }
}


def test_google_per_day_quota_is_exhausted_until_the_window_not_the_retry_delay() -> None:
    error = classify_error(429, {}, json.dumps(GOOGLE_PER_DAY).encode(), provider="gemini")
    assert isinstance(error, QuotaExhausted)
    assert (error.retry_after, error.resets_at) == (None, None)  # the day rule decides


def test_google_per_minute_quota_is_a_rate_limit_with_its_delay() -> None:
    body = json.loads(json.dumps(GOOGLE_PER_DAY))
    violation = body["error"]["details"][0]["violations"][0]
    violation["quotaId"] = "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
    error = classify_error(429, {}, json.dumps(body).encode(), provider="gemini")
    assert isinstance(error, RateLimited)
    assert error.retry_after == 36


def test_google_limit_zero_means_no_free_quota_at_all() -> None:
    body = {
        "error": {
            "code": 429,
            "status": "RESOURCE_EXHAUSTED",
            "message": "Quota exceeded for"
            " metric: generate_content_free_tier_requests, limit: 0, model: gemini-2.5-pro",
        }
    }
    assert isinstance(
        classify_error(429, {}, json.dumps(body).encode(), provider="g"), QuotaExhausted
    )


def test_together_403_for_a_too_long_prompt_is_rejected_input_not_auth() -> None:
    body = {
        "error": {
            "message": "Input validation error: `inputs` tokens + `max_new_tokens` must"
            " be <= 8193. Given: 9000 `inputs` tokens and 512 `max_new_tokens`",
            "type": "invalid_request_error",
        }
    }
    assert isinstance(
        classify_error(403, {}, json.dumps(body).encode(), provider="t"), RejectedInput
    )
