"""`sched config check`: validate the priority table and say what would be used."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from scheduler.cli.context import JsonFlag

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
    """Validate providers.yaml (errors name file, key path and line; exit code 2) and list
    the providers this version cannot call yet."""
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
    summary = {
        "ok": True,
        "config": str(source.path),
        "source": source.origin,
        "providers": len(config.providers),
        "tasks": {kind: list(names) for kind, names in config.tasks.items()},
        "adapters_not_available": unavailable,
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


__all__ = ["app"]
