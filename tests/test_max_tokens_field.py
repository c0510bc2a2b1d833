"""OpenAI's own API caps answers with `max_completion_tokens`; every other OpenAI-compatible
server keeps `max_tokens`. Checked on the wire: the body each request carries, for a whole
answer, a stream and a multimodal question, decided per provider by `max_tokens_field` or, when
unset, by the endpoint (OpenAI API reference, "Create chat completion": `max_tokens` deprecated
in favour of `max_completion_tokens`, which reasoning models require)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from scheduler.config.loader import load_config
from scheduler.config.schema import ProviderConfig
from scheduler.errors import ConfigError
from scheduler.providers.openai_compat import OpenAICompatAdapter
from scheduler.tasks import MultimodalTask, ProviderResult, TextDelta, TextTask
from tests.fakes import openai_shapes as shapes
from tests.fakes.server import FakeServer, Reply

TASK = TextTask("Hi", max_tokens=64)


def _adapter(http: httpx.AsyncClient, **config: object) -> OpenAICompatAdapter:
    return OpenAICompatAdapter(
        name="p",
        config=ProviderConfig.model_validate({"adapter": "openai", **config}),
        api_key="sk-test-000000000001",
        http=http,
        timeout_s=5.0,
    )


def _text_body(fake: FakeServer, task: TextTask = TASK, **config: object) -> dict[str, object]:
    fake.reset()
    fake.route("POST", shapes.chat_path("p"), shapes.chat_ok("ok"))

    async def go() -> ProviderResult:
        async with httpx.AsyncClient() as http:
            return await _adapter(http, base_url=fake.base_url("p"), **config).text(task, model="m")

    asyncio.run(go())
    [request] = fake.requests(shapes.chat_path("p"))
    body: dict[str, object] = request.json()
    return body


def test_configured_completion_tokens_go_on_the_wire_and_max_tokens_does_not(
    fake: FakeServer,
) -> None:
    body = _text_body(fake, max_tokens_field="max_completion_tokens")
    assert body == {
        "model": "m",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_completion_tokens": 64,
    }
    # Unset, at any endpoint but OpenAI's: the field every compatible server takes.
    assert _text_body(fake)["max_tokens"] == 64
    assert "max_completion_tokens" not in _text_body(fake)
    assert "max_tokens" in _text_body(fake, max_tokens_field="max_tokens")
    # No cap asked, none sent under either name.
    uncapped = _text_body(fake, TextTask("Hi"), max_tokens_field="max_completion_tokens")
    assert set(uncapped) == {"model", "messages"}


def test_a_stream_and_a_multimodal_question_follow_the_same_setting(
    fake: FakeServer, tmp_path: Path
) -> None:
    chunks = tuple(shapes.chat_stream_chunks(["o", "k"]))
    fake.route("POST", shapes.chat_path("p"), Reply(chunks=chunks), shapes.chat_ok("Red."))
    image = tmp_path / "pic.png"
    image.write_bytes(shapes.tiny_png())
    question = MultimodalTask("Colour?", media=image, mime_type="image/png", max_tokens=20)

    async def go() -> list[TextDelta | ProviderResult]:
        async with httpx.AsyncClient() as http:
            adapter = _adapter(
                http, base_url=fake.base_url("p"), max_tokens_field="max_completion_tokens"
            )
            events = [event async for event in adapter.stream_text(TASK, model="m")]
            events.append(await adapter.multimodal(question, model="m"))
            return events

    events = asyncio.run(go())
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["o", "k"]
    streamed, asked = (r.json() for r in fake.requests(shapes.chat_path("p")))
    assert streamed["stream"] is True
    assert (streamed["max_completion_tokens"], "max_tokens" in streamed) == (64, False)
    assert (asked["max_completion_tokens"], "max_tokens" in asked) == (20, False)


@pytest.mark.parametrize(
    ("base_url", "field"),
    [
        (None, "max_completion_tokens"),  # the adapter's default endpoint is OpenAI's
        ("https://api.openai.com/v1", "max_completion_tokens"),
        ("https://api.groq.com/openai/v1", "max_tokens"),
        ("https://openrouter.ai/api/v1", "max_tokens"),
        ("https://api.openai.com.example.net/v1", "max_tokens"),  # only OpenAI's own host
    ],
)
def test_unset_the_endpoint_decides(base_url: str | None, field: str) -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        payload, headers = shapes.chat_ok("ok").encode()
        return httpx.Response(200, content=payload, headers=headers)

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
            await _adapter(http, base_url=base_url).text(TASK, model="m")

    asyncio.run(go())
    [request] = sent
    body = json.loads(request.content)
    assert body[field] == 64
    assert set(body) == {"model", "messages", field}


def test_the_default_table_caps_openai_with_completion_tokens_and_groq_with_max_tokens() -> None:
    config, _ = load_config(None)
    resolved = {
        name: _adapter_for(config.providers[name]).completion_tokens
        for name in ("openai", "groq", "openrouter", "mistral", "together", "local")
    }
    assert resolved == {
        "openai": True,
        "groq": False,
        "openrouter": False,
        "mistral": False,
        "together": False,
        "local": False,
    }


def _adapter_for(provider: ProviderConfig) -> OpenAICompatAdapter:
    return OpenAICompatAdapter(
        name="x", config=provider, api_key=None, http=httpx.AsyncClient(), timeout_s=1.0
    )


def test_the_setting_is_refused_where_no_openai_chat_reads_it(tmp_path: Path) -> None:
    bad = tmp_path / "providers.yaml"
    bad.write_text(
        "providers:\n"
        "  a: {adapter: anthropic, api_key_env: A, models: {text: m},"
        " max_tokens_field: max_completion_tokens}\n"
        "tasks: {text: [a]}\n"
    )
    with pytest.raises(ConfigError) as refused:
        load_config(str(bad))
    assert "max_tokens_field" in str(refused.value)
    typo = tmp_path / "typo.yaml"
    typo.write_text(
        "providers:\n"
        "  a: {adapter: openai, api_key_env: A, models: {text: m}, max_tokens_field: max_token}\n"
        "tasks: {text: [a]}\n"
    )
    with pytest.raises(ConfigError):
        load_config(str(typo))
