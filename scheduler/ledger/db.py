"""Opening the ledger database: where it is, how it is tuned, and bringing its schema up to date.

SQLite is the default: one file that any number of processes share. WAL mode lets readers run
beside the single writer; `busy_timeout` makes a writer wait for the lock instead of failing; and
`synchronous=NORMAL` keeps every committed transaction through a process crash (SIGKILL) while
avoiding an fsync per commit (a power cut may lose the last commits, never corrupt the file).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from scheduler.errors import LedgerError

DB_ENV = "SCHED_DB"
DEFAULT_DB = "quota.db"
BUSY_TIMEOUT_S = 5.0

# Named migrations, applied in order, each once per database. A migration is a function of a
# connection that is already inside the write transaction which records it.
MIGRATIONS: list[tuple[str, Callable[[sqlite3.Connection], None]]] = []


def _initial_schema(conn: sqlite3.Connection) -> None:
    """Create every table of `tables` from the SQLModel declarations (idempotent)."""
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable
    from sqlmodel import SQLModel

    from scheduler.ledger import tables  # noqa: F401 - registers the tables on SQLModel.metadata

    dialect = sqlite.dialect()
    for table in SQLModel.metadata.sorted_tables:
        conn.execute(str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)))
        for index in table.indexes:
            conn.execute(str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect)))


MIGRATIONS.append(("0001_initial", _initial_schema))
# Later tables are created by the same idempotent function: CREATE ... IF NOT EXISTS skips the
# tables an earlier migration made.
MIGRATIONS.append(("0002_daily_summaries", _initial_schema))


def _add_list_usd(conn: sqlite3.Connection) -> None:
    """calls.list_usd: each call at list price, so reports can say what free usage saved."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(calls)")}
    if "list_usd" not in columns:
        conn.execute("ALTER TABLE calls ADD COLUMN list_usd FLOAT NOT NULL DEFAULT 0")


MIGRATIONS.append(("0003_calls_list_usd", _add_list_usd))


def resolve_db_target(cli_value: str | None = None) -> str:
    """`--db`, then $SCHED_DB, then ./quota.db. A path or a SQLAlchemy URL."""
    return cli_value or os.environ.get(DB_ENV) or DEFAULT_DB


def sqlite_path(target: str) -> Path:
    """The file behind a target; only SQLite ledgers are supported in this version."""
    if "://" not in target:
        return Path(target)
    if target.startswith("sqlite:///"):
        return Path(target.removeprefix("sqlite:///"))
    scheme = target.split("://", 1)[0]
    raise LedgerError(
        f"unsupported ledger URL scheme {scheme!r}: use a file path or sqlite:///PATH"
    )


def connect(target: str) -> sqlite3.Connection:
    """Open (creating with owner-only permissions if new) and migrate the ledger at `target`."""
    path = sqlite_path(target)
    if path.is_dir():
        raise LedgerError(f"{path}: is a directory, expected a ledger file (--db / {DB_ENV})")
    if not path.exists():
        try:
            # Created 0600 before SQLite touches it: the WAL and SHM files inherit the mode.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError as exc:
            raise LedgerError(f"{path}: cannot create the ledger: {exc.strerror}") from None
    try:
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        _migrate(conn)
    except sqlite3.DatabaseError as exc:
        raise LedgerError(describe_sqlite_error(path, exc)) from None
    return conn


def describe_sqlite_error(path: Path | str, exc: sqlite3.Error) -> str:
    """One line that says what is wrong with the ledger file and what to do about it."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        return (
            f"{path}: the ledger is locked by another process for more than "
            f"{BUSY_TIMEOUT_S:g} s; try again, or check for a stuck process"
        )
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return (
            f"{path}: the ledger file is corrupt ({text}); move it aside to start a new one "
            "(usage counts restart from zero)"
        )
    return f"{path}: ledger error: {text}"


def _applied(conn: sqlite3.Connection) -> set[str]:
    try:
        return {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return set()
        raise


def _migrate(conn: sqlite3.Connection) -> None:
    """Apply missing migrations under the write lock, so concurrent first opens do it once."""
    if {name for name, _ in MIGRATIONS} <= _applied(conn):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        done = _applied(conn)
        for name, migration in MIGRATIONS:
            if name not in done:
                migration(conn)
                conn.execute(
                    "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                    (name, time.time()),
                )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


__all__ = [
    "BUSY_TIMEOUT_S",
    "DB_ENV",
    "DEFAULT_DB",
    "MIGRATIONS",
    "connect",
    "describe_sqlite_error",
    "resolve_db_target",
    "sqlite_path",
]
