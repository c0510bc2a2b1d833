"""What the scheduler adds to one text call, and how close its ledger is to raw SQLite.

Runs N text tasks through the whole dispatcher with a real quota.db (WAL, synchronous=NORMAL,
two quota rules so reservations do real work) against an instant in-process provider
(httpx.MockTransport), the same HTTP request N times with plain httpx, and the floor: the same
ledger work done with raw sqlite3 on another file with the ledger's schema (BEGIN IMMEDIATE; a
conditional upsert per rule and a reservations insert; COMMIT; BEGIN IMMEDIATE; the delete of
the hold, an update per rule and the calls insert; COMMIT). Every SQL statement the ledger
connection runs is counted by a sqlite3 trace callback and printed per dispatch: the common
path (no block, no reported limits) and a provider that sends x-ratelimit-* on every answer.

Targets (issue 15, item 1): <= 8 statements in 2 transactions per common dispatch, the ledger's
part <= 3x the floor's latency, p99 <= 5x p50. One table; exit status 1 when a target is missed.

    python benchmarks/dispatch_overhead.py [--tasks N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from scheduler import Scheduler
from scheduler.config import parse_config
from scheduler.tasks import TextTask

CONFIG = """
providers:
  bench:
    adapter: openai
    base_url: http://bench.invalid/v1
    api_key_env: BENCH_KEY
    models: {text: bench-model}
    quotas:
      - {metric: requests, limit: 100000000, per: day, reset: "00:00", tz: America/Los_Angeles}
      - {metric: tokens, limit: 100000000000, per: minute}
tasks:
  text: [bench]
"""
BODY = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "bench-model",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
).encode()
LIMIT_HEADERS = {
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-remaining-requests": "9999",
    "x-ratelimit-reset-requests": "6ms",
    "x-ratelimit-limit-tokens": "1000000",
    "x-ratelimit-remaining-tokens": "999990",
    "x-ratelimit-reset-tokens": "1ms",
}
_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK")


def _answer(headers: dict[str, str]) -> Callable[[httpx.Request], httpx.Response]:
    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, content=BODY, headers={"content-type": "application/json", **headers}
        )

    return reply


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


class Trace:
    """Counts what the ledger's sqlite3 connection runs: statements and transactions."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, sql: str) -> None:
        self.lines.append(sql.strip().split()[0].upper() if sql.strip() else "")

    def take(self) -> tuple[int, int]:
        lines, self.lines = self.lines, []
        statements = sum(1 for word in lines if word not in _CONTROL)
        return statements, sum(1 for word in lines if word == "BEGIN")


async def _measure(tasks: int, db: Path, headers: dict[str, str]) -> dict[str, object]:
    timings: dict[str, list[float]] = {"raw": [], "adapter": [], "dispatcher": []}
    transport = httpx.MockTransport(_answer(headers))
    scheduler = Scheduler(
        parse_config(CONFIG), db=db, keys={"BENCH_KEY": "sk-bench"}, transport=transport
    )
    trace = Trace()
    counts: list[tuple[int, int]] = []
    async with scheduler, httpx.AsyncClient(transport=transport) as http:
        dispatcher = scheduler.dispatcher
        task = TextTask(prompt="Say ok.", max_tokens=16)
        adapter = dispatcher._adapter("bench", "sk-bench")
        payload = {"model": "bench-model", "messages": [{"role": "user", "content": "Say ok."}]}
        auth = {"Authorization": "Bearer sk-bench"}
        for _ in range(200):  # warm-up: imports, connection pool, SQLite page cache
            await dispatcher.run(task)
        dispatcher.ledger.sync._db.raw.set_trace_callback(trace)
        for _ in range(tasks):
            start = time.perf_counter()
            response = await http.post(
                "http://bench.invalid/v1/chat/completions", json=payload, headers=auth
            )
            response.json()
            timings["raw"].append(time.perf_counter() - start)

            start = time.perf_counter()
            await adapter.run(task, model="bench-model")
            timings["adapter"].append(time.perf_counter() - start)

            trace.take()
            start = time.perf_counter()
            result = await dispatcher.run(task)
            timings["dispatcher"].append(time.perf_counter() - start)
            counts.append(trace.take())
            assert result.ok
        dispatcher.ledger.sync._db.raw.set_trace_callback(None)
    statements = statistics.median(c[0] for c in counts)
    transactions = statistics.median(c[1] for c in counts)
    return {"timings": timings, "statements": statements, "transactions": transactions}


def floor(tasks: int, db: Path) -> tuple[list[float], int]:
    """The same ledger work in raw sqlite3, on a file with the ledger's own schema (the same
    tables and indexes: what the database itself must do): per dispatch, a conditional upsert
    per rule and a reservations insert in one transaction, the delete of the hold, an update
    per rule and the calls insert in another. No Python around it but the loop."""
    from scheduler.ledger.db import connect
    from scheduler.ledger.store import _INSERT_CALL, _RESERVE_WINDOW, _SETTLE_WINDOW

    connect(str(db)).close()  # create and migrate, as the ledger's file is
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")  # as the ledger: checkpoints off the hot path
    insert_hold = (
        "INSERT INTO reservations (id, provider, task, model, created_at, expires_at, pid,"
        " items) VALUES (?, 'bench', 'text', 'm', ?, ?, 1, ?)"
    )
    trace = Trace()
    conn.set_trace_callback(trace)
    samples = []
    rules = (("requests/day", "requests", "day", 1.0), ("tokens/minute", "tokens", "minute", 20.0))
    for n in range(tasks + 200):
        start = time.perf_counter()
        now = time.time()
        hold_id = random.getrandbits(62) + 1
        conn.execute("BEGIN IMMEDIATE")
        for rule, metric, per, amount in rules:
            conn.execute(
                _RESERVE_WINDOW, ("bench", rule, 0, metric, per, 2**40, amount, 1e12)
            ).fetchone()
        conn.execute(insert_hold, (hold_id, now, now + 90, json.dumps(rules)))
        conn.execute("COMMIT")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DELETE FROM reservations WHERE id = ?", (hold_id,))
        for rule, _, _, amount in rules:
            conn.execute(_SETTLE_WINDOW, (amount, amount, amount, "bench", rule, 0))
        conn.execute(
            _INSERT_CALL,
            (now, "text", "bench", "m", "ok", None, 1.0, 1, "{}", 0.0, 0.0, hold_id, None),
        )
        conn.execute("COMMIT")
        if n >= 200:
            samples.append(time.perf_counter() - start)
        statements, _ = trace.take()
    conn.close()
    return samples, statements


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        common = asyncio.run(_measure(args.tasks, Path(tmp) / "quota.db", {}))
        limits = asyncio.run(_measure(args.tasks // 3, Path(tmp) / "limits.db", LIMIT_HEADERS))
        floor_samples, floor_statements = floor(args.tasks, Path(tmp) / "floor.db")
    timings = common["timings"]
    assert isinstance(timings, dict)
    raw50, ad50, d50 = (_pct(timings[k], 0.5) for k in ("raw", "adapter", "dispatcher"))
    d99 = _pct(timings["dispatcher"], 0.99)
    ledger50 = d50 - ad50  # the ledger and the policy around it
    floor50 = _pct(floor_samples, 0.5)
    rows = [
        ("raw httpx call p50 (ms)", f"{raw50:.3f}", ""),
        ("adapter alone p50 (ms)", f"{ad50:.3f}", ""),
        (
            "whole dispatcher p50 / p95 (ms)",
            f"{d50:.3f} / {_pct(timings['dispatcher'], 0.95):.3f}",
            "",
        ),
        ("added vs raw httpx p50 (ms)", f"{d50 - raw50:.3f}", ""),
        ("ledger + policy p50 (ms)", f"{ledger50:.3f}", ""),
        ("raw-sqlite floor p50 (ms)", f"{floor50:.3f}", ""),
        ("ledger / floor", f"{ledger50 / floor50:.2f}x", "<= 3x"),
        ("dispatcher p99 / p50", f"{d99 / d50:.2f}x", "<= 5x"),
        ("statements per dispatch (common)", f"{common['statements']:g}", "<= 8"),
        ("transactions per dispatch (common)", f"{common['transactions']:g}", "<= 2"),
        ("statements, rate-limit headers", f"{limits['statements']:g}", ""),
        ("statements of the floor", f"{floor_statements}", ""),
        (
            "tasks per second (one process)",
            f"{1 / statistics.fmean(timings['dispatcher']):.0f}",
            "",
        ),
    ]
    missed = [
        ledger50 / floor50 > 3,
        d99 / d50 > 5,
        float(str(common["statements"])) > 8,
        float(str(common["transactions"])) > 2,
    ]
    print(f"dispatch overhead: {args.tasks} tasks, load {os.getloadavg()[0]:.2f}")
    print(f"{'figure':<38} {'value':>18}  target")
    for name, value, target in rows:
        print(f"{name:<38} {value:>18}  {target}")
    if any(missed):
        print("MISSED a target", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
