"""The `sched` command. This is the one place exceptions become messages and exit codes.

Only typer is imported at start-up: each command imports the library pieces it needs, so
`sched --help` never loads pydantic models, SQLite, httpx or a provider SDK.
Set SCHED_DEBUG=1 to get the traceback instead of the one-line message.
"""

from __future__ import annotations

import os
import sys

import typer

from scheduler.cli import (
    config_cmd,
    cost_cmd,
    cron_cmd,
    models_cmd,
    providers_cmd,
    quota_cmd,
    report_cmd,
    run_cmd,
    serve_cmd,
    tokens_cmd,
)
from scheduler.cli.context import AppState

app = typer.Typer(
    name="sched",
    help=(
        "Cost-aware scheduler for AI APIs: runs each task on the first provider in "
        "providers.yaml that still has quota, falls over on quota, rate-limit and errors, "
        "and keeps a shared quota ledger (quota.db)."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # tracebacks with locals would show API keys
    add_completion=False,
    rich_markup_mode="rich",
)
app.add_typer(run_cmd.app, name="run")
app.add_typer(quota_cmd.app, name="quota")
app.add_typer(providers_cmd.app, name="providers")
app.add_typer(config_cmd.app, name="config")
app.add_typer(cost_cmd.app, name="cost")
app.add_typer(cron_cmd.app, name="cron")
app.add_typer(tokens_cmd.app, name="tokens")
app.command("serve")(serve_cmd.serve)
app.command("report")(report_cmd.report)
app.command("models")(models_cmd.models)


@app.callback()
def _root(
    ctx: typer.Context,
    config: str | None = typer.Option(
        None,
        "--config",
        "-c",
        metavar="PATH",
        help="Priority table to use. Default: $SCHED_CONFIG, else ./providers.yaml, else the "
        "packaged default.",
    ),
    db: str | None = typer.Option(
        None,
        "--db",
        metavar="PATH|URL",
        help="Quota ledger: a SQLite file path or sqlite:/// URL. Default: $SCHED_DB, else "
        "./quota.db.",
    ),
) -> None:
    ctx.obj = AppState(config_path=config, db_target=db)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script and `python -m scheduler`."""
    from scheduler.errors import SchedError

    try:
        app(args=argv, prog_name="sched")
    except SchedError as exc:
        if os.environ.get("SCHED_DEBUG"):
            raise
        typer.echo(f"sched: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("sched: interrupted", err=True)
        sys.exit(130)


__all__ = ["app", "main"]
