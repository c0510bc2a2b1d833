"""Streamed text through the real CLI and the real adapters, against wire-level fakes.

Each fake answers in the provider's documented event shapes (tests/fakes/openai_shapes.py
`chat_stream_chunks`, anthropic_shapes.py `message_stream_chunks`, with their sources). The
server holds back the last chunks behind an Event, so a test can read what `sched` printed
before the provider finished: tokens reach the terminal as they arrive, not when the answer is
whole. Then the ledger: usage committed from the final event, a cut stream kept and billed by
what arrived (exit 4), a failure before the first token falls over, Ctrl-C keeps what arrived.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from scheduler.ledger import Ledger
from tests.conftest import at_a_terminal, clean_env, openai_provider, write_config
from tests.fakes import anthropic_shapes, openai_shapes
from tests.fakes.server import FakeServer, Reply

KEYS = {"A_KEY": "sk-a-0000000000000001", "B_KEY": "sk-b-0000000000000002"}
# How long a test waits for something the process must do soon (generous for a busy CI
# machine; it bounds a failure's duration, never a passing run's).
PATIENCE_S = 60


def _config(tmp_path: Path, fake: FakeServer, *, first: str = "openai") -> Path:
    providers = {"b": openai_provider(fake.base_url("b"), "B_KEY")}
    if first == "anthropic":
        providers["a"] = f"adapter: anthropic\nbase_url: {fake.url}/a\napi_key_env: A_KEY\n"
        providers["a"] += "models: {text: claude-haiku-4-5}"
    else:
        providers["a"] = openai_provider(
            fake.base_url("a"), "A_KEY", "{metric: requests, limit: 5, per: day}"
        )
    return write_config(tmp_path / "providers.yaml", providers, {"text": ["a", "b"]})


def _start(tmp_path: Path, config: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**clean_env(), **KEYS}
    command = [sys.executable, "-m", "scheduler", "--config", str(config)]
    command += ["--db", str(tmp_path / "quota.db"), "run", "text", "Tell me", "--stream", *args]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
        preexec_fn=at_a_terminal,
    )


def _read_until(proc: subprocess.Popen[bytes], wanted: bytes) -> bytes:
    """Read stdout until `wanted` has appeared (the process is still running meanwhile)."""
    assert proc.stdout is not None
    seen = b""
    got = threading.Event()

    def reader() -> None:
        nonlocal seen
        assert proc.stdout is not None
        while wanted not in seen:
            # The file descriptor itself: a buffered read would keep bytes that the later
            # communicate() (which reads the descriptor) would then never see.
            data = os.read(proc.stdout.fileno(), 4096)
            if not data:
                break
            seen += data
        got.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    got.wait(PATIENCE_S)
    assert wanted in seen, f"never printed {wanted!r}; got {seen!r}"
    return seen


def _calls(tmp_path: Path) -> list[tuple[object, ...]]:
    ledger = Ledger.open(str(tmp_path / "quota.db"))
    try:
        return ledger.read("SELECT provider, outcome, usage FROM calls ORDER BY id")
    finally:
        ledger.close()


def _holds(tmp_path: Path) -> int:
    ledger = Ledger.open(str(tmp_path / "quota.db"))
    try:
        return int(ledger.read("SELECT COUNT(*) FROM reservations")[0][0])  # type: ignore[arg-type]
    finally:
        ledger.close()


@pytest.mark.parametrize("adapter", ["openai", "anthropic"])
def test_tokens_are_printed_before_the_last_chunk_and_usage_comes_from_the_final_event(
    tmp_path: Path, fake: FakeServer, adapter: str
) -> None:
    gate = threading.Event()
    if adapter == "anthropic":
        chunks = anthropic_shapes.message_stream_chunks(
            ["Once ", "upon ", "a time."], input_tokens=21, output_tokens=9
        )
        path, held = "/a/v1/messages", 5  # message_start, block start, ping, two pieces
    else:
        chunks = openai_shapes.chat_stream_chunks(
            ["Once ", "upon ", "a time."], prompt_tokens=21, completion_tokens=9
        )
        path, held = "/a/v1/chat/completions", 3  # the role chunk, two pieces
    fake.route("POST", path, Reply(chunks=(*chunks[:held], gate, *chunks[held:])))
    proc = _start(tmp_path, _config(tmp_path, fake, first=adapter))
    try:
        early = _read_until(proc, b"Once ")
        assert not gate.is_set()  # printed while the provider had not finished
        assert proc.poll() is None
    finally:
        gate.set()
    out, err = proc.communicate(timeout=PATIENCE_S)
    assert proc.returncode == 0, err
    assert (early + out).decode() == "Once upon a time.\n"
    assert err.decode().startswith("a: ok")
    ((provider, outcome, usage),) = _calls(tmp_path)
    assert (provider, outcome) == ("a", "ok")
    assert json.loads(str(usage))["input_tokens"] == 21
    assert json.loads(str(usage))["output_tokens"] == 9
    sent = fake.requests(path)[0].json()
    assert sent["stream"] is True
    if adapter == "openai":
        assert sent["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    "how", ["cut", "error_event"], ids=["connection-cut", "anthropic-error-event"]
)
def test_a_stream_broken_after_its_first_token_keeps_the_text_and_bills_it(
    tmp_path: Path, fake: FakeServer, how: str
) -> None:
    if how == "cut":
        chunks = openai_shapes.chat_stream_chunks(["The answer ", "is "], done=False)[:3]
        fake.route("POST", "/a/v1/chat/completions", Reply(chunks=tuple(chunks), cut=True))
        config = _config(tmp_path, fake)
    else:
        chunks = anthropic_shapes.message_stream_chunks(
            ["The answer ", "is "], error="overloaded_error"
        )
        fake.route("POST", "/a/v1/messages", Reply(chunks=tuple(chunks)))
        config = _config(tmp_path, fake, first="anthropic")
    fake.route("POST", "/b/v1/chat/completions", default=openai_shapes.chat_ok("never"))
    proc = _start(tmp_path, config)
    out, err = proc.communicate(timeout=PATIENCE_S)
    assert proc.returncode == 4, err
    assert out.decode() == "The answer is \n"
    lines = err.decode().splitlines()
    assert lines[0].startswith("a: truncated (stream broke after its first token")
    assert lines[-1] == "sched: error: the answer broke off after it began (kept and billed)"
    assert fake.count("/b/v1/chat/completions") == 0  # no fallback after the first token
    ((provider, outcome, usage),) = _calls(tmp_path)
    assert (provider, outcome) == ("a", "truncated")
    assert json.loads(str(usage))["output_tokens"] >= 1  # billed by what arrived
    assert _holds(tmp_path) == 0


def test_no_stream_and_json_wait_for_the_whole_answer_in_one_plain_request(
    tmp_path: Path, fake: FakeServer
) -> None:
    fake.route("POST", "/a/v1/chat/completions", default=openai_shapes.chat_ok("Whole."))
    config = _config(tmp_path, fake)
    for flag in ("--no-stream", "--json"):
        proc = _start(tmp_path, config, flag)  # after --stream: the later flag wins, or --json
        out, err = proc.communicate(timeout=PATIENCE_S)
        assert proc.returncode == 0, err
        assert b"Whole." in out
    bodies = [request.json() for request in fake.requests("/a/v1/chat/completions")]
    assert [body.get("stream") for body in bodies] == [None, None]


def test_a_failure_before_the_first_token_falls_over_to_the_next_provider(
    tmp_path: Path, fake: FakeServer
) -> None:
    fake.route("POST", "/a/v1/chat/completions", default=openai_shapes.server_error())
    chunks = openai_shapes.chat_stream_chunks(["from b"], prompt_tokens=3, completion_tokens=2)
    fake.route("POST", "/b/v1/chat/completions", default=Reply(chunks=tuple(chunks)))
    proc = _start(tmp_path, _config(tmp_path, fake), "-v")
    out, err = proc.communicate(timeout=PATIENCE_S)
    assert proc.returncode == 0, err
    assert out == b"from b\n"
    assert "first-token=" in err.decode()  # -v shows time to first token
    assert [(p, o) for p, o, _ in _calls(tmp_path)][-1] == ("b", "ok")


def test_ctrl_c_during_a_stream_keeps_what_arrived_and_settles_the_hold(
    tmp_path: Path, fake: FakeServer
) -> None:
    gate = threading.Event()
    chunks = openai_shapes.chat_stream_chunks(["Partial ", "answer"])
    fake.route("POST", "/a/v1/chat/completions", Reply(chunks=(*chunks[:2], gate, *chunks[2:])))
    proc = _start(tmp_path, _config(tmp_path, fake))
    try:
        _read_until(proc, b"Partial ")
        os.kill(proc.pid, signal.SIGINT)
        proc.communicate(timeout=PATIENCE_S)
    finally:
        gate.set()
    assert proc.returncode != 0
    ((provider, outcome, usage),) = _calls(tmp_path)
    assert (provider, outcome) == ("a", "interrupted")
    assert json.loads(str(usage))["requests"] == 1  # the call counts against the daily limit
    assert _holds(tmp_path) == 0
