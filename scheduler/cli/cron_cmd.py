"""`sched cron`: the cron service in the foreground, one job once, or the schedule.

APScheduler is imported only inside these commands, so `sched --help` never loads it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from scheduler.cli.context import JsonFlag

if TYPE_CHECKING:
    from scheduler.cli.context import AppState

app = typer.Typer(
    help="The cron service: daily resets, reservation expiry, failure reports with health "
    "disables, re-probes of disabled providers, the weekly model-list check (models gone from "
    "a provider's list are marked retired) and the weekly free-quota check. Without a "
    "command it runs in the foreground until SIGTERM or Ctrl-C (one service per ledger).",
    invoke_without_command=True,
)


def _targets(state: AppState) -> tuple[str, str]:
    """The config file and the ledger as absolute references, the same for every job run."""
    return state.targets()


@app.callback(invoke_without_command=True)
def service(ctx: typer.Context) -> None:
    """Run the service in the foreground (for systemd, a container or a terminal), logging one
    JSON line per job run; SIGTERM or Ctrl-C stops it cleanly. Run one per ledger."""
    if ctx.invoked_subcommand is not None:
        return
    from jobs.service import serve, setup_logging

    setup_logging()
    state: AppState = ctx.obj
    config_path, db_target = _targets(state)
    serve(state.config(), config_path, db_target)


@app.command("run")
def run_once(
    ctx: typer.Context,
    job: Annotated[
        str,
        typer.Argument(
            help="daily-reset, expire-reservations, failure-report, models-check, probe-disabled"
            " or quota-check."
        ),
    ],
) -> None:
    """Run one job once, now (for a system crontab); exit 1 if it fails.

    Prints what the job did as one JSON line; warnings go to stderr."""
    import logging

    from jobs import JOBS, JobFailed, run_job
    from jobs.service import setup_logging

    if job not in JOBS:
        raise typer.BadParameter(
            f"unknown job {job!r}; jobs: {', '.join(JOBS)}", param_hint="'JOB'"
        )
    setup_logging(logging.WARNING)
    config_path, db_target = _targets(ctx.obj)
    try:
        did = run_job(job, config_path, db_target)
    except JobFailed as exc:
        typer.echo(json.dumps({"job": job, "ok": False, "error": str(exc)}))
        raise typer.Exit(1) from None
    typer.echo(json.dumps({"job": job, "ok": True, "did": did}, default=str))


@app.command("list")
def list_jobs(
    ctx: typer.Context,
    as_json: JsonFlag = False,
) -> None:
    """The jobs, their schedules and next run times, with zones."""
    from jobs.service import next_runs

    rows = next_runs(ctx.obj.config())
    if as_json:
        typer.echo(json.dumps({"jobs": rows}))
        return
    from scheduler.cli.render import Column, print_table

    columns = (
        Column("job"),
        Column("schedule", 0, shrink=True),
        Column("zone"),
        Column("next run", 1),
        Column("next run (UTC)"),
    )
    lines = [
        (
            str(row["job"]),
            str(row["schedule"]),
            str(row["zone"]),
            str(row["next_run"] or "-"),
            _minutes(row["next_run_utc"]),
        )
        for row in rows
    ]
    print_table(columns, lines, title="Cron jobs")


def _minutes(instant: object) -> str:
    """`2026-12-04 00:00` for an ISO instant in UTC: to the minute, as the other column (the
    seconds and the offset are in --json)."""
    from datetime import datetime

    if not instant:
        return "-"
    return datetime.fromisoformat(str(instant)).strftime("%Y-%m-%d %H:%M")


__all__ = ["app"]
