"""What the scheduler adds to one text call: dispatcher + durable ledger + adapter vs raw httpx.

Runs N text tasks through the whole dispatcher with a real quota.db (WAL, synchronous=NORMAL,
two quota rules so reservations do real work) against an instant in-process provider
(httpx.MockTransport), and the same HTTP request N times with plain httpx. Prints p50/p95 per
task of each, the added milliseconds, and tasks per second. Also the adapter alone (SDK request
building and response parsing, no ledger), to show where the added time goes.

    python benchmarks/dispatch_overhead.py [--tasks N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
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


def _instant(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=BODY, headers={"content-type": "application/json"})


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] * 1000, ordered[int(len(ordered) * 0.95)] * 1000


async def _measure(tasks: int, db: Path) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {"raw": [], "adapter": [], "dispatcher": []}
    transport = httpx.MockTransport(_instant)
    scheduler = Scheduler(
        parse_config(CONFIG), db=db, keys={"BENCH_KEY": "sk-bench"}, transport=transport
    )
    async with scheduler, httpx.AsyncClient(transport=transport) as http:
        dispatcher = scheduler.dispatcher
        task = TextTask(prompt="Say ok.", max_tokens=16)
        adapter = dispatcher._adapter("bench", "sk-bench")
        payload = {"model": "bench-model", "messages": [{"role": "user", "content": "Say ok."}]}
        headers = {"Authorization": "Bearer sk-bench"}
        for _ in range(200):  # warm-up: imports, connection pool, SQLite page cache
            await dispatcher.run(task)
        for _ in range(tasks):
            start = time.perf_counter()
            response = await http.post(
                "http://bench.invalid/v1/chat/completions", json=payload, headers=headers
            )
            response.json()
            timings["raw"].append(time.perf_counter() - start)

            start = time.perf_counter()
            await adapter.run(task, model="bench-model")
            timings["adapter"].append(time.perf_counter() - start)

            start = time.perf_counter()
            result = await dispatcher.run(task)
            timings["dispatcher"].append(time.perf_counter() - start)
            assert result.ok
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        timings = asyncio.run(_measure(args.tasks, Path(tmp) / "quota.db"))
    raw50, raw95 = _percentiles(timings["raw"])
    ad50, ad95 = _percentiles(timings["adapter"])
    d50, d95 = _percentiles(timings["dispatcher"])
    print(f"tasks: {args.tasks} (durable SQLite ledger, 2 quota rules, instant provider)")
    print(f"raw httpx call        p50 {raw50:.3f} ms  p95 {raw95:.3f} ms")
    print(f"adapter alone         p50 {ad50:.3f} ms  p95 {ad95:.3f} ms")
    print(f"whole dispatcher      p50 {d50:.3f} ms  p95 {d95:.3f} ms")
    print(f"added vs raw httpx    p50 {d50 - raw50:.3f} ms  p95 {d95 - raw95:.3f} ms")
    print(
        f"added vs adapter      p50 {d50 - ad50:.3f} ms  p95 {d95 - ad95:.3f} ms (ledger + policy)"
    )
    print(f"tasks per second      {1 / statistics.fmean(timings['dispatcher']):.0f} (one process)")


if __name__ == "__main__":
    main()
