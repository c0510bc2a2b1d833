"""Provider faults through the real CLI: each row is one way a provider misbehaves.

Provider `a` (OpenAI-compatible, on a fake) misbehaves on every request; provider `b` answers.
With `timeout_s: 2, retries: 1, max_retry_wait_s: 3` every row must: exit 0 through `b` with no
traceback; classify `a`'s failure; record the cool-down or skip time in `provider_state` (or none);
stay inside the time the configuration allows, counted from a's first request (never from the
process start, which on a busy machine is seconds of imports); and log the failure, with its
tries, in `calls`.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from email.utils import formatdate
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import clean_env, openai_provider, run_cli, write_config
from tests.fakes import openai_shapes as shapes
from tests.fakes.raw_server import RawServer, truncated_response
from tests.fakes.server import FakeServer, Reply

TIMEOUT_S, RETRIES, MAX_RETRY_WAIT_S = 2.0, 1, 3.0
SETTINGS = f"timeout_s: {TIMEOUT_S:g}\nretries: {RETRIES}\nmax_retry_wait_s: {MAX_RETRY_WAIT_S:g}"
A_ZONE = "America/Los_Angeles"  # a's daily quota resets at midnight here (Gemini's free tier)
A_QUOTA = f"{{metric: requests, limit: 100, per: day, tz: {A_ZONE}}}"
DEFAULT_COOLDOWN_S = 30.0  # dispatcher.DEFAULT_COOLDOWN_S, restated: the test pins the value
FIRST_BACKOFF_S = (0.5, 1.0)  # tenacity's first exponential step (0.5 s) plus up to 0.5 s jitter
# Timings run from a's first request as the server saw it, so the interpreter's start-up and the
# first SDK import (seconds on a busy machine, and outside timeout_s) are not in them. Between two
# requests the client only classifies an answer, writes the ledger and builds the next request:
# this is the slack allowed for that on a loaded 2-core machine.
SLACK_S = 1.5
ARRIVAL_EPS_S = 0.05  # a request is sent a little before the server has read it
# What no fault may exceed: every try up to its timeout, every wait up to max_retry_wait_s.
MAX_FAULT_S = (RETRIES + 1) * TIMEOUT_S + RETRIES * MAX_RETRY_WAIT_S + SLACK_S
BLOCK_TOLERANCE_S = 0.25  # between classifying the answer and writing the block

Expected = Callable[[float, float], float | None]  # (failed at, reply built at) -> blocked_until


def after(seconds: float) -> Expected:
    """A wait relative to the failure: blocked until then plus the hint."""
    return lambda failed_at, built_at: failed_at + seconds


def at(moment: Callable[[float], float]) -> Expected:
    """An absolute time the provider named (from the clock when the reply was built)."""
    return lambda failed_at, built_at: moment(built_at)


def next_midnight(zone: str, after_ts: float) -> float:
    local = datetime.fromtimestamp(after_ts, ZoneInfo(zone))
    return datetime.combine(local.date() + timedelta(days=1), clock(0), ZoneInfo(zone)).timestamp()


def a_window_reset(failed_at: float, built_at: float) -> float:
    """No usable hint: skipped until a's own daily window resets (midnight Los Angeles)."""
    return next_midnight(A_ZONE, failed_at)


def no_block(failed_at: float, built_at: float) -> None:
    return None


def _utc_midnight_ms(now: float) -> int:
    return int((now // 86400 + 1) * 86400 * 1000)


def _http_date_in_40s(now: float) -> float:
    return float(int(now) + 40)


def _epoch_ms_in_45s(now: float) -> float:
    return int((now + 45) * 1000) / 1000


def _rfc3339_in_55s(now: float) -> float:
    return now + 55.25


@dataclass(frozen=True)
class Fault:
    reply: Callable[[float], Reply | bytes]  # bytes: raw HTTP for RawServer (a truncated body)
    outcome: str
    error: str
    tries: int
    blocked_until: Expected
    min_wait_s: float  # timeouts, honoured hints and backoff the run must sit through
    drip_s: float = 0.0


def _json_error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status=status, json={"error": {"message": message}}, headers=headers or {})


CLOUDFLARE_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    "</body>\r\n</html>\r\n"
)
LOGIN_PAGE = (
    "<!DOCTYPE html><html><head><title>Sign in - Corporate Proxy</title></head>"
    "<body><form action='/login'>...</form></body></html>"
)
SSE_STREAM = (
    'data: {"id":"c1","choices":[{"delta":{"content":"hi"},"index":0}]}\n\ndata: [DONE]\n\n'
)
RATE_LIMIT = "Rate limit exceeded"
SERVICE_UNAVAILABLE = "Service Unavailable"


def _gemini_429(quota_id: str, retry_delay: str) -> Reply:
    """Gemini's 429 RESOURCE_EXHAUSTED with QuotaFailure and RetryInfo details."""
    return Reply(
        status=429,
        json={
            "error": {
                "code": 429,
                "message": "Resource has been exhausted (e.g. check quota).",
                "status": "RESOURCE_EXHAUSTED",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                        "violations": [
                            {
                                "quotaMetric": "generativelanguage.googleapis.com/"
                                "generate_content_free_tier_requests",
                                "quotaId": quota_id,
                                "quotaDimensions": {"location": "global", "model": "m"},
                                "quotaValue": "10",
                            }
                        ],
                    },
                    {
                        "@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": retry_delay,
                    },
                ],
            }
        },
    )


def _chat_json() -> bytes:
    return json.dumps(shapes.chat_ok("slow").json).encode()


def _raw_ok(now: float) -> bytes:
    body = _chat_json()
    return truncated_response(body, announced=len(body), content_type="application/json")


EXHAUSTED = "Resource has been exhausted (e.g. check quota)."

FAULTS: dict[str, Fault] = {
    "latency-spike-beyond-timeout": Fault(
        lambda now: Reply(delay_s=5, json=shapes.chat_ok("too late").json),
        "transient", "timed out after 2 s", 2, after(DEFAULT_COOLDOWN_S),
        2 * TIMEOUT_S + FIRST_BACKOFF_S[0],
    ),
    "500-burst": Fault(
        lambda now: shapes.server_error(),
        "transient", f"HTTP 500: {shapes.SERVER_ERROR_MESSAGE}", 2, after(DEFAULT_COOLDOWN_S),
        FIRST_BACKOFF_S[0],
    ),
    "502-burst-html-from-proxy": Fault(
        lambda now: Reply(status=502, body=CLOUDFLARE_502, headers={"content-type": "text/html"}),
        "transient", "HTTP 502: 502 Bad Gateway", 2, after(DEFAULT_COOLDOWN_S),
        FIRST_BACKOFF_S[0],
    ),
    "503-burst-retry-after-1": Fault(
        lambda now: _json_error(503, SERVICE_UNAVAILABLE, {"retry-after": "1"}),
        "transient", f"HTTP 503: {SERVICE_UNAVAILABLE}", 2, after(1), 1.0,
    ),
    "503-retry-after-past-max-wait": Fault(
        lambda now: _json_error(503, SERVICE_UNAVAILABLE, {"retry-after": "20"}),
        "transient", f"HTTP 503: {SERVICE_UNAVAILABLE}", 1, after(20), 0.0,
    ),
    "503-retry-after-0": Fault(
        lambda now: _json_error(503, SERVICE_UNAVAILABLE, {"retry-after": "0"}),
        "transient", f"HTTP 503: {SERVICE_UNAVAILABLE}", 2, no_block, 0.0,
    ),
    "529-burst-overloaded": Fault(
        lambda now: shapes.overloaded_529(),
        "transient", "HTTP 529: Overloaded", 2, after(DEFAULT_COOLDOWN_S), FIRST_BACKOFF_S[0],
    ),
    "429-retry-after-seconds-within-max-wait": Fault(
        lambda now: _json_error(429, RATE_LIMIT, {"retry-after": "2"}),
        "rate_limited", f"HTTP 429: {RATE_LIMIT}", 2, after(2), 2.0,
    ),
    "429-retry-after-seconds": Fault(
        lambda now: _json_error(429, RATE_LIMIT, {"retry-after": "20"}),
        "rate_limited", f"HTTP 429: {RATE_LIMIT}", 1, after(20), 0.0,
    ),
    "429-retry-after-http-date": Fault(
        lambda now: _json_error(
            429, RATE_LIMIT, {"retry-after": formatdate(_http_date_in_40s(now), usegmt=True)}
        ),
        "rate_limited", f"HTTP 429: {RATE_LIMIT}", 1, at(_http_date_in_40s), 0.0,
    ),
    "429-go-duration-reset-with-remaining-0": Fault(
        lambda now: _json_error(
            429,
            RATE_LIMIT,
            {
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": "2m59.56s",
                "x-ratelimit-remaining-tokens": "5000",  # not spent: its 1s reset is no hint
                "x-ratelimit-reset-tokens": "1s",
            },
        ),
        "rate_limited", f"HTTP 429: {RATE_LIMIT}", 1, after(179.56), 0.0,
    ),
    "429-epoch-ms-x-ratelimit-reset": Fault(
        lambda now: _json_error(
            429,
            RATE_LIMIT,
            {
                "X-RateLimit-Limit": "20",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(int((now + 45) * 1000)),
            },
        ),
        "rate_limited", f"HTTP 429: {RATE_LIMIT}", 1, at(_epoch_ms_in_45s), 0.0,
    ),
    "429-rfc3339-reset": Fault(
        lambda now: _json_error(
            429,
            RATE_LIMIT,
            {
                "anthropic-ratelimit-requests-remaining": "0",
                "anthropic-ratelimit-requests-reset": datetime.fromtimestamp(
                    _rfc3339_in_55s(now), UTC
                ).isoformat().replace("+00:00", "Z"),
            },
        ),
        "rate_limited", f"HTTP 429: {RATE_LIMIT}", 1, at(_rfc3339_in_55s), 0.0,
    ),
    "429-retry-delay-in-json-body": Fault(
        lambda now: _gemini_429("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "37s"),
        "rate_limited", f"HTTP 429: {EXHAUSTED}", 1, after(37), 0.0,
    ),
    "402-openrouter-credits": Fault(
        lambda now: shapes.openrouter_credits(),
        "quota_exhausted", f"HTTP 402: {shapes.OPENROUTER_CREDITS_MESSAGE}", 1, a_window_reset,
        0.0,
    ),
    "402-gemini-prepayment-depleted": Fault(
        lambda now: Reply(
            status=402,
            json={
                "error": {
                    "code": 402,
                    "message": "Your prepayment credits are depleted.",
                    "status": "RESOURCE_EXHAUSTED",
                }
            },
        ),
        "quota_exhausted", "HTTP 402: Your prepayment credits are depleted.", 1, a_window_reset,
        0.0,
    ),
    "429-insufficient-quota": Fault(
        lambda now: shapes.insufficient_quota(),
        "quota_exhausted", f"HTTP 429: {shapes.INSUFFICIENT_QUOTA_MESSAGE}", 1, a_window_reset,
        0.0,
    ),
    "429-credit-balance-exhausted": Fault(
        lambda now: Reply(
            status=429,
            json={
                "error": {
                    "message": "You have no credits remaining.",
                    "type": "insufficient_quota",
                    "code": "credit_balance_exhausted",
                }
            },
        ),
        "quota_exhausted", "HTTP 429: You have no credits remaining.", 1, a_window_reset, 0.0,
    ),
    "400-credit-balance-too-low": Fault(
        lambda now: Reply(
            status=400,
            json={
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "message": "Your credit balance is too low to access the Anthropic API.",
                },
            },
        ),
        "quota_exhausted", "HTTP 400: Your credit balance is too low to access the Anthropic API.",
        1, a_window_reset, 0.0,
    ),
    "429-groq-tokens-per-day": Fault(
        lambda now: shapes.groq_daily_tokens(),  # retry-after: 578
        "quota_exhausted", f"HTTP 429: {shapes.GROQ_TPD_MESSAGE}"[:300], 1, after(578), 0.0,
    ),
    "429-openrouter-free-models-per-day": Fault(
        lambda now: shapes.openrouter_free_daily(_utc_midnight_ms(now)),
        "quota_exhausted", f"HTTP 429: {shapes.OPENROUTER_FREE_DAILY_MESSAGE}", 1,
        at(lambda now: _utc_midnight_ms(now) / 1000), 0.0,
    ),
    "429-gemini-per-day-ignores-retry-delay": Fault(
        lambda now: _gemini_429("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "40s"),
        "quota_exhausted", f"HTTP 429: {EXHAUSTED}", 1, a_window_reset, 0.0,
    ),
    "malformed-json": Fault(
        lambda now: Reply(
            body='{"id": "chatcmpl-1", "choices": [{"message": {"content": "hi"',
            headers={"content-type": "application/json"},
        ),
        "transient", "malformed response: not JSON (application/json)", 2,
        after(DEFAULT_COOLDOWN_S), FIRST_BACKOFF_S[0],
    ),
    "truncated-body": Fault(
        lambda now: truncated_response(
            _chat_json()[:40], announced=len(_chat_json()), content_type="application/json"
        ),
        "transient", "connection to HOST failed: RemoteProtocolError", 2, after(DEFAULT_COOLDOWN_S),
        FIRST_BACKOFF_S[0],
    ),
    "wrong-content-type-event-stream": Fault(
        lambda now: Reply(body=SSE_STREAM, headers={"content-type": "text/event-stream"}),
        "transient", "malformed response: not JSON (text/event-stream)", 2,
        after(DEFAULT_COOLDOWN_S), FIRST_BACKOFF_S[0],
    ),
    "connection-reset": Fault(
        lambda now: Reply(close=True),
        "transient", "connection to HOST failed: RemoteProtocolError", 2, after(DEFAULT_COOLDOWN_S),
        FIRST_BACKOFF_S[0],
    ),
    "html-error-page-with-200": Fault(
        lambda now: Reply(body=LOGIN_PAGE, headers={"content-type": "text/html; charset=utf-8"}),
        "transient", "malformed response: not JSON (text/html; charset=utf-8)", 2,
        after(DEFAULT_COOLDOWN_S), FIRST_BACKOFF_S[0],
    ),
    # A body that trickles in a byte every 12 ms never trips httpx's per-read timeout, so one
    # call runs past timeout_s (275 bytes: 3.3 s per try). See the report: the dispatcher should
    # bound each try with asyncio.timeout(timeout_s).
    "slow-drip-body-past-timeout": Fault(
        _raw_ok, "transient", "timed out after 2 s", 2, after(DEFAULT_COOLDOWN_S),
        2 * TIMEOUT_S + FIRST_BACKOFF_S[0], drip_s=0.012,
    ),
}  # fmt: skip

XFAIL: dict[str, str] = {}  # rows that document a known bug (none open)


def _params() -> list[object]:
    return [
        pytest.param(
            fault,
            id=name,
            marks=[pytest.mark.xfail(reason=XFAIL[name], strict=True)] if name in XFAIL else [],
        )
        for name, fault in FAULTS.items()
    ]


@pytest.mark.parametrize("fault", _params())
def test_a_provider_fault_falls_over_and_is_recorded(
    tmp_path: Path, fake: FakeServer, fault: Fault
) -> None:
    built_at = time.time()
    reply = fault.reply(built_at)
    raw_payload = reply if isinstance(reply, bytes) else b""
    with RawServer(raw_payload, drip_s=fault.drip_s) as raw:
        a_url = raw.base_url("a") if isinstance(reply, bytes) else fake.base_url("a")
        write_config(
            tmp_path / "providers.yaml",
            {
                "a": openai_provider(a_url, "A_KEY", quotas=A_QUOTA),
                "b": openai_provider(fake.base_url("b"), "B_KEY"),
            },
            {"text": ["a", "b"]},
            settings=SETTINGS,
        )
        if isinstance(reply, Reply):
            fake.route("POST", shapes.chat_path("a"), default=reply)
        fake.route("POST", shapes.chat_path("b"), default=shapes.chat_ok("from b"))

        result = run_cli("run", "text", "hi", "--json", env=clean_env(A_KEY="sk-a", B_KEY="sk-b"))
        a_path = "/a/v1/chat/completions"
        a_arrivals = raw.arrivals(a_path) + [r.at for r in fake.requests(shapes.chat_path("a"))]
        b_arrivals = [r.at for r in fake.requests(shapes.chat_path("b"))]
        a_requests = len(a_arrivals)

    # Served by the fallback, with a trace line and no traceback.
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr
    label = fault.outcome.replace("_", " ")
    (trace,) = result.stderr.splitlines()
    trace = _hostless(trace)
    assert trace.startswith(f"a: {label} ({fault.error}) · b: ok "), trace
    data = result.json()
    assert (data["provider"], data["output"]) == ("b", "from b")
    attempts = data["attempts"]
    assert isinstance(attempts, list)
    assert [(x["provider"], x["outcome"], _hostless(x["error"])) for x in attempts] == [
        ("a", fault.outcome, fault.error),
        ("b", "ok", None),
    ]
    assert a_requests == fault.tries
    assert fake.count(shapes.chat_path("b")) == 1

    conn = sqlite3.connect(tmp_path / "quota.db")
    try:
        calls = conn.execute(
            "SELECT provider, outcome, tries, error, ts, latency_ms FROM calls ORDER BY id"
        ).fetchall()
        states = conn.execute(
            "SELECT provider, block_outcome, blocked_until, disabled FROM provider_state"
        ).fetchall()
        windows = conn.execute("SELECT provider, used, reserved FROM usage_windows").fetchall()
        holds = conn.execute("SELECT COUNT(*) FROM reservations").fetchone()
        integrity = conn.execute("PRAGMA integrity_check").fetchone()
    finally:
        conn.close()

    # The failure is one calls row with its outcome and tries; a's hold was released.
    assert [(*row[:3], _hostless(row[3])) for row in calls] == [
        ("a", fault.outcome, fault.tries, fault.error),
        ("b", "ok", 1, None),
    ]
    failed_at, latency_ms = calls[0][4], calls[0][5]
    assert windows == [("a", 0.0, 0.0)]
    assert holds == (0,)
    assert integrity == ("ok",)

    # The cool-down or skip time every process will honour.
    expected = fault.blocked_until(failed_at, built_at)
    if expected is None:
        assert states == []
    else:
        assert len(states) == 1
        provider, block_outcome, blocked_until, disabled = states[0]
        assert (provider, block_outcome, disabled) == ("a", fault.outcome, 0)
        assert blocked_until == pytest.approx(expected, abs=BLOCK_TOLERANCE_S)

    # Time: at least the waits the provider asked for, never more than the settings allow, from
    # a's first request to b's (the fallover).
    jitter = FIRST_BACKOFF_S[1] - FIRST_BACKOFF_S[0] if fault.min_wait_s else 0.0
    in_fault_s = b_arrivals[0] - min(a_arrivals)
    assert latency_ms >= fault.min_wait_s * 1000
    assert fault.min_wait_s - ARRIVAL_EPS_S <= in_fault_s <= fault.min_wait_s + jitter + SLACK_S
    assert in_fault_s < MAX_FAULT_S


def _hostless(text: object) -> object:
    """A connection failure names the host it could not reach; the table says HOST."""
    return re.sub(r"127\.0\.0\.1:\d+", "HOST", text) if isinstance(text, str) else text
