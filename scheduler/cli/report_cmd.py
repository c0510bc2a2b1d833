"""`sched report --html FILE`: the status page as one self-contained file, for people who run
no gateway (open it in a browser; it needs no network)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report(
    ctx: typer.Context,
    html: Annotated[
        Path,
        typer.Option(
            "--html",
            metavar="FILE",
            help="Write the status page here (quota, spend, failures, last calls, cron runs).",
        ),
    ],
) -> None:
    """The status page of `sched serve`, written to a file: the same figures as `sched quota
    report --json` and `sched cost report --json`."""
    from scheduler import media
    from scheduler.status.data import snapshot
    from scheduler.status.page import render

    state = ctx.obj
    page = render(snapshot(state.config(), state.ledger(), state.keys()), refresh_s=None)
    media.write_atomically(html, page.encode("utf-8"))
    typer.echo(f"sched: status page written to {html}", err=True)


__all__ = ["report"]
