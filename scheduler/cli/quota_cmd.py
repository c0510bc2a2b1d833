"""`sched quota report`: what every provider has left, and until when."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from scheduler.cli.context import json_flag

app = typer.Typer(help="Inspect the quota ledger.", no_args_is_help=True)


_SPEND_KEYS = ("cost_usd", "list_usd", "saved_usd", "budgets", "resets")


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
    from scheduler.windows import format_instant

    state = ctx.obj
    reports = quota_report(state.config(), state.ledger(), state.keys())
    spend = {
        period: spend_report(state.config(), state.ledger(), period).as_dict()
        for period in ("day", "month")
    }
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "spend": {
                        period: {key: figures[key] for key in _SPEND_KEYS}
                        for period, figures in spend.items()
                    },
                    "providers": [
                        {
                            "provider": r.provider,
                            "status": r.status,
                            "detail": r.detail,
                            "until": format_instant(int(r.until), "UTC") if r.until else None,
                            "calls_24h": r.calls_24h,
                            "failures_24h": r.failures_24h,
                            "failure_rate_24h": r.failure_rate_24h,
                            "windows": [
                                {
                                    "metric": w.metric,
                                    "period": w.period,
                                    "used": w.used,
                                    "reserved": w.reserved,
                                    "limit": w.limit,
                                    "remaining": w.remaining,
                                    "free": w.free,
                                    "resets_at": w.resets_at,
                                    "resets": w.resets,
                                }
                                for w in r.windows
                            ],
                        }
                        for r in reports
                    ],
                }
            )
        )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Quota", title_justify="left")
    for column in ("provider", "metric", "period", "used", "reserved", "limit", "remaining"):
        table.add_column(
            column,
            justify="right" if column in ("used", "reserved", "limit", "remaining") else "left",
        )
    table.add_column("next reset")
    table.add_column("calls 24h", justify="right")
    table.add_column("fail 24h", justify="right")
    table.add_column("status")
    for r in reports:
        status = r.status if r.status == "ok" else f"{r.status}: {r.detail}"
        if r.until:
            status += f" (until {format_instant(int(r.until), 'UTC')})"
        rate = f"{r.failure_rate_24h:.0%}" if r.failure_rate_24h is not None else "-"
        rows = r.windows or (None,)
        for index, w in enumerate(rows):
            first = index == 0
            table.add_row(
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
    console = Console(width=200)
    console.print(table)
    for period, figures in spend.items():
        line = (
            f"spend this {period}: ${figures['cost_usd']:.4f} paid,"
            f" ${figures['saved_usd']:.4f} saved by free tiers"
        )
        for budget in figures["budgets"]:  # type: ignore[attr-defined]
            line += f"; budget {budget['scope']} ${budget['left_usd']:.4f} left"
        console.print(line, highlight=False)


__all__ = ["app"]
