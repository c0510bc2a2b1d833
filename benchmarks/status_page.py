"""Server time to render the status page over a large ledger.

    python benchmarks/status_page.py [--rows 1000000]

Fills a SQLite ledger with ROWS call rows spread over the last 30 days and six providers (one
transaction of bulk inserts, the way a month of traffic would leave it), then times what
`GET /` does in process: the snapshot queries and the HTML render, median of 5 runs, beside the
same over 10,000 rows, after the nightly roll-up of finished days that the cron service's
daily reset does (and, for comparison, before it). Target (issue 14): under 300 ms at a
million rows; the ratio to 10k rows shows whether the queries grow with the log. Exits 1 on a
miss.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from scheduler.config import KeyStore, parse_config
from scheduler.ledger import Ledger
from scheduler.status.data import snapshot
from scheduler.status.page import render

CONFIG = (
    """
settings: {budget: {monthly_usd: 50}}
providers:
"""
    + "".join(
        f"  p{i}: {{adapter: openai, base_url: 'http://x/v1', models: {{text: m}},"
        f" quotas: [{{metric: requests, limit: 100000, per: day}}]}}\n"
        for i in range(6)
    )
    + "tasks:\n  text: [p0, p1, p2, p3, p4, p5]\n"
)
OUTCOMES = ("ok",) * 18 + ("transient", "rate_limited")


def fill(db: Path, rows: int, now: float) -> None:
    with Ledger.open(str(db)) as ledger, ledger.transaction() as conn:
        rng = random.Random(7)
        batch = []
        for i in range(rows):
            ts = now - rng.random() * 30 * 86400
            outcome = rng.choice(OUTCOMES)
            batch.append(
                (
                    ts,
                    "text",
                    f"p{i % 6}",
                    "m",
                    outcome,
                    None,
                    rng.uniform(50, 900),
                    1,
                    json.dumps({"requests": 1, "tokens": 40}),
                    0.0001,
                    0.0002,
                )
            )
            if len(batch) == 50_000:
                for row in batch:
                    conn.execute(_INSERT, row)
                batch.clear()
        if batch:
            for row in batch:
                conn.execute(_INSERT, row)


_INSERT = (
    "INSERT INTO calls (ts, task, provider, model, outcome, error, latency_ms, tries, usage,"
    " cost_usd, list_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def roll_up(db: Path, now: float) -> None:
    """What the cron service's daily reset does each night: summarise finished days."""
    from scheduler.ledger.maintenance import roll_up_days

    with Ledger.open(str(db)) as ledger:
        roll_up_days(ledger, now=now)


def time_render(db: Path) -> float:
    config = parse_config(CONFIG)
    keys = KeyStore(environ={})
    samples = []
    with Ledger.open(str(db)) as ledger:
        render(snapshot(config, ledger, keys))  # warm the page cache
        for _ in range(5):
            start = time.perf_counter()
            render(snapshot(config, ledger, keys))
            samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        small, large = Path(tmp) / "small.db", Path(tmp) / "large.db"
        fill(small, 10_000, now)
        start = time.perf_counter()
        fill(large, args.rows, now)
        filled = time.perf_counter() - start
        raw_ms = time_render(large)
        roll_up(small, now)
        roll_up(large, now)
        small_ms, large_ms = time_render(small), time_render(large)
    ratio = large_ms / small_ms
    rows = [
        (f"render / over {args.rows:,} calls", f"{large_ms:.0f} ms", "<= 300 ms", large_ms <= 300),
        ("render / over 10,000 calls", f"{small_ms:.0f} ms", "", True),
        (f"{args.rows:,} vs 10,000 rows", f"{ratio:.1f}x", "", True),
        ("(before any nightly roll-up)", f"{raw_ms:.0f} ms", "", True),
    ]
    print(f"(filled {args.rows:,} rows in {filled:.1f} s)")
    print(f"{'figure':<34} {'measured':<12} {'target':<10} ok")
    for name, value, target, ok in rows:
        print(f"{name:<34} {value:<12} {target:<10} {'yes' if ok else 'NO'}")
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
