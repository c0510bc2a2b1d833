"""The calls table read back: the last calls, newest last, filtered as `sched history` asks.

Reads only, through the `ix_calls_ts` / `ix_calls_provider_ts` indexes (newest first with a
LIMIT), so the cost stays flat as the table grows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scheduler.ledger.store import Ledger


@dataclass(frozen=True)
class HistoryRow:
    """One attempt of one task on one provider, as the calls table recorded it."""

    ts: float
    task: str
    provider: str
    model: str
    outcome: str
    error: str | None
    latency_ms: float
    tries: int
    usage: dict[str, float]
    cost_usd: float
    prompt: str | None = None  # kept only with settings.log_prompts


def call_history(
    ledger: Ledger,
    *,
    limit: int = 20,
    provider: str | None = None,
    task: str | None = None,
    outcome: str | None = None,
    failed: bool = False,
    since: float | None = None,
) -> list[HistoryRow]:
    """The last `limit` calls matching every filter given, oldest first."""
    where: list[str] = []
    params: list[object] = []
    for column, value in (("provider", provider), ("task", task), ("outcome", outcome)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if failed:
        where.append("outcome <> 'ok'")
    if since is not None:
        where.append("ts >= ?")
        params.append(since)
    sql = (
        "SELECT ts, task, provider, model, outcome, error, latency_ms, tries, usage, cost_usd,"
        " prompt FROM calls"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY ts DESC, id DESC LIMIT ?"
    )
    rows = ledger.read(sql, (*params, limit))
    return [_row(row) for row in reversed(rows)]


def _row(row: tuple[object, ...]) -> HistoryRow:
    ts, task, provider, model, outcome, error, latency_ms, tries, usage, cost_usd, prompt = row
    try:
        amounts = json.loads(str(usage or "{}"))
    except ValueError:  # a row written by hand; show it without its usage
        amounts = {}
    return HistoryRow(
        ts=float(str(ts)),
        task=str(task),
        provider=str(provider),
        model=str(model),
        outcome=str(outcome),
        error=str(error) if error is not None else None,
        latency_ms=float(str(latency_ms)),
        tries=int(str(tries)),
        usage={str(k): float(v) for k, v in amounts.items()} if isinstance(amounts, dict) else {},
        cost_usd=float(str(cost_usd)),
        prompt=str(prompt) if prompt is not None else None,
    )


__all__ = ["HistoryRow", "call_history"]
