"""sched beside its peers, against one loopback fake OpenAI-compatible server (issue 15, items 3-4).

(a) Whole process: `sched run text` vs `llm -m bench` (Simon Willison's llm, an OpenAI-compatible
    model configured through extra-openai-models.yaml in a temporary LLM_USER_PATH): median wall
    time and CPU (user + system, resource.getrusage(RUSAGE_CHILDREN)) per run. Target: sched <=
    0.6x llm in both. The two are run alternately so that both see the same machine load, each
    once first as a warm-up; both write bytecode to one temporary PYTHONPYCACHEPREFIX, so each runs
    from compiled modules as an installed package does (even where PYTHONDONTWRITEBYTECODE is set).
(b) In process: what the Scheduler (durable SQLite ledger, two quota rules) adds to one chat call
    over the same POST with plain httpx, vs what LiteLLM's Router (nothing durable) adds over plain
    httpx in its own process. Medians of interleaved samples. Target: sched <= 0.05x LiteLLM's.

The peers are never installed by this script, and never belong in the project's environment: put
them in a venv of their own and point PEERS_PYTHON at its interpreter (llm is looked up beside it,
then on PATH). A peer that is absent is skipped and its row says so.

    python -m venv /tmp/peers && /tmp/peers/bin/pip install llm litellm
    PEERS_PYTHON=/tmp/peers/bin/python python benchmarks/peers.py [--runs 10] [--calls 300]

The fake server is gateway.py's (a raw asyncio HTTP/1.1 server with keep-alive, in a process of
its own). One table; exit status 1 when a target is missed (a skipped peer misses nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gateway import _run_upstream  # the same fake upstream as the gateway benchmark

ROOT = Path(__file__).resolve().parents[1]
CONFIG = """
providers:
  bench:
    adapter: openai
    base_url: http://127.0.0.1:{port}/v1
    api_key_env: BENCH_KEY
    models: {{text: m}}
    quotas:
      - {{metric: requests, limit: 100000000, per: day}}
      - {{metric: tokens, limit: 100000000000, per: minute}}
tasks:
  text: [bench]
"""
LLM_MODELS = """
- model_id: bench
  model_name: m
  api_base: http://127.0.0.1:{port}/v1
  api_key_name: bench
"""
PAYLOAD = {"model": "m", "messages": [{"role": "user", "content": "Say ok."}], "max_tokens": 16}

# Run by PEERS_PYTHON: raw httpx and LiteLLM's Router, interleaved, against the same server.
LITELLM_SCRIPT = """
import asyncio, json, sys, time, statistics
import httpx
from litellm import Router
port, calls = int(sys.argv[1]), int(sys.argv[2])
payload = json.loads(sys.argv[3])
url = f"http://127.0.0.1:{port}/v1"
async def main():
    router = Router(model_list=[{"model_name": "bench", "litellm_params": {
        "model": "openai/m", "api_base": url, "api_key": "sk-bench"}}])
    raw, peer = [], []
    async with httpx.AsyncClient() as http:
        for n in range(calls + 50):
            start = time.perf_counter()
            (await http.post(url + "/chat/completions", json=payload,
                             headers={"Authorization": "Bearer sk-bench"})).json()
            middle = time.perf_counter()
            await router.acompletion(model="bench", messages=payload["messages"], max_tokens=16)
            end = time.perf_counter()
            if n >= 50:
                raw.append(middle - start); peer.append(end - middle)
    print(json.dumps({"raw": statistics.median(raw), "peer": statistics.median(peer)}))
asyncio.run(main())
"""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one child process, which must answer `ok`."""
    cpu = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0 or "ok" not in done.stdout:
        raise SystemExit(f"{command[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall, _children_cpu() - cpu


def _llm_command() -> str | None:
    peers = os.environ.get("PEERS_PYTHON")
    if peers:
        beside = Path(peers).parent / "llm"
        if beside.exists():
            return str(beside)
    return shutil.which("llm")


def whole_process(port: int, runs: int, tmp: Path) -> dict[str, tuple[float, float] | None]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCHED_", "OPENAI_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        PYTHONPYCACHEPREFIX=str(tmp / "pycache"),
        PYTHONPATH=str(ROOT),
        BENCH_KEY="sk-bench",
        LLM_USER_PATH=str(tmp / "llm"),
    )
    (tmp / "providers.yaml").write_text(CONFIG.format(port=port))
    (tmp / "llm").mkdir()
    (tmp / "llm" / "extra-openai-models.yaml").write_text(LLM_MODELS.format(port=port))
    (tmp / "llm" / "keys.json").write_text(json.dumps({"bench": "sk-bench"}))
    sched = [sys.executable, "-m", "scheduler", "-c", "providers.yaml", "--db", "quota.db"]
    commands: dict[str, list[str] | None] = {"sched": [*sched, "run", "text", "Say ok."]}
    llm = _llm_command()
    commands["llm"] = [llm, "-m", "bench", "--no-log", "Say ok."] if llm else None
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for n in range(runs + 1):
        for name, command in commands.items():
            if command is not None:
                sample = _timed(command, env, tmp)
                if n:  # the first run of each writes its bytecode
                    samples[name].append(sample)
    return {
        name: (
            (statistics.median(s[0] for s in got), statistics.median(s[1] for s in got))
            if got
            else None
        )
        for name, got in samples.items()
    }


async def _sched_added(port: int, calls: int, db: Path) -> tuple[float, float]:
    import httpx

    from scheduler import Scheduler
    from scheduler.config import parse_config
    from scheduler.tasks import TextTask

    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    config = parse_config(CONFIG.format(port=port))
    raw, ours = [], []
    scheduler = Scheduler(config, db=db, keys={"BENCH_KEY": "sk-bench"})
    async with scheduler, httpx.AsyncClient() as http:
        task = TextTask(prompt="Say ok.", max_tokens=16)
        auth = {"Authorization": "Bearer sk-bench"}
        for n in range(calls + 50):
            start = time.perf_counter()
            (await http.post(url, json=PAYLOAD, headers=auth)).json()
            middle = time.perf_counter()
            run = await scheduler.dispatcher.run(task)
            end = time.perf_counter()
            if not run.ok:
                raise SystemExit(f"sched call failed: {run}")
            if n >= 50:
                raw.append(middle - start)
                ours.append(end - middle)
    return statistics.median(raw), statistics.median(ours)


def _litellm_added(port: int, calls: int) -> tuple[float, float] | None:
    peers = os.environ.get("PEERS_PYTHON")
    if not peers:
        return None
    probe = subprocess.run([peers, "-c", "import litellm"], capture_output=True)
    if probe.returncode != 0:
        return None
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # the packaged price map: no network
    done = subprocess.run(
        [peers, "-c", LITELLM_SCRIPT, str(port), str(calls), json.dumps(PAYLOAD)],
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode != 0:
        raise SystemExit(f"litellm run failed: {done.stderr[-2000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return figures["raw"], figures["peer"]


def _pair(seconds: tuple[float, float]) -> str:
    return f"{seconds[0] * 1000:.0f} / {seconds[1] * 1000:.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="whole-process runs of each")
    parser.add_argument("--calls", type=int, default=300, help="in-process calls of each")
    args = parser.parse_args()
    port_out: multiprocessing.Queue[int] = multiprocessing.Queue()
    upstream = multiprocessing.Process(target=_run_upstream, args=(port_out,), daemon=True)
    upstream.start()
    port = port_out.get(timeout=30)
    load_before = os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            whole = whole_process(port, args.runs, Path(tmp))
            sched_raw, sched_call = asyncio.run(_sched_added(port, args.calls, Path(tmp) / "q.db"))
        litellm = _litellm_added(port, args.calls)
    finally:
        upstream.terminate()
    rows: list[tuple[str, str, str]] = []
    missed = []
    ours = whole["sched"]
    assert ours is not None
    rows.append(
        ("sched run text: wall / CPU (ms)", f"{ours[0] * 1000:.0f} / {ours[1] * 1000:.0f}", "")
    )
    theirs = whole["llm"]
    if theirs is None:
        rows.append(("llm -m bench", "skipped: llm absent", ""))
    else:
        rows.append(
            (
                "llm -m bench: wall / CPU (ms)",
                f"{theirs[0] * 1000:.0f} / {theirs[1] * 1000:.0f}",
                "",
            )
        )
        wall, cpu = ours[0] / theirs[0], ours[1] / theirs[1]
        rows.append(("sched / llm wall", f"{wall:.2f}x", "<= 0.6x"))
        rows.append(("sched / llm CPU", f"{cpu:.2f}x", "<= 0.6x"))
        missed += [wall > 0.6, cpu > 0.6]
    sched_added = sched_call - sched_raw
    rows.append(("raw httpx call p50 (ms), sched's process", f"{sched_raw * 1000:.3f}", ""))
    rows.append(("sched added over raw httpx p50 (ms)", f"{sched_added * 1000:.3f}", ""))
    if litellm is None:
        rows.append(("LiteLLM Router", "skipped: litellm absent", ""))
    else:
        raw, call = litellm
        rows.append(("raw httpx call p50 (ms), LiteLLM's process", f"{raw * 1000:.3f}", ""))
        rows.append(("LiteLLM Router added p50 (ms)", f"{(call - raw) * 1000:.3f}", ""))
        ratio = sched_added / (call - raw)
        rows.append(("sched added / LiteLLM added", f"{ratio:.3f}x", "<= 0.05x"))
        missed.append(ratio > 0.05)
    print(
        f"peers: {args.runs} whole-process runs, {args.calls} in-process calls each,"
        f" load {load_before:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    print(f"{'figure':<44} {'value':>22}  target")
    for name, value, target in rows:
        print(f"{name:<44} {value:>22}  {target}")
    if any(missed):
        print("MISSED a target", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
