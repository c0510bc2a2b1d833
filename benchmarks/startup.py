"""Start-up time of the commands people type most: median wall time over repeated runs.

python benchmarks/startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = (["--help"], ["run", "--help"], ["quota", "report"])


def median_wall(args: list[str], runs: int, cwd: str) -> float:
    sched = shutil.which("sched")
    command = [sched] if sched else [sys.executable, "-m", "scheduler"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHED_")}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cwd:
        subprocess.run([sys.executable, "-m", "scheduler", "quota", "report"], cwd=cwd,
                       capture_output=True, check=True)  # fmt: skip  # create quota.db first
        for command in COMMANDS:
            seconds = median_wall(command, args.runs, cwd)
            label = f"sched {' '.join(command)}"
            print(f"{label:<20} median {seconds * 1000:6.0f} ms over {args.runs} runs")


if __name__ == "__main__":
    main()
