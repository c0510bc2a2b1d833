"""The ledger's tables, declared once with SQLModel; `create_all` builds them on a new database.

The hot path (reserve / commit / release) does not go through the ORM: it runs short hand-written
statements on the DB-API connection, because importing and running SQLModel per call costs more
than the whole transaction. The column names here are the contract those statements rely on.
"""

from __future__ import annotations

from typing import Any, Optional

from sqlalchemy import BigInteger, Column, Index
from sqlmodel import Field, SQLModel


def _default(value: float | str) -> Any:
    """A column default the database itself applies: the hot path inserts with raw SQL."""
    return Field(default=value, sa_column_kwargs={"server_default": str(value)})


class UsageWindow(SQLModel, table=True):
    """Used and reserved amounts of one quota rule in one calendar window of one provider."""

    __tablename__ = "usage_windows"
    # A rule's windows under another spec of the same metric and period (its reset time or zone
    # edited): reserve() counts what those hold, so an edit never starts a window at zero.
    __table_args__ = (
        Index("ix_usage_windows_metric", "provider", "metric", "period", "window_end"),
    )

    provider: str = Field(primary_key=True)
    rule: str = Field(primary_key=True)  # QuotaRule.rule_id, e.g. "requests/day@00:00 UTC"
    window_start: int = Field(primary_key=True)  # POSIX seconds, inclusive
    metric: str
    period: str
    window_end: Optional[int] = None  # noqa: UP045 - SQLModel reads the annotation at runtime
    used: float = _default(0)
    reserved: float = _default(0)


class Reservation(SQLModel, table=True):
    """An open hold on quota; deleted when settled, counted as used when its lease expires."""

    __tablename__ = "reservations"
    __table_args__ = (Index("ix_reservations_expires_at", "expires_at"),)

    # A random 62-bit id, never a rowid: SQLite hands a deleted row's id to the next insert, and
    # a late settle of the old hold would then delete (and count) another run's hold.
    id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    provider: str
    task: str
    model: str
    created_at: float
    expires_at: float
    pid: int
    items: str  # JSON [[rule, window_start, metric, amount], ...]


class Call(SQLModel, table=True):
    """One provider attempt for one task (its transient retries included): the audit log."""

    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_ts", "ts"),
        Index("ix_calls_provider_ts", "provider", "ts"),
        # One row per hold: a journal replayed twice, or a late settle of an expired hold,
        # finds the row it already wrote instead of counting the call again.
        Index("ix_calls_hold_id", "hold_id", unique=True),
        # Reports read a period's rows from this index alone (see Ledger.calls_in_period).
        Index(
            "ix_calls_ts_cover",
            "ts",
            "provider",
            "task",
            "outcome",
            "cost_usd",
            "list_usd",
            "latency_ms",
        ),
    )

    id: Optional[int] = Field(default=None, primary_key=True)  # noqa: UP045
    ts: float
    task: str
    provider: str
    model: str
    outcome: str  # "ok" or an errors.ProviderError outcome, or "expired"
    error: Optional[str] = None  # noqa: UP045
    latency_ms: float = _default(0)
    tries: int = _default(1)
    usage: str = _default("{}")  # JSON {metric: amount}
    cost_usd: float = _default(0)  # what the user paid
    list_usd: float = _default(0)  # the same usage at list price ("saved" = list - cost)
    # The reservation this call settled (None: a call logged without one).
    hold_id: Optional[int] = Field(default=None, sa_column=Column(BigInteger, nullable=True))  # noqa: UP045
    # What the ledger did not believe of the provider's answer, or that it was recorded late.
    flag: Optional[str] = None  # noqa: UP045
    # The task's text, kept only with settings.log_prompts (scheduler/prompt_log.py).
    prompt: Optional[str] = None  # noqa: UP045


class ProviderState(SQLModel, table=True):
    """Why a provider is not usable right now, shared by every process using this ledger."""

    __tablename__ = "provider_state"

    provider: str = Field(primary_key=True)
    blocked_until: float = _default(0)  # cooldown or quota exhaustion, as a POSIX time
    block_outcome: Optional[str] = None  # noqa: UP045
    block_reason: Optional[str] = None  # noqa: UP045
    disabled: int = _default(0)  # auth failure: stays until the key changes
    disabled_key: Optional[str] = None  # noqa: UP045 - fingerprint of the failing key, never the key
    disabled_reason: Optional[str] = None  # noqa: UP045
    updated_at: float = _default(0)


class ProviderLimit(SQLModel, table=True):
    """What the provider itself last reported as remaining; the ledger trusts the smaller count."""

    __tablename__ = "provider_limits"

    provider: str = Field(primary_key=True)
    metric: str = Field(primary_key=True)
    remaining: float
    limit: Optional[float] = None  # noqa: UP045
    resets_at: float
    reported_at: float


class ModelState(SQLModel, table=True):
    """What this ledger knows about one model of one provider: retired (a call was answered
    "model gone", or `models-check` found it missing), and what its last live listing said."""

    __tablename__ = "model_state"

    provider: str = Field(primary_key=True)
    model: str = Field(primary_key=True)
    retired: int = _default(0)  # skipped by every process until unmarked or renamed in the table
    retired_at: Optional[float] = None  # noqa: UP045
    retired_reason: Optional[str] = None  # noqa: UP045 - the provider's own words, redacted
    listed: int = _default(0)  # in the provider's last model listing
    listed_at: Optional[float] = None  # noqa: UP045 - when that listing was taken
    # Prices the provider's catalog publishes (OpenRouter), USD per million tokens.
    usd_per_mtok_input: Optional[float] = None  # noqa: UP045
    usd_per_mtok_output: Optional[float] = None  # noqa: UP045
    updated_at: float = _default(0)


class JobRun(SQLModel, table=True):
    """One run of a cron job and what it did."""

    __tablename__ = "job_runs"

    id: Optional[int] = Field(default=None, primary_key=True)  # noqa: UP045
    job: str
    started_at: float
    finished_at: Optional[float] = None  # noqa: UP045
    ok: int = _default(0)
    detail: str = _default("{}")


class DailySummary(SQLModel, table=True):
    """Calls of one UTC day rolled up per provider, task kind and outcome, so old call rows can be
    pruned while reports over long periods stay exact."""

    __tablename__ = "daily_summaries"

    day: str = Field(primary_key=True)  # "YYYY-MM-DD", UTC
    provider: str = Field(primary_key=True)
    task: str = Field(primary_key=True)
    outcome: str = Field(primary_key=True)
    calls: int = _default(0)
    tries: int = _default(0)
    latency_ms_sum: float = _default(0)
    cost_usd: float = _default(0)
    usage: str = _default("{}")  # JSON {metric: total}
    list_usd: float = _default(0)  # the same usage at list price (what free tiers saved)
    # Served calls' latencies as JSON {bucket: count}, bucket = latency_ms // LATENCY_BUCKET_MS:
    # medians over many days without keeping every row.
    latency_hist: str = _default("{}")


class GatewayToken(SQLModel, table=True):
    """A `sched serve` client token: only its SHA-256 is kept, never the secret itself. Its
    limits are held in the same reservation transaction as the provider's quota."""

    __tablename__ = "gateway_tokens"
    __table_args__ = (Index("ix_gateway_tokens_secret_hash", "secret_hash", unique=True),)

    name: str = Field(primary_key=True)
    secret_hash: str  # hex SHA-256 of the secret
    created_at: float
    expires_at: Optional[float] = None  # noqa: UP045
    revoked_at: Optional[float] = None  # noqa: UP045
    daily_usd: Optional[float] = None  # noqa: UP045
    monthly_usd: Optional[float] = None  # noqa: UP045
    requests_per_day: Optional[int] = None  # noqa: UP045
    models: Optional[str] = None  # noqa: UP045 - JSON list of allowed routes; None: any
    admin: int = _default(0)  # may read the status page and /v1/sched/status


class SchemaMigration(SQLModel, table=True):
    """Named migrations applied to this database, so every process agrees on the schema."""

    __tablename__ = "schema_migrations"

    name: str = Field(primary_key=True)
    applied_at: float


__all__ = [
    "Call",
    "DailySummary",
    "GatewayToken",
    "JobRun",
    "ModelState",
    "ProviderLimit",
    "ProviderState",
    "Reservation",
    "SchemaMigration",
    "UsageWindow",
]
