"""`sched history`: the last calls from the ledger, like `llm logs`: when, what, who, how it
went, how long, how much and what it cost."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from scheduler.cli.context import JsonFlag
from scheduler.cli.render import Column

if TYPE_CHECKING:
    from scheduler.ledger.history import HistoryRow

_COLUMNS = (
    Column("time (UTC)"),
    Column("task", 4),
    Column("provider"),
    Column("model", 2, shrink=True),
    Column("outcome"),
    Column("latency", 5, "right"),
    Column("usage", 3, "right"),
    Column("cost", 1, "right"),
    Column("error", 6, shrink=True),
)


def history(
    ctx: typer.Context,
    count: Annotated[
        int, typer.Option("--count", "-n", min=1, metavar="N", help="How many calls.")
    ] = 20,
    provider: Annotated[
        str | None, typer.Option("--provider", "-p", metavar="NAME", help="Only this provider.")
    ] = None,
    task: Annotated[
        str | None,
        typer.Option("--task", metavar="KIND", help="Only this task kind (text, image, tts, stt)."),
    ] = None,
    outcome: Annotated[
        str | None,
        typer.Option(
            "--outcome",
            metavar="OUTCOME",
            help="Only this outcome: ok, quota_exhausted, rate_limited, auth_failed, transient, "
            "rejected_input or expired.",
        ),
    ] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only calls that failed.")] = False,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", metavar="WHEN", help="Only calls since then: 30m, 2h, 1d, 2w or a date."
        ),
    ] = None,
    prompts: Annotated[
        bool,
        typer.Option(
            "--prompts",
            help="Show each call's prompt, kept only while settings.log_prompts is on"
            " (off by default; keys are never kept).",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """The last calls (newest last): time, task, provider, model, outcome, latency,
    tokens or other units, and cost. Failed attempts are calls too: each is one row.

    Prompts are not stored unless providers.yaml sets `settings: {log_prompts: true}`; then
    `--prompts` shows them (and `--json` always carries them)."""
    from scheduler.cli.moments import parse_moment
    from scheduler.errors import OUTCOMES, InputError
    from scheduler.ledger.history import call_history

    known = (*OUTCOMES, "expired")
    if outcome is not None and outcome not in known:
        raise InputError(f"--outcome {outcome!r}: expected one of {', '.join(known)}")
    state = ctx.obj
    if provider is not None and provider not in state.config().providers:
        known_providers = ", ".join(sorted(state.config().providers))
        raise InputError(f"unknown provider {provider!r} for --provider; known: {known_providers}")
    rows = call_history(
        state.ledger(),
        limit=count,
        provider=provider,
        task=task,
        outcome=outcome,
        failed=failed,
        since=parse_moment(since, "--since", ago=True) if since is not None else None,
    )
    if as_json:
        typer.echo(json.dumps({"calls": [_as_dict(row) for row in rows]}))
        return
    if not rows:
        typer.echo("no calls recorded that match", err=True)
        return
    from scheduler.cli.render import print_table

    columns = (*_COLUMNS, _PROMPT) if prompts else _COLUMNS
    cells = [(*_cells(row), *((_one_line(row.prompt),) if prompts else ())) for row in rows]
    print_table(columns, cells, title="History")
    if prompts and not state.config().settings.log_prompts:
        typer.echo(
            "note: prompts are not being kept; set settings.log_prompts: true in providers.yaml",
            err=True,
        )


_PROMPT = Column("prompt", 1, shrink=True)


def _one_line(prompt: str | None) -> str:
    return " ⏎ ".join(prompt.splitlines()) if prompt else "-"


def _as_dict(row: HistoryRow) -> dict[str, object]:
    from dataclasses import asdict

    from scheduler.windows import format_instant

    return {"time": format_instant(int(row.ts), "UTC"), **asdict(row)}


# How each measured amount reads in the table; requests and usd say nothing a row doesn't.
_UNITS = {"tokens": "tok", "audio_seconds": "audio s", "characters": "chars", "images": "img"}


def _usage(amounts: dict[str, float]) -> str:
    """`312 tok`, `2.5 audio s`, `1 img`: what a call was measured in."""
    shown = [f"{amounts[metric]:g} {unit}" for metric, unit in _UNITS.items() if metric in amounts]
    return ", ".join(shown[:1]) or "-"


def _cells(row: HistoryRow) -> tuple[str, ...]:
    from datetime import UTC, datetime

    return (
        datetime.fromtimestamp(row.ts, UTC).strftime("%Y-%m-%d %H:%M:%S"),
        row.task,
        row.provider,
        row.model or "-",
        row.outcome,
        f"{row.latency_ms / 1000:.1f}s",
        _usage(row.usage),
        f"${row.cost_usd:.4f}",
        row.error or "",
    )


__all__ = ["history"]
