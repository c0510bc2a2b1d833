"""The shape of providers.yaml, validated with pydantic so that a typo fails loudly.

Every model forbids unknown keys: a misspelt `quotas` or `per` must be an error naming its key path,
not a silently ignored rule that lets the scheduler overspend.
"""

from __future__ import annotations

import re
from datetime import time
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scheduler.errors import shown
from scheduler.tasks import Metric, TaskKind
from scheduler.urls import mask_url
from scheduler.windows import Period, WindowSpec

AdapterName = Literal[
    "openai",
    "anthropic",
    "gemini",
    "cohere",
    "ai21",
    "stability",
    "replicate",
    "huggingface",
    "fireworks",
    "assemblyai",
    "gladia",
    "elevenlabs",
    "playht",
    "local",
]
Strategy = Literal["priority", "cheapest", "fastest"]
# How an OpenAI-compatible chat request caps its answer: OpenAI's own API wants
# `max_completion_tokens` (its reference marks `max_tokens` deprecated, and reasoning models
# refuse it); Groq, Mistral, OpenRouter, vLLM and the other compatible servers take `max_tokens`.
MaxTokensField = Literal["max_tokens", "max_completion_tokens"]
OPENAI_CHAT_ADAPTERS = frozenset({"openai", "fireworks", "local"})  # chat over OpenAI's wire

MAX_BLOCK_S = 3 * 86400.0  # settings.max_block_s default: three days
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QuotaRule(_Strict):
    """A limit the provider enforces; `free: true` marks an allowance `allow_paid` may exceed."""

    model_config = ConfigDict(extra="forbid", frozen=True, ignored_types=(cached_property,))

    metric: Metric
    limit: float = Field(gt=0)
    per: Period
    reset: str = "00:00"
    tz: str = "UTC"
    day: int = Field(default=1, ge=1, le=31)
    free: bool = False

    @field_validator("reset", mode="before")
    @classmethod
    def _unquoted_reset(cls, value: object) -> object:
        """YAML 1.1 reads an unquoted `reset: 10:30` as the base-60 integer 630; take it back."""
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
            return f"{value // 60:02d}:{value % 60:02d}"
        return value

    @field_validator("reset")
    @classmethod
    def _check_reset(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError(f"expected a time of day as HH:MM (24 h), got {shown(value)}")
        return value

    @field_validator("tz")
    @classmethod
    def _check_tz(cls, value: str) -> str:
        WindowSpec("day", tz=value)  # raises ValueError("unknown time zone ...")
        return value

    @cached_property
    def window(self) -> WindowSpec:
        """The calendar window this rule counts in; one instance per rule so its cache is reused."""
        hours, minutes = (int(part) for part in self.reset.split(":"))
        return WindowSpec(self.per, time(hours, minutes), self.tz, self.day)

    @property
    def rule_id(self) -> str:
        """A stable key for the ledger: the same rule keeps its counts across config reloads."""
        if self.per in ("minute", "total"):
            return f"{self.metric}/{self.per}"
        if self.per == "hour":
            return f"{self.metric}/hour@{self.tz}"
        anchor = f"d{self.day} " if self.per == "month" else ""
        return f"{self.metric}/{self.per}@{anchor}{self.reset} {self.tz}"


class Prices(_Strict):
    """List prices in USD, one per billing unit; unset means the unit is not billed."""

    usd_per_mtok_input: float | None = Field(default=None, ge=0)
    usd_per_mtok_output: float | None = Field(default=None, ge=0)
    usd_per_image: float | None = Field(default=None, ge=0)
    usd_per_audio_minute: float | None = Field(default=None, ge=0)
    usd_per_kchar: float | None = Field(default=None, ge=0)
    usd_per_request: float | None = Field(default=None, ge=0)
    usd_per_credit: float | None = Field(default=None, ge=0)


class Pricing(Prices):
    """A provider's list prices in USD. An empty table means the provider never bills (free or
    local). `models` gives a model its own prices: each unit it names replaces the provider's
    price for calls to that model; the units it leaves out keep the provider's."""

    models: dict[str, Prices] = Field(default_factory=dict)

    def for_model(self, model: str | None) -> Pricing:
        """The prices a call to `model` pays (the provider's, with the model's over them)."""
        own = self.models.get(model) if model else None
        if own is None:
            return self if not self.models else self.model_copy(update={"models": {}})
        merged = self.model_dump(exclude={"models"})
        merged.update(own.model_dump(exclude_none=True))
        return Pricing(**merged)


class LocalOptions(_Strict):
    """How the `local` adapter runs its in-process engines on this machine."""

    device: Literal["auto", "cuda", "cpu"] = "auto"  # auto: CUDA when CTranslate2 sees a GPU
    compute_type: str | None = None  # default float16 on CUDA, int8 on CPU
    vad_filter: bool = False  # skip silence with faster-whisper's voice activity detection
    # Text to speech: espeak-ng on PATH, or an OpenAI-compatible speech server (VoxCPM,
    # Kokoro, ... at e.g. http://localhost:8880/v1) when `tts_base_url` is set.
    tts_base_url: str | None = None
    # A local OpenAI-compatible server must accept a connection within this long, or `local`
    # is skipped as not reachable instead of hanging a run.
    connect_timeout_s: float = Field(default=0.2, gt=0, le=5)


class Budget(_Strict):
    """Spending caps in USD; null means no cap."""

    daily_usd: float | None = Field(default=None, ge=0)
    monthly_usd: float | None = Field(default=None, ge=0)


class ProviderConfig(_Strict):
    """One provider entry: how to reach it, what it serves, what it allows and what it costs."""

    adapter: AdapterName
    base_url: str | None = None
    api_key_env: str | None = None
    enabled: bool = True
    note: str | None = None
    # The models per task kind, first choice first: a provider whose model is retired tries the
    # next one before the table moves on. A single name (the older form) is a list of one.
    models: dict[TaskKind, tuple[str, ...]] = Field(default_factory=dict)
    quotas: tuple[QuotaRule, ...] = ()
    pricing: Pricing = Field(default_factory=Pricing)
    budget: Budget | None = None  # this provider's own caps, beside the global one
    options: LocalOptions = Field(default_factory=LocalOptions)  # used by the local adapter
    # OpenAI-compatible chat only: the field that caps the answer's length. Unset, it follows
    # the endpoint: `max_completion_tokens` at api.openai.com, `max_tokens` anywhere else (a
    # proxy in front of OpenAI sets it).
    max_tokens_field: MaxTokensField | None = None

    @field_validator("quotas")
    @classmethod
    def _distinct_rules(cls, value: tuple[QuotaRule, ...]) -> tuple[QuotaRule, ...]:
        """Two rules counting in the same window would share one ledger row; keep one."""
        seen: set[str] = set()
        for rule in value:
            if rule.rule_id in seen:
                raise ValueError(f"two rules count {rule.rule_id}; keep only one")
            seen.add(rule.rule_id)
        return value

    @model_validator(mode="after")
    def _max_tokens_field_where_read(self) -> ProviderConfig:
        """The setting is read by the OpenAI-compatible chat only: elsewhere it would be a
        silent no-op, so it is refused like a typo."""
        if self.max_tokens_field is not None and self.adapter not in OPENAI_CHAT_ADAPTERS:
            raise ValueError(
                "max_tokens_field applies to OpenAI-compatible chat only"
                f" (adapters {', '.join(sorted(OPENAI_CHAT_ADAPTERS))}), not {self.adapter!r}"
            )
        return self

    @field_validator("models", mode="before")
    @classmethod
    def _model_lists(cls, value: object) -> object:
        """`text: name` and `text: [primary, fallback]` both give a tuple of names."""
        if isinstance(value, dict):
            return {k: (v,) if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("models")
    @classmethod
    def _check_models(
        cls, value: dict[TaskKind, tuple[str, ...]]
    ) -> dict[TaskKind, tuple[str, ...]]:
        for kind, names in value.items():
            if not names or any(not name.strip() for name in names):
                raise ValueError(f"{kind}: expected a model name or a non-empty list of names")
            if len(set(names)) != len(names):
                raise ValueError(f"{kind}: a model is named twice in {list(names)}")
        return value

    def models_for(self, kind: TaskKind) -> tuple[str, ...]:
        """The models this provider tries for `kind`, in order (empty: it has none)."""
        return self.models.get(kind, ())

    def pricing_for(self, model: str | None) -> Pricing:
        """The list prices of a call to `model` on this provider."""
        return self.pricing.for_model(model)

    @field_validator("api_key_env")
    @classmethod
    def _check_env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_VAR.match(value):
            raise ValueError(f"expected an environment variable name, got {shown(value)}")
        return value

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {shown(mask_url(value))}")
        return value.rstrip("/") if value else value


class CronSettings(_Strict):
    """The cron service's schedule and health policy (`sched cron`)."""

    failure_report_every_min: int = Field(default=60, ge=1)
    # A provider is disabled when more than this share of its calls failed by its own fault
    # (rejected input does not count) over the last hour, with at least `min_calls` calls.
    disable_above_failure_rate: float = Field(default=0.5, gt=0, le=1)
    min_calls: int = Field(default=10, ge=1)
    probe_every_min: int = Field(default=30, ge=1)
    quota_check: str = "mon 09:00 UTC"  # weekly: day, time and zone of the free-quota check
    # weekly: each provider's live model list against the table (retired models marked)
    models_check: str = "mon 08:30 UTC"
    quota_warning_below: float = Field(default=0.2, ge=0, le=1)  # share of an allowance left
    reports_dir: str = "reports"
    # Call rows older than this are deleted once their day is rolled up into daily_summaries.
    retention_days: int = Field(default=90, ge=1)
    misfire_grace_s: int = Field(default=3600, ge=1)


class Settings(_Strict):
    """Global policy. Defaults are the safe ones: free only, priority order, two retries."""

    strategy: Strategy = "priority"
    allow_paid: bool = False
    budget: Budget = Field(default_factory=Budget)
    prefer_local_below_load: float | None = Field(default=0.8, ge=0, le=1)
    timeout_s: float = Field(default=60, gt=0, allow_inf_nan=False)
    retries: int = Field(default=2, ge=0, le=10)
    max_retry_wait_s: float = Field(default=10, ge=0, allow_inf_nan=False)
    lease_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    # No answer is read past this many (decoded) megabytes: a gzip bomb or an endless body is a
    # transient failure, not an out-of-memory kill. 64 MB holds any image or speech answer.
    max_response_mb: float = Field(default=64, gt=0, le=4096, allow_inf_nan=False)
    # The longest a provider's own word (a retry hint, a reported reset) may block it: a hint of
    # 10^18 seconds must not park a provider for ever, nor an instant past year 9999 crash reports.
    max_block_s: float = Field(default=MAX_BLOCK_S, gt=0, allow_inf_nan=False)
    cron: CronSettings = Field(default_factory=CronSettings)
    # Keep each task's text on its calls rows (`sched history --prompts`); keys are never kept.
    log_prompts: bool = False

    @model_validator(mode="after")
    def _lease_outlives_calls(self) -> Settings:
        """A hold must outlive any live call, or a slow call's quota is counted twice."""
        if self.lease_s is not None and self.lease_s <= self.timeout_s:
            raise ValueError(
                f"lease_s ({self.lease_s:g}) must be longer than timeout_s ({self.timeout_s:g})"
            )
        return self

    @property
    def reservation_lease_s(self) -> float:
        """How long a reservation may stay open before a dead process's hold is counted as used.

        Longer than any live call can take (the call's timeout plus slack), so a slow but live
        call is never expired under it.
        """
        return self.lease_s if self.lease_s is not None else self.timeout_s + 30


class Config(_Strict):
    """The whole priority table."""

    settings: Settings = Field(default_factory=Settings)
    providers: dict[str, ProviderConfig]
    tasks: dict[TaskKind, tuple[str, ...]] = Field(default_factory=dict)

    @field_validator("providers")
    @classmethod
    def _check_names(cls, value: dict[str, ProviderConfig]) -> dict[str, ProviderConfig]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(
                    f"provider name {shown(name)} must be lower-case letters, digits, '-' or '_'"
                )
        return value


__all__ = [
    "MAX_BLOCK_S",
    "AdapterName",
    "Budget",
    "Config",
    "CronSettings",
    "LocalOptions",
    "Prices",
    "Pricing",
    "ProviderConfig",
    "QuotaRule",
    "Settings",
    "Strategy",
]
