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
        from scheduler.status.data import spend_json

        typer.echo(json.dumps(spend_json(state.config(), state.ledger(), period)))
        return
    from scheduler.cli.render import Column, print_table

    columns = (
        Column("provider"),
        Column("task"),
        Column("calls", 2, "right"),
        Column("paid", 0, "right"),
        Column("list price", 3, "right"),
        Column("saved", 1, "right"),
    )
    lines = [
        (
            line.provider,
            line.task,
            str(line.calls),
            f"${line.cost_usd:.4f}",
            f"${line.list_usd:.4f}",
            f"${line.saved_usd:.4f}",
        )
        for line in result.lines
    ]
    lines.append(
        (
            "total",
            "",
            str(sum(line.calls for line in result.lines)),
            f"${result.cost_usd:.4f}",
            f"${result.list_usd:.4f}",
            f"${result.saved_usd:.4f}",
        )
    )
    title = f"Spend this {period} (UTC, resets {result.as_dict()['resets']})"
    console = print_table(columns, lines, title=title)
    for budget in result.budgets:
        console.print(
            f"budget ({budget.scope}): ${budget.used_usd:.4f} of ${budget.limit_usd:.2f} used,"
            f" ${budget.reserved_usd:.4f} in flight, ${budget.left_usd:.4f} left",
            highlight=False,
        )


__all__ = ["app"]
