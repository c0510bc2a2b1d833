"""A process killed in the middle of a call: its hold expires after the lease and counts as used."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import clean_env, openai_provider, run_cli, write_config
from tests.fakes import openai_shapes as shapes
from tests.fakes.server import FakeServer, Reply


def test_sigkill_mid_call_leaves_a_hold_that_expires_as_used(
    tmp_path: Path, fake: FakeServer
) -> None:
    write_config(
        tmp_path / "providers.yaml",
        {
            "a": openai_provider(
                fake.base_url("a"), "A_KEY", quotas="{metric: requests, limit: 1, per: day}"
            ),
            "b": openai_provider(fake.base_url("b"), "B_KEY"),
        },
        {"text": ["a", "b"]},
        settings="lease_s: 2\ntimeout_s: 1.5",
    )
    fake.route("POST", shapes.chat_path("a"), Reply(delay_s=20, json={}))
    fake.route("POST", shapes.chat_path("b"), shapes.chat_ok("from b"))
    env = clean_env(A_KEY="sk-a", B_KEY="sk-b")
    db = tmp_path / "quota.db"

    victim = subprocess.Popen(
        [sys.executable, "-m", "scheduler", "run", "text", "hi"], env=env, cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.time() + 30
    while fake.count(shapes.chat_path("a")) == 0:  # the call is in flight at the provider
        assert time.time() < deadline, "the call never reached the fake provider"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=10) == -signal.SIGKILL

    conn = sqlite3.connect(db)
    assert conn.execute(
        "SELECT used, reserved FROM usage_windows WHERE provider='a'"
    ).fetchone() == (0.0, 1.0)
    assert conn.execute("SELECT COUNT(*) FROM reservations").fetchone() == (1,)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    # While the hold is open nothing else may use that request; after the lease it counts as used.
    time.sleep(2.5)
    after = run_cli("run", "text", "hi", "--json", env=env)
    assert after.code == 0, after.stderr
    assert after.json()["provider"] == "b"
    assert "quota full: 1 requests per day" in after.json()["attempts"][0]["error"]  # type: ignore[index]
    assert conn.execute(
        "SELECT used, reserved FROM usage_windows WHERE provider='a'"
    ).fetchone() == (1.0, 0.0)
    assert conn.execute("SELECT COUNT(*) FROM reservations").fetchone() == (0,)
    assert conn.execute("SELECT provider, outcome FROM calls ORDER BY id").fetchall() == [
        ("a", "expired"),
        ("b", "ok"),
    ]
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert fake.count(shapes.chat_path("a")) == 1
