"""Who serves a task: candidates in table order, skips with reasons, retries, fallback.

For each candidate the dispatcher checks, without any network call, that it is enabled, has an
adapter for the task kind, a model and a key; then the ledger reserves the estimated usage (or
says why not: quota full, cooling down, disabled). A call that fails transiently is retried on the
same provider with tenacity, waiting as long as the provider asked (any retry-hint format) or
backing off exponentially; any other failure moves on to the next provider, and a provider that
failed over is never called again for the same task. Every attempt lands in the calls table.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from scheduler.config.keys import KeyStore, fingerprint
from scheduler.cost import is_billable, list_price, paid_share
from scheduler.errors import InputError, ProviderError, RateLimited, Transient
from scheduler.ledger.store import BudgetLimit, CallRecord, Hold, Ledger, Refusal, SpendPolicy
from scheduler.load import LoadReading, read_load
from scheduler.providers.registry import adapter_class
from scheduler.tasks import ProviderResult, Task

if TYPE_CHECKING:
    import httpx

    from scheduler.config.schema import Config, ProviderConfig, Strategy
    from scheduler.providers.base import Adapter

# Cool-down after a provider kept failing transiently or rate-limited without saying for how long.
DEFAULT_COOLDOWN_S = 30.0
# `fastest` ranks providers by their median latency for the task kind over this period.
FASTEST_WINDOW_S = 86400.0
_PERIOD_ORDER = {"minute": 0, "hour": 1, "day": 2, "month": 3, "total": 4}


@dataclass(frozen=True)
class Attempt:
    """One candidate's part in a run: served it, failed (classified), or skipped without a call."""

    provider: str
    outcome: str  # "ok", "skipped", or a ProviderError outcome
    error: str | None = None
    latency_ms: float = 0.0
    tries: int = 0
    model: str | None = None
    cost_usd: float = 0.0


@dataclass(frozen=True)
class RunResult:
    """The answer to one task, with the trace of every candidate considered."""

    task: Task
    attempts: tuple[Attempt, ...]
    result: ProviderResult | None = None
    provider: str | None = None
    placement: str | None = None  # where the local backend went in the order, and why

    @property
    def cost_usd(self) -> float:
        """What the run cost: the attempts that reached a provider and were billed."""
        return sum(attempt.cost_usd for attempt in self.attempts)

    @property
    def ok(self) -> bool:
        return self.result is not None

    @property
    def exit_code(self) -> int:
        """0 served; 3 nobody could even be tried; 1 every candidate that was tried failed."""
        if self.ok:
            return 0
        if all(attempt.outcome == "skipped" for attempt in self.attempts):
            return 3
        return 1


@dataclass
class _Skip(Exception):
    """Raised inside the retry loop when the ledger refuses a retry (quota filled meanwhile)."""

    refusal: Refusal
    last_error: ProviderError | None = None


@dataclass
class Dispatcher:
    """Runs tasks against the priority table, sharing one HTTP client and one ledger."""

    config: Config
    ledger: Ledger
    keys: KeyStore
    http: httpx.AsyncClient
    sleep: object = asyncio.sleep  # replaced in tests to skip real waiting
    strategy: Strategy | None = None  # --strategy; None: the table's setting
    free_only: bool = False  # --free-only
    max_cost: float | None = None  # --max-cost: what this run may still spend, in USD
    load_reader: Callable[[], LoadReading] = read_load  # replaced in tests
    _adapters: dict[str, Adapter] = field(default_factory=dict)

    def candidates(self, task: Task, only: str | None = None) -> tuple[str, ...]:
        """Provider names in the order they are tried for this task."""
        return self._ordered(task, only)[0]

    def _ordered(self, task: Task, only: str | None) -> tuple[tuple[str, ...], str | None]:
        """The order of `candidates` and where the local backend went in it, and why."""
        if only is not None:
            check_provider(self.config, only)
            return (only,), None
        names = tuple(self.config.tasks.get(task.kind, ()))
        strategy = self.strategy or self.config.settings.strategy
        if strategy == "cheapest":  # sorted() is stable: ties keep table order
            names = tuple(sorted(names, key=lambda name: self.estimated_cost(name, task)))
        elif strategy == "fastest":
            medians = self.ledger.median_latency_ms(task.kind, time.time() - FASTEST_WINDOW_S)
            measured = sorted((n for n in names if n in medians), key=lambda n: medians[n])
            names = (*measured, *(n for n in names if n not in medians))
        return self.place_local(names)

    def place_local(self, names: tuple[str, ...]) -> tuple[tuple[str, ...], str | None]:
        """Local backends go first while this machine's load is under `prefer_local_below_load`,
        last otherwise (or always last when it is null). Returns the order and why."""
        local = [n for n in names if self.config.providers[n].adapter == "local"]
        if not local:
            return names, None
        hosted = [n for n in names if n not in local]
        threshold = self.config.settings.prefer_local_below_load
        if threshold is None:
            return (*hosted, *local), "local last (prefer_local_below_load is null)"
        reading = self.load_reader()
        if reading.value < threshold:
            why = f"local first: {reading.source} {reading.value:.0%} < {threshold:.0%}"
            return (*local, *hosted), why
        why = f"local last: {reading.source} {reading.value:.0%} >= {threshold:.0%}"
        return (*hosted, *local), why

    def estimated_cost(self, name: str, task: Task) -> float:
        """What this very task would cost on `name` now, free allowances considered."""
        provider = self.config.providers[name]
        if not is_billable(provider.pricing):
            return 0.0
        usage = task.estimate()
        cls = adapter_class(provider.adapter)
        model = task.model or provider.models.get(task.kind)
        if cls is not None and model:  # the adapter knows units such as credits per image
            usage = cls.estimate(task, model=model)
        usage["usd"] = list_price(usage, provider.pricing)
        free = self.ledger.free_remaining(name, provider.quotas, time.time())
        return usage["usd"] * paid_share(usage, free, billable=True)

    def _spend(self, name: str) -> SpendPolicy:
        settings = self.config.settings
        provider = self.config.providers[name]
        budgets = []
        for scope, budget in ((None, settings.budget), (name, provider.budget)):
            if budget is None:
                continue
            if budget.daily_usd is not None:
                budgets.append(BudgetLimit("day", budget.daily_usd, scope))
            if budget.monthly_usd is not None:
                budgets.append(BudgetLimit("month", budget.monthly_usd, scope))
        return SpendPolicy(
            pricing=provider.pricing,
            allow_paid=settings.allow_paid,
            free_only=self.free_only,
            max_cost=self.max_cost,
            budgets=tuple(budgets),
        )

    async def run(self, task: Task, *, only: str | None = None) -> RunResult:
        attempts: list[Attempt] = []
        names, placement = self._ordered(task, only)
        for name in names:
            attempt, result = await self._try(name, task)
            attempts.append(attempt)
            if result is not None:
                return RunResult(task, tuple(attempts), result, name, placement)
        return RunResult(task, tuple(attempts), placement=placement)

    def _precheck(self, name: str, task: Task) -> tuple[str | None, str | None, str | None]:
        """(skip reason, model, key) from configuration alone, before touching the ledger."""
        provider = self.config.providers[name]
        if not provider.enabled:
            return provider.note or "disabled in providers.yaml", None, None
        cls = adapter_class(provider.adapter)
        if cls is None:
            return f"adapter {provider.adapter!r} not available in this version", None, None
        if task.kind not in cls.kinds:
            return f"{provider.adapter} adapter does not serve {task.kind}", None, None
        model = task.model or provider.models.get(task.kind)
        if not model:
            return f"no model for {task.kind}", None, None
        key = self.keys.get(provider.api_key_env) if provider.api_key_env else None
        if provider.api_key_env and not key:
            return f"no {provider.api_key_env}", model, None
        return None, model, key

    def _adapter(self, name: str, key: str | None) -> Adapter:
        adapter = self._adapters.get(name)
        if adapter is None or adapter.api_key != key:
            provider = self.config.providers[name]
            cls = adapter_class(provider.adapter)
            assert cls is not None  # checked by _precheck
            adapter = cls(
                name=name,
                config=provider,
                api_key=key,
                http=self.http,
                timeout_s=self.config.settings.timeout_s,
            )
            self._adapters[name] = adapter
        return adapter

    async def _try(self, name: str, task: Task) -> tuple[Attempt, ProviderResult | None]:
        skip, model, key = self._precheck(name, task)
        if skip is not None or model is None:
            return Attempt(name, "skipped", skip, model=model), None
        provider = self.config.providers[name]
        adapter = self._adapter(name, key)
        missing = await adapter.unavailable(task, model=model)
        if missing is not None:
            return Attempt(name, "skipped", missing, model=model), None
        key_fp = fingerprint(key) if key else None
        estimate = adapter.estimate(task, model=model)
        settings = self.config.settings
        started = time.perf_counter()
        tries = 0
        holds: list[Hold] = []
        last_error: ProviderError | None = None

        async def one_try() -> ProviderResult:
            nonlocal tries, last_error
            hold = self.ledger.reserve(
                name,
                provider.quotas,
                estimate,
                task=task.kind,
                model=model,
                key_fingerprint=key_fp,
                spend=self._spend(name),
            )
            if isinstance(hold, Refusal):
                raise _Skip(hold, last_error)
            self._charge(hold.estimated_cost)  # held against --max-cost while in flight
            tries += 1
            try:
                result = await self._bounded(adapter.run(task, model=model), task)
            except ProviderError as error:
                last_error = error
                self._charge(-hold.estimated_cost)
                if _retryable(error, settings.max_retry_wait_s) and tries <= settings.retries:
                    self.ledger.release(hold)  # the next try reserves afresh
                else:
                    holds.append(hold)  # settled with the failure record below
                raise
            except BaseException:
                # Not a provider failure (a bug, Ctrl-C): give the quota back, then let it out.
                self._charge(-hold.estimated_cost)
                self.ledger.release(hold)
                raise
            holds.append(hold)
            return result

        retrying = AsyncRetrying(
            stop=stop_after_attempt(settings.retries + 1),
            retry=retry_if_exception(lambda exc: _retryable(exc, settings.max_retry_wait_s)),
            wait=_wait_for_hint,
            sleep=self.sleep,  # type: ignore[arg-type]
            reraise=True,
        )
        try:
            result: ProviderResult = await retrying(one_try)
        except _Skip as skipped:
            if skipped.last_error is None:
                return Attempt(name, "skipped", skipped.refusal.reason, model=model), None
            return self._failed(name, task, model, skipped.last_error, None, tries, started, key_fp)
        except ProviderError as error:
            hold = holds[-1] if holds else None
            return self._failed(name, task, model, error, hold, tries, started, key_fp)
        latency_ms = (time.perf_counter() - started) * 1000
        hold = holds[-1]
        record = CallRecord(
            task=task.kind,
            provider=name,
            model=result.model,
            outcome="ok",
            latency_ms=latency_ms,
            tries=tries,
            usage={**result.usage, "usd": list_price(result.usage, provider.pricing)},
        )
        cost = self.ledger.commit(hold, record, rate_limits=result.rate_limits)
        self._charge(cost - hold.estimated_cost)  # the estimate held in flight becomes the cost
        return Attempt(name, "ok", None, latency_ms, tries, result.model, cost), result

    async def _bounded(self, call: Awaitable[ProviderResult], task: Task) -> ProviderResult:
        """One provider call within `timeout_s` in all (httpx's timeout bounds each read, not a
        whole slowly trickled answer). Speech gets its length on top: a local transcription of
        an hour of audio is not a hung call."""
        limit = self.config.settings.timeout_s + _audio_seconds(task)
        try:
            return await asyncio.wait_for(call, timeout=limit)
        except TimeoutError:
            raise Transient(f"timed out after {limit:g} s") from None

    def _charge(self, amount: float) -> None:
        if self.max_cost is not None and amount:
            self.max_cost -= amount

    def _failed(
        self,
        name: str,
        task: Task,
        model: str,
        error: ProviderError,
        hold: Hold | None,
        tries: int,
        started: float,
        key_fp: str | None,
    ) -> tuple[Attempt, None]:
        latency_ms = (time.perf_counter() - started) * 1000
        message = str(error)
        record = CallRecord(
            task=task.kind,
            provider=name,
            model=model,
            outcome=error.outcome,
            latency_ms=latency_ms,
            tries=tries,
            error=message,
        )
        block_until = self._block_until(self.config.providers[name], error)
        self.ledger.record_failure(
            hold, record, error, block_until=block_until, key_fingerprint=key_fp
        )
        return Attempt(name, error.outcome, message, latency_ms, tries, model), None

    def _block_until(self, provider: ProviderConfig, error: ProviderError) -> float | None:
        """Until when a failed provider is skipped by every process sharing the ledger."""
        now = time.time()
        if error.outcome == "quota_exhausted":
            if error.resets_at is not None:
                return error.resets_at
            if error.retry_after is not None:
                return now + error.retry_after
            return _next_reset(provider.quotas, now)
        if error.outcome in ("rate_limited", "transient"):
            return now + (
                error.retry_after if error.retry_after is not None else DEFAULT_COOLDOWN_S
            )
        return None


def check_provider(config: Config, name: str) -> None:
    """Refuse a --provider the table does not define, naming the ones it does."""
    if name not in config.providers:
        known = ", ".join(sorted(config.providers))
        raise InputError(f"unknown provider {name!r} for --provider; known: {known}")


def _audio_seconds(task: Task) -> float:
    seconds = getattr(task, "audio_seconds", None)
    return float(seconds) if isinstance(seconds, int | float) else 0.0


def _retryable(exc: BaseException, max_wait_s: float) -> bool:
    """Transient trouble is retried; a rate limit only when the provider asks for a short wait."""
    if isinstance(exc, Transient):
        return exc.retry_after is None or exc.retry_after <= max_wait_s
    if isinstance(exc, RateLimited):
        return exc.retry_after is not None and exc.retry_after <= max_wait_s
    return False


# 0.5 s, 1 s, 2 s ... up to 8 s, plus up to 0.5 s of jitter so that processes do not retry in step.
# Built from parts that exist across tenacity 8.x and 9.x (google-genai caps tenacity below 9.2).
_backoff = wait_exponential(multiplier=0.5, max=8.0) + wait_random(0, 0.5)


def _wait_for_hint(state: RetryCallState) -> float:
    """The provider's own hint when it gave one, else exponential backoff with jitter."""
    outcome = state.outcome
    error = outcome.exception() if outcome is not None else None
    if isinstance(error, ProviderError) and error.retry_after is not None:
        return error.retry_after
    return float(_backoff(state))


def _next_reset(rules: Sequence[object], now: float) -> float:
    """When the longest-running quota window of the provider resets; else the next UTC midnight."""
    from scheduler.config.schema import QuotaRule

    windows = [rule for rule in rules if isinstance(rule, QuotaRule) and rule.per != "total"]
    if windows:
        longest = max(windows, key=lambda rule: _PERIOD_ORDER[rule.per])
        end = longest.window.next_reset(now)
        if end is not None:
            return float(end)
    return (now // 86400 + 1) * 86400


__all__ = ["DEFAULT_COOLDOWN_S", "Attempt", "Dispatcher", "RunResult", "check_provider"]
