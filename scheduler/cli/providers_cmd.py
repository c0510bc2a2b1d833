"""`sched providers list`: which providers are configured, with masked keys."""

from __future__ import annotations

import json

import typer

app = typer.Typer(help="Inspect the providers of the priority table.", no_args_is_help=True)


@app.command("list")
def list_providers(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Every provider: adapter, the task kinds it serves, whether its key is set (masked) and
    where the key came from."""
    from scheduler.config import mask

    config = ctx.obj.config()
    keys = ctx.obj.keys()
    rows = []
    for name, provider in config.providers.items():
        found = keys.lookup(provider.api_key_env)
        kinds = [kind for kind, names in config.tasks.items() if name in names]
        if not provider.enabled:
            status = "off"
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
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Providers", title_justify="left")
    for column in ("provider", "adapter", "tasks", "status", "key", "from"):
        table.add_column(column)
    for row in rows:
        key = row["key"] or (f"{row['key_env']} not set" if row["key_env"] else "none needed")
        table.add_row(
            row["provider"],
            row["adapter"],
            ", ".join(row["tasks"]),
            row["status"] + (f" ({row['note']})" if row["note"] else ""),
            key,
            row["key_source"] or "",
        )
    Console(width=160).print(table)


__all__ = ["app"]
