"""`sched run KIND ...`: one task through the priority table."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from scheduler.cli.context import AppState
    from scheduler.dispatcher import RunResult
    from scheduler.tasks import Task

app = typer.Typer(help="Run one task on the first provider with quota left.", no_args_is_help=True)

JSON_HELP = "Print one JSON object (task, provider, model, output, attempts, usage, cost_usd)."
VERBOSE_HELP = "Show every candidate with model, tries, latency and the full error."


def _read_prompt(prompt: str | None) -> str:
    """PROMPT, or standard input when PROMPT is '-' or absent and stdin is piped."""
    import sys

    from scheduler.errors import InputError

    if prompt is None or prompt == "-":
        if prompt is None and sys.stdin.isatty():
            raise InputError("no prompt: pass PROMPT, or pipe text on standard input")
        try:
            prompt = sys.stdin.read()
        except UnicodeDecodeError:
            raise InputError("standard input is not UTF-8 text") from None
    if not prompt.strip():
        raise InputError("the prompt is empty")
    return prompt


def execute(state: AppState, task: Task, *, only: str | None, as_json: bool, verbose: bool) -> None:
    """Run `task`, print the result on stdout and the trace on stderr, exit with its code."""
    import asyncio

    from scheduler.cli.render import run_json, trace_line, trace_lines

    run = asyncio.run(_dispatch(state, task, only))
    if as_json:
        typer.echo(run_json(run))
    elif run.result is not None:
        typer.echo(run.result.output)
    typer.echo(trace_line(run), err=True)
    if verbose:
        for line in trace_lines(run):
            typer.echo(line, err=True)
    if run.exit_code:
        if not as_json:
            reason = "no provider was available" if run.exit_code == 3 else "every provider failed"
            typer.echo(f"sched: error: {reason} for this {task.kind} task", err=True)
        raise typer.Exit(run.exit_code)


async def _dispatch(state: AppState, task: Task, only: str | None) -> RunResult:
    from scheduler.dispatcher import Dispatcher
    from scheduler.providers.http import make_client

    config = state.config()
    if only is not None and only not in config.providers:
        from scheduler.errors import InputError

        known = ", ".join(sorted(config.providers))
        raise InputError(f"unknown provider {only!r} for --provider; known: {known}")
    ledger = state.ledger()
    ledger.expire()  # settle holds of processes that died, so reports stay truthful
    async with make_client(config.settings.timeout_s) as http:
        dispatcher = Dispatcher(config, ledger, state.keys(), http)
        return await dispatcher.run(task, only=only)


@app.command("text")
def text(
    ctx: typer.Context,
    prompt: str | None = typer.Argument(
        None, help="The prompt. '-' or nothing (with piped input) reads standard input."
    ),
    system: str | None = typer.Option(None, "--system", "-s", help="System prompt."),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Model name, overriding each provider's configured model."
    ),
    provider: str | None = typer.Option(
        None, "--provider", "-p", help="Use only this provider (quota rules still apply)."
    ),
    max_tokens: int | None = typer.Option(
        None, "--max-tokens", min=1, help="Most tokens the answer may have (default 1024)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    verbose: bool = typer.Option(False, "--verbose", "-v", help=VERBOSE_HELP),
) -> None:
    """Chat completion: print the answer of the first provider that can give it."""
    from scheduler.tasks import TextTask

    task = TextTask(prompt=_read_prompt(prompt), system=system, max_tokens=max_tokens, model=model)
    execute(ctx.obj, task, only=provider, as_json=as_json, verbose=verbose)


__all__ = ["app", "execute"]
