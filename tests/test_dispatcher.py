"""Dispatcher policy with an in-process transport: retries, hints, skips, fallback order."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from scheduler import Scheduler
from scheduler.config import parse_config
from scheduler.dispatcher import RunResult
from scheduler.ledger import Ledger
from scheduler.tasks import TextTask

OK = {
    "id": "x",
    "object": "chat.completion",
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "done"}}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


def error(
    status: int, headers: dict[str, str] | None = None, body: object = None
) -> httpx.Response:
    return httpx.Response(status, json=body or {"error": {"message": "boom"}}, headers=headers)


CONFIG = """
settings: {retries: 2, max_retry_wait_s: 10}
providers:
  a: {adapter: openai, base_url: "http://a.test/v1", api_key_env: A_KEY, models: {text: m}}
  b: {adapter: openai, base_url: "http://b.test/v1", api_key_env: B_KEY, models: {text: m}}
  closed: {adapter: openai, enabled: false, note: "closed for good", models: {text: m}}
  nomodel: {adapter: openai, models: {image: x}}
  painter: {adapter: stability, api_key_env: A_KEY, models: {text: core}}
tasks:
  text: [closed, nomodel, painter, a, b]
"""


class Script:
    """Per-host queues of responses; records the hosts called in order."""

    def __init__(self, **replies: list[httpx.Response | Callable[[], httpx.Response]]) -> None:
        self.replies = replies
        self.calls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host.split(".")[0]
        self.calls.append(host)
        reply = self.replies[host].pop(0)
        return reply() if callable(reply) else reply


def run(target: str, script: Script, config: str = CONFIG) -> tuple[RunResult, list[float], Ledger]:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    async def go() -> RunResult:
        async with Scheduler(
            parse_config(config),
            db=target,
            keys={"A_KEY": "sk-a", "B_KEY": "sk-b"},
            transport=httpx.MockTransport(script),
            sleep=fake_sleep,
        ) as s:
            return await s.run(TextTask(prompt="hi"))

    return asyncio.run(go()), slept, Ledger.open(target)


def test_skips_without_a_call_and_says_why(db_target: str) -> None:
    result, _, _ = run(db_target, Script(a=[httpx.Response(200, json=OK)]))
    assert [(a.provider, a.outcome, a.error) for a in result.attempts] == [
        ("closed", "skipped", "closed for good"),
        ("nomodel", "skipped", "no model for text"),
        ("painter", "skipped", "stability adapter does not serve text"),
        ("a", "ok", None),
    ]
    assert (result.provider, result.result.output if result.result else None) == ("a", "done")


@pytest.mark.parametrize(
    ("headers", "body", "expected_wait"),
    [
        ({"retry-after": "3"}, None, 3.0),
        ({"retry-after-ms": "1500"}, None, 1.5),
        (
            {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2m0.5s"},
            None,
            None,
        ),
        ({}, {"error": {"message": "overloaded", "details": [{"retryDelay": "7s"}]}}, 7.0),
    ],
    ids=["seconds", "milliseconds", "go-duration-too-long", "google-retry-delay"],
)
def test_transient_retry_waits_as_long_as_the_provider_asked(
    db_target: str, headers: dict[str, str], body: object, expected_wait: float | None
) -> None:
    script = Script(
        a=[error(503, headers, body), httpx.Response(200, json=OK)],
        b=[httpx.Response(200, json=OK)],
    )
    result, slept, ledger = run(db_target, script)
    if expected_wait is None:  # a 120 s hint is longer than max_retry_wait_s: fall over at once
        assert (script.calls, slept, result.provider) == (["a", "b"], [], "b")
        return
    assert slept == [pytest.approx(expected_wait, abs=0.01)]
    assert (script.calls, result.provider) == (["a", "a"], "a")
    assert ledger.read("SELECT provider, outcome, tries FROM calls") == [("a", "ok", 2)]


def test_http_date_retry_after(db_target: str) -> None:
    def in_5_s() -> httpx.Response:  # dated when the request arrives, not before the SDK import
        when = format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
        return error(502, {"retry-after": when})

    script = Script(a=[in_5_s, httpx.Response(200, json=OK)])
    result, slept, _ = run(db_target, script)
    assert result.provider == "a" and 3.5 <= slept[0] <= 5.0


def test_transient_without_hint_backs_off_then_falls_over_and_never_returns(db_target: str) -> None:
    script = Script(a=[error(500)] * 3, b=[error(500)] * 3)
    result, slept, ledger = run(db_target, script)
    assert script.calls == ["a", "a", "a", "b", "b", "b"]  # retries: 2 per provider, a never again
    assert len(slept) == 4 and all(0 < wait <= 8 for wait in slept)
    assert slept[1] > slept[0] * 0.9  # exponential (with jitter)
    assert (result.ok, result.exit_code) == (False, 1)
    assert ledger.read("SELECT provider, outcome, tries FROM calls ORDER BY id") == [
        ("a", "transient", 3),
        ("b", "transient", 3),
    ]
    assert ledger.read("SELECT COUNT(*) FROM reservations") == [(0,)]
    usage = ledger.read("SELECT provider, used, reserved FROM usage_windows")
    assert usage == []  # no quota rules: nothing to hold


def test_short_rate_limit_is_waited_out_long_one_falls_over_with_cooldown(db_target: str) -> None:
    limited = {
        "error": {
            "message": "Rate limit reached",
            "type": "requests",
            "code": "rate_limit_exceeded",
        }
    }
    script = Script(
        a=[error(429, {"retry-after": "2"}, limited), error(429, {"retry-after": "120"}, limited)],
        b=[httpx.Response(200, json=OK)],
    )
    result, slept, ledger = run(db_target, script)
    assert slept == [2.0]
    assert (script.calls, result.provider) == (["a", "a", "b"], "b")
    ((blocked_until, outcome),) = ledger.read(
        "SELECT blocked_until, block_outcome FROM provider_state"
    )
    assert outcome == "rate_limited"
    assert blocked_until == pytest.approx(datetime.now(UTC).timestamp() + 120, abs=5)


def test_rejected_input_moves_on_without_blocking(db_target: str) -> None:
    too_long = {"error": {"message": "maximum context length", "code": "context_length_exceeded"}}
    script = Script(a=[error(400, None, too_long)], b=[httpx.Response(200, json=OK)])
    result, slept, ledger = run(db_target, script)
    assert (script.calls, slept, result.provider) == (["a", "b"], [], "b")
    assert ledger.read("SELECT COUNT(*) FROM provider_state") == [(0,)]


def test_quota_rules_hold_per_try_and_release_on_retry(db_target: str) -> None:
    config = CONFIG.replace(
        "models: {text: m}}\n  b:",
        "models: {text: m}, quotas: [{metric: requests, limit: 5, per: day}]}\n  b:",
    )
    script = Script(
        a=[
            error(503, {"retry-after": "0"}),
            error(503, {"retry-after": "0"}),
            httpx.Response(200, json=OK),
        ]
    )
    result, _, ledger = run(db_target, script, config)
    assert result.provider == "a"
    # three tries, only the served one is used; the failed tries' holds were released
    assert ledger.read("SELECT used, reserved FROM usage_windows WHERE provider='a'") == [
        (1.0, 0.0)
    ]
    assert json.loads(str(ledger.read("SELECT usage FROM calls")[0][0]))["tokens"] == 5
