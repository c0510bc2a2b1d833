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
from scheduler.ledger import sqlite_file
from scheduler.urls import mask_url

DB_ENV = "SCHED_DB"
DEFAULT_DB = "quota.db"
BUSY_TIMEOUT_S = 5.0
_PG_SCHEMES = ("postgresql://", "postgresql+psycopg://", "postgres://")
_MIGRATION_LOCK = 7_264_159_013  # pg_advisory_xact_lock key: one migrator at a time


class Busy(Exception):
    """The write lock is taken and this transaction was asked not to wait (`Database.wait`
    off): nothing was done, the caller runs it again where waiting is fine. Not a
    LedgerError: no caller may mistake it for a failed ledger and journal around it."""


class Database:
    """One connection to the ledger, of either dialect, with `?`-placeholder statements."""

    dialect: Literal["sqlite", "postgresql"]
    errors: tuple[type[BaseException], ...]

    def __init__(
        self,
        raw: Any,
        dialect: Literal["sqlite", "postgresql"],
        name: str,
        reconnect: Callable[[], Any] | None = None,
    ) -> None:
        self.raw = raw
        self.dialect = dialect
        self.name = name
        self._reconnect = reconnect
        self._sql: dict[str, str] = {}
        self.wait = True  # off: a BEGIN that meets the write lock raises Busy at once
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
            if self.raw.closed and self._reconnect is not None:
                # The server dropped us (restart, pg_terminate_backend, a network blip): a
                # long-running process gets a new connection instead of failing for ever.
                self.raw = self._reconnect()
            self.raw.execute("BEGIN")
            return
        # SQLite's own busy handler sleeps in steps of milliseconds while another process holds
        # the write lock, twenty times longer than a ledger transaction takes. Waiting in short
        # random steps instead lets eight processes share the lock at full speed; the total
        # wait is still bounded by BUSY_TIMEOUT_S.
        if not self.wait:
            try:
                self.raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc):
                    raise Busy from None
                raise
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
        """End a failed transaction, quietly: the failure itself is what gets reported. SQLite
        may already have rolled back (a failed COMMIT, a full disk: "cannot rollback - no
        transaction is active"), and a dropped PostgreSQL connection has nothing to roll back."""
        try:
            self.raw.execute("ROLLBACK")
        except self.errors:
            pass

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
    # An old ledger's tables lack the columns later indexes are on; an index is made last.
    for table in SQLModel.metadata.sorted_tables:
        present = db.columns(table.name)
        for index in table.indexes:
            if all(column.name in present for column in index.columns):
                db.execute(str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect)))


def _add_list_usd(db: Database) -> None:
    """calls.list_usd: each call at list price, so reports can say what free usage saved."""
    if "list_usd" not in db.columns("calls"):
        db.execute("ALTER TABLE calls ADD COLUMN list_usd FLOAT NOT NULL DEFAULT 0")


def _trust_columns(db: Database) -> None:
    """calls.hold_id and calls.flag (what the ledger did not believe); reservation ids as
    random 62-bit numbers, which PostgreSQL's SERIAL column cannot hold."""
    columns = db.columns("calls")
    if "hold_id" not in columns:
        db.execute("ALTER TABLE calls ADD COLUMN hold_id BIGINT")
    if "flag" not in columns:
        db.execute("ALTER TABLE calls ADD COLUMN flag VARCHAR")
    if db.dialect == "postgresql":
        db.execute("ALTER TABLE reservations ALTER COLUMN id DROP DEFAULT")
        db.execute("ALTER TABLE reservations ALTER COLUMN id TYPE BIGINT")
    _create_tables(db)  # the new indexes


MIGRATIONS.append(("0001_initial", _create_tables))
MIGRATIONS.append(("0002_daily_summaries", _create_tables))
MIGRATIONS.append(("0003_calls_list_usd", _add_list_usd))
MIGRATIONS.append(("0004_calls_ts_cover", _create_tables))  # the covering index on calls
MIGRATIONS.append(("0005_trust", _trust_columns))
MIGRATIONS.append(("0006_gateway_tokens", _create_tables))  # `sched tokens`


def _summary_latency(db: Database) -> None:
    """daily_summaries.list_usd and .latency_hist: the status page reads finished days from the
    summaries alone (saved money and median latency included), not from every call row."""
    columns = db.columns("daily_summaries")
    if "list_usd" not in columns:
        db.execute("ALTER TABLE daily_summaries ADD COLUMN list_usd FLOAT NOT NULL DEFAULT 0")
    if "latency_hist" not in columns:
        db.execute("ALTER TABLE daily_summaries ADD COLUMN latency_hist TEXT NOT NULL DEFAULT '{}'")


MIGRATIONS.append(("0008_summary_latency", _summary_latency))
MIGRATIONS.append(("0009_model_state", _create_tables))  # retired models, live listings

# What a reservation would read besides its own windows: a block, a retired model, a window under
# another spec of a rule (a new usage_windows row), and a provider's reported limits. Every change
# to them bumps a counter, by trigger, so every writer bumps it (any process, any code path, the
# cron service, a hand-run UPDATE): a process may keep "nothing known" while the counter stands.
# Reported limits have their own counter (`limits_n`): a provider that sends rate-limit headers
# rewrites them with every answer, which must not make the rest be read again each time.
GENERATION_TABLES = (
    ("provider_state", ("INSERT", "UPDATE", "DELETE"), "n"),
    ("provider_limits", ("INSERT", "UPDATE", "DELETE"), "limits_n"),
    ("model_state", ("INSERT", "UPDATE", "DELETE"), "n"),
    ("usage_windows", ("INSERT",), "n"),
)


def _generation(db: Database) -> None:
    """ledger_generation (one row) and the triggers that bump it (see GENERATION_TABLES)."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS ledger_generation"
        " (id INTEGER PRIMARY KEY CHECK (id = 1), n BIGINT NOT NULL, limits_n BIGINT NOT NULL)"
    )
    db.execute(
        "INSERT INTO ledger_generation (id, n, limits_n) VALUES (1, 0, 0)"
        " ON CONFLICT (id) DO NOTHING"
    )
    for table, events, column in GENERATION_TABLES:
        name = f"sched_generation_{table}"
        bump = f"UPDATE ledger_generation SET {column} = {column} + 1 WHERE id = 1"
        if db.dialect == "postgresql":  # FOR EACH ROW: an UPDATE that matches nothing is quiet
            db.execute(
                f"CREATE OR REPLACE FUNCTION sched_bump_{column}() RETURNS trigger"
                f" LANGUAGE plpgsql AS $$ BEGIN {bump}; RETURN NULL; END $$"
            )
            db.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            db.execute(
                f"CREATE TRIGGER {name} AFTER {' OR '.join(events)} ON {table}"
                f" FOR EACH ROW EXECUTE FUNCTION sched_bump_{column}()"
            )
            continue
        for event in events:
            db.execute(
                f"CREATE TRIGGER IF NOT EXISTS {name}_{event.lower()} AFTER {event} ON {table}"
                f" BEGIN {bump}; END"
            )


MIGRATIONS.append(("0010_generation", _generation))


def _calls_prompt(db: Database) -> None:
    """calls.prompt: the task's text, written only with settings.log_prompts."""
    if "prompt" not in db.columns("calls"):
        db.execute("ALTER TABLE calls ADD COLUMN prompt TEXT")


MIGRATIONS.append(("0011_calls_prompt", _calls_prompt))


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
    except LedgerError:
        db.close()
        raise
    return db


def _connect_sqlite(target: str) -> Database:
    path = sqlite_path(target)
    if path.is_dir():
        raise LedgerError(f"{path}: is a directory, expected a ledger file (--db / {DB_ENV})")
    try:
        sqlite_file.prepare(path)
        raw = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        raw.execute("PRAGMA journal_mode=WAL")
        # Write transactions wait in Database.begin(); readers never wait in WAL mode.
        raw.execute("PRAGMA busy_timeout=0")
        raw.execute("PRAGMA synchronous=NORMAL")
        # No checkpoint inside a commit (one in ~1000 took 30-40x the median): the ledger runs
        # passive checkpoints on a thread of its own (scheduler/ledger/checkpoint.py), and the
        # last connection to close checkpoints what is left.
        raw.execute("PRAGMA wal_autocheckpoint=0")
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
    shown = mask_url(conninfo).split("://", 1)[-1]  # user:***@host/db?password=***

    def dial() -> Any:
        # autocommit: transactions are explicit BEGIN/COMMIT, exactly as on SQLite.
        return psycopg.connect(conninfo, autocommit=True, connect_timeout=10)

    try:
        raw = dial()
    except psycopg.Error as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LedgerError(f"cannot reach the PostgreSQL ledger at {shown}: {message}") from None
    return Database(raw, "postgresql", shown, reconnect=dial)


def describe_error(name: Path | str, exc: BaseException) -> str:
    """One line that says what is wrong with the ledger and what to do about it."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "locked" in text or "busy" in text:
        return (
            f"{name}: the ledger is locked by another process for more than "
            f"{BUSY_TIMEOUT_S:g} s; try again, or check for a stuck process"
        )
    if "readonly" in text or "read-only" in text:
        return f"{name}: the ledger is read-only ({text}); sched must be able to write it"
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
    """Apply missing migrations under the write lock, so concurrent first opens do it once.

    A ledger migrated by a newer sched is refused here, before any call: this code would not
    write the columns the newer one relies on."""
    known = {name for name, _ in MIGRATIONS}
    applied = _applied(db)
    if newer := sorted(applied - known):
        raise LedgerError(
            f"{db.name}: the ledger's schema is newer than this sched (migration {newer[-1]});"
            " upgrade sched, or point --db / SCHED_DB at another ledger"
        )
    if known <= applied:
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
    "Busy",
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
