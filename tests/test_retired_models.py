"""A retired model is not a rejected input: it is marked, skipped with the reason, and the
provider's next model serves before the table moves on.

The fakes answer as Groq does for a decommissioned model (tests/fakes/model_lists.py: 404
`model_not_found`, 400 `model_decommissioned`). In-process tests run the real dispatcher and
adapters over an httpx MockTransport that answers by the model asked for; the end-to-end test
runs the real CLI against a local HTTP fake, in separate processes sharing one ledger.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest

from scheduler import Scheduler
from scheduler.config import parse_config
from scheduler.config.keys import KeyStore
from scheduler.dispatcher import RunResult
from scheduler.errors import ModelUnavailable, RejectedInput
from scheduler.ledger import Ledger
from scheduler.ledger.maintenance import provider_health
from scheduler.ledger.models import mark_retired, retired_models
from scheduler.ledger.report import quota_report
from scheduler.options import RunOptions
from scheduler.providers import anthropic, cohere, gemini, openai_compat, replicate
from scheduler.providers.http_errors import is_model_gone
from scheduler.tasks import TextDelta, TextTask
from tests.conftest import clean_env, run_cli, write_config
from tests.fakes import model_lists, openai_shapes
from tests.fakes.server import FakeServer

OLD, NEW, OTHER = "llama-3.3-70b-versatile", "openai/gpt-oss-120b", "openai/gpt-oss-20b"
CONFIG = f"""
settings: {{allow_paid: true}}
providers:
  groq:
    adapter: openai
    base_url: http://groq.test/v1
    api_key_env: GROQ_API_KEY
    models: {{text: [{OLD}, {NEW}]}}
    pricing:
      usd_per_mtok_input: 0.1
      models: {{{NEW}: {{usd_per_mtok_input: 0.15, usd_per_mtok_output: 0.6}}}}
  backup: {{adapter: openai, base_url: "http://backup.test/v1", api_key_env: B_KEY,
            models: {{text: m}}}}
tasks:
  text: [groq, backup]
"""
KEYS = {"GROQ_API_KEY": "gsk_test0000000000000001", "B_KEY": "sk-b-000000000002"}


class ByModel:
    """Answers per (host, model): a `model_lists` error Reply's shape or a chat completion."""

    def __init__(self, gone: dict[str, int], *, stream: bool = False) -> None:
        self.gone = gone  # model -> status it is answered with (404 or 400)
        self.stream = stream
        self.calls: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        model = json.loads(request.content)["model"]
        self.calls.append((request.url.host.split(".")[0], model))
        status = self.gone.get(model)
        if status is not None:
            builder = (
                model_lists.groq_model_not_found
                if status == 404
                else model_lists.groq_decommissioned
            )
            reply = builder(model)
            return httpx.Response(reply.status, json=reply.json)
        if self.stream:
            chunks = b"".join(openai_shapes.chat_stream_chunks(["served ", model], model=model))
            sse = {"content-type": "text/event-stream"}
            return httpx.Response(200, content=chunks, headers=sse)
        reply = openai_shapes.chat_ok(f"served by {model}", model=model)
        return httpx.Response(200, json=reply.json)


def _run(
    target: str, handler: ByModel, config: str = CONFIG, options: RunOptions | None = None
) -> RunResult:
    async def go() -> RunResult:
        async with Scheduler(
            parse_config(config), db=target, keys=KEYS, transport=httpx.MockTransport(handler)
        ) as s:
            return await s.run(TextTask(prompt="hi"), options)

    return asyncio.run(go())


def _trace(result: RunResult) -> list[tuple[str, str, str | None]]:
    return [(a.provider, a.outcome, a.model) for a in result.attempts]


# -- classification ---------------------------------------------------------------------------


def _body(reply: object) -> bytes:
    return json.dumps(getattr(reply, "json")).encode()  # noqa: B009 - Reply is frozen


@pytest.mark.parametrize(
    ("classify", "expected"),
    [
        pytest.param(
            lambda: openai_compat.classify_error(
                404, {}, _body(model_lists.groq_model_not_found(OLD)), provider="groq"
            ),
            ModelUnavailable,
            id="groq-404-model_not_found",
        ),
        pytest.param(
            lambda: openai_compat.classify_error(
                400, {}, _body(model_lists.groq_decommissioned(OLD)), provider="groq"
            ),
            ModelUnavailable,
            id="groq-400-model_decommissioned",
        ),
        pytest.param(
            lambda: openai_compat.classify_error(410, {}, b"Gone", provider="x"),
            ModelUnavailable,
            id="410-gone",
        ),
        pytest.param(
            # Anthropic "Errors": 404 not_found_error, message "model: <id>".
            lambda: anthropic.classify_error(
                404,
                {},
                b'{"type":"error","error":{"type":"not_found_error","message":"model: claude-2"}}',
                provider="anthropic",
            ),
            ModelUnavailable,
            id="anthropic-404-model",
        ),
        pytest.param(
            # Gemini: 404 NOT_FOUND "models/X is not found for API version v1beta ...".
            lambda: gemini.classify_error(
                404,
                {
                    "error": {
                        "code": 404,
                        "status": "NOT_FOUND",
                        "message": "models/gemini-2.5-flash is not found for API version v1beta,"
                        " or is not supported for generateContent.",
                    }
                },
                None,
                provider="gemini",
            ),
            ModelUnavailable,
            id="gemini-404-not-found",
        ),
        pytest.param(
            lambda: cohere.classify_error(
                404, {}, {"message": "model 'command-r' not found"}, provider="cohere"
            ),
            ModelUnavailable,
            id="cohere-404-model",
        ),
        pytest.param(
            lambda: replicate.classify_error(
                404,
                {},
                b'{"title":"Not found","detail":"Model not found","status":404}',
                provider="replicate",
            ),
            ModelUnavailable,
            id="replicate-404-model",
        ),
        pytest.param(
            # A wrong base URL: 404 naming no model stays a rejected input.
            lambda: openai_compat.classify_error(404, {}, b"404 page not found", provider="x"),
            RejectedInput,
            id="404-no-model",
        ),
        pytest.param(
            # A retired *parameter* is the input's fault, not the model's.
            lambda: openai_compat.classify_error(
                400,
                {},
                b'{"error":{"message":"max_tokens is no longer supported, use'
                b' max_completion_tokens","type":"invalid_request_error"}}',
                provider="openai",
            ),
            RejectedInput,
            id="400-retired-parameter",
        ),
    ],
)
def test_model_gone_is_one_class_across_adapters(classify: object, expected: type) -> None:
    error = classify()  # type: ignore[operator]
    assert type(error) is expected
    assert error.outcome == expected.outcome  # type: ignore[attr-defined]


def test_is_model_gone_table() -> None:
    assert is_model_gone(404, {"error": {"code": "model_not_found"}}, "")
    assert is_model_gone(400, None, "The model `x` has been decommissioned")
    assert not is_model_gone(400, None, "The prompt is too long for this model")
    assert not is_model_gone(429, {"error": {"code": "model_not_found"}}, "")


# -- the model loop ---------------------------------------------------------------------------


def test_groq_404_marks_the_model_and_groqs_next_model_serves(db_target: str) -> None:
    handler = ByModel({OLD: 404})
    result = _run(db_target, handler)

    assert result.provider == "groq" and result.result is not None
    assert result.result.output == f"served by {NEW}"
    assert _trace(result) == [("groq", "model_unavailable", OLD), ("groq", "ok", NEW)]
    assert handler.calls == [("groq", OLD), ("groq", NEW)]  # backup never asked
    ledger = Ledger.open(db_target)
    (mark,) = retired_models(ledger)
    assert (mark.provider, mark.model) == ("groq", OLD)
    assert "HTTP 404" in mark.reason and "does not exist" in mark.reason
    assert ledger.read("SELECT outcome, model FROM calls ORDER BY id") == [
        ("model_unavailable", OLD),
        ("ok", NEW),
    ]
    # The served call is priced at the fallback model's own prices (5 in, 7 out tokens).
    ((list_usd,),) = ledger.read("SELECT list_usd FROM calls WHERE outcome = 'ok'")
    assert list_usd == pytest.approx((5 * 0.15 + 7 * 0.6) / 1e6)
    # No provider state: the provider is neither cooling down nor disabled.
    assert ledger.read("SELECT COUNT(*) FROM provider_state") == [(0,)]


def test_decommissioned_400_too_and_the_next_run_skips_with_the_reason(db_target: str) -> None:
    first = _run(db_target, ByModel({OLD: 400}))
    assert _trace(first)[-1] == ("groq", "ok", NEW)

    handler = ByModel({})
    again = _run(db_target, handler)
    assert handler.calls == [("groq", NEW)]  # the retired model is not called at all
    skipped = again.attempts[0]
    assert (skipped.provider, skipped.outcome, skipped.model) == ("groq", "skipped", OLD)
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert skipped.error is not None
    assert skipped.error.startswith(f"model {OLD} retired on {day}: HTTP 400: The model")
    assert skipped.error.endswith(", set providers.groq.models.text")
    assert "decommissioned" in skipped.error


def test_every_model_retired_moves_on_to_the_next_provider(db_target: str) -> None:
    handler = ByModel({OLD: 404, NEW: 404})
    result = _run(db_target, handler)
    assert _trace(result) == [
        ("groq", "model_unavailable", OLD),
        ("groq", "model_unavailable", NEW),
        ("backup", "ok", "m"),
    ]
    again = ByModel({})
    second = _run(db_target, again)
    assert again.calls == [("backup", "m")]
    assert [a.outcome for a in second.attempts] == ["skipped", "skipped", "ok"]


def test_another_failure_still_moves_to_the_next_provider_not_the_next_model(
    db_target: str,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host.startswith("groq"):
            return httpx.Response(400, json={"error": {"message": "maximum context length"}})
        return httpx.Response(200, json=openai_shapes.chat_ok("b").json)

    async def go() -> RunResult:
        async with Scheduler(
            parse_config(CONFIG), db=db_target, keys=KEYS, transport=httpx.MockTransport(handler)
        ) as s:
            return await s.run(TextTask(prompt="hi"))

    result = asyncio.run(go())
    assert _trace(result) == [("groq", "rejected_input", OLD), ("backup", "ok", "m")]


def test_a_config_naming_another_model_is_not_affected_by_the_mark(db_target: str) -> None:
    _run(db_target, ByModel({OLD: 404}))
    handler = ByModel({})
    renamed = CONFIG.replace(f"[{OLD}, {NEW}]", f"[{OTHER}, {NEW}]")
    result = _run(db_target, handler, renamed)
    assert handler.calls == [("groq", OTHER)]
    assert _trace(result) == [("groq", "ok", OTHER)]


def test_a_probe_that_finds_the_model_served_lifts_the_mark(db_target: str) -> None:
    ledger = Ledger.open(db_target)
    mark_retired(ledger, "groq", OLD, "HTTP 404: gone")
    handler = ByModel({})
    probe = _run(db_target, handler, options=RunOptions(provider="groq", probe=True))
    assert probe.ok and handler.calls == [("groq", OLD)]  # tried despite the mark
    assert retired_models(ledger) == []
    after = ByModel({})
    _run(db_target, after)
    assert after.calls == [("groq", OLD)]  # the first choice again


def test_a_retired_model_is_not_counted_against_health(db_target: str) -> None:
    _run(db_target, ByModel({OLD: 404}))
    ledger = Ledger.open(db_target)
    now = time.time()
    health = provider_health(ledger, now - 3600, now + 1)
    assert (health["groq"].calls, health["groq"].faults) == (2, 0)

    keys = KeyStore(environ=KEYS)
    reports = {r.provider: r for r in quota_report(parse_config(CONFIG), ledger, keys)}
    assert (reports["groq"].calls_24h, reports["groq"].failures_24h) == (2, 0)
    assert [m.model for m in reports["groq"].retired] == [OLD]


def test_streaming_gets_the_same_model_loop(db_target: str) -> None:
    handler = ByModel({OLD: 404}, stream=True)

    async def go() -> list[object]:
        async with Scheduler(
            parse_config(CONFIG), db=db_target, keys=KEYS, transport=httpx.MockTransport(handler)
        ) as s:
            return [event async for event in s.stream(TextTask(prompt="hi"))]

    events = asyncio.run(go())
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    final = events[-1]
    assert isinstance(final, RunResult)
    assert text == f"served {NEW}"
    assert _trace(final) == [("groq", "model_unavailable", OLD), ("groq", "ok", NEW)]
    assert [m.model for m in retired_models(Ledger.open(db_target))] == [OLD]

    again = ByModel({}, stream=True)
    handler.calls.clear()

    async def go_again() -> list[object]:
        async with Scheduler(
            parse_config(CONFIG), db=db_target, keys=KEYS, transport=httpx.MockTransport(again)
        ) as s:
            return [event async for event in s.stream(TextTask(prompt="hi"))]

    second = asyncio.run(go_again())[-1]
    assert isinstance(second, RunResult)
    assert again.calls == [("groq", NEW)]
    assert _trace(second) == [("groq", "skipped", OLD), ("groq", "ok", NEW)]


# -- end to end, through the CLI ---------------------------------------------------------------


def _cli_config(tmp_path: Path, fake: FakeServer) -> Path:
    groq = (
        f"adapter: openai\nbase_url: {fake.base_url('groq')}\napi_key_env: GROQ_API_KEY\n"
        f"models: {{text: [{OLD}, {NEW}]}}"
    )
    backup = (
        f"adapter: openai\nbase_url: {fake.base_url('b')}\napi_key_env: B_KEY\nmodels: {{text: m}}"
    )
    return write_config(
        tmp_path / "providers.yaml", {"groq": groq, "b": backup}, {"text": ["groq", "b"]}
    )


def test_cli_run_serves_on_groqs_second_model_and_the_mark_outlives_the_process(
    tmp_path: Path, fake: FakeServer
) -> None:
    _cli_config(tmp_path, fake)
    chat = openai_shapes.chat_path("groq")
    fake.route(
        "POST",
        chat,
        model_lists.groq_model_not_found(OLD),
        openai_shapes.chat_ok("from the fallback", model=NEW),
        openai_shapes.chat_ok("again", model=NEW),
    )
    env = clean_env(**KEYS)

    first = run_cli("run", "text", "hi", "--json", env=env)
    assert first.code == 0, first.stderr
    data = first.json()
    assert (data["provider"], data["model"], data["output"]) == ("groq", NEW, "from the fallback")
    assert [(a["provider"], a["outcome"]) for a in data["attempts"]] == [  # type: ignore[union-attr]
        ("groq", "model_unavailable"),
        ("groq", "ok"),
    ]

    report = run_cli("quota", "report", "--json", env=env).json()
    groq = next(p for p in report["providers"] if p["provider"] == "groq")  # type: ignore[union-attr]
    assert [m["model"] for m in groq["retired_models"]] == [OLD]
    assert groq["failures_24h"] == 0 and groq["status"] == "ok"
    table = run_cli("quota", "report", env=env)
    assert f"retired: groq {OLD} since" in table.stdout

    second = run_cli("run", "text", "hi", env=env)
    assert (second.code, second.stdout.strip()) == (0, "again")
    assert f"groq: model {OLD} retired on " in second.stderr
    assert "set providers.groq.models.text" in second.stderr
    models_asked = [r.json()["model"] for r in fake.requests(chat)]
    assert models_asked == [OLD, NEW, NEW]  # the second process never called the retired model
    assert fake.count(openai_shapes.chat_path("b")) == 0
