"""A worker for the crash stress test: text tasks through the real dispatcher, one line each.

Run as `python -m tests.fakes.crash_worker CONFIG DB N`. Like tests/dispatch_worker.py, but it
reports every task the moment the dispatcher returns (the ledger has committed it by then), so a
worker killed half-way has still told the test exactly which calls it saw committed:
`{"provider": "a", "model": "a-17"}` per served task (the fake names every reply's model uniquely).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from scheduler import Scheduler, TextTask


async def _main(config_path: str, db: str, count: int) -> None:
    async with Scheduler(config_path, db=db) as scheduler:
        for index in range(count):
            run = await scheduler.run(TextTask(prompt=f"task {index}", max_tokens=16))
            line = {
                "provider": run.provider,
                "model": run.result.model if run.result is not None else None,
                "attempts": [(a.provider, a.outcome) for a in run.attempts],
            }
            # One write per line, well under PIPE_BUF: a kill never leaves half a line behind.
            os.write(sys.stdout.fileno(), (json.dumps(line) + "\n").encode())


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
