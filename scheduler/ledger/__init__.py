"""The quota ledger: usage windows, reservations, the call log, provider state and job runs."""

from __future__ import annotations

from scheduler.ledger.db import DB_ENV, DEFAULT_DB, resolve_db_target
from scheduler.ledger.store import (
    BudgetLimit,
    CallerLimits,
    CallRecord,
    Hold,
    Ledger,
    Refusal,
    SpendPolicy,
)

__all__ = [
    "DB_ENV",
    "DEFAULT_DB",
    "BudgetLimit",
    "CallRecord",
    "CallerLimits",
    "Hold",
    "Ledger",
    "Refusal",
    "SpendPolicy",
    "resolve_db_target",
]
