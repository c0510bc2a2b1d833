"""Opening the ledger database: where it is, how it is tuned, and bringing its schema up to date.

SQLite is the default: one file that any number of processes on one machine share. WAL mode lets
readers run beside the single writer; `busy_timeout` makes a writer wait for the lock instead of
failing; `synchronous=NORMAL` keeps every committed transaction through a process crash (SIGKILL)
while avoiding an fsync per commit (a power cut may lose the last commits, never corrupt the file).

PostgreSQL (`SCHED_DB=postgresql+psycopg://host/db`) serves many machines. The ledger's statements
are written once, with `?` placeholders, and `Database` adapts them: SQLite takes them as they
are, PostgreSQL gets `%s`. Every write is one short transaction; on SQLite `BEGIN IMMEDIATE` takes
the write lock up front, on PostgreSQL the conditional upserts lock exactly the window rows they
touch (READ COMMITTED re-checks the condition on the latest committed row).
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from scheduler.errors import LedgerError

DB_ENV = "SCHED_DB"
DEFAULT_DB = "quota.db"
BUSY_TIMEOUT_S = 5.0
_PG_SCHEMES = ("postgresql://", "postgresql+psycopg://", "postgres://")
_MIGRATION_LOCK = 7_264_159_013  # pg_advisory_xact_lock key: one migrator at a time


class Database:
    """One connection to the ledger, of either dialect, with `?`-placeholder statements."""

    dialect: Literal["sqlite", "postgresql"]
    errors: tuple[type[BaseException], ...]

    def __init__(self, raw: Any, dialect: Literal["sqlite", "postgresql"], name: str) -> None:
        self.raw = raw
        self.dialect = dialect
        self.name = name
        self._sql: dict[str, str] = {}
        if dialect == "sqlite":
            self.errors = (sqlite3.Error,)
        else:
            import psycopg

            self.errors = (psycopg.Error,)

    def execute(self, sql: str, params: Sequence[object] = ()) -> Any:
        """Run one statement; returns the driver's cursor (fetchone, fetchall, rowcount)."""
        if self.dialect == "postgresql":
            text = self._sql.get(sql)
            if text is None:
                text = self._sql[sql] = sql.replace("?", "%s")
            return self.raw.execute(text, params)
        return self.raw.execute(sql, params)

    def begin(self) -> None:
        if self.dialect == "postgresql":
            self.raw.execute("BEGIN")
            return
        # SQLite's own busy handler sleeps in steps of milliseconds while another process holds
        # the write lock, twenty times longer than a ledger transaction takes. Waiting in short
        # random steps instead lets eight processes share the lock at full speed; the total
        # wait is still bounded by BUSY_TIMEOUT_S.
        self._until_unlocked("BEGIN IMMEDIATE")

    def commit(self) -> None:
        if self.dialect == "postgresql":
            self.raw.execute("COMMIT")
        else:  # rare in WAL mode, but a commit can meet a busy WAL; wait the same way
            self._until_unlocked("COMMIT")

    def _until_unlocked(self, statement: str) -> None:
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        pause = 20e-6
        while True:
            try:
                self.raw.execute(statement)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(random.uniform(0, pause))
            pause = min(pause * 2, 2e-3)

    def rollback(self) -> None:
        self.raw.execute("ROLLBACK")

    def close(self) -> None:
        self.raw.close()

    def table_exists(self, table: str) -> bool:
        if self.dialect == "sqlite":
            sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        else:
            sql = "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = ?"
        return self.execute(sql, (table,)).fetchone() is not None

    def columns(self, table: str) -> set[str]:
        if self.dialect == "sqlite":
            return {row[1] for row in self.execute(f"PRAGMA table_info({table})")}
        rows = self.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ?",
            (table,),
        )
        return {row[0] for row in rows}

    def integrity_check(self) -> str:
        """SQLite's own verdict on the file; PostgreSQL keeps its own consistency ('ok')."""
        if self.dialect == "sqlite":
            return str(self.execute("PRAGMA integrity_check").fetchone()[0])
        return "ok"


# Named migrations, applied in order, each once per database. A migration is a function of a
# database that is already inside the write transaction which records it.
MIGRATIONS: list[tuple[str, Callable[[Database], None]]] = []


def _create_tables(db: Database) -> None:
    """Create every table of `tables` from the SQLModel declarations (idempotent: IF NOT EXISTS
    skips what an earlier migration made, so later tables can use this same function)."""
    from sqlalchemy.dialects import postgresql, sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable
    from sqlmodel import SQLModel

    from scheduler.ledger import tables  # noqa: F401 - registers the tables on SQLModel.metadata

    pg = postgresql.dialect()  # type: ignore[no-untyped-call]  # SQLAlchemy ships it untyped
    dialect = sqlite.dialect() if db.dialect == "sqlite" else pg
    for table in SQLModel.metadata.sorted_tables:
        db.execute(str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)))
        for index in table.indexes:
            db.execute(str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect)))


def _add_list_usd(db: Database) -> None:
    """calls.list_usd: each call at list price, so reports can say what free usage saved."""
    if "list_usd" not in db.columns("calls"):
        db.execute("ALTER TABLE calls ADD COLUMN list_usd FLOAT NOT NULL DEFAULT 0")


MIGRATIONS.append(("0001_initial", _create_tables))
MIGRATIONS.append(("0002_daily_summaries", _create_tables))
MIGRATIONS.append(("0003_calls_list_usd", _add_list_usd))
MIGRATIONS.append(("0004_calls_ts_cover", _create_tables))  # the covering index on calls
MIGRATIONS.append(("0005_model_state", _create_tables))  # retired models, live listings


def resolve_db_target(cli_value: str | None = None) -> str:
    """`--db`, then $SCHED_DB, then ./quota.db. A path or a SQLAlchemy URL."""
    return cli_value or os.environ.get(DB_ENV) or DEFAULT_DB


def is_postgres(target: str) -> bool:
    return target.startswith(_PG_SCHEMES)


def sqlite_path(target: str) -> Path:
    """The file behind a SQLite target (a path or a sqlite:/// URL)."""
    if "://" not in target:
        return Path(target)
    if target.startswith("sqlite:///"):
        return Path(target.removeprefix("sqlite:///"))
    scheme = target.split("://", 1)[0]
    raise LedgerError(
        f"unsupported ledger URL scheme {scheme!r}: use a file path, sqlite:///PATH or"
        " postgresql+psycopg://HOST/DB"
    )


def sqlalchemy_url(target: str) -> str:
    """The same ledger as a SQLAlchemy URL (for APScheduler's job store)."""
    if is_postgres(target):
        return "postgresql+psycopg://" + target.split("://", 1)[1]
    return f"sqlite:///{sqlite_path(target)}"


def connect(target: str) -> Database:
    """Open (creating if new) and migrate the ledger at `target`."""
    db = _connect_postgres(target) if is_postgres(target) else _connect_sqlite(target)
    try:
        _migrate(db)
    except db.errors as exc:
        db.close()
        raise LedgerError(describe_error(db.name, exc)) from None
    return db


def _connect_sqlite(target: str) -> Database:
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
        raw = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        raw.execute("PRAGMA journal_mode=WAL")
        # Write transactions wait in Database.begin(); readers never wait in WAL mode.
        raw.execute("PRAGMA busy_timeout=0")
        raw.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.DatabaseError as exc:
        raise LedgerError(describe_error(path, exc)) from None
    return Database(raw, "sqlite", str(path))


def _connect_postgres(target: str) -> Database:
    try:
        import psycopg
    except ImportError:
        raise LedgerError(
            "a PostgreSQL ledger needs psycopg: pip install 'api-scheduler[postgres]'"
        ) from None
    conninfo = "postgresql://" + target.split("://", 1)[1]
    shown = conninfo.split("@")[-1] if "@" in conninfo else conninfo.split("://", 1)[1]
    try:
        # autocommit: transactions are explicit BEGIN/COMMIT, exactly as on SQLite.
        raw = psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LedgerError(f"cannot reach the PostgreSQL ledger at {shown}: {message}") from None
    return Database(raw, "postgresql", shown)


def describe_error(name: Path | str, exc: BaseException) -> str:
    """One line that says what is wrong with the ledger and what to do about it."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "locked" in text or "busy" in text:
        return (
            f"{name}: the ledger is locked by another process for more than "
            f"{BUSY_TIMEOUT_S:g} s; try again, or check for a stuck process"
        )
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return (
            f"{name}: the ledger file is corrupt ({text}); move it aside to start a new one "
            "(usage counts restart from zero)"
        )
    return f"{name}: ledger error: {text}"


def _applied(db: Database) -> set[str]:
    if not db.table_exists("schema_migrations"):
        return set()
    return {row[0] for row in db.execute("SELECT name FROM schema_migrations")}


def _migrate(db: Database) -> None:
    """Apply missing migrations under the write lock, so concurrent first opens do it once."""
    if {name for name, _ in MIGRATIONS} <= _applied(db):
        return
    db.begin()
    try:
        if db.dialect == "postgresql":
            db.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
        done = _applied(db)
        for name, migration in MIGRATIONS:
            if name not in done:
                migration(db)
                db.execute(
                    "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                    (name, time.time()),
                )
        db.commit()
    except BaseException:
        db.rollback()
        raise


__all__ = [
    "BUSY_TIMEOUT_S",
    "DB_ENV",
    "DEFAULT_DB",
    "MIGRATIONS",
    "Database",
    "connect",
    "describe_error",
    "is_postgres",
    "resolve_db_target",
    "sqlalchemy_url",
    "sqlite_path",
]
