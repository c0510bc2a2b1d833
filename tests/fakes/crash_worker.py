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

from scheduler.config import KeyStore, load_config
from scheduler.dispatcher import Dispatcher
from scheduler.ledger import Ledger
from scheduler.providers.http import make_client
from scheduler.tasks import TextTask


async def _main(config_path: str, db: str, count: int) -> None:
    config, _ = load_config(config_path)
    ledger = Ledger.open(db, lease_s=config.settings.reservation_lease_s)
    async with make_client(config.settings.timeout_s) as http:
        dispatcher = Dispatcher(config, ledger, KeyStore(), http)
        for index in range(count):
            run = await dispatcher.run(TextTask(prompt=f"task {index}", max_tokens=16))
            line = {
                "provider": run.provider,
                "model": run.result.model if run.result is not None else None,
                "attempts": [(a.provider, a.outcome) for a in run.attempts],
            }
            # One write per line, well under PIPE_BUF: a kill never leaves half a line behind.
            os.write(sys.stdout.fileno(), (json.dumps(line) + "\n").encode())
    ledger.close()


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
