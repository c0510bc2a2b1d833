"""`sched cost report`: what the day or the month cost, what free tiers saved, budget left."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from scheduler.cli.context import JsonFlag

app = typer.Typer(help="Spend, savings and budgets.", no_args_is_help=True)


@app.command("report")
def report(
    ctx: typer.Context,
    period: Annotated[
        str, typer.Option("--period", help="day (UTC) or month (UTC, from the 1st).")
    ] = "day",
    as_json: JsonFlag = False,
) -> None:
    """Spend per provider and task kind, what free usage would have cost at list price
    ("saved"), and the budgets used and left."""
    from scheduler.errors import InputError
    from scheduler.ledger.spend import spend_report

    if period not in ("day", "month"):
        raise InputError(f"--period {period!r}: expected day or month")
    state = ctx.obj
    result = spend_report(state.config(), state.ledger(), period)  # type: ignore[arg-type]  # checked above
    if as_json:
        typer.echo(json.dumps(result.as_dict()))
        return
    from rich.console import Console
    from rich.table import Table

    title = f"Spend this {period} (UTC, resets {result.as_dict()['resets']})"
    table = Table(title=title, title_justify="left")
    for column in ("provider", "task", "calls", "paid", "list price", "saved"):
        table.add_column(column, justify="left" if column in ("provider", "task") else "right")
    for line in result.lines:
        table.add_row(
            line.provider,
            line.task,
            str(line.calls),
            f"${line.cost_usd:.4f}",
            f"${line.list_usd:.4f}",
            f"${line.saved_usd:.4f}",
        )
    table.add_row(
        "total",
        "",
        str(sum(line.calls for line in result.lines)),
        f"${result.cost_usd:.4f}",
        f"${result.list_usd:.4f}",
        f"${result.saved_usd:.4f}",
    )
    console = Console(width=160)
    console.print(table)
    for budget in result.budgets:
        console.print(
            f"budget ({budget.scope}): ${budget.used_usd:.4f} of ${budget.limit_usd:.2f} used,"
            f" ${budget.reserved_usd:.4f} in flight, ${budget.left_usd:.4f} left",
            highlight=False,
        )


__all__ = ["app"]
