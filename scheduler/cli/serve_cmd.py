"""`sched serve`: the OpenAI-compatible gateway, on uvicorn, with N worker processes.

Starlette and uvicorn are the optional extra `serve`; they are imported here, when the command
runs, never by `sched --help` or `sched run`.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Annotated

import typer


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    ctx: typer.Context,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to listen on. Anything but loopback needs a gateway token first "
            "(sched tokens create NAME).",
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8642,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", "-w", min=1, max=64, help="Worker processes; they share the ledger."
        ),
    ] = 1,
    log_level: Annotated[
        str, typer.Option("--log-level", help="uvicorn's log level: warning, info, debug.")
    ] = "warning",
) -> None:
    """Serve OpenAI's API (chat with streaming, images, transcriptions, speech, models) with
    this table's fallback and ledger behind every request. Point any OpenAI client at
    http://HOST:PORT/v1; the model name picks the route: auto, free, cheapest, fastest or
    PROVIDER/MODEL. GET /health and /metrics (Prometheus) are beside it."""
    from scheduler.errors import ConfigError, InputError
    from scheduler.ledger.tokens import any_active

    try:
        import uvicorn
    except ImportError:
        raise ConfigError(
            "sched serve needs the `serve` extra: pip install 'api-scheduler[serve]'"
        ) from None
    state = ctx.obj
    config_path, db_target = state.targets()
    if not _loopback(host) and not any_active(state.ledger()):
        raise InputError(
            f"--host {host}: without a gateway token anyone who reaches this address could "
            "spend your quota; create one first (sched tokens create NAME) or use 127.0.0.1"
        )
    # Each worker process builds its own Scheduler from these (uvicorn imports the app factory).
    os.environ["SCHED_CONFIG"] = config_path
    os.environ["SCHED_DB"] = db_target
    typer.echo(
        f"sched serve: http://{host}:{port}/v1 ({workers} worker{'s' * (workers > 1)},"
        f" ledger {os.path.basename(db_target) if '://' not in db_target else 'URL'})",
        err=True,
    )
    uvicorn.run(
        "scheduler.gateway.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )


__all__ = ["serve"]
