"""Class 3 of issue 11: Ctrl-C after the request left counts the call.

Provider `a` allows one request a day (the case of the issue: SIGINT used to release the hold,
so the provider received two). Each row is a real `sched run text` process whose request is held
at `a` (a real server on 127.0.0.1) until the test has sent the process SIGINT. Every row
asserts: exit 130, no traceback, the one line `sched: error: interrupted`; one calls row,
`interrupted`, counting the request; no hold left and `a`'s window full; a second run skips `a`
(quota full) and is served by `b`, so `a` received exactly one request; `integrity_check` ok.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from scheduler.ledger import Ledger
from tests.conftest import at_a_terminal, clean_env, openai_provider, run_cli, write_config
from tests.fakes import anthropic_shapes, openai_shapes
from tests.fakes.server import FakeServer, Reply

KEYS = {"A_KEY": "sk-a-0000000000000001", "B_KEY": "sk-b-0000000000000002"}
A_LIMIT = "{metric: requests, limit: 1, per: day}"
# How long the test waits for the process to do what it must do soon; bounds a failure only.
PATIENCE_S = 60.0


@dataclass(frozen=True)
class Row:
    adapter: str  # a's adapter: openai (the SDK's raw path) or anthropic (plain httpx)
    args: tuple[str, ...]  # `sched run text` flags
    reply: Callable[[threading.Event], Reply]  # a's answer, held at `gate` until after SIGINT
    printed: bytes = b""  # what stdout shows before the test interrupts (a stream's first piece)


def _held(reply: Reply) -> Callable[[threading.Event], Reply]:
    """A whole answer that comes only long after the interrupt (the server drops it on exit)."""
    return lambda gate: replace(reply, delay_s=PATIENCE_S)


def _stream(pieces: list[str], before: int) -> Callable[[threading.Event], Reply]:
    """A stream of `pieces` that waits at `gate` after `before` of its chunks."""

    def build(gate: threading.Event) -> Reply:
        chunks = openai_shapes.chat_stream_chunks(pieces)
        return Reply(chunks=(*chunks[:before], gate, *chunks[before:]))

    return build


ROWS = {
    "whole-answer-openai": Row("openai", ("--no-stream",), _held(openai_shapes.chat_ok("late"))),
    "whole-answer-openai-json": Row("openai", ("--json",), _held(openai_shapes.chat_ok("late"))),
    "whole-answer-anthropic": Row(
        "anthropic", ("--no-stream",), _held(anthropic_shapes.message_ok("late"))
    ),
    "stream-before-its-first-token": Row("openai", ("--stream",), _stream(["Partial ", "x"], 0)),
    "stream-after-its-first-token": Row(
        "openai", ("--stream",), _stream(["Partial ", "x"], 2), printed=b"Partial "
    ),
}


def _config(tmp_path: Path, fake: FakeServer, adapter: str) -> Path:
    if adapter == "anthropic":
        a = f"adapter: anthropic\nbase_url: {fake.url}/a\napi_key_env: A_KEY\n"
        a += f"models: {{text: claude-haiku-4-5}}\nquotas:\n  - {A_LIMIT}"
    else:
        a = openai_provider(fake.base_url("a"), "A_KEY", A_LIMIT)
    providers = {"a": a, "b": openai_provider(fake.base_url("b"), "B_KEY")}
    return write_config(tmp_path / "providers.yaml", providers, {"text": ["a", "b"]})


def _a_path(adapter: str) -> str:
    return (
        anthropic_shapes.messages_path("a") if adapter == "anthropic" else "/a/v1/chat/completions"
    )


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S  # relative: bounds a failure, never a passing run
    while not condition():
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.01)


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
def test_ctrl_c_while_the_request_is_at_the_provider_counts_the_call(
    tmp_path: Path, fake: FakeServer, row: Row
) -> None:
    gate = threading.Event()
    a_path = _a_path(row.adapter)
    fake.route("POST", a_path, row.reply(gate))
    fake.route("POST", "/b/v1/chat/completions", default=openai_shapes.chat_ok("from b"))
    config = _config(tmp_path, fake, row.adapter)
    db = str(tmp_path / "quota.db")
    command = [sys.executable, "-m", "scheduler", "--config", str(config), "--db", db]
    proc = subprocess.Popen(
        [*command, "run", "text", "Tell me", *row.args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**clean_env(), **KEYS},
        cwd=tmp_path,
        preexec_fn=at_a_terminal,
    )
    seen = b""
    try:
        _wait_for(lambda: fake.count(a_path) == 1, "the request at a")
        if row.printed:
            assert proc.stdout is not None
            while row.printed not in seen:  # the descriptor itself: communicate() reads it next
                data = os.read(proc.stdout.fileno(), 4096)
                assert data, f"never printed {row.printed!r}; got {seen!r}"
                seen += data
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=PATIENCE_S)
    finally:
        gate.set()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    # 130, no traceback, and one line that says what happened.
    assert proc.returncode == 130, err
    assert err.decode().splitlines() == ["sched: error: interrupted"], err
    assert (seen + out).startswith(row.printed)

    with Ledger.open(db) as ledger:
        calls = ledger.read("SELECT provider, outcome, usage FROM calls ORDER BY id")
        holds = ledger.read("SELECT COUNT(*) FROM reservations")
        window = ledger.read("SELECT used, reserved FROM usage_windows WHERE provider = 'a'")
    assert [(p, o) for p, o, _ in calls] == [("a", "interrupted")]
    assert json.loads(str(calls[0][2]))["requests"] == 1
    assert holds == [(0,)]
    assert window == [(1.0, 0.0)]

    # The next run finds a's day used up, so the provider never sees a second request.
    again = run_cli(
        "--config", str(config), "--db", db, "run", "text", "Again", "--json",
        env={**clean_env(), **KEYS}, cwd=tmp_path,
    )  # fmt: skip
    assert again.code == 0, again.stderr
    data = again.json()
    assert data["provider"] == "b"
    attempts = data["attempts"]
    assert isinstance(attempts, list)
    assert attempts[0]["provider"] == "a" and attempts[0]["outcome"] == "skipped"
    assert fake.count(a_path) == 1
    with Ledger.open(db) as ledger:
        assert ledger.integrity_check() == "ok"
