"""What `sched serve` adds over calling the provider directly, and what it holds.

    python benchmarks/gateway.py [--requests N] [--quick]

Three processes: a fake upstream (a raw asyncio HTTP/1.1 server answering a fixed chat
completion, or an SSE stream, with keep-alive), one `sched serve` worker with a durable SQLite
ledger in front of it, and this load generator (raw asyncio sockets with keep-alive, so the
client is not the bottleneck: its CPU per request is printed). Each figure is measured direct to
the upstream and through the gateway in the same run; the table shows the targets of issue 17
and the process exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHAT = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
).encode()
STREAM = (
    b"".join(
        b"data: " + json.dumps(chunk).encode() + b"\n\n"
        for chunk in (
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
            {"choices": [{"index": 0, "delta": {"content": "ok"}}]},
            {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 1}},
        )
    )
    + b"data: [DONE]\n\n"
)
REQUEST = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "Say ok."}]})
STREAM_REQUEST = json.dumps(
    {"model": "auto", "stream": True, "messages": [{"role": "user", "content": "Say ok."}]}
)
CONFIG = """
settings: {{retries: 0}}
providers:
  up:
    adapter: openai
    base_url: "http://127.0.0.1:{port}/v1"
    api_key_env: BENCH_KEY
    models: {{text: m}}
    quotas:
      - {{metric: requests, limit: 100000000, per: day}}
tasks:
  text: [up]
"""


# -- the upstream ---------------------------------------------------------------------------------


async def _upstream(port_out: multiprocessing.Queue[int]) -> None:  # type: ignore[type-arg]
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                if b'"stream": true' in body or b'"stream":true' in body:
                    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(STREAM), STREAM)
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                        b"transfer-encoding: chunked\r\n\r\n" + chunked
                    )
                else:
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        b"content-length: %d\r\n\r\n%s" % (len(CHAT), CHAT)
                    )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512)
    port_out.put(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


def _run_upstream(port_out: multiprocessing.Queue[int]) -> None:  # type: ignore[type-arg]
    asyncio.run(_upstream(port_out))


# -- the load generator ---------------------------------------------------------------------------


async def _connection(
    port: int, path: str, body: str, count: int, samples: list[float], first_byte: bool
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = body.encode()
    request = (
        f"POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer sk-bench\r\ncontent-length: {len(data)}\r\n\r\n"
    ).encode() + data
    for _ in range(count):
        start = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 200:
            raise SystemExit(f"HTTP {status} from {path}: {head!r}")
        lower = head.lower()
        if b"transfer-encoding: chunked" in lower:
            size_line = await reader.readuntil(b"\r\n")
            if first_byte:
                samples.append(time.perf_counter() - start)
            size = int(size_line.strip(), 16)
            while size:
                await reader.readexactly(size + 2)
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readuntil(b"\r\n")
            if not first_byte:
                samples.append(time.perf_counter() - start)
        else:
            length = int(lower.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            await reader.readexactly(length)
            samples.append(time.perf_counter() - start)
    writer.close()


def measure(
    port: int, path: str, body: str, concurrency: int, total: int, first_byte: bool = False
) -> dict[str, float]:
    samples: list[float] = []
    per = max(1, total // concurrency)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()

    async def go() -> None:
        await asyncio.gather(
            *(_connection(port, path, body, per, samples, first_byte) for _ in range(concurrency))
        )

    asyncio.run(go())
    wall = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    ordered = sorted(samples)
    return {
        "rps": len(samples) / wall,
        "p50_ms": statistics.median(ordered) * 1000,
        "p95_ms": ordered[int(len(ordered) * 0.95)] * 1000,
        "client_cpu_ms": cpu / len(samples) * 1000,
    }


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000, help="per measurement")
    parser.add_argument("--quick", action="store_true", help="fewer requests, for a smoke run")
    args = parser.parse_args()
    total = 400 if args.quick else args.requests
    port_out: multiprocessing.Queue[int] = multiprocessing.Queue()
    upstream = multiprocessing.Process(target=_run_upstream, args=(port_out,), daemon=True)
    upstream.start()
    up_port = port_out.get(timeout=30)
    rows: list[tuple[str, str, str, bool]] = []
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "providers.yaml"
        config.write_text(CONFIG.format(port=up_port))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            gw_port = sock.getsockname()[1]
        env = {**os.environ, "BENCH_KEY": "sk-bench", "SCHED_LOAD": "0"}
        command = [sys.executable, "-m", "scheduler", "--config", str(config), "--db"]
        command += [str(Path(tmp) / "quota.db"), "serve", "--port", str(gw_port)]
        started = time.perf_counter()
        gateway = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        try:
            startup = _wait_healthy(gw_port, started)
            rows.append(
                ("start-up to first healthy /health", f"{startup:.2f} s", "<= 1 s", startup <= 1.0)
            )
            chat = "/v1/chat/completions"
            for label, body, first_byte in (
                ("", REQUEST, False),
                (" stream TTFB", STREAM_REQUEST, True),
            ):
                for concurrency in (1, 16, 64):
                    n = total if concurrency > 1 else max(200, total // 4)
                    direct = measure(up_port, chat, body, concurrency, n, first_byte)
                    via = measure(gw_port, chat, body, concurrency, n, first_byte)
                    added = via["p50_ms"] - direct["p50_ms"]
                    added95 = via["p95_ms"] - direct["p95_ms"]
                    name = f"c={concurrency}{label}"
                    rows.append(
                        (
                            f"{name}: requests/s",
                            f"{via['rps']:.0f} (direct {direct['rps']:.0f})",
                            ">= 400" if concurrency == 16 and not label else "",
                            via["rps"] >= 400 if concurrency == 16 and not label else True,
                        )
                    )
                    ok = added <= 2.7 if concurrency == 1 and not label else True
                    rows.append(
                        (
                            f"{name}: added p50 / p95",
                            f"{added:.2f} / {added95:.2f} ms",
                            "<= 2.7 ms p50" if concurrency == 1 and not label else "",
                            ok,
                        )
                    )
                    rows.append(
                        (
                            f"{name}: load generator CPU/request",
                            f"{via['client_cpu_ms']:.3f} ms",
                            "",
                            True,
                        )
                    )
            measure(gw_port, chat, REQUEST, 16, 10_000 if not args.quick else 1000)
            rss = _rss_mb(gateway.pid)
            measure(gw_port, chat, REQUEST, 16, 2000 if not args.quick else 200)
            rss_after = _rss_mb(gateway.pid)
            rows.append(
                (
                    "resident memory after 10k requests",
                    f"{rss:.0f} MB (then {rss_after:.0f} MB)",
                    "<= 100 MB, not growing",
                    rss <= 100 and rss_after <= rss * 1.05 + 2,
                )
            )
        finally:
            gateway.terminate()
            gateway.wait(30)
            upstream.terminate()
    width = max(len(r[0]) for r in rows)
    print(f"{'figure':<{width}}  {'measured':<28} {'target':<24} ok")
    missed = 0
    for name, value, target, ok in rows:
        missed += not ok
        print(f"{name:<{width}}  {value:<28} {target:<24} {'yes' if ok else 'NO'}")
    print(f"cpus: {os.cpu_count()}, one gateway worker, durable SQLite ledger")
    return 1 if missed else 0


def _wait_healthy(port: int, started: float) -> float:
    deadline = started + 60
    request = b"GET /health HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n"
    while time.perf_counter() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(request)
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.01)
    raise SystemExit("the gateway never became healthy")


if __name__ == "__main__":
    sys.exit(main())
