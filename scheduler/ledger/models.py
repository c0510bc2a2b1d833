"""Which models of which provider are retired, and what the providers' own listings say.

A model is marked retired when a call is answered "model gone" (`ModelUnavailable`) or when
`models-check` finds a configured model missing from the provider's live list. The mark is
shared by every process using the ledger, so no later task pays a call to learn it again; it is
per (provider, model name), so a table that names another model is not affected by it, and it is
lifted when a probe or a listing finds the model served again.

Listings (`sched models`, `models-check`) are stored too: whether each model was in the last
list, and the prices a catalog publishes (OpenRouter), which `sched config check` compares with
the table's.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scheduler.errors import redact

if TYPE_CHECKING:
    from scheduler.ledger.store import Ledger

MAX_REASON_CHARS = 300


@dataclass(frozen=True)
class Retired:
    """One retired (provider, model): since when, and the provider's words for it."""

    provider: str
    model: str
    since: float
    reason: str


@dataclass(frozen=True)
class Listed:
    """One model as a provider's list endpoint gave it (prices where its catalog has them)."""

    model: str
    usd_per_mtok_input: float | None = None
    usd_per_mtok_output: float | None = None


@dataclass(frozen=True)
class PublishedPrice:
    """The prices a provider's catalog published for one model at its last listing."""

    model: str
    usd_per_mtok_input: float | None
    usd_per_mtok_output: float | None
    listed_at: float


def mark_retired(
    ledger: Ledger, provider: str, model: str, reason: str, *, now: float | None = None
) -> None:
    """Mark (provider, model) retired with the provider's message; an existing mark keeps its
    first date (the day the model went, not the day it was last seen gone)."""
    now = time.time() if now is None else now
    text = redact(reason)[:MAX_REASON_CHARS]
    with ledger.transaction() as db:
        db.execute(
            "INSERT INTO model_state (provider, model, retired, retired_at, retired_reason,"
            " listed, updated_at) VALUES (?, ?, 1, ?, ?, 0, ?)"
            " ON CONFLICT (provider, model) DO UPDATE SET retired = 1,"
            " retired_at = CASE WHEN model_state.retired = 1 THEN model_state.retired_at"
            " ELSE excluded.retired_at END,"
            " retired_reason = excluded.retired_reason, updated_at = excluded.updated_at",
            (provider, model, now, text, now),
        )


def unmark_retired(ledger: Ledger, provider: str, model: str, *, now: float | None = None) -> bool:
    """Lift the retired mark (a probe or a listing found the model served); False if none."""
    now = time.time() if now is None else now
    with ledger.transaction() as db:
        cur = db.execute(
            "UPDATE model_state SET retired = 0, retired_at = NULL, retired_reason = NULL,"
            " updated_at = ? WHERE provider = ? AND model = ? AND retired = 1",
            (now, provider, model),
        )
        return bool(cur.rowcount > 0)


def retired_model(ledger: Ledger, provider: str, model: str) -> Retired | None:
    """The mark of one (provider, model), or None: one primary-key lookup, for the dispatcher."""
    rows = ledger.read(
        "SELECT retired_at, retired_reason FROM model_state"
        " WHERE provider = ? AND model = ? AND retired = 1",
        (provider, model),
    )
    if not rows:
        return None
    since, reason = rows[0]
    return Retired(provider, model, _float(since), str(reason or ""))


def retired_models(ledger: Ledger, provider: str | None = None) -> list[Retired]:
    """Every retired (provider, model), or one provider's, ordered by provider and model."""
    where, params = ("AND provider = ?", (provider,)) if provider is not None else ("", ())
    rows = ledger.read(
        "SELECT provider, model, retired_at, retired_reason FROM model_state"
        f" WHERE retired = 1 {where} ORDER BY provider, model",
        params,
    )
    return [Retired(str(p), str(m), _float(t), str(r or "")) for p, m, t, r in rows]


def record_listing(
    ledger: Ledger, provider: str, models: Iterable[Listed], *, now: float | None = None
) -> None:
    """Store one full listing of `provider`: the models in it (with published prices), and that
    every other model known for it was not in it. Retired marks are left to the caller."""
    now = time.time() if now is None else now
    listed = list(models)
    with ledger.transaction() as db:
        db.execute(
            "UPDATE model_state SET listed = 0, updated_at = ? WHERE provider = ?",
            (now, provider),
        )
        for item in listed:
            db.execute(
                "INSERT INTO model_state (provider, model, listed, listed_at,"
                " usd_per_mtok_input, usd_per_mtok_output, updated_at)"
                " VALUES (?, ?, 1, ?, ?, ?, ?) ON CONFLICT (provider, model) DO UPDATE SET"
                " listed = 1, listed_at = excluded.listed_at,"
                " usd_per_mtok_input = excluded.usd_per_mtok_input,"
                " usd_per_mtok_output = excluded.usd_per_mtok_output,"
                " updated_at = excluded.updated_at",
                (
                    provider,
                    item.model,
                    now,
                    item.usd_per_mtok_input,
                    item.usd_per_mtok_output,
                    now,
                ),
            )


def published_prices(ledger: Ledger, provider: str) -> dict[str, PublishedPrice]:
    """The prices `provider`'s catalog published for its models at the last listing."""
    rows = ledger.read(
        "SELECT model, usd_per_mtok_input, usd_per_mtok_output, listed_at FROM model_state"
        " WHERE provider = ? AND listed = 1"
        " AND (usd_per_mtok_input IS NOT NULL OR usd_per_mtok_output IS NOT NULL)",
        (provider,),
    )
    return {str(m): PublishedPrice(str(m), _opt(i), _opt(o), _float(t)) for m, i, o, t in rows}


def _float(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _opt(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


__all__ = [
    "Listed",
    "PublishedPrice",
    "Retired",
    "mark_retired",
    "published_prices",
    "record_listing",
    "retired_model",
    "retired_models",
    "unmark_retired",
]
