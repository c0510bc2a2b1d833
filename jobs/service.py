"""`sched cron`: the APScheduler 3.x service that runs the jobs on their schedules.

The job store is the ledger's own database (table `apscheduler_jobs`), so the schedule lives next
to what it maintains and survives restarts. Every job coalesces and runs one instance at a time,
with `misfire_grace_s` of grace: a run missed while the machine was off (several, even) is run
once at start-up, if it is not older than the grace time; an older one is logged and recorded as
missed, and the job waits for its next time.

A restart keeps each stored job's pending run time when its trigger is unchanged, which is what
lets missed runs be noticed at all: re-adding jobs blindly would compute fresh, future run times
and silently drop them. Jobs whose trigger changed (a new reset zone in the table, a new interval)
are replaced, and stored jobs the table no longer asks for are removed.

One service per ledger: a lock refuses a second one (a file next to a SQLite ledger, an advisory
lock on a PostgreSQL one), while any number of workers share the ledger.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

# APScheduler 3.x ships no type information; its objects are Any here.
from apscheduler.events import (  # type: ignore[import-untyped]
    EVENT_JOB_ERROR,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
)
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore  # type: ignore[import-untyped]
from apscheduler.schedulers import SchedulerNotRunningError  # type: ignore[import-untyped]
from apscheduler.schedulers.base import BaseScheduler  # type: ignore[import-untyped]
from apscheduler.schedulers.blocking import BlockingScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.base import BaseTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]

from jobs import JOBS, JobFailed
from scheduler.errors import ConfigError, SchedError, redact

if TYPE_CHECKING:
    from scheduler.config import Config

log = logging.getLogger("sched.cron")
JOBS_TABLE = "apscheduler_jobs"
# Interval jobs count from a fixed instant: their runs fall on whole minutes (hourly ones on the
# hour), and their trigger is the same object after a restart, so pending runs are kept.
_ANCHOR = datetime(2000, 1, 1, tzinfo=UTC)
_WEEKLY = re.compile(r"^(mon|tue|wed|thu|fri|sat|sun)\s+([01]\d|2[0-3]):([0-5]\d)\s+(\S+)$", re.I)


@dataclass(frozen=True)
class JobSpec:
    """One scheduled job: which job, when, and how `sched cron list` describes it."""

    id: str
    job: str
    trigger: BaseTrigger
    schedule: str
    zone: str
    run_at_start: bool = False

    @property
    def func(self) -> str:
        return JOBS[self.job]


def _zone(name: str, where: str) -> ZoneInfo:
    from scheduler.windows import WindowSpec

    try:
        return WindowSpec("day", tz=name).tz
    except ValueError as exc:
        raise ConfigError(str(exc), path=where) from None


def _every(minutes: int) -> IntervalTrigger:
    return IntervalTrigger(minutes=minutes, start_date=_ANCHOR, timezone=UTC)


def reset_times(config: Config) -> list[tuple[str, str]]:
    """Distinct (HH:MM, zone) of the table's day and month quota rules, and 00:00 UTC, when
    the UTC day whose calls are rolled up ends."""
    found = {("00:00", "UTC")}
    for provider in config.providers.values():
        for rule in provider.quotas:
            if rule.per in ("day", "month"):
                found.add((rule.reset, rule.tz))
    return sorted(found, key=lambda item: (item[1] != "UTC", item[1], item[0]))


def _weekly(spec: str, where: str) -> tuple[CronTrigger, str, str]:
    """A weekly 'DAY HH:MM ZONE' setting: its trigger, how `sched cron list` shows it, its zone."""
    match = _WEEKLY.match(spec.strip())
    if match is None:
        raise ConfigError(
            f"expected 'DAY HH:MM ZONE' such as 'mon 09:00 UTC', got {spec!r}", path=where
        )
    day, hour_text, minute_text, tz = match.groups()
    trigger = CronTrigger(
        day_of_week=day.lower(),
        hour=int(hour_text),
        minute=int(minute_text),
        timezone=_zone(tz, where),
    )
    return trigger, f"weekly {day.lower()} {hour_text}:{minute_text}", tz


def job_specs(config: Config) -> list[JobSpec]:
    """Every job the table asks for, with its trigger."""
    cron = config.settings.cron
    specs = []
    for at, tz in reset_times(config):
        hour, minute = (int(part) for part in at.split(":"))
        trigger = CronTrigger(hour=hour, minute=minute, timezone=_zone(tz, "quotas.tz"))
        specs.append(JobSpec(f"daily-reset@{at} {tz}", "daily-reset", trigger, f"daily {at}", tz))
    specs.append(
        JobSpec(
            "expire-reservations", "expire-reservations", _every(1), "every minute", "UTC", True
        )
    )
    every = cron.failure_report_every_min
    specs.append(
        JobSpec("failure-report", "failure-report", _every(every), f"every {every} min", "UTC")
    )
    every = cron.probe_every_min
    specs.append(
        JobSpec("probe-disabled", "probe-disabled", _every(every), f"every {every} min", "UTC")
    )
    for job, spec in (("models-check", cron.models_check), ("quota-check", cron.quota_check)):
        weekly, schedule, tz = _weekly(spec, f"settings.cron.{job.replace('-', '_')}")
        specs.append(JobSpec(job, job, weekly, schedule, tz))
    return specs


def next_runs(config: Config, now: datetime | None = None) -> list[dict[str, object]]:
    """What `sched cron list` shows: each job, its schedule and its next run, with zones."""
    from scheduler.windows import format_instant

    now = datetime.now(UTC) if now is None else now
    rows: list[dict[str, object]] = []
    for spec in job_specs(config):
        fire = spec.trigger.get_next_fire_time(None, now)
        rows.append(
            {
                "job": spec.job,
                "id": spec.id,
                "function": spec.func,
                "schedule": spec.schedule,
                "zone": spec.zone,
                "next_run": format_instant(int(fire.timestamp()), spec.zone) if fire else None,
                "next_run_utc": fire.astimezone(UTC).isoformat() if fire else None,
            }
        )
    return rows


def jobstore_url(db_target: str) -> str:
    """The ledger's database as a SQLAlchemy URL (a SQLite file by its absolute path)."""
    from scheduler.ledger.db import is_postgres, sqlalchemy_url, sqlite_path

    if is_postgres(db_target):
        return sqlalchemy_url(db_target)
    return f"sqlite:///{sqlite_path(db_target).resolve()}"


def _job_store(url: str) -> Any:
    """The job store on the ledger's database. Unpooled: the scheduler touches it about once a
    minute, and APScheduler's loop makes one last query after shutdown disposed of a pool, which
    would leave that connection open."""
    from sqlalchemy.pool import NullPool

    return SQLAlchemyJobStore(url=url, tablename=JOBS_TABLE, engine_options={"poolclass": NullPool})


def _stored_jobs(scheduler: BaseScheduler, url: str, wanted: set[str]) -> dict[str, Any]:
    """The jobs a previous run left in the store; those no longer wanted are removed."""
    store = _job_store(url)
    store.start(scheduler, "default")  # creates the table on a new ledger
    try:
        jobs = {job.id: job for job in store.get_all_jobs()}
        for job_id in set(jobs) - wanted:
            store.remove_job(job_id)
            log.info("removed stored job %s: the table no longer schedules it", job_id)
        return jobs
    finally:
        store.shutdown()


def build_scheduler(
    config: Config,
    config_path: str,
    db_target: str,
    scheduler_cls: type[BaseScheduler] = BlockingScheduler,
) -> BaseScheduler:
    """A scheduler with every job of the table on the ledger's job store, not started yet."""
    from scheduler.ledger import Ledger

    Ledger.open(db_target).close()  # create and migrate the ledger before the job store uses it
    url = jobstore_url(db_target)
    scheduler = scheduler_cls(
        jobstores={"default": _job_store(url)},
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": config.settings.cron.misfire_grace_s,
        },
        timezone=UTC,
    )
    specs = job_specs(config)
    stored = _stored_jobs(scheduler, url, {spec.id for spec in specs})
    now = datetime.now(UTC)
    for spec in specs:
        options: dict[str, Any] = {}
        previous = stored.get(spec.id)
        if spec.run_at_start:
            options["next_run_time"] = now
        elif (
            previous is not None
            and previous.func_ref == spec.func
            and repr(previous.trigger) == repr(spec.trigger)
            and previous.next_run_time is not None
        ):
            options["next_run_time"] = previous.next_run_time  # keeps a missed run pending
        scheduler.add_job(
            spec.func,
            trigger=spec.trigger,
            args=(config_path, db_target),
            id=spec.id,
            name=spec.job,
            replace_existing=True,
            **options,
        )
    scheduler.add_listener(_Listener(db_target), EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    return scheduler


class _Listener:
    """Logs a failed or missed run and records it in job_runs (unless the job itself did)."""

    def __init__(self, db_target: str) -> None:
        self.db_target = db_target

    def __call__(self, event: JobExecutionEvent) -> None:
        job = str(event.job_id).split("@", 1)[0]
        when = event.scheduled_run_time.astimezone(UTC).isoformat()
        if event.code == EVENT_JOB_MISSED:
            late = (datetime.now(UTC) - event.scheduled_run_time).total_seconds()
            log.warning("job %s missed its run of %s by %.0f s", job, when, late)
            self._record(job, {"missed": when, "late_s": round(late)})
            return
        exc = event.exception
        if isinstance(exc, JobFailed) and exc.recorded:
            return  # logged and recorded by the job's own wrapper
        message = redact(str(exc)) or type(exc).__name__
        log.error("job %s (run of %s) failed: %s", job, when, message)
        self._record(job, {"error": message, "scheduled": when})

    def _record(self, job: str, detail: dict[str, object]) -> None:
        from scheduler.ledger import Ledger
        from scheduler.ledger.maintenance import record_job_run

        try:
            ledger = Ledger.open(self.db_target)
            try:
                record_job_run(ledger, job, ok=False, detail=detail)
            finally:
                ledger.close()
        except SchedError as exc:
            log.error("could not record the %s run in the ledger: %s", job, exc)


# pg_try_advisory_lock(key, schema) of the cron service on a PostgreSQL ledger: advisory locks
# are per database, and each schema (search_path) holds a ledger of its own.
_SERVICE_LOCK = 72_641_590


@contextmanager
def single_service(db_target: str) -> Iterator[None]:
    """One cron service per ledger, for the service's lifetime: an advisory lock on a PostgreSQL
    ledger (held by a connection of its own), an exclusive flock on a SQLite one."""
    from scheduler.ledger import sqlite_file
    from scheduler.ledger.db import connect, is_postgres, sqlite_path

    taken = (
        "a cron service already runs on this ledger ({}); run one cron service per ledger, "
        "with any number of workers"
    )
    if is_postgres(db_target):
        db = connect(db_target)
        try:
            lock = "SELECT pg_try_advisory_lock(?, hashtext(current_schema()))"
            if not db.execute(lock, (_SERVICE_LOCK,)).fetchone()[0]:
                raise SchedError(taken.format("its PostgreSQL advisory lock is held"))
            yield
        finally:
            db.close()  # ends the session, which releases the lock
        return
    # The lock is on the ledger file itself, so it is the same lock under any name the file
    # has: a symlink, a relative path, a hard link (flock locks the inode, not the name).
    # SQLite locks with fcntl() byte ranges, which flock never conflicts with. The descriptor
    # is never closed: closing one would drop this process's fcntl locks on the file under any
    # job still running (scheduler/ledger/sqlite_file.py); unlocking releases the service.
    path = sqlite_path(db_target).resolve()
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o600)
    sqlite_file.keep_open(fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SchedError(taken.format(f"lock on {path}")) from None
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def serve(config: Config, config_path: str, db_target: str) -> None:
    """Run the service in the foreground until SIGTERM or Ctrl-C; both stop it cleanly."""
    with single_service(db_target):
        scheduler = build_scheduler(config, config_path, db_target, BlockingScheduler)
        stopping = threading.Event()

        def stop(signum: int, frame: FrameType | None) -> None:
            # Never touch the scheduler inside the handler: it may hold the scheduler's locks
            # right now. A thread shuts it down; the main loop then returns from start().
            if stopping.is_set():
                return
            stopping.set()
            log.info("stopping on %s", signal.Signals(signum).name)
            threading.Thread(target=_shut_down, args=(scheduler,), daemon=True).start()

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            jobs = ", ".join(spec.id for spec in job_specs(config))
            log.info("cron service started (pid %d): %s", os.getpid(), jobs)
            scheduler.start()  # blocks until shut down
        except (KeyboardInterrupt, SystemExit):
            if scheduler.running:
                scheduler.shutdown(wait=False)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log.info("cron service stopped")


def _shut_down(scheduler: BaseScheduler, patience_s: float = 30.0) -> None:
    """Stop the scheduler without waiting for running jobs; a signal that came in before the
    scheduler was running waits for it to start, so no stop is ever lost."""
    deadline = time.monotonic() + patience_s
    while not scheduler.running and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        scheduler.shutdown(wait=False)
    except SchedulerNotRunningError:
        pass


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a record's `fields` (see `jobs.log_run`) become top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(level: int = logging.INFO) -> None:
    """JSON lines on stderr, once, at the entry point; APScheduler's chatter only when it warns."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("apscheduler").setLevel(max(level, logging.WARNING))
    # A failing job is logged by its own wrapper (with the traceback when it is a bug) and by the
    # listener; the executor's second traceback of the same exception is noise.
    logging.getLogger("apscheduler.executors").setLevel(logging.CRITICAL)
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))


__all__ = [
    "JOBS_TABLE",
    "JobSpec",
    "JsonFormatter",
    "build_scheduler",
    "job_specs",
    "jobstore_url",
    "next_runs",
    "reset_times",
    "serve",
    "setup_logging",
    "single_service",
]
