"""`sched cron`: the cron service in the foreground, one job once, or the schedule.

APScheduler is imported only inside these commands, so `sched --help` never loads it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

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
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """The jobs, their schedules and next run times, with zones."""
    from jobs.service import next_runs

    rows = next_runs(ctx.obj.config())
    if as_json:
        typer.echo(json.dumps({"jobs": rows}))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Cron jobs", title_justify="left")
    for column in ("job", "schedule", "zone", "next run", "next run (UTC)"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["job"]),
            str(row["schedule"]),
            str(row["zone"]),
            str(row["next_run"] or "-"),
            str(row["next_run_utc"] or "-"),
        )
    Console(width=160).print(table)


__all__ = ["app"]
