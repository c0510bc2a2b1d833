"""`sched quota report` time as the call log grows: 10k, 100k and 1M call rows.

Rows are spread over the last 365 days (a year of use), across 20 providers and all task kinds,
with their usage windows, so the report reads what it would on a real ledger. Prints the median
wall time of the whole command (process start included) per size.

    python benchmarks/report_scale.py [--sizes 10000 100000 1000000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scheduler.config import load_config
from scheduler.ledger import Ledger

OUTCOMES = ("ok",) * 17 + ("transient", "rate_limited", "quota_exhausted")
KINDS = ("text", "image", "stt", "tts", "multimodal")


def seed(db: Path, rows: int) -> None:
    config, _ = load_config(Path(__file__).parents[1] / "scheduler" / "providers.yaml")
    names = list(config.providers)
    ledger = Ledger.open(str(db))
    now = time.time()
    rng = random.Random(7)
    raw = ledger._db.raw  # bulk load straight through the driver: this is a benchmark's setup
    raw.execute("BEGIN")
    batch = []
    for i in range(rows):
        usage = json.dumps({"requests": 1, "tokens": rng.randint(10, 2000)})
        batch.append(
            (
                now - rng.random() * 365 * 86400,
                rng.choice(KINDS),
                rng.choice(names),
                "m",
                rng.choice(OUTCOMES),
                None,
                rng.random() * 2000,
                1,
                usage,
                0.0,
                0.0,
            )
        )
        if len(batch) == 50_000 or i == rows - 1:
            raw.executemany(
                "INSERT INTO calls (ts, task, provider, model, outcome, error, latency_ms, tries,"
                " usage, cost_usd, list_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                batch,
            )
            batch = []
    raw.execute("COMMIT")
    for name, provider in config.providers.items():  # the current windows the report reads
        for rule in provider.quotas:
            if rule.metric in ("usd",):
                continue
            ledger.reserve(name, [rule], {rule.metric: 1}, task="text", model="m")
    ledger.close()


def median_report(db: Path, runs: int) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHED_")}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "scheduler", "--db", str(db), "quota", "report"],
            cwd=db.parent,
            env=env,
            capture_output=True,
            check=True,
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            db = Path(tmp) / f"quota-{size}.db"
            started = time.perf_counter()
            seed(db, size)
            seeded = time.perf_counter() - started
            seconds = median_report(db, args.runs)
            results.append((size, seconds))
            print(f"{size:>9,} call rows: quota report median {seconds * 1000:6.0f} ms"
                  f" over {args.runs} runs (seeded in {seeded:.1f} s)")  # fmt: skip
    if len(results) > 1:
        (small, t_small), (large, t_large) = results[0], results[-1]
        print(f"growth {small:,} -> {large:,} rows: x{t_large / t_small:.2f} in report time")


if __name__ == "__main__":
    main()
