"""Class 1 of issue 11: nothing a provider sends can lower a window, a budget or a later run.

Each row is a provider `a` (OpenAI-compatible, on a real HTTP server on 127.0.0.1) that answers
one hostile way, run through the real `sched run text` process twice (the second run shows what
the first left behind), then `sched quota report`. Provider `b` answers plainly, so a run that
`a` cannot serve still ends with an answer. Every row asserts: exit codes; stderr is one line
with no traceback; the ledger counts at least what was served (`used` never below it, and never
below zero); what was not trusted is flagged on the calls row; every stored block and reset is
at most `max_block_s` ahead; `PRAGMA integrity_check` is ok.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.conftest import clean_env, openai_provider, run_cli, write_config
from tests.fakes import openai_shapes as shapes
from tests.fakes.server import FakeServer, Reply

MAX_BLOCK_S = 7200.0  # settings.max_block_s of these runs
PRICING = "pricing: {usd_per_mtok_input: 10, usd_per_mtok_output: 30}"
QUOTAS = "{metric: tokens, limit: 1000000, per: day}\n{metric: requests, limit: 100, per: day}"
SETTINGS = f"allow_paid: true\nretries: 0\nmax_block_s: {MAX_BLOCK_S:g}\nbudget: {{daily_usd: 5}}"
PROMPT = "hello there"


def _usage(**usage: object) -> Reply:
    """A 200 whose `usage` object says what the row wants."""
    reply = shapes.chat_ok("from a")
    assert isinstance(reply.json, dict)
    return replace(reply, json={**reply.json, "usage": usage})


def _raw_usage(text: str) -> Reply:
    """A 200 whose usage is raw JSON text (NaN, Infinity, 401-digit numbers)."""
    body = json.dumps(shapes.chat_ok("from a").json).replace(
        '"usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}',
        f'"usage": {text}',
    )
    assert text in body
    return Reply(body=body, headers={"content-type": "application/json"})


def _headers(**headers: str) -> Reply:
    return replace(
        shapes.chat_ok("from a"), headers={k.replace("_", "-"): v for k, v in headers.items()}
    )


def _error(status: int, headers: dict[str, str], code: str = "rate_limit_exceeded") -> Reply:
    return Reply(
        status=status,
        json={"error": {"message": "slow down", "type": "requests", "code": code}},
        headers=headers,
    )


@dataclass(frozen=True)
class Row:
    reply: Reply
    served_by: str = "a"  # who answers the first run
    flagged: str | None = None  # a word the calls row's flag must hold
    a_blocked: bool = False  # whether the second run must skip `a` (blocked, at most max_block_s)
    poison: Callable[[sqlite3.Connection, float], None] | None = None  # rows an old ledger left


def _poison_state(db: sqlite3.Connection, now: float) -> None:
    db.execute(
        "INSERT INTO provider_state (provider, blocked_until, block_outcome, block_reason,"
        " disabled, updated_at) VALUES ('a', 1e300, 'quota_exhausted', 'old hint', 0, ?)",
        (now,),
    )


def _poison_limits(db: sqlite3.Connection, now: float) -> None:
    db.execute(
        'INSERT INTO provider_limits (provider, metric, remaining, "limit", resets_at,'
        " reported_at) VALUES ('a', 'requests', 5, 10, 1e300, ?)",
        (now,),
    )


HUGE = "9" * 401
ROWS = {
    "negative tokens": Row(
        _usage(prompt_tokens=-300_000, completion_tokens=-300_000, total_tokens=-600_000),
        flagged="not trusted",
    ),
    "401-digit completion tokens": Row(
        _raw_usage(f'{{"prompt_tokens": 5, "completion_tokens": {HUGE}, "total_tokens": 5}}'),
        flagged="401-digit",
    ),
    "a trillion tokens": Row(
        _usage(prompt_tokens=5, completion_tokens=10**12, total_tokens=10**12 + 5),
        flagged="not trusted",
    ),
    "float tokens beyond the cap": Row(
        _usage(prompt_tokens=1e300, completion_tokens=7, total_tokens=1e300), flagged="301-digit"
    ),
    "NaN and Infinity tokens": Row(
        _raw_usage('{"prompt_tokens": NaN, "completion_tokens": Infinity, "total_tokens": NaN}')
    ),
    "negative prompt, sane completion": Row(
        _usage(prompt_tokens=-5, completion_tokens=7, total_tokens=2), flagged="input_tokens -5"
    ),
    "tokens as strings": Row(
        _usage(prompt_tokens="5", completion_tokens="-700000", total_tokens="x")
    ),
    "NaN rate-limit headers": Row(
        _headers(
            x_ratelimit_remaining_requests="nan",
            x_ratelimit_limit_requests="nan",
            x_ratelimit_reset_requests="nan",
        )
    ),
    "rate-limit reset 10^18 seconds away": Row(
        _headers(
            x_ratelimit_remaining_requests="0",
            x_ratelimit_limit_requests="10",
            x_ratelimit_reset_requests="999999999999999999",
        ),
        a_blocked=True,
    ),
    "infinite remaining": Row(_headers(x_ratelimit_remaining_tokens="inf")),
    "negative remaining": Row(
        _headers(x_ratelimit_remaining_requests="-5", x_ratelimit_reset_requests="30s"),
        a_blocked=True,
    ),
    "Retry-After 10^18 on a 429": Row(
        _error(429, {"retry-after": "999999999999999999"}), served_by="b", a_blocked=True
    ),
    "Retry-After NaN on a 429": Row(
        _error(429, {"retry-after": "NaN"}), served_by="b", a_blocked=True
    ),
    "retry-after-ms 1e308 on a 503": Row(
        Reply(status=503, json={"error": {"message": "busy"}}, headers={"retry-after-ms": "1e308"}),
        served_by="b",
        a_blocked=True,
    ),
    "quota exhausted until year 10^12": Row(
        _error(429, {"retry-after": "31536000000000000000"}, code="insufficient_quota"),
        served_by="b",
        a_blocked=True,
    ),
    "an old ledger row blocked until 1e300": Row(
        shapes.chat_ok("from a"), served_by="b", a_blocked=True, poison=_poison_state
    ),
    "an old ledger row resetting at 1e300": Row(shapes.chat_ok("from a"), poison=_poison_limits),
}


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
def test_a_hostile_answer_never_lowers_the_ledger(row: Row, tmp_path: Path) -> None:
    with FakeServer() as fake:
        config = write_config(
            tmp_path / "providers.yaml",
            {
                "a": openai_provider(fake.base_url("a"), "A_KEY", QUOTAS) + "\n" + PRICING,
                "b": openai_provider(fake.base_url("b"), "B_KEY"),
            },
            {"text": ["a", "b"]},
            SETTINGS,
        )
        fake.route("POST", shapes.chat_path("a"), default=row.reply)
        fake.route("POST", shapes.chat_path("b"), default=shapes.chat_ok("from b"))
        env = clean_env(A_KEY="sk-a-test", B_KEY="sk-b-test")
        db_path = tmp_path / "quota.db"
        started = time.time()
        if row.poison is not None:
            assert run_cli("--config", str(config), "quota", "report", env=env).code == 0
            with sqlite3.connect(db_path) as db:
                row.poison(db, started)

        first = run_cli("--config", str(config), "run", "text", PROMPT, "--json", env=env)
        assert first.code == 0, first.stderr
        answer = first.json()
        assert answer["output"] == f"from {row.served_by}"
        # --json shows the usage the ledger counted, never the provider's untrusted figures.
        shown = answer["usage"]
        assert isinstance(shown, dict)
        assert all(isinstance(v, int | float) and 0 <= v <= 1e9 for v in shown.values()), shown
        assert "Traceback" not in first.stderr
        second = run_cli("--config", str(config), "run", "text", PROMPT, env=env)
        assert second.code == 0, second.stderr
        trace = _one_line(second.stderr)
        if row.a_blocked:
            assert second.stdout.strip() == "from b"
            assert trace.startswith("a: ") and "b: ok" in trace
        report = run_cli("--config", str(config), "quota", "report", env=env)
        assert report.code == 0 and "Traceback" not in report.stderr, report.stderr
        report_json = run_cli("--config", str(config), "quota", "report", "--json", env=env)
        assert report_json.code == 0, report_json.stderr
        served_by_a = fake.count(shapes.chat_path("a"))

    db = sqlite3.connect(db_path)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    ok_calls = db.execute(
        "SELECT usage, cost_usd, flag FROM calls WHERE provider = 'a' AND outcome = 'ok'"
    ).fetchall()
    windows = dict(
        db.execute("SELECT metric, used FROM usage_windows WHERE provider = 'a'").fetchall()
    )
    # `used` never below what was served: one request and at least the prompt per 200 answer.
    assert windows.get("requests", 0) >= len(ok_calls)
    prompt_tokens = len(ok_calls) * 1  # the estimate counts at least one token per prompt
    assert windows.get("tokens", 0) >= prompt_tokens
    assert all(value >= 0 for value in windows.values())
    for usage_json, cost, flag in ok_calls:
        usage = json.loads(usage_json)
        assert all(0 <= float(v) <= 1e9 for v in usage.values()), usage
        assert 0 <= cost <= 1.0
        if row.flagged is not None:
            assert flag is not None and row.flagged in flag
        else:
            assert flag is None
    budget = db.execute("SELECT used, reserved FROM usage_windows WHERE provider = '*budget*'")
    for used, reserved in budget.fetchall():
        assert used >= 0 and reserved == 0
    # Every stored instant is believable and formats.
    horizon = time.time() + MAX_BLOCK_S + 1
    for (until,) in db.execute("SELECT blocked_until FROM provider_state"):
        assert until <= horizon
    for remaining, _limit, resets_at in db.execute(
        'SELECT remaining, "limit", resets_at FROM provider_limits'
    ):
        assert remaining is not None and remaining >= 0
        assert resets_at <= horizon
    # A request that was not refused reached `a` at most once per run.
    assert served_by_a <= 2
