"""A worker process for the concurrency tests: N text tasks through the real dispatcher.

Run as `python -m tests.dispatch_worker CONFIG DB N START_AT [MAX_TOKENS]`; waits until START_AT
(a POSIX time) so that every worker hits the ledger at once, then prints a JSON summary.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter

from scheduler import Scheduler, TextTask


async def _main(
    config_path: str, db: str, count: int, start_at: float, max_tokens: int | None
) -> None:
    served: Counter[str] = Counter()
    refusals: Counter[str] = Counter()
    async with Scheduler(config_path, db=db) as scheduler:
        time.sleep(max(0.0, start_at - time.time()))
        for index in range(count):
            run = await scheduler.run(TextTask(prompt=f"task {index}", max_tokens=max_tokens))
            served[run.provider or "none"] += 1
            for attempt in run.attempts:
                if attempt.outcome == "skipped" and attempt.error:
                    refusals[attempt.error.split(" (")[0]] += 1
    print(json.dumps({"served": dict(served), "refusals": dict(refusals)}))  # noqa: T201


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(
        _main(
            args[0], args[1], int(args[2]), float(args[3]), int(args[4]) if len(args) > 4 else None
        )
    )
