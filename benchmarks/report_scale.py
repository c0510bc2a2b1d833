"""Report queries in process as the call log grows: 10k, 100k and 1M call rows (issue 15, item 5).

Rows are spread over the last 365 days (a year of use), across 20 providers and all task kinds,
with their usage windows, so the reports read what they would on a real ledger. Timed in process
(no start-up to mask the queries): the quota report (scheduler.ledger.report.quota_report) and the
cost report for the month (scheduler.ledger.spend.spend_report), median of RUNS each. First on the
raw call log, then after the nightly roll-up (maintenance.roll_up_days: finished days are read from
daily_summaries). Target: 1M rows <= 3x 10k rows, after the roll-up (what a ledger kept by the cron
service reads); the no-roll-up growth is printed beside it. One table; exit 1 on a miss.

    python benchmarks/report_scale.py [--sizes 10000 100000 1000000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from scheduler.config import KeyStore, load_config
from scheduler.ledger import Ledger
from scheduler.ledger.maintenance import roll_up_days
from scheduler.ledger.report import quota_report
from scheduler.ledger.spend import spend_report

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


def _median(work: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timings(db: Path, runs: int) -> dict[str, float]:
    """quota and cost (month) report medians, before and after the roll-up."""
    config, _ = load_config(Path(__file__).parents[1] / "scheduler" / "providers.yaml")
    keys = KeyStore(environ={})
    ledger = Ledger.open(str(db))
    try:
        figures: dict[str, float] = {}
        for stage in ("raw", "rolled"):
            if stage == "rolled":
                roll_up_days(ledger)
            figures[f"quota {stage}"] = _median(lambda: quota_report(config, ledger, keys), runs)
            figures[f"cost {stage}"] = _median(lambda: spend_report(config, ledger, "month"), runs)
        return figures
    finally:
        ledger.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            db = Path(tmp) / f"quota-{size}.db"
            seed(db, size)
            results.append((size, timings(db, args.runs)))
    print(f"report scale: in process, median of {args.runs}; load {load:.2f} ->"
          f" {os.getloadavg()[0]:.2f}")  # fmt: skip
    names = list(results[0][1])
    print(f"{'call rows':>10} " + " ".join(f"{name + ' (ms)':>17}" for name in names))
    for size, figures in results:
        print(f"{size:>10,} " + " ".join(f"{figures[n] * 1000:17.2f}" for n in names))
    missed = False
    if len(results) > 1:
        (small, first), (large, last) = results[0], results[-1]
        growth = {name: last[name] / first[name] for name in names}
        print(f"{'growth':>10} " + " ".join(f"{growth[n]:16.2f}x" for n in names))
        print(
            f"target: {large:,} rows <= 3x {small:,} rows, after the roll-up (the 'rolled' columns)"
        )
        missed = growth["quota rolled"] > 3 or growth["cost rolled"] > 3
    if missed:
        print("MISSED a target", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
