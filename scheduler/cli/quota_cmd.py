"""`sched quota report`: what every provider has left, and until when."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from scheduler.cli.context import json_flag
from scheduler.cli.render import Column

app = typer.Typer(help="Inspect the quota ledger.", no_args_is_help=True)


# What a user looks for first stays longest: who, and how much is left.
_COLUMNS = (
    Column("provider"),
    Column("metric", 1),
    Column("period", 1),
    Column("used", 3, "right"),
    Column("reserved", 6, "right"),
    Column("limit", 2, "right"),
    Column("remaining", 0, "right"),
    Column("next reset", 4, shrink=True),
    Column("calls 24h", 7, "right"),
    Column("fail 24h", 5, "right"),
    Column("status", 2, shrink=True),
)


def _number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


@app.command("report")
def report(
    ctx: typer.Context,
    as_json: Annotated[bool, json_flag("Print the report as one JSON object.")] = False,
) -> None:
    """Used, reserved and remaining quota per provider and window, next resets with their zone,
    provider state, and calls and failure rate over the last 24 hours."""
    from scheduler.ledger.report import quota_report
    from scheduler.ledger.spend import spend_report
    from scheduler.status.data import quota_json
    from scheduler.windows import format_instant

    state = ctx.obj
    if as_json:
        typer.echo(json.dumps(quota_json(state.config(), state.ledger(), state.keys())))
        return
    reports = quota_report(state.config(), state.ledger(), state.keys())
    spend = {
        period: spend_report(state.config(), state.ledger(), period).as_dict()
        for period in ("day", "month")
    }
    from scheduler.cli.render import print_table

    rows: list[tuple[str, ...]] = []
    for r in reports:
        status = r.status if r.status == "ok" else f"{r.status}: {r.detail}"
        if r.until:
            status += f" (until {format_instant(int(r.until), 'UTC')})"
        rate = f"{r.failure_rate_24h:.0%}" if r.failure_rate_24h is not None else "-"
        for index, w in enumerate(r.windows or (None,)):
            first = index == 0
            rows.append(
                (
                    r.provider if first else "",
                    w.metric if w else "-",
                    w.period if w else "-",
                    _number(w.used) if w else "-",
                    _number(w.reserved) if w else "-",
                    _number(w.limit) if w else "-",
                    _number(w.remaining) if w else "-",
                    w.resets if w else "-",
                    str(r.calls_24h) if first else "",
                    f"{r.failures_24h} ({rate})" if first else "",
                    status if first else "",
                )
            )
    console = print_table(_COLUMNS, rows, title="Quota")
    for r in reports:
        for m in r.retired:
            when = format_instant(int(m.since), "UTC")
            console.print(
                f"retired: {r.provider} {m.model} since {when}: {m.reason}", highlight=False
            )
    for period, figures in spend.items():
        line = (
            f"spend this {period}: ${figures['cost_usd']:.4f} paid,"
            f" ${figures['saved_usd']:.4f} saved by free tiers"
        )
        for budget in figures["budgets"]:  # type: ignore[attr-defined]
            line += f"; budget {budget['scope']} ${budget['left_usd']:.4f} left"
        console.print(line, highlight=False)


__all__ = ["app"]
