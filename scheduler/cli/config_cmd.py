"""`sched config check`: validate the priority table and say what would be used."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from scheduler.cli.context import JsonFlag

if TYPE_CHECKING:
    from scheduler.cli.context import AppState

app = typer.Typer(help="Check the configuration.", no_args_is_help=True)


@app.command("check")
def check(
    ctx: typer.Context,
    file: Annotated[
        str | None,
        typer.Argument(
            metavar="FILE",
            help="The table to check (default: the one `sched` would use, as --config says).",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Validate providers.yaml (errors name file, key path and line; exit code 2), list the
    providers this version cannot call yet, and warn where the table prices a model below what
    its provider's catalog published at the last `sched models` or models-check."""
    from scheduler.providers.registry import adapter_class

    if file is not None:  # `sched config check FILE`, as users type it
        ctx.obj.config_path = file
    config, source = ctx.obj.loaded()
    unavailable = sorted(
        {
            name
            for names in config.tasks.values()
            for name in names
            if adapter_class(config.providers[name].adapter) is None
        }
    )
    warnings = _price_warnings(ctx.obj)
    summary = {
        "ok": True,
        "config": str(source.path),
        "source": source.origin,
        "providers": len(config.providers),
        "tasks": {kind: list(names) for kind, names in config.tasks.items()},
        "adapters_not_available": unavailable,
        "price_warnings": warnings,
    }
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(f"ok: {source.path} ({source.origin})")
    typer.echo(f"  {len(config.providers)} providers")
    for kind, names in config.tasks.items():
        typer.echo(f"  {kind}: {' > '.join(names)}")
    if unavailable:
        typer.echo(
            f"  note: no adapter in this version for {', '.join(unavailable)}; they are skipped",
        )
    for warning in warnings:
        typer.echo(f"  warning: {warning}", err=True)


def _price_warnings(state: AppState) -> list[str]:
    """The table's prices below the published ones, from the listings the ledger holds. A
    ledger that does not exist yet holds none, and is not created by a config check."""
    from scheduler.catalog import underpriced
    from scheduler.errors import LedgerError
    from scheduler.ledger import resolve_db_target
    from scheduler.ledger.db import is_postgres, sqlite_path

    target = resolve_db_target(state.db_target)
    try:
        if not is_postgres(target) and not sqlite_path(target).exists():
            return []
        return [gap.message for gap in underpriced(state.config(), state.ledger())]
    except LedgerError as exc:
        return [f"published prices not compared: {exc}"]


__all__ = ["app"]
