"""The `sched` command. This is the one place exceptions become messages and exit codes.

Only typer is imported at start-up: each command imports the library pieces it needs, so
`sched --help` never loads pydantic models, SQLite, httpx or a provider SDK.
Set SCHED_DEBUG=1 to get the traceback instead of the one-line message.
"""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn

import typer

from scheduler.cli import (
    config_cmd,
    cost_cmd,
    cron_cmd,
    history_cmd,
    init_cmd,
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
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
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
app.command("history")(history_cmd.history)
app.command("init")(init_cmd.init)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("api-scheduler")
        except PackageNotFoundError:  # run from a source tree that was never installed
            number = "unknown"
        typer.echo(f"sched {number}")
        raise typer.Exit()


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
    _version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    # main() hands in its AppState so that it can read, after a failure, what was parsed.
    state = ctx.ensure_object(AppState)
    state.config_path, state.db_target = config, db


def command() -> Any:
    """The click command tree typer builds from `app`, with help placeholders as words."""
    from scheduler.cli.placeholders import name_placeholders

    tree = typer.main.get_command(app)
    name_placeholders(tree)
    return tree


INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script and `python -m scheduler`.

    Every failure ends here as one `sched: error: ...` line on stderr and its exit code: typer's
    usage errors (exit 2, no boxed panel), SchedError with its own code. With --json the same
    failure is also one JSON object on stdout, so a script reading stdout always gets an answer.
    """
    if argv is None:  # the sched process itself, not a caller inside another program
        from scheduler.cli.lean import skip_probed_imports

        skip_probed_imports()
    from scheduler.errors import SchedError

    state = AppState()
    try:
        code = command().main(args=argv, prog_name="sched", standalone_mode=False, obj=state)
    except SchedError as exc:
        if os.environ.get("SCHED_DEBUG"):
            raise
        _fail(state, str(exc), exc.exit_code, _error_type(exc), _error_fields(exc))
    except typer.TyperException as exc:  # click's usage and file errors, vendored by typer
        # A usage error can come before --json itself was parsed: then the words decide.
        words = sys.argv[1:] if argv is None else argv
        state.as_json = state.as_json or "--json" in words[: _end_of_options(words)]
        _typer_failure(state, exc)
    except typer.Abort:
        _fail(state, "aborted", 1, "aborted")
    except KeyboardInterrupt:
        _fail(state, "interrupted", INTERRUPTED, "interrupted")
    if code == INTERRUPTED:  # typer turns Ctrl-C into a silent exit 130 before it gets here
        _fail(state, "interrupted", INTERRUPTED, "interrupted")
    sys.exit(code if isinstance(code, int) else 0)


def _end_of_options(words: list[str]) -> int:
    return words.index("--") if "--" in words else len(words)


def _typer_failure(state: AppState, exc: typer.TyperException) -> None:
    # typer vendors click from 0.26 on; its exception classes are not re-exported.
    from typer._click.exceptions import NoArgsIsHelpError

    if isinstance(exc, NoArgsIsHelpError):  # `sched run` alone: the help was the answer
        exc.show()
        sys.exit(exc.exit_code)
    ctx = getattr(exc, "ctx", None)
    message = exc.format_message().rstrip(".")
    if ctx is not None:  # where to look, on the same line
        message += f" (see '{ctx.command_path} --help')"
    _fail(state, message, exc.exit_code, "usage" if exc.exit_code == 2 else "file")


def _error_type(exc: Exception) -> str:
    """A stable name for scripts: config, input, ledger, provider."""
    from scheduler.errors import ConfigError, InputError, LedgerError, ProviderError

    for cls, name in (
        (ConfigError, "config"),
        (InputError, "input"),
        (LedgerError, "ledger"),
        (ProviderError, "provider"),
    ):
        if isinstance(exc, cls):
            return name
    return "error"


def _error_fields(exc: Exception) -> dict[str, object]:
    """What a ConfigError knows of where the problem is (file, key path, line)."""
    fields = {
        "file": getattr(exc, "file", None),
        "key": getattr(exc, "path", None),
        "line": getattr(exc, "line", None),
    }
    return {name: value for name, value in fields.items() if value is not None}


def _fail(
    state: AppState,
    message: str,
    exit_code: int,
    error_type: str,
    fields: dict[str, object] | None = None,
) -> NoReturn:
    """The one way a failure leaves `sched`."""
    if state.as_json:
        import json

        payload = {"ok": False, "error": message, "error_type": error_type, "exit_code": exit_code}
        typer.echo(json.dumps({**payload, **(fields or {})}, ensure_ascii=False))
    typer.echo(f"sched: error: {message}", err=True)
    sys.exit(exit_code)


__all__ = ["app", "command", "main"]
