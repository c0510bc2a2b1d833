"""`sched providers list`: which providers are configured, with masked keys."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from scheduler.cli.context import JsonFlag

if TYPE_CHECKING:
    from scheduler.cli.context import AppState
    from scheduler.dispatcher import RunResult
    from scheduler.tasks import Task

app = typer.Typer(help="Inspect the providers of the priority table.", no_args_is_help=True)


@app.command("list")
def list_providers(
    ctx: typer.Context,
    as_json: JsonFlag = False,
) -> None:
    """Every provider: adapter, the task kinds it serves, whether its key is set (masked) and
    where the key came from."""
    from scheduler.config import mask

    config = ctx.obj.config()
    keys = ctx.obj.keys()
    ledger_states = _ledger_states(ctx.obj)
    rows = []
    for name, provider in config.providers.items():
        found = keys.lookup(provider.api_key_env)
        kinds = [kind for kind, names in config.tasks.items() if name in names]
        state = ledger_states.get(name)
        if not provider.enabled:
            status = "off"
        elif state is not None:  # what the ledger says beats "configured"
            status = state
        elif provider.api_key_env is None or found:
            status = "configured"
        else:
            status = "no key"
        rows.append(
            {
                "provider": name,
                "adapter": provider.adapter,
                "tasks": kinds,
                "status": status,
                "key_env": provider.api_key_env,
                "key": mask(found.value) if found else None,
                "key_source": found.origin if found else None,
                "note": provider.note,
            }
        )
    if as_json:
        typer.echo(json.dumps({"providers": rows}))
        return
    from scheduler.cli.render import Column, print_table

    columns = (
        Column("provider"),
        Column("adapter", 4),
        Column("tasks", 2, shrink=True),
        Column("status", 0, shrink=True),
        Column("key", 1, shrink=True),
        Column("from", 3, shrink=True),
    )
    lines = [
        (
            row["provider"],
            row["adapter"],
            ", ".join(row["tasks"]),
            row["status"] + (f" ({row['note']})" if row["note"] else ""),
            row["key"] or (f"{row['key_env']} not set" if row["key_env"] else "none needed"),
            row["key_source"] or "",
        )
        for row in rows
    ]
    print_table(columns, lines, title="Providers")


def _ledger_states(state: AppState) -> dict[str, str]:
    """`disabled: ...`, `cooling_down until ...`, `exhausted until ...` per provider the ledger
    holds back now. A ledger file that does not exist yet is not created just to say nothing."""
    import time
    from pathlib import Path

    from scheduler.ledger import resolve_db_target
    from scheduler.ledger.report import provider_states
    from scheduler.windows import format_instant

    target = resolve_db_target(state.db_target)
    if "://" not in target and not Path(target).exists():
        return {}
    states = {}
    for name, (status, detail, until) in provider_states(state.ledger(), time.time()).items():
        text = status + (f": {detail}" if detail else "")
        if until:
            text += f" (until {format_instant(int(until), 'UTC')})"
        states[name] = text
    return states


@app.command("enable")
def enable(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The provider to enable again.")],
) -> None:
    """Lift a disable by hand: after an auth failure (normally kept until the key changes) or a
    health disable. A cool-down or exhausted quota ends on its own (or: sched providers reset)."""
    from scheduler.ledger.maintenance import enable_provider

    _known(ctx.obj, name)
    lifted = enable_provider(ctx.obj.ledger(), name)
    typer.echo(f"sched: {name} " + ("enabled" if lifted else "was not disabled"), err=True)


@app.command("reset")
def reset(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The provider to reset.")],
) -> None:
    """Forget every verdict on a provider: disable, health block, cool-down, exhaustion and the
    remaining counts it reported. Its used quota stays as counted."""
    from scheduler.ledger.maintenance import reset_provider

    _known(ctx.obj, name)
    cleared = reset_provider(ctx.obj.ledger(), name)
    typer.echo(f"sched: {name} " + ("reset" if cleared else "had nothing to reset"), err=True)


def _known(state: AppState, name: str) -> None:
    from scheduler.errors import InputError

    providers = state.config().providers
    if name not in providers:
        raise InputError(f"unknown provider {name!r}; known: {', '.join(sorted(providers))}")


@app.command("check")
def check(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Providers to check (default: every enabled provider with a key)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """One small real call per provider and task kind it serves (a chat for text, an image for
    image, a second of audio for stt, a word for tts), one row each, with its latency and the
    remaining quota the provider reports. Calls count against quota as usual."""
    import asyncio
    import tempfile
    from pathlib import Path

    from scheduler.errors import InputError
    from scheduler.ledger.report import reported_limits
    from scheduler.probes import probe_kinds, probe_task

    state = ctx.obj
    config = state.config()
    keys = state.keys()
    unknown = [name for name in names or () if name not in config.providers]
    if unknown:
        known = ", ".join(sorted(config.providers))
        raise InputError(f"unknown provider {', '.join(map(repr, unknown))}; known: {known}")
    selected = (
        list(names)
        if names
        else [
            name
            for name, provider in config.providers.items()
            if provider.enabled and (provider.api_key_env is None or keys.get(provider.api_key_env))
        ]
    )
    ledger = state.ledger()
    rows = []
    with tempfile.TemporaryDirectory(prefix="sched-probe-") as tmp:
        probes: dict[tuple[str, str | None], Task | None] = {}
        for name in selected:
            kinds = probe_kinds(config, name)
            for served in kinds:
                probes[(name, served)] = probe_task(served, Path(tmp))
            if not kinds:
                probes[(name, None)] = None  # a row that says it serves nothing
        results = asyncio.run(_check_all(state, probes))
    for (name, kind), run in results.items():
        attempt = run.attempts[-1] if run and run.attempts else None
        reported = reported_limits(ledger, name)
        rows.append(
            {
                "provider": name,
                "kind": kind,
                "outcome": attempt.outcome if attempt else "skipped",
                "error": attempt.error if attempt else "serves no task kind",
                "latency_ms": round(attempt.latency_ms, 1) if attempt else None,
                "reported_remaining": {limit.metric: limit.remaining for limit in reported},
            }
        )
    failed = any(row["outcome"] != "ok" for row in rows)
    if as_json:
        typer.echo(json.dumps({"ok": not failed, "providers": rows}))
    else:
        from scheduler.cli.render import Column, print_table

        columns = (
            Column("provider"),
            Column("kind"),
            Column("outcome"),
            Column("latency", 2, "right"),
            Column("provider reports", 0, shrink=True),
            Column("detail", 1, shrink=True),
        )
        lines = []
        for row in rows:
            remaining: dict[str, float] = row["reported_remaining"]  # type: ignore[assignment]
            lines.append(
                (
                    str(row["provider"]),
                    str(row["kind"] or "-"),
                    str(row["outcome"]),
                    f"{row['latency_ms']:.0f} ms" if row["latency_ms"] else "-",
                    ", ".join(f"{v:g} {k} left" for k, v in remaining.items()) or "-",
                    str(row["error"] or ""),
                )
            )
        print_table(columns, lines, title="Provider check")
    if failed:
        raise typer.Exit(1)


async def _check_all(
    state: AppState, probes: dict[tuple[str, str | None], Task | None]
) -> dict[tuple[str, str | None], RunResult | None]:
    """Probe each (provider, kind) one after another through the dispatcher (quota and state
    apply), in the order given; None stays None (nothing to probe)."""
    from scheduler.options import RunOptions

    async with state.scheduler() as scheduler:
        return {
            key: None if task is None else await scheduler.run(task, RunOptions(provider=key[0]))
            for key, task in probes.items()
        }


__all__ = ["app"]
