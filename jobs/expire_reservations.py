"""expire-reservations: count the holds of dead processes as used once their lease ran out."""

from __future__ import annotations

from jobs import Detail, JobContext, run_recorded


def expire_reservations(config_path: str | None = None, db_target: str | None = None) -> Detail:
    return run_recorded("expire-reservations", config_path, db_target, expire)


def expire(ctx: JobContext) -> Detail:
    return {"expired": ctx.ledger.expire()}


__all__ = ["expire", "expire_reservations"]
