"""Streamed text through the SDK adapters (Gemini's google-genai, Cohere's v2 client).

The same checks as tests/test_streaming.py, through the real CLI against wire-level fakes that
speak each provider's documented stream (tests/fakes/gemini_shapes.py `stream_chunks`,
cohere_shapes.py `stream_chunks`, with their sources): tokens reach the terminal before the
provider sends its last event, usage is committed from the final event, a stream cut after its
first token is kept, marked truncated and exits 4, and a failure before the first token falls
over to the next provider. Then, per adapter, the conversation on the wire: system prompt,
user and assistant turns, an image part, temperature and stop sequences, whole and streamed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from scheduler.config.schema import ProviderConfig
from scheduler.errors import ProviderError, RejectedInput, Transient
from scheduler.providers.base import Adapter
from scheduler.providers.cohere import CohereAdapter
from scheduler.providers.gemini import GeminiAdapter
from scheduler.providers.http import make_client
from scheduler.tasks import ImagePart, Message, ProviderResult, TextDelta, TextTask
from tests.conftest import openai_provider, write_config
from tests.fakes import cohere_shapes, gemini_shapes, openai_shapes
from tests.fakes.server import FakeServer, Reply
from tests.test_streaming import PATIENCE_S, _calls, _holds, _read_until, _start

GEMINI_MODEL = gemini_shapes.DEFAULT_MODEL
COHERE_MODEL = "command-a-03-2025"
ADAPTERS = ["gemini", "cohere"]
# The fake's path for provider "a" of each adapter (base_url `{fake.url}/a`).
PATHS = {
    "gemini": gemini_shapes.stream_path(GEMINI_MODEL, "a"),
    "cohere": cohere_shapes.chat_path("a"),
}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16  # only passed through, never decoded


def _config(tmp_path: Path, fake: FakeServer, adapter: str) -> Path:
    model = GEMINI_MODEL if adapter == "gemini" else COHERE_MODEL
    first = f"adapter: {adapter}\nbase_url: {fake.url}/a\napi_key_env: A_KEY\n"
    first += f"models: {{text: {model}}}"
    providers = {"a": first, "b": openai_provider(fake.base_url("b"), "B_KEY")}
    return write_config(tmp_path / "providers.yaml", providers, {"text": ["a", "b"]})


def _chunks(
    adapter: str, pieces: list[str], *, input_tokens: int, output_tokens: int
) -> list[bytes]:
    if adapter == "gemini":
        return gemini_shapes.stream_chunks(
            pieces, prompt_tokens=input_tokens, candidates_tokens=output_tokens
        )
    return cohere_shapes.stream_chunks(
        pieces, input_tokens=input_tokens, output_tokens=output_tokens
    )


def _sent_stream_flag(adapter: str, fake: FakeServer) -> None:
    """The request asked for a stream, in the provider's own way."""
    [request] = fake.requests(PATHS[adapter])
    if adapter == "gemini":
        assert request.query == {"alt": ["sse"]}
    else:
        assert request.json()["stream"] is True


# --------------------------------------------------------------------------------------------
# Through the CLI
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_tokens_are_printed_before_the_last_event_and_usage_comes_from_the_final_one(
    tmp_path: Path, fake: FakeServer, adapter: str
) -> None:
    gate = threading.Event()
    chunks = _chunks(adapter, ["Once ", "upon ", "a time."], input_tokens=21, output_tokens=9)
    # Gemini: three text events, then the final one. Cohere: message-start, content-start and
    # two deltas, then the last delta, content-end and message-end.
    held = 2 if adapter == "gemini" else 4
    fake.route("POST", PATHS[adapter], Reply(chunks=(*chunks[:held], gate, *chunks[held:])))
    proc = _start(tmp_path, _config(tmp_path, fake, adapter))
    try:
        early = _read_until(proc, b"Once ")
        assert not gate.is_set()  # printed while the provider had not finished
        assert proc.poll() is None
    finally:
        gate.set()
    out, err = proc.communicate(timeout=PATIENCE_S)
    assert proc.returncode == 0, err
    assert (early + out).decode() == "Once upon a time.\n"
    assert err.decode().startswith("a: ok")
    ((provider, outcome, usage),) = _calls(tmp_path)
    assert (provider, outcome) == ("a", "ok")
    # The final event's counts, not a running total from an earlier one, nor an estimate.
    assert json.loads(str(usage))["input_tokens"] == 21
    assert json.loads(str(usage))["output_tokens"] == 9
    _sent_stream_flag(adapter, fake)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_stream_cut_after_its_first_token_is_kept_marked_and_exits_4(
    tmp_path: Path, fake: FakeServer, adapter: str
) -> None:
    chunks = _chunks(adapter, ["The answer ", "is "], input_tokens=4, output_tokens=50)
    kept = 2 if adapter == "gemini" else 4  # the two text events, and no final event
    fake.route("POST", PATHS[adapter], Reply(chunks=tuple(chunks[:kept]), cut=True))
    fake.route("POST", "/b/v1/chat/completions", default=openai_shapes.chat_ok("never"))
    proc = _start(tmp_path, _config(tmp_path, fake, adapter))
    out, err = proc.communicate(timeout=PATIENCE_S)
    assert proc.returncode == 4, err
    assert out.decode() == "The answer is \n"
    lines = err.decode().splitlines()
    assert lines[0].startswith("a: truncated (stream broke after its first token")
    assert lines[-1] == "sched: error: the answer broke off after it began (kept and billed)"
    assert fake.count("/b/v1/chat/completions") == 0  # no fallback after the first token
    ((provider, outcome, usage),) = _calls(tmp_path)
    assert (provider, outcome) == ("a", "truncated")
    billed = json.loads(str(usage))["output_tokens"]
    assert 1 <= billed < 50  # billed by what arrived, not by the count the end never sent
    assert _holds(tmp_path) == 0


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_failure_reported_inside_the_stream_after_a_token_is_truncated(
    tmp_path: Path, fake: FakeServer, adapter: str
) -> None:
    """Gemini's error event (the Google RPC envelope as SSE data) and Cohere's message-end
    with finish_reason ERROR both end a started answer: kept, exit 4, no fallback."""
    if adapter == "gemini":
        chunks = gemini_shapes.stream_chunks(
            ["Half "], error=(503, "UNAVAILABLE", "The model is overloaded.")
        )
    else:
        chunks = cohere_shapes.stream_chunks(["Half "], finish_reason="ERROR")
    fake.route("POST", PATHS[adapter], Reply(chunks=tuple(chunks)))
    fake.route("POST", "/b/v1/chat/completions", default=openai_shapes.chat_ok("never"))
    proc = _start(tmp_path, _config(tmp_path, fake, adapter))
    out, err = proc.communicate(timeout=PATIENCE_S)
    assert proc.returncode == 4, err
    assert out.decode() == "Half \n"
    first = err.decode().splitlines()[0]
    assert first.startswith("a: truncated")
    assert ("overloaded" if adapter == "gemini" else "finish_reason ERROR") in first
    assert fake.count("/b/v1/chat/completions") == 0
    assert [(p, o) for p, o, _ in _calls(tmp_path)] == [("a", "truncated")]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_failure_before_the_first_token_falls_over_to_the_next_provider(
    tmp_path: Path, fake: FakeServer, adapter: str
) -> None:
    error = gemini_shapes.unavailable() if adapter == "gemini" else cohere_shapes.server_error()
    fake.route("POST", PATHS[adapter], default=error)
    chunks = openai_shapes.chat_stream_chunks(["from b"], prompt_tokens=3, completion_tokens=2)
    fake.route("POST", "/b/v1/chat/completions", default=Reply(chunks=tuple(chunks)))
    proc = _start(tmp_path, _config(tmp_path, fake, adapter), "-v")
    out, err = proc.communicate(timeout=PATIENCE_S)
    assert proc.returncode == 0, err
    assert out == b"from b\n"
    calls = [(p, o) for p, o, _ in _calls(tmp_path)]
    assert calls[0][0] == "a" and calls[0][1] != "ok"
    assert calls[-1] == ("b", "ok")


# --------------------------------------------------------------------------------------------
# The adapters: the conversation on the wire, and the stream's edges
# --------------------------------------------------------------------------------------------

CONVERSATION = TextTask(
    messages=(
        Message("system", "Answer in French."),
        Message("user", ("What is this?", ImagePart(PNG, "image/png"))),
        Message("assistant", "Un carré."),
        Message("user", "And its colour?"),
    ),
    temperature=0.4,
    stop=("END",),
    max_tokens=50,
)


def _adapter(kind: str, fake: FakeServer, http: Any) -> Adapter:
    cls = GeminiAdapter if kind == "gemini" else CohereAdapter
    return cls(
        name="a",
        config=ProviderConfig(adapter=kind, base_url=f"{fake.url}/a"),
        api_key="test-key-0001",
        http=http,
        timeout_s=5.0,
    )


def _collect(
    kind: str, fake: FakeServer, task: TextTask, *, stream: bool
) -> list[TextDelta | ProviderResult]:
    """What the adapter yields (streamed) or returns (whole); a ProviderError propagates."""

    async def go() -> list[TextDelta | ProviderResult]:
        async with make_client(5.0) as http:
            adapter = _adapter(kind, fake, http)
            if not stream:
                return [await adapter.text(task, model=_model(kind))]
            pieces: AsyncIterator[TextDelta | ProviderResult] = adapter.stream_text(
                task, model=_model(kind)
            )
            return [piece async for piece in pieces]

    return asyncio.run(go())


def _model(kind: str) -> str:
    return GEMINI_MODEL if kind == "gemini" else COHERE_MODEL


def _b64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_gemini_sends_the_conversation_in_its_own_shape(fake: FakeServer, stream: bool) -> None:
    if stream:
        path = gemini_shapes.stream_path(GEMINI_MODEL, "a")
        fake.route("POST", path, Reply(chunks=tuple(gemini_shapes.stream_chunks(["Rouge."]))))
    else:
        path = gemini_shapes.generate_path(GEMINI_MODEL, "a")
        fake.route("POST", path, gemini_shapes.generate_ok("Rouge."))
    *_, result = _collect("gemini", fake, CONVERSATION, stream=stream)
    assert isinstance(result, ProviderResult) and result.output == "Rouge."
    body = fake.requests(path)[0].json()
    assert body["systemInstruction"]["parts"] == [{"text": "Answer in French."}]
    contents = body["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    text, image = contents[0]["parts"]
    assert text == {"text": "What is this?"}
    inline = image.get("inlineData") or image["inline_data"]
    assert (inline.get("mimeType") or inline["mime_type"]) == "image/png"
    assert _b64(inline["data"]) == PNG
    assert contents[1]["parts"] == [{"text": "Un carré."}]
    assert contents[2]["parts"] == [{"text": "And its colour?"}]
    assert body["generationConfig"] == {
        "maxOutputTokens": 50,
        "temperature": 0.4,
        "stopSequences": ["END"],
    }


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_cohere_sends_the_conversation_in_its_own_shape(fake: FakeServer, stream: bool) -> None:
    path = cohere_shapes.chat_path("a")
    if stream:
        fake.route("POST", path, Reply(chunks=tuple(cohere_shapes.stream_chunks(["Rouge."]))))
    else:
        fake.route("POST", path, cohere_shapes.chat_ok("Rouge."))
    *_, result = _collect("cohere", fake, CONVERSATION, stream=stream)
    assert isinstance(result, ProviderResult) and result.output == "Rouge."
    body = fake.requests(path)[0].json()
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert body == {
        "model": COHERE_MODEL,
        "messages": [
            {"role": "system", "content": "Answer in French."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": data_url}},
                ],
            },
            {"role": "assistant", "content": "Un carré."},
            {"role": "user", "content": "And its colour?"},
        ],
        "max_tokens": 50,
        "temperature": 0.4,
        "stop_sequences": ["END"],
        "stream": stream,
    }


def test_gemini_merges_consecutive_turns_of_one_role(fake: FakeServer) -> None:
    path = gemini_shapes.generate_path(GEMINI_MODEL, "a")
    fake.route("POST", path, gemini_shapes.generate_ok("ok"))
    task = TextTask(messages=(Message("user", "One."), Message("user", "Two.")))
    _collect("gemini", fake, task, stream=False)
    contents = fake.requests(path)[0].json()["contents"]
    assert contents == [{"role": "user", "parts": [{"text": "One."}, {"text": "Two."}]}]


def test_gemini_stream_yields_each_piece_then_the_final_counts(fake: FakeServer) -> None:
    chunks = gemini_shapes.stream_chunks(
        ["Bon", "jour."], prompt_tokens=7, candidates_tokens=3, thoughts_tokens=11
    )
    fake.route("POST", gemini_shapes.stream_path(GEMINI_MODEL, "a"), Reply(chunks=tuple(chunks)))
    *pieces, result = _collect("gemini", fake, TextTask("Hi"), stream=True)
    assert pieces == [TextDelta("Bon"), TextDelta("jour.")]
    assert isinstance(result, ProviderResult)
    assert (result.output, result.model) == ("Bonjour.", GEMINI_MODEL)
    # Thinking tokens are billed as output: 3 answer + 11 thinking.
    assert (result.usage["input_tokens"], result.usage["output_tokens"]) == (7, 14)


def _stream_error(kind: str, fake: FakeServer, chunks: list[bytes]) -> ProviderError:
    path = PATHS[kind]
    fake.route("POST", path, Reply(chunks=tuple(chunks)))
    with pytest.raises(ProviderError) as caught:
        _collect(kind, fake, TextTask("Hi"), stream=True)
    return caught.value


def test_gemini_stream_that_ends_without_a_finish_reason_is_transient(fake: FakeServer) -> None:
    chunks = gemini_shapes.stream_chunks(["Half"])[:-1]  # closed cleanly, final event missing
    error = _stream_error("gemini", fake, chunks)
    assert isinstance(error, Transient)
    assert "finishReason" in str(error)


def test_gemini_blocked_prompt_in_a_stream_is_rejected_input(fake: FakeServer) -> None:
    blocked = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "modelVersion": "m"}
    error = _stream_error("gemini", fake, [openai_shapes.sse(blocked)])
    assert isinstance(error, RejectedInput)
    assert "PROHIBITED_CONTENT" in str(error)


def test_gemini_error_answer_before_the_stream_is_classified(fake: FakeServer) -> None:
    fake.route("POST", PATHS["gemini"], gemini_shapes.per_day_quota())
    with pytest.raises(ProviderError) as caught:
        _collect("gemini", fake, TextTask("Hi"), stream=True)
    assert caught.value.outcome == "quota_exhausted"
    assert fake.count(PATHS["gemini"]) == 1  # the SDK's retries stay off for streams too


def test_cohere_stream_skips_thinking_and_reads_tokens_then_billed_units(
    fake: FakeServer,
) -> None:
    chunks = cohere_shapes.stream_chunks(["Bon", "jour."], input_tokens=6, output_tokens=4)
    thinking = openai_shapes.sse(
        {
            "type": "content-delta",
            "index": 0,
            "delta": {"message": {"content": {"thinking": "hm"}}},
        },
        event="content-delta",
    )
    chunks.insert(2, thinking)
    chunks.append(b"data: [DONE]\n\n")
    fake.route(
        "POST", PATHS["cohere"], Reply(chunks=tuple(chunks), headers=cohere_shapes.trial_headers(7))
    )
    *pieces, result = _collect("cohere", fake, TextTask("Hi"), stream=True)
    assert pieces == [TextDelta("Bon"), TextDelta("jour.")]
    assert isinstance(result, ProviderResult)
    assert result.output == "Bonjour."
    assert (result.usage["input_tokens"], result.usage["output_tokens"]) == (6, 4)
    assert [r.remaining for r in result.rate_limits] == [7.0]  # the trial header, streamed too


def test_cohere_stream_that_ends_without_message_end_is_transient(fake: FakeServer) -> None:
    error = _stream_error("cohere", fake, cohere_shapes.stream_chunks(["Half"], end=False))
    assert isinstance(error, Transient)
    assert "message-end" in str(error)


def test_cohere_stream_event_that_is_not_json_is_transient_not_skipped(fake: FakeServer) -> None:
    chunks = cohere_shapes.stream_chunks(["Half"])
    chunks.insert(3, b"event: content-delta\ndata: {not json\n\n")
    error = _stream_error("cohere", fake, chunks)
    assert isinstance(error, Transient)
    assert "not JSON" in str(error)


def test_cohere_error_answer_before_the_stream_is_classified(fake: FakeServer) -> None:
    fake.route("POST", PATHS["cohere"], cohere_shapes.trial_per_month())
    with pytest.raises(ProviderError) as caught:
        _collect("cohere", fake, TextTask("Hi"), stream=True)
    assert caught.value.outcome == "quota_exhausted"
    assert fake.count(PATHS["cohere"]) == 1
