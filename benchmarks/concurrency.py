"""P processes x N tasks against one ledger: throughput beside the floor's, and overspend (0).

Each process runs N text tasks through the whole Scheduler and the real OpenAI-compatible adapter
(scheduler/providers/openai_compat.py, plain httpx) answered by an in-process transport
(httpx.MockTransport), sharing one ledger: a SQLite file, or PostgreSQL. The first provider allows
LIMIT requests per day, the rest fall over to an unlimited second one; after the run the ledger's
count for it is compared with its limit (overspend must be 0).

Beside it, in the same run, the floor: P processes doing the ledger's own SQL for each task and
nothing else, through its driver layer (scheduler.ledger.db: BEGIN IMMEDIATE and its busy wait on
SQLite), on another file or schema: the conditional reservation upsert on the limited provider's
window (on the spare's when it is full) and the hold's insert, commit; the hold's delete, the
window's settle and the calls insert, commit. Target (issue 15, item 2): ledger throughput >= 0.5x
the floor's, overspend 0, on both databases. One table; exit 1 on a missed target.

    python benchmarks/concurrency.py [--processes 8] [--tasks 500] [--limit 1000]
        [--postgres postgresql+psycopg://127.0.0.1:5432/test | --no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

CONFIG = """
providers:
  limited:
    adapter: openai
    base_url: http://limited.invalid/v1
    models: {{text: m}}
    quotas: [{{metric: requests, limit: {limit}, per: day}}]
  spare:
    adapter: openai
    base_url: http://spare.invalid/v1
    models: {{text: m}}
tasks:
  text: [limited, spare]
"""
BODY = json.dumps(
    {
        "id": "x",
        "object": "chat.completion",
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
).encode()


def _worker(target: str, config_text: str, tasks: int, start_at: float, out: object) -> None:
    from scheduler import RunOptions, Scheduler
    from scheduler.config import parse_config
    from scheduler.tasks import TextTask

    async def main() -> dict[str, int]:
        served = {"limited": 0, "spare": 0}
        transport = httpx.MockTransport(
            lambda request: httpx.Response(
                200, content=BODY, headers={"content-type": "application/json"}
            )
        )
        scheduler = Scheduler(parse_config(config_text), db=target, keys={}, transport=transport)
        async with scheduler:
            warm_up = TextTask(prompt="warm up", max_tokens=4)
            await scheduler.run(warm_up, RunOptions(provider="spare"))
            time.sleep(max(0.0, start_at - time.time()))
            for _ in range(tasks):
                run = await scheduler.run(TextTask(prompt="hi", max_tokens=4))
                served[run.provider or "none"] = served.get(run.provider or "none", 0) + 1
        return served

    out.put(asyncio.run(main()))  # type: ignore[attr-defined]


def _floor_worker(target: str, tasks: int, limit: int, start_at: float, out: object) -> None:
    """The ledger's SQL per task, nothing around it (see the module docstring)."""
    from scheduler.ledger.db import connect
    from scheduler.ledger.store import _INSERT_CALL, _RESERVE_WINDOW, _SETTLE_WINDOW

    db = connect(target)
    served = {"limited": 0, "spare": 0}
    time.sleep(max(0.0, start_at - time.time()))
    for _ in range(tasks):
        now = time.time()
        hold = random.getrandbits(30) + 1  # ids fit a PostgreSQL integer
        db.begin()
        provider = "limited"
        row = db.execute(
            _RESERVE_WINDOW, (provider, "requests/day", 0, "requests", "day", 2**31 - 1, 1.0, limit)
        ).fetchone()
        if row is None:  # full: the spare one, unlimited
            provider = "spare"
            db.execute(
                _RESERVE_WINDOW,
                (provider, "requests/day", 0, "requests", "day", 2**31 - 1, 1.0, 1e300),
            ).fetchone()
        db.execute(_INSERT_HOLD, (hold, provider, now, now + 90, os.getpid(), _ITEMS))
        db.commit()
        db.begin()
        db.execute("DELETE FROM reservations WHERE id = ?", (hold,))
        db.execute(_SETTLE_WINDOW, (1.0, 1.0, 1.0, provider, "requests/day", 0))
        db.execute(
            _INSERT_CALL,
            (now, "text", provider, "m", "ok", None, 1.0, 1, "{}", 0.0, 0.0, hold, None),
        )
        db.commit()
        served[provider] += 1
    db.close()
    out.put(served)  # type: ignore[attr-defined]


_INSERT_HOLD = (
    "INSERT INTO reservations (id, provider, task, model, created_at, expires_at, pid, items)"
    " VALUES (?, ?, 'text', 'm', ?, ?, ?, ?)"
)
_ITEMS = json.dumps([["requests/day", 1.0]])


def measure(target: str, processes: int, tasks: int, limit: int, floor: bool) -> dict[str, float]:
    from scheduler.ledger import Ledger

    Ledger.open(target).close()  # create and migrate before the clock starts
    queue: multiprocessing.Queue[dict[str, int]] = multiprocessing.Queue()
    start_at = time.time() + 3.0
    work, args = (
        (_floor_worker, (target, tasks, limit, start_at, queue))
        if floor
        else (_worker, (target, CONFIG.format(limit=limit), tasks, start_at, queue))
    )
    procs = [multiprocessing.Process(target=work, args=args) for _ in range(processes)]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=600) for _ in procs]  # a dead worker ends the run
    elapsed = time.time() - start_at
    for proc in procs:
        proc.join()
    ledger = Ledger.open(target)
    rows = ledger.read(
        "SELECT COALESCE(SUM(used + reserved), 0) FROM usage_windows WHERE provider = 'limited'"
    )
    ledger.close()
    used = float(str(rows[0][0]))
    served = sum(result.get("limited", 0) for result in results)
    return {
        "tasks_per_s": processes * tasks / elapsed,
        "seconds": elapsed,
        "limited_served": served,
        "overspend": max(0.0, used - limit) + max(0, served - limit),
    }


def _postgres_schema(url: str) -> tuple[str, str]:
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("postgresql://" + url.split("://", 1)[1], autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    return f"{url}?options=-csearch_path%3D{schema}", schema


def _drop_schemas(url: str, schemas: list[str]) -> None:
    import psycopg

    with psycopg.connect("postgresql://" + url.split("://", 1)[1], autocommit=True) as admin:
        for schema in schemas:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--postgres", default="postgresql+psycopg://127.0.0.1:5432/test")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    runs: list[tuple[str, dict[str, float], dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        pair = [
            measure(str(Path(tmp) / f"{name}.db"), args.processes, args.tasks, args.limit, floor)
            for name, floor in (("quota", False), ("floor", True))
        ]
        runs.append(("sqlite", pair[0], pair[1]))
    if not args.no_postgres:
        schemas = []
        try:
            pair = []
            for floor in (False, True):
                target, schema = _postgres_schema(args.postgres)
                schemas.append(schema)
                pair.append(measure(target, args.processes, args.tasks, args.limit, floor))
            runs.append(("postgresql", pair[0], pair[1]))
        finally:
            _drop_schemas(args.postgres, schemas)
    print(
        f"concurrency: {args.processes} processes x {args.tasks} tasks, limit {args.limit}/day,"
        f" real OpenAI-compatible adapter + MockTransport; load {load:.2f} ->"
        f" {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{'database':<11} {'ledger tasks/s':>14} {'floor tasks/s':>14} {'ratio':>7} (>= 0.5)"
        f" {'limited served':>15} {'overspend':>10} (0)"
    )
    missed = False
    for name, ours, base in runs:
        ratio = ours["tasks_per_s"] / base["tasks_per_s"]
        overspend = ours["overspend"] + base["overspend"]
        missed = missed or ratio < 0.5 or overspend > 0
        print(
            f"{name:<11} {ours['tasks_per_s']:14.0f} {base['tasks_per_s']:14.0f} {ratio:6.2f}x"
            f"          {ours['limited_served']:6.0f}/{args.limit:<8} {overspend:10g}"
        )
    if missed:
        print("MISSED a target", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
