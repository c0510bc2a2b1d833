"""Issue 11, class 6: bounded memory and time for every input.

Answers: a gzip bomb (one layer and nested), an endless chunked body and an announced length
past the cap are each one counted transient failure naming the cap, with memory bounded.
Config: a FIFO, a device, a file past the cap, an alias bomb and deep nesting are one-line
config errors, at once. A provider's image too large to convert is saved as it came.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import os
import socket
import sqlite3
import struct
import threading
import tracemalloc
import zlib
from pathlib import Path

import openai  # noqa: F401 - imported before memory is traced: the SDK's import is no answer
import pytest

from scheduler.config.schema import ProviderConfig
from scheduler.errors import Transient
from scheduler.providers.http import make_client
from scheduler.providers.openai_compat import OpenAICompatAdapter
from scheduler.tasks import TextTask
from tests.conftest import CliResult, clean_env, openai_provider, run_cli, write_config
from tests.fakes.server import FakeServer, Reply

CAP_MB = 1
CAP_TEXT = "answer larger than the 1 MB cap (settings.max_response_mb)"


def _zeros_gzip(size: int, layers: int = 1) -> bytes:
    """`size` zero bytes gzipped (`layers` times), compressed piece by piece."""
    data = b""
    for layer in range(layers):
        out = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        parts: list[bytes] = []
        if layer == 0:
            block = bytes(1 << 20)
            for _ in range(size >> 20):
                parts.append(out.compress(block))
        else:
            parts.append(out.compress(data))
        parts.append(out.flush())
        data = b"".join(parts)
    return data


class EndlessServer:
    """Answers every request with a 200 chunked body that does not end while the client reads."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.sent = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> EndlessServer:
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()
        self._threads.append(accept)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            worker = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            worker.start()
            self._threads.append(worker)

    def _serve(self, conn: socket.socket) -> None:
        chunk = b"x" * 65536
        frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        with conn:
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            try:
                # Far past any cap, then stop: a client with no cap fails the test, not hangs it.
                while not self._stop.is_set() and self.sent < 64 * CAP_MB * 1_000_000:
                    conn.sendall(frame)
                    self.sent += len(chunk)
            except OSError:
                return


def _adapter_call(base_url: str) -> tuple[BaseException | None, int]:
    """One text call with a 1 MB cap; (the error, peak Python memory in bytes)."""

    async def go() -> BaseException | None:
        async with make_client(10.0, max_response_mb=CAP_MB) as http:
            adapter = OpenAICompatAdapter(
                name="a",
                config=ProviderConfig(adapter="openai", base_url=base_url),
                api_key="sk-size-0123456789",
                http=http,
                timeout_s=10.0,
            )
            try:
                await adapter.run(TextTask(prompt="hi"), model="m")
            except Transient as exc:
                return exc
            return None

    tracemalloc.start()
    try:
        error = asyncio.run(go())
        return error, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


BOMBS = [
    pytest.param(_zeros_gzip(64 << 20), "gzip", id="gzip-bomb-64MB"),
    pytest.param(_zeros_gzip(256 << 20, layers=2), "gzip, gzip", id="nested-gzip-bomb-256MB"),
    pytest.param(zlib.compress(bytes(32 << 20), 9), "deflate", id="deflate-bomb-32MB"),
]


@pytest.mark.parametrize(("body", "encoding"), BOMBS)
def test_a_compression_bomb_is_a_transient_failure_in_bounded_memory(
    fake: FakeServer, body: bytes, encoding: str
) -> None:
    fake.route(
        "POST",
        "/v1/chat/completions",
        Reply(
            body=body, headers={"content-encoding": encoding, "content-type": "application/json"}
        ),
    )
    error, peak = _adapter_call(f"{fake.url}/v1")
    assert isinstance(error, Transient) and CAP_TEXT in str(error), error
    assert peak < 16 * CAP_MB * 1_000_000, f"peak {peak / 1e6:.1f} MB for a {CAP_MB} MB cap"


def test_an_endless_body_is_cut_at_the_cap() -> None:
    with EndlessServer() as endless:
        error, peak = _adapter_call(f"{endless.url}/v1")
    assert isinstance(error, Transient) and CAP_TEXT in str(error), error
    assert peak < 16 * CAP_MB * 1_000_000


def test_an_announced_length_past_the_cap_is_refused_unread(fake: FakeServer) -> None:
    fake.route("POST", "/v1/chat/completions", Reply(body=b"{" + b" " * (3 << 20) + b"}"))
    error, _ = _adapter_call(f"{fake.url}/v1")
    assert isinstance(error, Transient) and CAP_TEXT in str(error), error


def test_an_unsupported_encoding_is_refused_not_passed_through(fake: FakeServer) -> None:
    fake.route(
        "POST", "/v1/chat/completions", Reply(body=b"\x1b\x00", headers={"content-encoding": "br"})
    )
    error, _ = _adapter_call(f"{fake.url}/v1")
    assert isinstance(error, Transient) and "unsupported content-encoding 'br'" in str(error)


def test_an_answer_under_the_cap_still_decodes(fake: FakeServer) -> None:
    answer = b'{"model": "m", "choices": [{"message": {"content": "ok"}}], "usage": {}}'
    fake.route(
        "POST",
        "/v1/chat/completions",
        Reply(body=gzip.compress(answer), headers={"content-encoding": "gzip"}),
    )
    error, _ = _adapter_call(f"{fake.url}/v1")
    assert error is None


def _one_line(result: CliResult) -> str:
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("sched: error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_cli_gzip_bomb_counts_the_call_and_names_the_cap(tmp_path: Path, fake: FakeServer) -> None:
    fake.route(
        "POST",
        "/v1/chat/completions",
        Reply(body=_zeros_gzip(64 << 20), headers={"content-encoding": "gzip"}),
    )
    config = write_config(
        tmp_path / "p.yaml",
        {"a": openai_provider(f"{fake.url}/v1", "A_API_KEY")},
        {"text": ["a"]},
        settings=f"retries: 0\nmax_response_mb: {CAP_MB}",
    )
    result = run_cli("--config", str(config), "run", "text", "hi", env=clean_env(A_API_KEY="k"))
    assert result.code == 1
    _one_line(result)
    assert CAP_TEXT in result.stderr
    with sqlite3.connect(tmp_path / "quota.db") as conn:
        assert conn.execute("SELECT provider, outcome FROM calls").fetchall() == [
            ("a", "transient")
        ]
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def _alias_bomb() -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\nproviders: {}\n"


def _make(tmp_path: Path, case: str) -> str:
    path = tmp_path / "p.yaml"
    if case == "fifo":
        os.mkfifo(path)
    elif case == "device":
        return "/dev/zero"
    elif case == "huge":
        with path.open("wb") as handle:
            handle.truncate(64 << 20)  # sparse: 64 MB of nothing, instantly
    elif case == "alias-bomb":
        path.write_text(_alias_bomb(), encoding="utf-8")
    elif case == "deep-flow":
        path.write_text("providers: " + "[" * 100_000, encoding="utf-8")
    elif case == "deep-block":
        path.write_text("- " * 50_000 + "x\n", encoding="utf-8")
    elif case == "huge-value":
        path.write_text(f"providers:\n  a:\n    adapter: {'x' * 500_000}\n", encoding="utf-8")
    return str(path)


CONFIGS = [
    ("fifo", "is a FIFO, not a regular file"),
    ("device", "is a device or socket, not a regular file"),
    ("huge", "is larger than 4 MB"),
    ("alias-bomb", "YAML aliases expand to more than 200000 values"),
    ("deep-flow", "nests too deeply"),
    ("deep-block", "nests too deeply"),
    ("huge-value", "expected one of"),
]


@pytest.mark.parametrize(("case", "message"), CONFIGS, ids=[c[0] for c in CONFIGS])
def test_a_hostile_config_is_refused_at_once_in_one_short_line(
    tmp_path: Path, case: str, message: str
) -> None:
    result = run_cli("--config", _make(tmp_path, case), "config", "check")
    assert result.code == 2, (result.code, result.stderr[-300:])
    line = _one_line(result)
    assert message in line
    assert len(line) < 700  # no value is printed unbounded


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` pixels: Pillow's bomb check fires on open."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


def test_an_image_too_large_to_convert_is_saved_as_it_came(
    tmp_path: Path, fake: FakeServer
) -> None:
    bomb_png = _png_header_only(20_000, 20_000)  # 400 M pixels, over twice Pillow's limit
    encoded = base64.b64encode(bomb_png).decode("ascii")
    fake.route("POST", "/v1/images/generations", Reply(json={"data": [{"b64_json": encoded}]}))
    body = f"adapter: openai\nbase_url: {fake.url}/v1\napi_key_env: A_API_KEY\nmodels: {{image: m}}"
    config = write_config(tmp_path / "p.yaml", {"a": body}, {"image": ["a"]})
    result = run_cli(
        "--config",
        str(config),
        "run",
        "image",
        "x",
        "-o",
        "out.webp",
        env=clean_env(A_API_KEY="k"),
        cwd=tmp_path,
    )
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "out.png").read_bytes() == bomb_png
    assert not (tmp_path / "out.webp").exists()
    notes = [line for line in result.stderr.splitlines() if line.startswith("sched: note:")]
    assert len(notes) == 1 and "too large to convert (400000000 pixels)" in notes[0]
    assert "saved as it came" in notes[0]
    with sqlite3.connect(tmp_path / "quota.db") as conn:
        assert conn.execute("SELECT outcome FROM calls").fetchall() == [("ok",)]
