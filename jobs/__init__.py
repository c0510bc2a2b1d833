"""The cron service's jobs, and the wrapper every run of one goes through.

Each job is a plain module-level function taking the config path and the ledger target, so the
scheduler stores it as a `"module:function"` reference with string arguments, `sched cron run JOB`
calls the very same function, and tests call it with neither. The wrapper opens the ledger and the
table, records the run in `job_runs`, and logs one line per run (job, ok, duration, what it did).

Nothing here imports APScheduler: that is `jobs.service`, loaded only by `sched cron`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scheduler.errors import SchedError, redact

if TYPE_CHECKING:
    from scheduler.config import Config, KeyStore
    from scheduler.ledger import Ledger

# Job names as `sched cron run` takes them, and the function each one runs.
JOBS: dict[str, str] = {
    "daily-reset": "jobs.daily_reset:daily_reset",
    "expire-reservations": "jobs.expire_reservations:expire_reservations",
    "failure-report": "jobs.failure_report:failure_report",
    "models-check": "jobs.models_check:models_check",
    "probe-disabled": "jobs.probe_disabled:probe_disabled",
    "quota-check": "jobs.quota_check:quota_check",
}

Detail = dict[str, object]
log = logging.getLogger("sched.jobs")


class JobFailed(SchedError):
    """A job raised; the run is already logged, and recorded in job_runs when `recorded`."""

    exit_code = 1

    def __init__(self, job: str, message: str, *, recorded: bool) -> None:
        self.job = job
        self.recorded = recorded
        super().__init__(f"job {job} failed: {message}")


@dataclass(frozen=True)
class JobContext:
    """What a job body works with: the table, the ledger, the keys, and where they came from."""

    job: str
    config: Config
    ledger: Ledger
    keys: KeyStore
    config_path: str | None
    db_target: str  # resolved: a file path, or a sqlite:/// or PostgreSQL URL


def run_recorded(
    job: str,
    config_path: str | None,
    db_target: str | None,
    body: Callable[[JobContext], Detail],
) -> Detail:
    """Run `body` as one recorded run of `job`; raise JobFailed (after recording) if it fails."""
    from scheduler.config import KeyStore, load_config
    from scheduler.ledger import Ledger, resolve_db_target
    from scheduler.ledger.maintenance import finish_job_run, start_job_run

    clock = time.perf_counter()
    ledger: Ledger | None = None
    run_id: int | None = None
    try:
        target = resolve_db_target(db_target)
        # The ledger first, so that even a broken table is recorded as a failed run.
        ledger = Ledger.open(target)
        run_id = start_job_run(ledger, job)
        config, _ = load_config(config_path)
        ledger.lease_s = config.settings.reservation_lease_s
        ledger.max_block_s = config.settings.max_block_s
        detail = body(JobContext(job, config, ledger, KeyStore(), config_path, target))
        finish_job_run(ledger, run_id, ok=True, detail=detail)
    except Exception as exc:
        message = redact(str(exc)) or type(exc).__name__
        recorded = False
        if ledger is not None and run_id is not None:
            try:
                finish_job_run(ledger, run_id, ok=False, detail={"error": message})
                recorded = True
            except SchedError:
                pass  # the ledger itself is what failed; the log line still says so
        log_run(
            job,
            ok=False,
            duration_s=time.perf_counter() - clock,
            did={"error": message},
            exc_info=not isinstance(exc, SchedError),  # a bug: keep its traceback
        )
        raise JobFailed(job, message, recorded=recorded) from exc
    finally:
        if ledger is not None:
            ledger.close()
    log_run(job, ok=True, duration_s=time.perf_counter() - clock, did=detail)
    return detail


def log_run(job: str, *, ok: bool, duration_s: float, did: Detail, exc_info: bool = False) -> None:
    """The one log line of a job run; its fields become JSON keys in the service's log."""
    fields = {"job": job, "ok": ok, "duration_s": round(duration_s, 3), "did": did}
    level = logging.INFO if ok else logging.ERROR
    status = "ok" if ok else "failed"
    log.log(level, "job %s %s", job, status, extra={"fields": fields}, exc_info=exc_info)


def resolve_job(name: str) -> Callable[[str | None, str | None], Detail]:
    """The function of job `name` (KeyError for an unknown name)."""
    import importlib

    module, _, function = JOBS[name].partition(":")
    func: Callable[[str | None, str | None], Detail] = getattr(
        importlib.import_module(module), function
    )
    return func


def run_job(name: str, config_path: str | None = None, db_target: str | None = None) -> Detail:
    """Run job `name` once (what `sched cron run JOB` does)."""
    return resolve_job(name)(config_path, db_target)


__all__ = [
    "JOBS",
    "Detail",
    "JobContext",
    "JobFailed",
    "log_run",
    "resolve_job",
    "run_job",
    "run_recorded",
]
