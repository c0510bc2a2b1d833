"""A call's timeout starts when its request is sent (issue 11 class 9).

Each row puts time before the request (an adapter importing its SDK and building its client, as
the first call of every CLI process does) and after it (the provider thinking), through the real
dispatcher and the real HTTP client stack on an in-process transport. The clock is the event
loop's own; every bound asserted is a relation between the scripted times and `timeout_s`, never
a fixed deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest

from scheduler import Scheduler, dispatcher
from scheduler.config import parse_config
from scheduler.dispatcher import RunResult
from scheduler.providers.openai_compat import OpenAICompatAdapter
from scheduler.tasks import TextTask

TIMEOUT_S = 0.3
CONFIG = f"""
settings: {{timeout_s: {TIMEOUT_S}, retries: 0}}
providers:
  a: {{adapter: openai, base_url: "http://a.test/v1", api_key_env: A_KEY, models: {{text: m}}}}
tasks:
  text: [a]
"""
OK = {
    "id": "x",
    "object": "chat.completion",
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "done"}}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


@dataclass
class Timeline:
    """Loop times of what happened: the call asked for, its request sent, the run over."""

    asked: float = 0.0
    sent: list[float] | None = None
    done: float = 0.0


@dataclass(frozen=True)
class Row:
    warm_up_s: float  # time the adapter spends before its request (the SDK's first import)
    answer_after_s: float | None  # the provider's thinking time; None: it never answers
    served: bool
    requests: int


ROWS = {
    # Twice the timeout spent importing: the provider answers at once, so the call is served.
    "slow-sdk-start-then-fast-answer": Row(2 * TIMEOUT_S, 0.0, served=True, requests=1),
    # The same start, an answer within the timeout once sent: still served.
    "slow-sdk-start-then-answer-within-timeout": Row(
        2 * TIMEOUT_S, TIMEOUT_S / 3, served=True, requests=1
    ),
    # A fast start and a provider that never answers: timed out, timeout_s after the request.
    "fast-start-provider-hangs": Row(0.0, None, served=False, requests=1),
    # A slow start and a provider that never answers: the timeout is counted from the request.
    "slow-sdk-start-provider-hangs": Row(2 * TIMEOUT_S, None, served=False, requests=1),
}


def _run(
    monkeypatch: pytest.MonkeyPatch,
    row: Row,
    tmp_db: str,
) -> tuple[RunResult, Timeline]:
    timeline = Timeline(sent=[])
    original: Callable[..., Awaitable[object]] = OpenAICompatAdapter.text

    async def slow_start_text(self: OpenAICompatAdapter, task: TextTask, *, model: str) -> object:
        await asyncio.sleep(row.warm_up_s)  # stands in for `import openai` and the client build
        return await original(self, task, model=model)

    async def provider(request: httpx.Request) -> httpx.Response:
        assert timeline.sent is not None
        timeline.sent.append(asyncio.get_running_loop().time())
        if row.answer_after_s is None:
            await asyncio.Event().wait()  # never answers; only the dispatcher's bound ends it
        await asyncio.sleep(row.answer_after_s or 0.0)
        return httpx.Response(200, json=OK)

    monkeypatch.setattr(OpenAICompatAdapter, "text", slow_start_text)

    async def go() -> RunResult:
        async with Scheduler(
            parse_config(CONFIG),
            db=tmp_db,
            keys={"A_KEY": "sk-a"},
            transport=httpx.MockTransport(provider),
        ) as scheduler:
            loop = asyncio.get_running_loop()
            timeline.asked = loop.time()
            result = await scheduler.run(TextTask(prompt="hi"))
            timeline.done = loop.time()
            return result

    return asyncio.run(go()), timeline


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
def test_the_timeout_starts_when_the_request_is_sent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object, row: Row
) -> None:
    result, timeline = _run(monkeypatch, row, "quota.db")
    assert timeline.sent is not None
    assert len(timeline.sent) == row.requests
    (sent,) = timeline.sent
    # The warm-up happened before the request, however long it took.
    assert sent - timeline.asked >= row.warm_up_s
    (attempt,) = result.attempts
    if row.served:
        assert (attempt.outcome, attempt.error, result.ok) == ("ok", None, True)
        return
    assert (attempt.outcome, attempt.error) == ("transient", f"timed out after {TIMEOUT_S:g} s")
    # Given up at least timeout_s after the request was sent, and long before the warm-up cap
    # (the bound before any request) could have ended it instead.
    assert timeline.done - sent >= TIMEOUT_S
    assert timeline.done - sent < dispatcher.WARM_UP_S


def test_a_call_that_never_sends_a_request_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """An adapter stuck before its request (an import that hangs) is still given up on: after the
    warm-up cap plus timeout_s, and no request ever left."""
    monkeypatch.setattr(dispatcher, "WARM_UP_S", TIMEOUT_S)
    row = Row(warm_up_s=3600.0, answer_after_s=0.0, served=False, requests=0)
    result, timeline = _run(monkeypatch, row, "quota.db")
    assert timeline.sent == []
    (attempt,) = result.attempts
    assert (attempt.outcome, attempt.error) == ("transient", f"timed out after {TIMEOUT_S:g} s")
    assert timeline.done - timeline.asked >= TIMEOUT_S + dispatcher.WARM_UP_S
