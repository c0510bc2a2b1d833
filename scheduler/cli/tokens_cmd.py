"""`sched tokens`: who may call `sched serve`, and with which limits."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from scheduler.cli.context import JsonFlag

app = typer.Typer(
    help="Gateway tokens for sched serve: each has its own spend and request limits, held in "
    "the same ledger transaction as the provider's quota. Only a hash is stored.",
    no_args_is_help=True,
)


def _expiry(value: str | None) -> float | None:
    """`30d`, `12h`, `2w`, or a date/time (ISO 8601, UTC unless it says otherwise)."""
    from scheduler.cli.moments import parse_moment

    return None if value is None else parse_moment(value, "--expires", ago=False)


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A name for the client, e.g. ci-bot.")],
    daily_usd: Annotated[
        float | None,
        typer.Option("--daily-usd", min=0, metavar="USD", help="Most USD per UTC day."),
    ] = None,
    monthly_usd: Annotated[
        float | None,
        typer.Option("--monthly-usd", min=0, metavar="USD", help="Most USD per UTC month."),
    ] = None,
    requests_per_day: Annotated[
        int | None, typer.Option("--requests-per-day", min=1, help="Most requests per UTC day.")
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(
            "--models",
            help="Comma-separated routes it may use (auto, free, cheapest, a provider name, "
            "PROVIDER/MODEL). Default: any.",
        ),
    ] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="30d, 12h, 2w, or a date. Default: never.")
    ] = None,
    admin: Annotated[
        bool,
        typer.Option("--admin", help="May also read the status page (GET /) and its JSON."),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create a token and print its secret: it is shown this once, and only its hash is kept."""
    from scheduler.ledger.tokens import create_token

    routes = tuple(m.strip() for m in models.split(",") if m.strip()) if models else None
    expires_at = _expiry(expires)
    secret = create_token(
        ctx.obj.ledger(),
        name,
        daily_usd=daily_usd,
        monthly_usd=monthly_usd,
        requests_per_day=requests_per_day,
        models=routes,
        expires_at=expires_at,
        admin=admin,
    )
    if as_json:
        typer.echo(json.dumps({"name": name, "token": secret, "expires_at": expires_at}))
        return
    typer.echo(secret)
    typer.echo(f"sched: token {name!r} created; store it now, it is not shown again", err=True)


@app.command("list")
def list_(
    ctx: typer.Context,
    as_json: JsonFlag = False,
) -> None:
    """Every token with its limits, state and what it used today and this month."""
    from scheduler.ledger.tokens import list_tokens, token_use
    from scheduler.windows import format_instant

    ledger = ctx.obj.ledger()
    now = time.time()
    rows = []
    for token in list_tokens(ledger):
        use = token_use(ledger, token.name, now=now)
        rows.append(
            {
                "name": token.name,
                "state": token.usable(now) or "active",
                "created": format_instant(int(token.created_at), "UTC"),
                "expires": format_instant(int(token.expires_at), "UTC")
                if token.expires_at
                else None,
                "daily_usd": token.daily_usd,
                "monthly_usd": token.monthly_usd,
                "requests_per_day": token.requests_per_day,
                "models": list(token.models) if token.models is not None else None,
                "admin": token.admin,
                "requests_today": use.requests_today,
                "usd_today": use.usd_today,
                "usd_month": use.usd_month,
            }
        )
    if as_json:
        typer.echo(json.dumps({"tokens": rows}))
        return
    if not rows:
        typer.echo("no gateway tokens (sched tokens create NAME)")
        return
    from scheduler.cli.render import Column, print_table

    columns = (
        Column("name"),
        Column("state", 0, shrink=True),
        Column("limits", 1, shrink=True),
        Column("today", 0),
        Column("month", 2),
        Column("routes", 3, shrink=True),
    )
    lines = []
    for row in rows:
        limits = ", ".join(
            text
            for text in (
                f"${row['daily_usd']:g}/day" if row["daily_usd"] is not None else "",
                f"${row['monthly_usd']:g}/month" if row["monthly_usd"] is not None else "",
                f"{row['requests_per_day']} req/day" if row["requests_per_day"] else "",
            )
            if text
        )
        lines.append(
            (
                str(row["name"]),
                str(row["state"]),
                limits or "-",
                f"{row['requests_today']:g} req, ${row['usd_today']:.4f}",
                f"${row['usd_month']:.4f}",
                ", ".join(row["models"]) if row["models"] else "any",  # type: ignore[arg-type]
            )
        )
    print_table(columns, lines, title="Gateway tokens")


@app.command("revoke")
def revoke(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="The token's name.")]
) -> None:
    """Revoke a token at once (every worker refuses it from its next request on)."""
    from scheduler.errors import InputError
    from scheduler.ledger.tokens import revoke_token

    if not revoke_token(ctx.obj.ledger(), name):
        raise InputError(f"no active token named {name!r} (sched tokens list)")
    typer.echo(f"sched: token {name!r} revoked", err=True)


__all__ = ["app"]
