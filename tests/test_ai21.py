"""The AI21 adapter against a local fake of AI21 Studio's chat completions, at the HTTP level.

What the fake reproduces (tests/fakes/ai21_shapes.py), and from where:

- request: `POST /studio/v1/chat/completions`, `Authorization: Bearer`, OpenAI-like body with
  `max_tokens` at most 4096 (AI21 docs "Jamba chat completions");
- success: `choices[0].message.content`, `usage.prompt_tokens`/`completion_tokens`, and no
  `model` field (ai21-python SDK `ChatCompletionResponse`); no rate-limit headers (none are
  documented);
- errors as FastAPI bodies `{"detail": ...}` (docs "Errors": 401, 403, 422, 429, 500, 503; 422 as
  pydantic's validation list); the keyless 400 "Bad request: bad or missing authentication." is
  an observed answer (2026-09). AI21 documents no out-of-credit status: 402 and credit texts are
  treated as quota by decision, and tested as such.
"""

from __future__ import annotations

import asyncio
import json
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
from scheduler.providers.ai21 import AI21Adapter, classify_error
from scheduler.providers.http import make_client
from scheduler.tasks import Message, ProviderResult, TextTask
from tests.conftest import clean_env, run_cli, write_config
from tests.fakes import ai21_shapes as shapes
from tests.fakes.server import FakeServer, Reply

KEY = "ai21-test-key-0123"
MODEL = "jamba-mini"


def call(
    fake: FakeServer,
    *,
    task: TextTask | None = None,
    api_key: str | None = KEY,
    timeout_s: float = 5.0,
    base_url: str | None = None,
) -> ProviderResult | ProviderError:
    """One text task through the adapter against the fake: the result, or the taxonomy error."""

    async def go() -> ProviderResult:
        async with make_client(timeout_s) as http:
            adapter = AI21Adapter(
                name="ai21",
                config=ProviderConfig(adapter="ai21", base_url=base_url or fake.url),
                api_key=api_key,
                http=http,
                timeout_s=timeout_s,
            )
            return await adapter.run(task or TextTask("Hi"), model=MODEL)

    try:
        return asyncio.run(go())
    except ProviderError as exc:
        return exc


def succeed(fake: FakeServer, reply: Reply, **kwargs: object) -> ProviderResult:
    fake.route("POST", shapes.chat_path(), reply)
    outcome = call(fake, **kwargs)  # type: ignore[arg-type]
    assert isinstance(outcome, ProviderResult), outcome
    return outcome


def fail(fake: FakeServer, reply: Reply, **kwargs: object) -> ProviderError:
    fake.route("POST", shapes.chat_path(), reply)
    outcome = call(fake, **kwargs)  # type: ignore[arg-type]
    assert isinstance(outcome, ProviderError), outcome
    assert fake.count(shapes.chat_path()) == 1
    return outcome


# --------------------------------------------------------------------------------------------
# Request shape
# --------------------------------------------------------------------------------------------


def test_request_path_auth_and_full_body(fake: FakeServer) -> None:
    succeed(fake, shapes.chat_ok(), task=TextTask("Hi", system="Be brief.", max_tokens=64))
    [request] = fake.requests()
    assert (request.method, request.path, request.query) == (
        "POST",
        "/studio/v1/chat/completions",
        {},
    )
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ],
        "max_tokens": 64,
    }


@pytest.mark.parametrize(("asked", "sent"), [(None, None), (4096, 4096), (10_000, 4096)])
def test_max_tokens_is_clamped_to_4096_and_omitted_when_unset(
    fake: FakeServer, asked: int | None, sent: int | None
) -> None:
    succeed(fake, shapes.chat_ok(), task=TextTask("Hi", max_tokens=asked))
    body = fake.requests()[0].json()
    assert body.get("max_tokens") == sent
    assert ("max_tokens" in body) == (sent is not None)
    assert body["messages"] == [{"role": "user", "content": "Hi"}]


def test_a_conversation_with_temperature_and_stop_reaches_the_wire(fake: FakeServer) -> None:
    messages = (
        Message("system", "Be brief."),
        Message("user", "Name a colour."),
        Message("assistant", "Red."),
        Message("user", "Another."),
    )
    task = TextTask(messages=messages, temperature=0.2, stop=("\n",))
    succeed(fake, shapes.chat_ok(), task=task)
    assert fake.requests()[0].json() == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Name a colour."},
            {"role": "assistant", "content": "Red."},
            {"role": "user", "content": "Another."},
        ],
        "temperature": 0.2,
        "stop": ["\n"],
    }


def test_base_url_prefix_and_trailing_slash(fake: FakeServer) -> None:
    fake.route("POST", shapes.chat_path("proxy"), shapes.chat_ok())
    assert isinstance(call(fake, base_url=f"{fake.url}/proxy/"), ProviderResult)
    assert [r.path for r in fake.requests()] == ["/proxy/studio/v1/chat/completions"]


# --------------------------------------------------------------------------------------------
# Success parsing
# --------------------------------------------------------------------------------------------


def test_answer_usage_and_requested_model(fake: FakeServer) -> None:
    result = succeed(fake, shapes.chat_ok("Hello!", prompt_tokens=14, completion_tokens=6))
    assert result == ProviderResult(
        output="Hello!",
        model=MODEL,
        usage={"requests": 1, "input_tokens": 14, "output_tokens": 6, "tokens": 20},
    )


def test_missing_usage_falls_back_to_estimates(fake: FakeServer) -> None:
    reply = Reply(status=200, json={"choices": [{"message": {"content": "abcdef"}}]})
    result = succeed(fake, reply, task=TextTask("Hello there, model"))  # 7 + 1 input tokens
    assert result.usage == {"requests": 1, "input_tokens": 8, "output_tokens": 3, "tokens": 11}


def test_null_content_is_empty(fake: FakeServer) -> None:
    reply = Reply(status=200, json={"choices": [{"message": {"content": None}}], "usage": {}})
    assert succeed(fake, reply).output == ""


# --------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------

CASES = [
    pytest.param(shapes.missing_auth_400(), AuthFailed, 400, None, id="400-missing-auth"),
    pytest.param(shapes.detail(401, "Unauthorized"), AuthFailed, 401, None, id="401"),
    pytest.param(shapes.detail(403, "Forbidden"), AuthFailed, 403, None, id="403"),
    pytest.param(shapes.validation_error(), RejectedInput, 422, None, id="422-validation"),
    pytest.param(shapes.too_many_requests(), RateLimited, 429, None, id="429"),
    pytest.param(shapes.too_many_requests("3"), RateLimited, 429, 3.0, id="429-retry-after"),
    pytest.param(shapes.detail(402, "Payment Required"), QuotaExhausted, 402, None, id="402"),
    pytest.param(
        shapes.detail(403, "Your credit balance is exhausted"),
        QuotaExhausted,
        403,
        None,
        id="403-credit-text",
    ),
    pytest.param(
        shapes.detail(404, "Model jamba-nope not found"), ModelUnavailable, 404, None, id="404"
    ),
    pytest.param(
        shapes.detail(410, "This API has been retired"), ModelUnavailable, 410, None, id="410"
    ),
    pytest.param(shapes.detail(400, "Bad request: messages"), RejectedInput, 400, None, id="400"),
    pytest.param(shapes.detail(500, "Internal Server Error"), Transient, 500, None, id="500"),
    pytest.param(shapes.detail(503, "Service Unavailable"), Transient, 503, None, id="503"),
    pytest.param(
        Reply(status=502, body="<html><title>502 Bad Gateway</title></html>"),
        Transient,
        502,
        None,
        id="502-html",
    ),
    pytest.param(Reply(status=200, body="nope"), Transient, 200, None, id="200-not-json"),
    pytest.param(Reply(status=200, json=[]), Transient, 200, None, id="200-array"),
    pytest.param(Reply(status=200, json={"choices": []}), Transient, 200, None, id="200-empty"),
    pytest.param(
        Reply(status=200, json={"choices": [{"message": {"content": ["x"]}}]}),
        Transient,
        200,
        None,
        id="200-content-not-text",
    ),
]


@pytest.mark.parametrize(("reply", "cls", "status", "retry_after"), CASES)
def test_classification(
    fake: FakeServer,
    reply: Reply,
    cls: type[ProviderError],
    status: int,
    retry_after: float | None,
) -> None:
    error = fail(fake, reply)
    assert type(error) is cls, f"{type(error).__name__}: {error}"
    assert (error.provider, error.status, error.retry_after) == ("ai21", status, retry_after)
    assert error.resets_at is None


def test_messages_carry_the_detail(fake: FakeServer) -> None:
    assert str(fail(fake, shapes.missing_auth_400())) == f"HTTP 400: {shapes.MISSING_AUTH}"
    fake.reset()
    assert str(fail(fake, shapes.validation_error())) == (
        "HTTP 422: max_tokens: Input should be less than or equal to 4096"
    )
    fake.reset()
    assert str(fail(fake, Reply(status=200, json={"choices": []}))) == (
        "malformed response: no choices[0].message"
    )


def test_key_echoed_in_an_error_is_redacted(fake: FakeServer) -> None:
    secret = "my-ai21-secret"
    error = fail(fake, shapes.detail(401, f"Invalid key {secret}"), api_key=secret)
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


def test_detail_object_and_unknown_shapes_still_classify() -> None:
    body = json.dumps({"detail": {"message": "Bad request: bad or missing authentication."}})
    assert isinstance(classify_error(400, {}, body.encode(), provider="a"), AuthFailed)
    assert isinstance(classify_error(418, {}, b"", provider="a"), RejectedInput)


# --------------------------------------------------------------------------------------------
# The real CLI end to end
# --------------------------------------------------------------------------------------------


def test_cli_run_text_through_ai21(tmp_path: Path, fake: FakeServer) -> None:
    base = shapes.mount_ai21_ok(fake, "ai21", text="Hello from Jamba")
    config = write_config(
        tmp_path / "providers.yaml",
        {
            "ai21": f"adapter: ai21\nbase_url: {base}\napi_key_env: AI21_API_KEY\n"
            f"models: {{text: {MODEL}}}"
        },
        {"text": ["ai21"]},
    )
    result = run_cli(
        "--config",
        str(config),
        "run",
        "text",
        "hi",
        "--max-tokens",
        "9000",
        "--json",
        env=clean_env(AI21_API_KEY=KEY),
    )
    assert result.code == 0, result.stderr
    data = result.json()
    assert (data["provider"], data["output"], data["model"]) == ("ai21", "Hello from Jamba", MODEL)
    assert data["usage"] == {"requests": 1, "input_tokens": 14, "output_tokens": 6, "tokens": 20}
    [request] = fake.requests(shapes.chat_path("ai21"))
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json() == {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 4096,
    }
