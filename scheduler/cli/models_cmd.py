"""`sched models [PROVIDER...]`: each provider's live model list, against the table."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from scheduler.catalog import ProviderCatalog
    from scheduler.cli.context import AppState
    from scheduler.providers.listing import ModelInfo


def models(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Providers to list (default: every provider in the table)."),
    ] = None,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    kind: str | None = typer.Option(
        None, "--kind", help="Only models serving this task kind, where the provider tells."
    ),
    prices: bool = typer.Option(
        False, "--prices", help="Show published prices (OpenRouter, Together) beside the table's."
    ),
    show_all: bool = typer.Option(
        False, "--all", help="Every listed model, not only the ones the table names."
    ),
) -> None:
    """Ask each provider's own list endpoint which models it serves now, and mark which of the
    table's models are present, missing or retired. Providers without a key are skipped."""
    from scheduler.catalog import fetch_catalog
    from scheduler.errors import InputError
    from scheduler.providers.http import make_client

    state: AppState = ctx.obj
    config = state.config()
    unknown = [name for name in names or () if name not in config.providers]
    if unknown:
        known = ", ".join(sorted(config.providers))
        raise InputError(f"unknown provider {', '.join(map(repr, unknown))}; known: {known}")

    async def go() -> list[ProviderCatalog]:
        async with make_client(config.settings.timeout_s) as http:
            return await fetch_catalog(config, state.keys(), http, state.ledger(), names)

    catalogs = asyncio.run(go())
    if as_json:
        typer.echo(json.dumps({"providers": [_as_dict(c, kind) for c in catalogs]}))
        return
    _print(state, catalogs, kind=kind, prices=prices, show_all=show_all)


def _serves(model: ModelInfo, kind: str | None) -> bool:
    return kind is None or not model.kinds or kind in model.kinds


def _as_dict(catalog: ProviderCatalog, kind: str | None) -> dict[str, object]:
    return {
        "provider": catalog.provider,
        "status": catalog.status,
        "reason": catalog.reason,
        "configured": [
            {
                "kind": c.kind,
                "model": c.model,
                "state": "retired" if c.retired else c.state,
                "listed": c.state == "present",
                "retired_reason": c.retired.reason if c.retired else None,
            }
            for c in catalog.configured
            if kind is None or c.kind == kind
        ],
        "models": [
            {
                "id": m.id,
                "kinds": sorted(m.kinds),
                "free": m.free,
                "usd_per_mtok_input": m.usd_per_mtok_input,
                "usd_per_mtok_output": m.usd_per_mtok_output,
            }
            for m in catalog.models
            if _serves(m, kind)
        ],
    }


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:g}"


def _print(
    state: AppState,
    catalogs: list[ProviderCatalog],
    *,
    kind: str | None,
    prices: bool,
    show_all: bool,
) -> None:
    from rich.console import Console
    from rich.table import Table

    config = state.config()
    table = Table(title="Models", title_justify="left")
    for column in ("provider", "model", "table", "state"):
        table.add_column(column)
    if prices:
        table.add_column("published in/out per Mtok")
        table.add_column("table in/out per Mtok")
    for catalog in catalogs:
        if catalog.status != "ok":
            table.add_row(catalog.provider, "", "", f"{catalog.status}: {catalog.reason}")
            continue
        listed = {m.id: m for m in catalog.models}
        named = set()
        for c in catalog.configured:
            if kind is not None and c.kind != kind:
                continue
            named.add(c.model)
            label = "missing" if c.state == "missing" else "present"
            if c.retired:
                label = f"retired: {c.retired.reason}"
            row = [catalog.provider, c.model, c.kind, label]
            if prices:
                m = listed.get(c.model)
                own = config.providers[catalog.provider].pricing_for(c.model)
                published = (
                    f"{_money(m.usd_per_mtok_input)}/{_money(m.usd_per_mtok_output)}" if m else "-"
                )
                table_price = f"{_money(own.usd_per_mtok_input)}/{_money(own.usd_per_mtok_output)}"
                row += [published, table_price]
            table.add_row(*row)
        others = [m for m in catalog.models if m.id not in named and _serves(m, kind)]
        if show_all:
            for m in others:
                row = [catalog.provider, m.id, "", "listed" + (" (free)" if m.free else "")]
                if prices:
                    row += [f"{_money(m.usd_per_mtok_input)}/{_money(m.usd_per_mtok_output)}", ""]
                table.add_row(*row)
        elif others:
            table.add_row(catalog.provider, f"(+{len(others)} more: --all)", "", "")
    Console(width=200).print(table)


__all__ = ["models"]
