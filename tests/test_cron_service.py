"""The cron service: triggers and their zones, missed runs after downtime, the foreground
process and its signals, and the `sched cron` commands."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from apscheduler.schedulers.background import (  # type: ignore[import-untyped]
    BackgroundScheduler,
)
from typer.testing import CliRunner

from jobs import JOBS
from jobs.service import build_scheduler, job_specs
from scheduler.cli import app
from scheduler.config import load_config
from scheduler.ledger import Ledger
from tests.conftest import clean_env, openai_provider, run_cli, write_config

JOB_NAMES = [
    "daily-reset",
    "expire-reservations",
    "failure-report",
    "models-check",
    "probe-disabled",
    "quota-check",
]
GEMINI_DAY = "{metric: requests, limit: 20, per: day, reset: '00:00', tz: America/Los_Angeles}"
GROQ_DAY = "{metric: requests, limit: 1000, per: day, reset: '00:00', tz: UTC}"


def _config(tmp_path: Path, settings: str = "", quotas: bool = True) -> Path:
    return write_config(
        tmp_path / "providers.yaml",
        {
            "groq": openai_provider("http://127.0.0.1:9/groq/v1", "G", GROQ_DAY if quotas else ""),
            "gemini": openai_provider(
                "http://127.0.0.1:9/g/v1", "GM", GEMINI_DAY if quotas else ""
            ),
        },
        {"text": ["groq", "gemini"]},
        settings=settings,
    )


def _runs(db: str, job: str) -> list[tuple[int, dict[str, object]]]:
    """The recorded runs of `job`, oldest first; none while the ledger is not created yet."""
    from scheduler.errors import LedgerError

    if "://" not in db and not Path(db).exists():
        return []
    try:
        ledger = Ledger.open(db)
    except LedgerError:  # the service is creating it right now
        return []
    with closing(ledger):
        rows = ledger.read("SELECT ok, detail FROM job_runs WHERE job = ? ORDER BY id", (job,))
    return [(int(str(ok)), json.loads(str(detail))) for ok, detail in rows]


def _wait_for(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s  # time-machine leaves the monotonic clock alone
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _wait_for_service(
    service: subprocess.Popen[str], condition: Callable[[], bool], timeout_s: float
) -> None:
    """`_wait_for`, failing at once when the service exits, with what it printed either way."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if service.poll() is not None or time.monotonic() >= deadline:
            if service.poll() is None:
                service.kill()
            _, stderr = service.communicate()
            raise AssertionError(f"service exited {service.returncode}; stderr:\n{stderr}")
        time.sleep(0.05)


# -- triggers and zones ----------------------------------------------------------------------


def _cron_list(tmp_path: Path, config: Path, at: datetime) -> dict[str, dict[str, object]]:
    with time_machine.travel(at, tick=False):
        result = CliRunner().invoke(
            app,
            ["--config", str(config), "--db", str(tmp_path / "q.db"), "cron", "list", "--json"],
        )
    assert result.exit_code == 0, result.output
    return {str(row["id"]): row for row in json.loads(result.stdout)["jobs"]}


def test_daily_reset_for_midnight_pacific_fires_at_8_utc_in_january_7_in_july(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    january = _cron_list(tmp_path, config, datetime(2026, 1, 15, 0, 0, 30, tzinfo=UTC))
    july = _cron_list(tmp_path, config, datetime(2026, 7, 15, 0, 0, 30, tzinfo=UTC))

    pacific = "daily-reset@00:00 America/Los_Angeles"
    assert january[pacific]["next_run_utc"] == "2026-01-15T08:00:00+00:00"
    assert january[pacific]["next_run"] == "2026-01-15 00:00 PST"
    assert july[pacific]["next_run_utc"] == "2026-07-15T07:00:00+00:00"
    assert july[pacific]["next_run"] == "2026-07-15 00:00 PDT"
    assert january["daily-reset@00:00 UTC"]["next_run_utc"] == "2026-01-16T00:00:00+00:00"
    assert january["expire-reservations"]["next_run_utc"] == "2026-01-15T00:01:00+00:00"
    assert january["failure-report"]["next_run_utc"] == "2026-01-15T01:00:00+00:00"
    assert january["probe-disabled"]["next_run_utc"] == "2026-01-15T00:30:00+00:00"
    assert january["quota-check"]["next_run_utc"] == "2026-01-19T09:00:00+00:00"  # a Monday
    assert january["quota-check"]["zone"] == "UTC"
    assert january["models-check"]["next_run_utc"] == "2026-01-19T08:30:00+00:00"
    assert january["models-check"]["schedule"] == "weekly mon 08:30"
    assert january[pacific]["zone"] == "America/Los_Angeles"


def test_one_daily_reset_trigger_per_distinct_reset_time_and_zone(tmp_path: Path) -> None:
    tokyo = "{metric: tokens, limit: 9, per: month, day: 1, reset: '09:30', tz: Asia/Tokyo}"
    config = write_config(
        tmp_path / "p.yaml",
        {
            "a": openai_provider("http://x/v1", "A", f"{GROQ_DAY}\n{GEMINI_DAY}"),
            "b": openai_provider("http://y/v1", "B", f"{GEMINI_DAY}\n{tokyo}"),
            "c": openai_provider("http://z/v1", "C", "{metric: requests, limit: 5, per: minute}"),
        },
        {"text": ["a", "b", "c"]},
        settings="cron: {quota_check: 'fri 17:45 Europe/Paris', failure_report_every_min: 15}",
    )
    specs = job_specs(load_config(str(config))[0])
    assert [spec.id for spec in specs] == [
        "daily-reset@00:00 UTC",
        "daily-reset@00:00 America/Los_Angeles",
        "daily-reset@09:30 Asia/Tokyo",
        "expire-reservations",
        "failure-report",
        "probe-disabled",
        "models-check",
        "quota-check",
    ]
    quota = specs[-1]
    fire = quota.trigger.get_next_fire_time(None, datetime(2026, 1, 14, tzinfo=UTC))
    assert fire.astimezone(UTC) == datetime(2026, 1, 16, 16, 45, tzinfo=UTC)
    report = specs[4].trigger.get_next_fire_time(None, datetime(2026, 1, 14, 10, 1, tzinfo=UTC))
    assert report == datetime(2026, 1, 14, 10, 15, tzinfo=UTC)


def test_a_malformed_quota_check_schedule_is_a_config_error(tmp_path: Path) -> None:
    config = _config(tmp_path, settings="cron: {quota_check: 'monday 9am'}")
    result = run_cli("--config", str(config), "cron", "list")
    assert result.code == 2
    assert "settings.cron.quota_check" in result.stderr and "mon 09:00 UTC" in result.stderr
    config = _config(tmp_path, settings="cron: {models_check: 'mon 25:00 UTC'}")
    result = run_cli("--config", str(config), "cron", "list")
    assert result.code == 2
    assert "settings.cron.models_check" in result.stderr and "'mon 25:00 UTC'" in result.stderr


# -- missed runs -----------------------------------------------------------------------------


@pytest.mark.parametrize("grace_s", [86400, 3600])
def test_a_run_missed_during_downtime_runs_exactly_once_at_start(
    tmp_path: Path, grace_s: int, db_target: str
) -> None:
    config_path = _config(tmp_path, settings=f"cron: {{misfire_grace_s: {grace_s}}}", quotas=False)
    config = load_config(str(config_path))[0]
    db = db_target

    with time_machine.travel(datetime(2026, 1, 14, 22, 0, tzinfo=UTC)) as clock:
        first = build_scheduler(config, str(config_path), db, BackgroundScheduler)
        first.start()
        _wait_for(lambda: len(_runs(db, "expire-reservations")) == 1)  # runs at every start
        first.shutdown()
        assert _runs(db, "daily-reset") == []

        # Down for two and a half days: three daily resets (Jan 15, 16, 17 00:00 UTC) missed.
        clock.move_to(datetime(2026, 1, 17, 12, 0, tzinfo=UTC))
        second = build_scheduler(config, str(config_path), db, BackgroundScheduler)
        second.start()
        _wait_for(
            lambda: len(_runs(db, "daily-reset")) >= 1 and len(_runs(db, "probe-disabled")) >= 1
        )
        time.sleep(0.3)  # room for a wrong second run to show up
        second.shutdown()

    daily = _runs(db, "daily-reset")
    if grace_s == 86400:  # 12 h late is within the grace: one run for all three
        assert len(daily) == 1 and daily[0][0] == 1
        assert daily[0][1]["day"] == "2026-01-17"
    else:  # too late: logged and recorded as missed, once, and not run
        [(ok, detail)] = daily
        assert (ok, detail["missed"]) == (0, "2026-01-17T00:00:00+00:00")
        assert 43200 <= int(str(detail["late_s"])) < 43260
    assert [ok for ok, _ in _runs(db, "failure-report")] == [1]  # 61 hourly runs missed: one
    assert [ok for ok, _ in _runs(db, "probe-disabled")] == [1]
    assert _runs(db, "quota-check") == []  # next Monday is still ahead
    assert len(_runs(db, "expire-reservations")) == 2


def test_a_restart_replaces_changed_triggers_and_drops_jobs_no_longer_wanted(
    tmp_path: Path, db_target: str
) -> None:
    db = db_target
    with_pacific = _config(tmp_path)
    first = build_scheduler(
        load_config(str(with_pacific))[0], str(with_pacific), db, BackgroundScheduler
    )
    first.start(paused=True)
    assert "daily-reset@00:00 America/Los_Angeles" in {job.id for job in first.get_jobs()}
    first.shutdown()

    utc_only = _config(tmp_path, settings="cron: {probe_every_min: 10}", quotas=False)
    second = build_scheduler(load_config(str(utc_only))[0], str(utc_only), db, BackgroundScheduler)
    second.start(paused=True)
    jobs = {job.id: job for job in second.get_jobs()}
    second.shutdown()
    assert sorted(jobs) == sorted(
        ["daily-reset@00:00 UTC", "expire-reservations", "failure-report", "probe-disabled",
         "models-check", "quota-check"]
    )  # fmt: skip
    assert str(jobs["probe-disabled"].trigger) == "interval[0:10:00]"
    assert {job.func_ref for job in jobs.values()} == set(JOBS.values())
    assert {job.coalesce for job in jobs.values()} == {True}
    assert {job.max_instances for job in jobs.values()} == {1}
    assert {job.misfire_grace_time for job in jobs.values()} == {3600}


# -- the foreground service ------------------------------------------------------------------


def test_sched_cron_runs_its_every_minute_job_and_stops_on_sigterm(
    tmp_path: Path, db_target: str
) -> None:
    config = _config(tmp_path)
    db = db_target
    service = subprocess.Popen(
        [sys.executable, "-m", "scheduler", "--config", str(config), "--db", db, "cron"],
        cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wait_for_service(service, lambda: len(_runs(db, "expire-reservations")) >= 1, 60)
        # A second service on the same ledger is refused while this one runs.
        second = run_cli("--config", str(config), "--db", db, "cron")
        assert second.code != 0 and "already runs on this ledger" in second.stderr
        sent = time.monotonic()
        service.send_signal(signal.SIGTERM)
        code = service.wait(timeout=5)
        assert time.monotonic() - sent < 5
    finally:
        if service.poll() is None:
            service.kill()
        _, stderr = service.communicate()
    assert code == 0, stderr
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    [run] = [line for line in lines if line.get("job") == "expire-reservations"]
    assert (run["ok"], run["did"]) == (True, {"expired": 0})
    assert isinstance(run["duration_s"], float)
    assert any(line["message"] == "stopping on SIGTERM" for line in lines)
    assert lines[-1]["message"] == "cron service stopped"


# -- sched cron run / list -------------------------------------------------------------------


def test_cron_run_list_and_unknown_job(tmp_path: Path, db_target: str) -> None:
    config = _config(tmp_path)
    db = db_target
    root = ("--config", str(config), "--db", db)

    ran = run_cli(*root, "cron", "run", "daily-reset")
    assert ran.code == 0, ran.stderr
    assert json.loads(ran.stdout)["ok"] is True
    assert [ok for ok, _ in _runs(db, "daily-reset")] == [1]

    unknown = run_cli(*root, "cron", "run", "nope")
    assert unknown.code == 2
    assert "unknown job 'nope'" in unknown.stderr
    for name in JOB_NAMES:
        assert name in unknown.stderr

    listed = run_cli(*root, "cron", "list", "--json")
    assert listed.code == 0, listed.stderr
    rows: Any = listed.json()["jobs"]
    assert sorted({row["job"] for row in rows}) == JOB_NAMES
    for row in rows:
        assert row["next_run"] and row["next_run_utc"] and row["zone"]
        assert str(row["next_run"]).split()[-1] in {"UTC", "PST", "PDT"}


def test_cron_run_exits_1_when_the_job_fails(tmp_path: Path) -> None:
    config = _config(tmp_path, settings="cron: {reports_dir: taken}")
    (tmp_path / "taken").write_text("not a directory")
    result = run_cli("--config", str(config), "cron", "run", "failure-report", cwd=tmp_path)
    assert result.code == 1
    assert json.loads(result.stdout)["ok"] is False
    assert [ok for ok, _ in _runs(str(tmp_path / "quota.db"), "failure-report")] == [0]


def test_sched_help_does_not_import_apscheduler() -> None:
    code = (
        "import sys; from scheduler.cli import app; "
        "sys.exit('apscheduler' in ' '.join(sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], env=clean_env()).returncode == 0
