"""P processes x N tasks against one ledger: throughput, and overspend (which must be 0).

Each process runs N text tasks through the whole dispatcher, sharing one ledger: a SQLite file,
or PostgreSQL. The provider is instant: by default an adapter that answers in-process at once, so
the figure is the dispatcher's and the ledger's; with --via-sdk the real OpenAI-compatible adapter
answers through the openai SDK and httpx.MockTransport (add the SDK's ~0.2 ms per call, measured
by dispatch_overhead.py). The first provider allows LIMIT requests per day, the rest fall over to
an unlimited second one; after the run the ledger's count for it is compared with its limit.

    python benchmarks/concurrency.py [--processes 8] [--tasks 500] [--limit 1000] [--via-sdk]
        [--postgres postgresql+psycopg://127.0.0.1:5432/test | --no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
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


def _use_instant_adapter() -> None:
    """Serve the `openai` adapter name with an adapter that answers in-process at once."""
    from scheduler.providers import registry
    from scheduler.providers.base import Adapter
    from scheduler.tasks import ProviderResult, TextTask, text_usage

    class InstantAdapter(Adapter):
        kinds = frozenset({"text"})

        async def text(self, task: TextTask, *, model: str) -> ProviderResult:
            return ProviderResult(output="ok", model=model, usage=text_usage(3, 1))

    registry.adapter_class.cache_clear()
    registry._ADAPTERS["openai"] = f"{__name__}:InstantAdapter"
    globals()["InstantAdapter"] = InstantAdapter


def _worker(
    target: str, config_text: str, tasks: int, start_at: float, out: object, via_sdk: bool
) -> None:
    from scheduler import RunOptions, Scheduler
    from scheduler.config import parse_config
    from scheduler.tasks import TextTask

    if not via_sdk:
        _use_instant_adapter()

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


def measure(
    target: str, processes: int, tasks: int, limit: int, via_sdk: bool = False
) -> dict[str, float]:
    config_text = CONFIG.format(limit=limit)
    from scheduler.ledger import Ledger

    Ledger.open(target).close()  # create and migrate before the clock starts
    queue: multiprocessing.Queue[dict[str, int]] = multiprocessing.Queue()
    start_at = time.time() + 3.0
    procs = [
        multiprocessing.Process(
            target=_worker, args=(target, config_text, tasks, start_at, queue, via_sdk)
        )
        for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    results = [queue.get() for _ in procs]
    elapsed = time.time() - start_at
    for proc in procs:
        proc.join()
    ledger = Ledger.open(target)
    (used,) = ledger.read("SELECT COALESCE(SUM(used + reserved), 0) FROM usage_windows")[0]
    ledger.close()
    served = sum(result.get("limited", 0) for result in results)
    return {
        "tasks": processes * tasks,
        "seconds": elapsed,
        "tasks_per_s": processes * tasks / elapsed,
        "limited_served": served,
        "limit": limit,
        "overspend": max(0.0, float(str(used)) - limit) + max(0, served - limit),
    }


def _postgres_target(url: str) -> tuple[str, str]:
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("postgresql://" + url.split("://", 1)[1], autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    return f"{url}?options=-csearch_path%3D{schema}", schema


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--postgres", default="postgresql+psycopg://127.0.0.1:5432/test")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--via-sdk", action="store_true", help="answer through the openai SDK")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(
            (
                "sqlite",
                measure(
                    str(Path(tmp) / "quota.db"),
                    args.processes,
                    args.tasks,
                    args.limit,
                    args.via_sdk,
                ),
            )
        )
    if not args.no_postgres:
        import psycopg

        target, schema = _postgres_target(args.postgres)
        try:
            rows.append(
                (
                    "postgresql",
                    measure(target, args.processes, args.tasks, args.limit, args.via_sdk),
                )
            )
        finally:
            admin_url = "postgresql://" + args.postgres.split("://", 1)[1]
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f"DROP SCHEMA {schema} CASCADE")
    how = "openai SDK + MockTransport" if args.via_sdk else "in-process instant adapter"
    print(f"{args.processes} processes x {args.tasks} tasks, limit {args.limit}/day ({how})")
    for name, row in rows:
        print(
            f"{name:<11} {row['tasks_per_s']:8.0f} tasks/s  ({row['tasks']:.0f} tasks in"
            f" {row['seconds']:.2f} s)  limited served"
            f" {row['limited_served']:.0f}/{row['limit']:.0f}"
            f"  overspend {row['overspend']:g}"
        )


if __name__ == "__main__":
    main()
