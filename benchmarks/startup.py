"""Start-up time of the commands people type most: median wall time over repeated runs.

Each command is timed beside the bare interpreter (`python -c pass`, same run, same load), and
the table shows the ratio: what sched itself costs to start, whatever the machine's speed. Bytecode
is written to a temporary PYTHONPYCACHEPREFIX first (as an installed package has it), even where
PYTHONDONTWRITEBYTECODE is set. The targets are regression guards set from the figures of
issue 15 with some headroom: `sched --help` and `run --help` <= 6x the bare interpreter (5.2-5.6x
measured), `run text --help` (issue 15 asks for it: the longest help typer renders with rich)
and `quota report` (opens the ledger) <= 8x (6.6-6.7x). One table; exit 1 on a miss.

python benchmarks/startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# (label, arguments after `python`, most times the bare interpreter's start-up)
COMMANDS: tuple[tuple[str, list[str], float | None], ...] = (
    ("python -c pass", ["-c", "pass"], None),
    ("sched --help", ["-m", "scheduler", "--help"], 6.0),
    ("sched run --help", ["-m", "scheduler", "run", "--help"], 6.0),
    ("sched run text --help", ["-m", "scheduler", "run", "text", "--help"], 8.0),
    ("sched quota report", ["-m", "scheduler", "quota", "report"], 8.0),
)


def _env(tmp: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHED_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(PYTHONPYCACHEPREFIX=str(Path(tmp) / "pycache"), PYTHONPATH=str(ROOT))
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    times: dict[str, list[float]] = {label: [] for label, _, _ in COMMANDS}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as cwd:
        env = _env(cwd)
        for n in range(args.runs + 1):  # interleaved, so each sees the same load; run 0 warms up
            for label, words, _ in COMMANDS:
                start = time.perf_counter()
                subprocess.run([sys.executable, *words], cwd=cwd, env=env, capture_output=True,
                               check=True)  # fmt: skip
                if n:
                    times[label].append(time.perf_counter() - start)
    bare = statistics.median(times["python -c pass"])
    print(f"start-up: median of {args.runs} runs, load {load:.2f} -> {os.getloadavg()[0]:.2f}")
    print(f"{'command':<24} {'median (ms)':>12} {'x bare python':>14}  target")
    missed = False
    for label, _, target in COMMANDS:
        seconds = statistics.median(times[label])
        ratio = seconds / bare
        missed = missed or (target is not None and ratio > target)
        goal = f"<= {target:g}x" if target is not None else ""
        print(f"{label:<24} {seconds * 1000:12.0f} {ratio:13.2f}x  {goal}")
    if missed:
        print("MISSED a target", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
