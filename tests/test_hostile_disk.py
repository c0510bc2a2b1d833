"""Class 2 of issue 11: a served call is never lost, whatever the ledger's disk or server does.

Rows of two kinds, each a real `sched run text` process against a provider on 127.0.0.1:

- a ledger that is unusable before the call (read-only directory or file, a file cut short or
  not SQLite at all, a schema written by a newer sched): refused at open, exit 2, one line,
  and the provider never sees a request;
- a ledger that fails after the provider served (the write lock held by another real process
  past the busy timeout, the PostgreSQL connection terminated with `pg_terminate_backend`): the
  answer still reaches the user (exit 0), stderr is the trace and one note saying the call was
  journaled, no traceback; the next command (`sched quota report`) replays the journal, and the
  call is in `calls` exactly once with the window counting it, even when replayed twice.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from scheduler.errors import LedgerError
from scheduler.ledger import Ledger
from tests.conftest import PG_URL, clean_env, openai_provider, run_cli, write_config
from tests.fakes import openai_shapes as shapes
from tests.fakes.server import FakeServer, Reply

QUOTA = "{metric: requests, limit: 100, per: day}"
IS_ROOT = os.geteuid() == 0


def _config(tmp_path: Path, fake: FakeServer) -> Path:
    return write_config(
        tmp_path / "providers.yaml",
        {"a": openai_provider(fake.base_url("a"), "A_KEY", QUOTA)},
        {"text": ["a"]},
        "retries: 0",
    )


def _lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.strip()]


# -- refused before the call -----------------------------------------------------------------


def _read_only(target: Path) -> None:
    """Make `target` read-only for real: a read-only bind mount when we are root (root writes
    through any file mode), its mode otherwise."""
    if IS_ROOT:
        subprocess.run(["mount", "--bind", "-o", "ro", str(target), str(target)], check=True)
    else:
        target.chmod(0o555 if target.is_dir() else 0o444)


def _undo_read_only(target: Path) -> None:
    if IS_ROOT:
        subprocess.run(["umount", str(target)], check=False)
    target.chmod(0o755 if target.is_dir() else 0o644)


def _read_only_dir(db: Path) -> None:
    _read_only(db.parent)


def _read_only_file(db: Path) -> None:
    _read_only(db)


def _cut_short(db: Path) -> None:
    with sqlite3.connect(db) as conn:  # enough pages that half the file is missing some
        conn.execute("CREATE TABLE filler (x BLOB)")
        conn.executemany("INSERT INTO filler VALUES (?)", [(b"x" * 4000,) for _ in range(50)])
    size = db.stat().st_size
    with open(db, "r+b") as file:
        file.truncate(size // 2 // 4096 * 4096)


def _not_sqlite(db: Path) -> None:
    db.write_bytes(b"this is no ledger\n" * 400)


def _newer_schema(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO schema_migrations (name, applied_at) VALUES ('9999_next', 0)")


def _header_zeroed(db: Path) -> None:
    with open(db, "r+b") as file:
        file.write(b"\0" * 100)


@dataclass(frozen=True)
class Before:
    damage: Callable[[Path], None]
    says: str
    read_only: bool = False


BEFORE = {
    "read-only directory": Before(_read_only_dir, "read-only", read_only=True),
    "read-only file": Before(_read_only_file, "read-only", read_only=True),
    "file cut short": Before(_cut_short, "corrupt"),
    "not a SQLite file": Before(_not_sqlite, "corrupt"),
    "header zeroed": Before(_header_zeroed, "corrupt"),
    "schema newer than this sched": Before(_newer_schema, "newer"),
}


@pytest.mark.parametrize("row", BEFORE.values(), ids=BEFORE.keys())
def test_a_ledger_unusable_before_the_call_costs_nothing(row: Before, tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    home.mkdir()
    db = home / "quota.db"
    with FakeServer() as fake:
        config = _config(tmp_path, fake)
        fake.route("POST", shapes.chat_path("a"), default=shapes.chat_ok("from a"))
        env = clean_env(A_KEY="sk-a-test", SCHED_DB=str(db))
        assert run_cli("--config", str(config), "quota", "report", env=env).code == 0
        row.damage(db)
        try:
            result = run_cli("--config", str(config), "run", "text", "hi", env=env)
        finally:
            if row.read_only:
                _undo_read_only(db if row.damage is _read_only_file else home)
        code, stdout, stderr = result.code, result.stdout, result.stderr
        assert code == 2, stderr
        assert stdout == ""
        (line,) = _lines(stderr)
        assert row.says in line and "quota.db" in line
        assert fake.count(shapes.chat_path("a")) == 0  # found before the call: it cost nothing


# -- failing after the call: the journal -----------------------------------------------------

LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()  # hold the write lock until the test closes our stdin
"""


def _wait_for_request(fake: FakeServer, path: str) -> None:
    deadline = time.monotonic() + 60  # only stops a hang; the request comes within a second
    while fake.count(path) == 0:
        assert time.monotonic() < deadline, "the run never reached the provider"
        time.sleep(0.02)


def _sqlite_lock(db_target: str, env: dict[str, str]) -> Callable[[], Callable[[], None]]:
    def break_it() -> Callable[[], None]:
        locker = subprocess.Popen(
            [sys.executable, "-c", LOCKER, db_target],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"

        def mend() -> None:
            assert locker.stdin is not None and locker.stdout is not None
            locker.stdin.close()
            locker.wait(timeout=30)
            locker.stdout.close()

        return mend

    return break_it


def _pg_terminate(app: str) -> Callable[[], Callable[[], None]]:
    def break_it() -> Callable[[], None]:
        import psycopg

        with psycopg.connect("postgresql://" + PG_URL.split("://", 1)[1], autocommit=True) as c:
            killed = c.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (app,),
            ).fetchall()
        assert killed and all(ok for (ok,) in killed)
        return lambda: None

    return break_it


def _served_then_journaled(
    tmp_path: Path, db_target: str, env_extra: dict[str, str], breaker_for: Callable[..., object]
) -> None:
    with FakeServer() as fake:
        config = _config(tmp_path, fake)
        fake.route("POST", shapes.chat_path("a"), default=Reply(**_slow_ok()))
        env = clean_env(A_KEY="sk-a-test", SCHED_DB=db_target, **env_extra)
        assert run_cli("--config", str(config), "quota", "report", env=env).code == 0
        run = subprocess.Popen(
            [sys.executable, "-m", "scheduler", "--config", str(config), "run", "text", "hi"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        _wait_for_request(fake, shapes.chat_path("a"))
        mend = breaker_for(env)()  # type: ignore[operator]
        try:
            stdout, stderr = run.communicate(timeout=120)
        finally:
            mend()
        assert run.returncode == 0, stderr
        assert stdout.strip() == "from a"  # the answer reached the user
        trace, note = _lines(stderr)
        assert trace.startswith("a: ok")
        assert note.startswith("sched: note:") and "journaled" in note
        ledger = Ledger.open(db_target)  # opening replays; a second open must not count again
        ledger.close()
        report = run_cli("--config", str(config), "quota", "report", env=env)
        assert report.code == 0, report.stderr
        ledger = Ledger.open(db_target)
        try:
            calls = ledger.read("SELECT outcome, flag FROM calls WHERE provider = 'a'")
            assert calls == [("ok", "recorded late, from the journal")]
            assert ledger.read("SELECT used, reserved FROM usage_windows WHERE provider = 'a'") == [
                (1.0, 0.0)
            ]
            assert ledger.read("SELECT COUNT(*) FROM reservations") == [(0,)]
            assert not ledger.journal.pending()
            assert ledger.integrity_check() == "ok"
        finally:
            ledger.close()
        assert fake.count(shapes.chat_path("a")) == 1


def _slow_ok() -> dict[str, object]:
    reply = shapes.chat_ok("from a")
    return {"json": reply.json, "delay_s": 1.0}


def test_a_write_lock_held_past_the_busy_timeout_journals_the_served_call(
    tmp_path: Path,
) -> None:
    target = str(tmp_path / "quota.db")
    _served_then_journaled(tmp_path, target, {}, lambda env: _sqlite_lock(target, env))


def test_a_terminated_postgresql_connection_journals_the_served_call(
    db_target: str, tmp_path: Path
) -> None:
    if not db_target.startswith("postgresql"):
        pytest.skip("PostgreSQL only: SQLite has no connection to terminate")
    app = f"sched-hostile-{uuid.uuid4().hex[:8]}"
    _served_then_journaled(tmp_path, db_target, {"PGAPPNAME": app}, lambda env: _pg_terminate(app))


def test_a_journal_replayed_twice_counts_each_call_once(tmp_path: Path) -> None:
    """A replayer killed after its database commit and before emptying the journal leaves
    entries that were already counted; the next replay must find them by their hold ids."""
    from scheduler.config.schema import QuotaRule
    from scheduler.ledger import CallRecord, Hold
    from scheduler.ledger.journal import Journal

    rules = [QuotaRule(metric="requests", limit=10, per="day")]
    ledger = Ledger.open(str(tmp_path / "quota.db"))
    holds = [ledger.reserve("a", rules, {"requests": 1}, task="text", model="m") for _ in "ab"]
    assert all(isinstance(hold, Hold) for hold in holds)
    journal = ledger.journal
    assert journal.path is not None
    database = ledger._db
    real_begin = database.begin

    def full_disk() -> None:  # the database refuses both commits, as a full disk would
        raise sqlite3.OperationalError("database or disk is full")

    database.begin = full_disk  # type: ignore[method-assign]
    for hold in holds:
        assert isinstance(hold, Hold)
        with pytest.raises(LedgerError, match="journaled"):
            ledger.commit(hold, CallRecord("text", "a", "m", "ok", 5.0, usage={"requests": 1}))
    database.begin = real_begin  # type: ignore[method-assign]
    saved = journal.path.read_bytes()
    assert ledger.replay_journal() == 2
    journal.path.write_bytes(saved)  # as if the replayer died before truncating
    assert Journal(journal.path).pending()
    assert ledger.replay_journal() == 2
    assert ledger.read("SELECT COUNT(*) FROM calls") == [(2,)]
    assert ledger.read("SELECT used FROM usage_windows") == [(2.0,)]
    ledger.close()
