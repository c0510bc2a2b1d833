"""Exactness under concurrency: 8 processes share one SQLite ledger and one provider's limit."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from scheduler.ledger import Ledger
from tests.conftest import REPO, clean_env, openai_provider, write_config
from tests.fakes import openai_shapes as shapes
from tests.fakes.server import FakeServer

PROCESSES = 8
TASKS = 50


def _run_workers(
    config: Path,
    db: Path | str | list[str],
    max_tokens: int | None = None,
    refusals: Counter[str] | None = None,
    tasks: int = TASKS,
) -> Counter[str]:
    """Start one worker per target (or PROCESSES on one target), all at the same instant."""
    start_at = time.time() + 4.0  # every worker imports first, then all start together
    targets = db if isinstance(db, list) else [str(db)] * PROCESSES
    tail = [str(tasks), str(start_at)] + ([str(max_tokens)] if max_tokens is not None else [])
    env = clean_env(A_KEY="sk-a", B_KEY="sk-b", PYTHONPATH=str(REPO))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.dispatch_worker", str(config), target, *tail],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for target in targets
    ]
    served: Counter[str] = Counter()
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        summary = json.loads(out)
        served.update(summary["served"])
        if refusals is not None:
            refusals.update(summary["refusals"])
    return served


def _setup(tmp_path: Path, fake: FakeServer, rule: str) -> Path:
    fake.route("POST", shapes.chat_path("a"), default=shapes.chat_ok("from a"))
    fake.route("POST", shapes.chat_path("b"), default=shapes.chat_ok("from b"))
    return write_config(
        tmp_path / "providers.yaml",
        {
            "a": openai_provider(fake.base_url("a"), "A_KEY", quotas=rule),
            "b": openai_provider(fake.base_url("b"), "B_KEY"),
        },
        {"text": ["a", "b"]},
    )


def test_request_limit_is_exact_across_processes(
    tmp_path: Path, fake: FakeServer, db_target: str
) -> None:
    config = _setup(tmp_path, fake, "{metric: requests, limit: 100, per: day}")

    served = _run_workers(config, db_target)

    assert fake.count(shapes.chat_path("a")) == 100  # exactly the limit reached the provider
    assert fake.count(shapes.chat_path("b")) == 300  # every other task fell over
    assert served == Counter({"a": 100, "b": 300})
    ledger = Ledger.open(db_target)
    assert ledger.read("SELECT used, reserved FROM usage_windows WHERE provider = 'a'") == [
        (100.0, 0.0)
    ]
    assert ledger.read("SELECT COUNT(*) FROM reservations") == [(0,)]
    assert ledger.read(
        "SELECT provider, outcome, COUNT(*) FROM calls GROUP BY provider, outcome ORDER BY provider"
    ) == [("a", "ok", 100), ("b", "ok", 300)]
    assert ledger.integrity_check() == "ok"


def test_two_workers_with_differently_spelled_postgres_urls_share_one_limit(
    tmp_path: Path, fake: FakeServer, db_target: str
) -> None:
    if not db_target.startswith("postgresql"):
        pytest.skip("a PostgreSQL ledger shared by clients that name it differently")
    config = _setup(tmp_path, fake, "{metric: requests, limit: 37, per: day}")
    plain = "postgresql://" + db_target.split("://", 1)[1]  # no +psycopg driver part

    served = _run_workers(config, [db_target, plain], tasks=40)

    assert served == Counter({"a": 37, "b": 43})
    assert fake.count(shapes.chat_path("a")) == 37


def test_token_limit_with_estimate_then_correction(tmp_path: Path, fake: FakeServer) -> None:
    # Each task reserves its estimate (prompt estimate + max_tokens 100 = 104 tokens for
    # "task NN"), and the provider reports 12 real tokens (5 in + 7 out), which is committed.
    limit = 1000
    config = _setup(tmp_path, fake, f"{{metric: tokens, limit: {limit}, per: day}}")
    db = tmp_path / "quota.db"

    served = _run_workers(config, db, max_tokens=100)

    to_a = fake.count(shapes.chat_path("a"))
    assert served["a"] == to_a and served["a"] + served["b"] == PROCESSES * TASKS
    used, reserved = (
        sqlite3.connect(db)
        .execute("SELECT used, reserved FROM usage_windows WHERE provider = 'a'")
        .fetchone()
    )
    assert used == 12 * to_a  # the ledger holds the corrected usage, not the estimates
    assert reserved == 0
    assert used <= limit
    estimate = 104
    # Sequentially (12 * n + 104 <= 1000) 75 calls fit; at the very end up to 7 holds of the other
    # workers may still be in flight and refuse the last candidates, never more.
    assert 75 - (PROCESSES - 1) <= to_a <= 75
    assert used + estimate > limit - estimate * (PROCESSES - 1)


def test_no_overspend_of_a_daily_budget_across_processes(tmp_path: Path, fake: FakeServer) -> None:
    # Every call costs $0.01 (one request at $0.01); 400 calls against a $1.00 daily budget.
    fake.route("POST", shapes.chat_path("a"), default=shapes.chat_ok("paid"))
    config = write_config(
        tmp_path / "providers.yaml",
        {"a": openai_provider(fake.base_url("a"), "A_KEY") + "\npricing: {usd_per_request: 0.01}"},
        {"text": ["a"]},
        settings="allow_paid: true\nbudget: {daily_usd: 1.0}",
    )
    db = tmp_path / "quota.db"
    refusals: Counter[str] = Counter()

    served = _run_workers(config, db, refusals=refusals)

    conn = sqlite3.connect(db)
    (spend,) = conn.execute("SELECT SUM(cost_usd) FROM calls").fetchone()
    assert spend <= 1.0 + 1e-9  # never past the budget
    assert fake.count(shapes.chat_path("a")) == served["a"] == 100  # exactly $1.00 worth
    assert spend == pytest.approx(1.0)
    # every refused call was skipped for the budget, and said so
    assert refusals == Counter({"daily budget $1.00 would be exceeded": 300})
    assert served["none"] == 300
    assert conn.execute(
        "SELECT used, reserved FROM usage_windows WHERE provider = '*budget*'"
    ).fetchone() == (pytest.approx(1.0), 0.0)
