"""Who serves a task: candidates in table order, skips with reasons, retries, fallback.

For each candidate the dispatcher checks, without any network call, that it is enabled, has an
adapter for the task kind, a model and a key; then the ledger reserves the estimated usage (or
says why not: quota full, cooling down, disabled). A call that fails transiently is retried on the
same provider with tenacity, waiting as long as the provider asked (any retry-hint format) or
backing off exponentially; any other failure moves on to the next provider, and a provider that
failed over is never called again for the same task. Every attempt lands in the calls table.

Within one provider the models of the task kind are tried in the table's order (`models: {text:
[primary, fallback]}`): a model the ledger knows is retired is skipped with the reason, and one
answered "model gone" (ModelUnavailable) is marked retired for every process and the provider's
next model is tried before the table moves on. The mark is per model name, so a table naming
another model is not affected; a probe still tries a retired model, and lifts the mark if it is
served.

One dispatcher serves any number of concurrent runs: what belongs to one run (its options, what
it may still spend) lives in that run's `_Run`, never on the dispatcher. Streams follow the same
path up to their first piece: a provider that fails before it is a fallback like any other, one
that fails after it has already answered, and its partial answer is kept and billed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from scheduler import call_clock
from scheduler.config.keys import KeyStore, fingerprint
from scheduler.cost import is_billable, list_price, paid_share
from scheduler.errors import (
    ConfigError,
    InputError,
    LedgerError,
    ModelUnavailable,
    ProviderError,
    RateLimited,
    Transient,
)
from scheduler.ledger import trust
from scheduler.ledger.store import BudgetLimit, CallRecord, Hold, Refusal, SpendPolicy
from scheduler.load import LoadReading, read_load
from scheduler.options import RunOptions
from scheduler.providers.registry import adapter_class
from scheduler.tasks import (
    ProviderResult,
    Task,
    TaskKind,
    TextDelta,
    TextTask,
    estimate_tokens,
    text_usage,
)

if TYPE_CHECKING:
    import httpx

    from scheduler.config.schema import Config, Pricing, ProviderConfig
    from scheduler.ledger.aio import AsyncLedger
    from scheduler.ledger.models import Retired
    from scheduler.providers.base import Adapter

# Cool-down after a provider kept failing transiently or rate-limited without saying for how long.
DEFAULT_COOLDOWN_S = 30.0
# The most a call may spend before its first request is sent (the SDK's first import, the client
# build, reading the input): a generous cap, since timeout_s only starts at that request. Under
# the default lease (timeout_s + 30 s), so a live call's hold never expires as a dead one's.
WARM_UP_S = 20.0
# `fastest` ranks providers by their median latency for the task kind over this period.
FASTEST_WINDOW_S = 86400.0
_PERIOD_ORDER = {"minute": 0, "hour": 1, "day": 2, "month": 3, "total": 4}
T = TypeVar("T")


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
    ttft_ms: float | None = None  # streams: time to the first piece of the answer
    note: str | None = None  # something the user should know that is no failure of the call
    until: float | None = None  # skipped: when the refusal ends by itself (a window resets)


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
    def notes(self) -> tuple[str, ...]:
        return tuple(attempt.note for attempt in self.attempts if attempt.note)

    @property
    def exit_code(self) -> int:
        """0 served; 4 served in part (a stream broke after its first token: the partial answer
        was delivered and billed); 3 nobody could even be tried; 1 every candidate that was
        tried failed."""
        if self.result is not None:
            return 4 if self.result.truncated else 0
        if all(attempt.outcome == "skipped" for attempt in self.attempts):
            return 3
        return 1


StreamEvent = TextDelta | RunResult


@dataclass
class _Run:
    """What belongs to one run: its options, and what it may still spend (`--max-cost`), which
    each hold is charged against while its call is in flight."""

    options: RunOptions
    left_usd: float | None
    prompt: str | None = None  # what its calls rows keep of the task (settings.log_prompts)

    @classmethod
    def of(cls, options: RunOptions, prompt: str | None = None) -> _Run:
        return cls(options, options.max_cost, prompt)

    def charge(self, amount: float) -> None:
        if self.left_usd is not None and amount:
            self.left_usd -= amount


@dataclass
class _Skip(Exception):
    """Raised inside the retry loop when the ledger refuses a retry (quota filled meanwhile)."""

    refusal: Refusal
    last_error: ProviderError | None = None


@dataclass
class _Call:
    """One provider's attempt at a task while it is made: everything its settlement needs."""

    name: str
    task: Task
    model: str
    provider: ProviderConfig
    pricing: Pricing  # the provider's prices for this model
    adapter: Adapter
    key_fp: str | None
    estimate: dict[str, float]
    retired: bool = False  # tried despite a retired mark (a probe): served lifts the mark
    gone: bool = False  # skipped for a retired mark: the provider's next model is tried
    started: float = field(default_factory=time.perf_counter)
    tries: int = 0
    hold: Hold | None = None
    last_error: ProviderError | None = None
    prompt: str | None = None

    @property
    def latency_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def record(self, outcome: str, **fields: Any) -> CallRecord:
        return CallRecord(
            task=self.task.kind,
            provider=self.name,
            model=fields.pop("model", self.model),
            outcome=outcome,
            latency_ms=self.latency_ms,
            tries=self.tries,
            prompt=self.prompt,
            **fields,
        )


@dataclass
class Dispatcher:
    """Runs tasks against the priority table, sharing one HTTP client and one ledger."""

    config: Config
    ledger: AsyncLedger
    keys: KeyStore
    http: httpx.AsyncClient
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # replaced in tests
    load_reader: Callable[[], LoadReading] = read_load  # replaced in tests
    _adapters: dict[str, Adapter] = field(default_factory=dict)

    # -- candidates --------------------------------------------------------------------------

    async def candidates(self, task: Task, options: RunOptions | None = None) -> tuple[str, ...]:
        """Provider names in the order they are tried for this task."""
        return (await self._ordered(task, options or RunOptions()))[0]

    async def _ordered(self, task: Task, options: RunOptions) -> tuple[tuple[str, ...], str | None]:
        """The order of `candidates` and where the local backend went in it, and why."""
        if options.provider is not None:
            check_provider(self.config, options.provider)
            return (options.provider,), None
        names = tuple(self.config.tasks.get(task.kind, ()))
        strategy = options.strategy or self.config.settings.strategy
        if strategy == "cheapest":  # sorted() is stable: ties keep table order
            costs = {name: await self.estimated_cost(name, task) for name in names}
            names = tuple(sorted(names, key=costs.__getitem__))
        elif strategy == "fastest":
            since = time.time() - FASTEST_WINDOW_S
            medians = await self.ledger.median_latency_ms(task.kind, since)
            measured = sorted((n for n in names if n in medians), key=lambda n: medians[n])
            names = (*measured, *(n for n in names if n not in medians))
        return self.place_local(names)

    def _logged_prompt(self, task: Task) -> str | None:
        """The task's text for its calls rows when settings.log_prompts is on, keys removed."""
        if not self.config.settings.log_prompts:
            return None
        from scheduler.prompt_log import logged_prompt

        variables = {p.api_key_env for p in self.config.providers.values() if p.api_key_env}
        return logged_prompt(task, (self._secret(variable) for variable in variables))

    def _secret(self, variable: str) -> str | None:
        try:
            return self.keys.get(variable)
        except ConfigError:  # refused where the key is used; its pattern still gets redacted
            return None

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

    async def estimated_cost(self, name: str, task: Task) -> float:
        """What this very task would cost on `name` now, free allowances considered."""
        provider = self.config.providers[name]
        model = task.model or next(iter(provider.models_for(task.kind)), None)
        pricing = provider.pricing_for(model)
        if not is_billable(pricing):
            return 0.0
        usage = task.estimate()
        cls = adapter_class(provider.adapter)
        if cls is not None and model:  # the adapter knows units such as credits per image
            usage = cls.estimate(task, model=model)
        usage["usd"] = list_price(usage, pricing)
        free = await self.ledger.free_remaining(name, provider.quotas, time.time())
        return usage["usd"] * paid_share(usage, free, billable=True)

    def _spend(self, call: _Call, run: _Run) -> SpendPolicy:
        settings = self.config.settings
        budgets = []
        for scope, budget in ((None, settings.budget), (call.name, call.provider.budget)):
            if budget is None:
                continue
            if budget.daily_usd is not None:
                budgets.append(BudgetLimit("day", budget.daily_usd, scope))
            if budget.monthly_usd is not None:
                budgets.append(BudgetLimit("month", budget.monthly_usd, scope))
        return SpendPolicy(
            pricing=call.pricing,
            allow_paid=settings.allow_paid,
            free_only=run.options.free_only,
            max_cost=run.left_usd,
            budgets=tuple(budgets),
            caller=run.options.caller,
        )

    # -- whole answers -----------------------------------------------------------------------

    async def run(self, task: Task, options: RunOptions | None = None) -> RunResult:
        """Serve `task` on the first candidate that can; the trace says who was tried and why."""
        run = _Run.of(options or RunOptions(), self._logged_prompt(task))
        attempts: list[Attempt] = []
        names, placement = await self._ordered(task, run.options)
        for name in names:
            async with contextlib.aclosing(self._calls(name, task, run, attempts)) as calls:
                async for call in calls:
                    attempt, result = await self._serve_whole(call, run)
                    attempts.append(attempt)
                    if result is not None:
                        return RunResult(task, tuple(attempts), result, name, placement)
                    if attempt.outcome != ModelUnavailable.outcome and not call.gone:
                        break  # only a retired model moves on to the same provider's next one
        return RunResult(task, tuple(attempts), placement=placement)

    async def _serve_whole(self, call: _Call, run: _Run) -> tuple[Attempt, ProviderResult | None]:
        adapter, task = call.adapter, call.task
        try:
            result = await self._with_retries(
                call, run, lambda: self._bounded(adapter.run(task, model=call.model), task)
            )
        except _Skip as skipped:
            return await self._skipped(call, skipped), None
        except ProviderError as error:
            return await self._failed(call, error), None
        attempt = await self._commit(call, run, result, "ok")
        return attempt, _as_counted(call, result)

    # -- streams -----------------------------------------------------------------------------

    async def stream(
        self, task: TextTask, options: RunOptions | None = None
    ) -> AsyncGenerator[StreamEvent, None]:
        """Serve a text task as it is written: TextDelta pieces as they arrive, then the
        RunResult. Fallback happens only before the first piece; a stream that breaks after it
        ends with the partial answer, marked `truncated`, and is billed by what arrived."""
        run = _Run.of(options or RunOptions(), self._logged_prompt(task))
        attempts: list[Attempt] = []
        names, placement = await self._ordered(task, run.options)
        for name in names:
            opened = await self._open_on(name, task, run, attempts)
            if opened is None:
                continue
            call, stream, piece = opened
            ttft_ms = call.latency_ms
            if isinstance(piece, TextDelta):
                piece = replace(piece, provider=name, model=call.model)
            written: list[str] = []
            final: ProviderResult | None = None
            broke: ProviderError | None = None
            try:
                while isinstance(piece, TextDelta):
                    written.append(piece.text)
                    yield piece
                    try:
                        piece = await self._bounded(anext(stream), task, sent=True)
                    except StopAsyncIteration:
                        break
                    except ProviderError as error:
                        broke = error
                        break
                else:
                    final = piece
            except BaseException as exc:  # Ctrl-C, or the consumer went away mid-stream
                hold, call.hold = call.hold, None
                assert hold is not None
                partial = _partial(call, "".join(written))
                self._settle_abandoned(call, hold, exc, usage=partial.usage)
                raise
            finally:
                await _close(stream)
            if final is None:
                final = _partial(call, "".join(written), truncated=broke is not None)
            elif not final.output and written:
                final = replace(final, output="".join(written))
            outcome = "truncated" if final.truncated else "ok"
            why = f"stream broke after its first token: {broke}" if broke else None
            attempt = await self._commit(call, run, final, outcome, error=why, ttft_ms=ttft_ms)
            attempts.append(attempt)
            yield RunResult(task, tuple(attempts), _as_counted(call, final), name, placement)
            return
        yield RunResult(task, tuple(attempts), placement=placement)

    async def _open_on(
        self, name: str, task: TextTask, run: _Run, attempts: list[Attempt]
    ) -> tuple[_Call, AsyncIterator[TextDelta | ProviderResult], TextDelta | ProviderResult] | None:
        """The first of `name`'s models that opens a stream, with its stream and first piece;
        a retired model moves on to the next, any other failure ends the provider's turn."""
        async with contextlib.aclosing(self._calls(name, task, run, attempts)) as calls:
            async for call in calls:
                opened = await self._open_stream(call, run, attempts)
                if opened is not None:
                    return (call, *opened)
                if attempts[-1].outcome != ModelUnavailable.outcome and not call.gone:
                    break
        return None

    async def _open_stream(
        self, call: _Call, run: _Run, attempts: list[Attempt]
    ) -> tuple[AsyncIterator[TextDelta | ProviderResult], TextDelta | ProviderResult] | None:
        """The provider's stream and its first piece, with retries before that piece; None
        after appending why this provider did not answer."""
        task = call.task
        assert isinstance(task, TextTask)

        async def first_piece() -> tuple[
            AsyncIterator[TextDelta | ProviderResult], TextDelta | ProviderResult
        ]:
            stream = call.adapter.stream_text(task, model=call.model)
            try:
                return stream, await self._bounded(anext(stream), task)
            except StopAsyncIteration:
                raise Transient("malformed response: the stream ended empty") from None
            except BaseException:
                await _close(stream)
                raise

        try:
            return await self._with_retries(call, run, first_piece)
        except _Skip as skipped:
            attempts.append(await self._skipped(call, skipped))
        except ProviderError as error:
            attempts.append(await self._failed(call, error))
        return None

    # -- one provider ------------------------------------------------------------------------

    async def _calls(
        self, name: str, task: Task, run: _Run, attempts: list[Attempt]
    ) -> AsyncGenerator[_Call, None]:
        """The calls to make on `name`, one per model of the task kind in the table's order;
        each skipped model (or the whole provider) is appended to `attempts` with its reason.
        The caller asks for the next call only after a model turned out to be gone."""
        skip, models, key = self._configured(name, task.kind, task.model)
        if skip is not None or not models:
            attempts.append(Attempt(name, "skipped", skip, model=models[0] if models else None))
            return
        provider = self.config.providers[name]
        adapter = self._adapter(name, key)
        for model in models:
            # A retired mark is read by the reservation itself (one transaction, no extra
            # statement while the ledger generation stands): a refusal naming it moves on.
            missing = await adapter.unavailable(task, model=model)
            if missing is not None:
                attempts.append(Attempt(name, "skipped", missing, model=model))
                return
            yield _Call(
                name=name,
                task=task,
                model=model,
                provider=provider,
                pricing=provider.pricing_for(model),
                adapter=adapter,
                key_fp=fingerprint(key) if key else None,
                estimate=adapter.estimate(task, model=model),
                prompt=run.prompt,
            )

    def unconfigured(self, name: str, kind: TaskKind) -> str | None:
        """Why provider `name` cannot serve `kind` by configuration alone (disabled, no adapter
        for it, no model, no key), or None when it could: what a health check reports, with
        no ledger read and no call."""
        return self._configured(name, kind, None)[0]

    def _configured(
        self, name: str, kind: TaskKind, model: str | None
    ) -> tuple[str | None, tuple[str, ...], str | None]:
        """(skip reason, models to try, key) from configuration alone, before the ledger;
        `model` is the task's own choice, which replaces the table's."""
        provider = self.config.providers[name]
        if not provider.enabled:
            return provider.note or "disabled in providers.yaml", (), None
        cls = adapter_class(provider.adapter)
        if cls is None:
            return f"adapter {provider.adapter!r} not available in this version", (), None
        if kind not in cls.kinds:
            return f"{provider.adapter} adapter does not serve {kind}", (), None
        models = (model,) if model else provider.models_for(kind)
        if not models:
            return f"no model for {kind}", (), None
        key = self.keys.get(provider.api_key_env) if provider.api_key_env else None
        if provider.api_key_env and not key:
            return f"no {provider.api_key_env}", models, None
        return None, models, key

    def _adapter(self, name: str, key: str | None) -> Adapter:
        adapter = self._adapters.get(name)
        if adapter is None or adapter.api_key != key:
            provider = self.config.providers[name]
            cls = adapter_class(provider.adapter)
            assert cls is not None  # checked by _configured
            adapter = cls(
                name=name,
                config=provider,
                api_key=key,
                http=self.http,
                timeout_s=self.config.settings.timeout_s,
            )
            self._adapters[name] = adapter
        return adapter

    async def _with_retries(self, call: _Call, run: _Run, attempt: Callable[[], Awaitable[T]]) -> T:
        """`attempt()` under a fresh hold per try, retried on transient trouble. On success
        `call.hold` is the hold that paid for it, still to be settled; on a provider failure
        it is the last try's, for the failure record."""
        settings = self.config.settings
        retries = 0 if run.options.probe else settings.retries

        async def one_try() -> T:
            hold = await self.ledger.reserve(
                call.name,
                call.provider.quotas,
                call.estimate,
                task=call.task.kind,
                model=call.model,
                key_fingerprint=call.key_fp,
                spend=self._spend(call, run),
                probe=run.options.probe,
            )
            if isinstance(hold, Refusal):
                raise _Skip(hold, call.last_error)
            call.retired = hold.retired
            run.charge(hold.estimated_cost)  # held against --max-cost while in flight
            call.tries += 1
            call.hold = hold
            try:
                return await attempt()
            except ProviderError as error:
                call.last_error = error
                run.charge(-hold.estimated_cost)
                if _retryable(error, settings.max_retry_wait_s) and call.tries <= retries:
                    await self._quietly(self.ledger.release(hold))  # the next try reserves afresh
                    call.hold = None
                raise
            except BaseException as exc:
                # Not a provider's answer: Ctrl-C, a cancelled caller, a bug. Once the request
                # may have reached the provider the call counts, as a killed process's would.
                run.charge(-hold.estimated_cost)
                call.hold = None
                self._settle_abandoned(call, hold, exc)
                raise

        retrying = AsyncRetrying(
            stop=stop_after_attempt(retries + 1),
            retry=retry_if_exception(lambda exc: _retryable(exc, settings.max_retry_wait_s)),
            wait=_wait_for_hint,
            sleep=self.sleep,
            reraise=True,
        )
        result: T = await retrying(one_try)
        return result

    def _settle_abandoned(
        self,
        call: _Call,
        hold: Hold,
        exc: BaseException,
        *,
        usage: dict[str, float] | None = None,
    ) -> None:
        """Settle a hold whose call was abandoned mid-flight, synchronously: the event loop may
        be shutting down (Ctrl-C), and no await may be cancelled again before it is done. The
        call is counted at its estimate (the provider may have served it); if even that cannot
        be written the hold stays, and expires as used after its lease. A stream passes the
        `usage` of what arrived."""
        interrupted = isinstance(exc, KeyboardInterrupt | asyncio.CancelledError | GeneratorExit)
        outcome = "interrupted" if interrupted else "error"
        why = "interrupted" if interrupted else f"failed in this process ({type(exc).__name__})"
        counted = "by what arrived" if usage is not None else "as estimated"
        usage = dict(call.estimate if usage is None else usage)
        usage["usd"] = list_price(usage, call.pricing)
        record = call.record(
            outcome, usage=usage, error=f"{why} after the request was sent; counted {counted}"
        )
        with contextlib.suppress(LedgerError):
            self.ledger.sync.commit(hold, record)

    async def _commit(
        self,
        call: _Call,
        run: _Run,
        result: ProviderResult,
        outcome: str,
        *,
        error: str | None = None,
        ttft_ms: float | None = None,
    ) -> Attempt:
        """Turn the hold into the real usage; a ledger that cannot record it never costs the
        user the answer (the ledger journals what it could not write, and says so)."""
        hold = call.hold
        assert hold is not None
        usage = {**result.usage, "usd": list_price(result.usage, call.pricing)}
        record = call.record(outcome, model=result.model, usage=usage, error=error)
        note = None
        try:
            cost = await self.ledger.commit(hold, record, rate_limits=result.rate_limits)
        except LedgerError as exc:
            cost, note = hold.estimated_cost, str(exc)
        if call.retired:  # a probe found a retired model served again: lift the mark
            unmarked = await self._quietly(self._unmark(call))
            note = note or unmarked
        run.charge(cost - hold.estimated_cost)  # the estimate held in flight becomes the cost
        return Attempt(
            call.name,
            outcome,
            error,
            call.latency_ms,
            call.tries,
            result.model,
            cost,
            ttft_ms=ttft_ms,
            note=note,
        )

    async def _skipped(self, call: _Call, skipped: _Skip) -> Attempt:
        if skipped.last_error is None:
            refusal = skipped.refusal
            if refusal.retired is not None:
                call.gone = True
                why = _retired(refusal.retired, call.task)
                return Attempt(call.name, "skipped", why, model=call.model)
            return Attempt(
                call.name, "skipped", refusal.reason, model=call.model, until=refusal.until
            )
        return await self._failed(call, skipped.last_error)  # its hold is already released

    async def _failed(self, call: _Call, error: ProviderError) -> Attempt:
        """Log the failed attempt, settle the last try's hold and put the provider in its new
        state (cooling down, exhausted, disabled)."""
        message = str(error)
        record = call.record(error.outcome, error=message)
        block_until = self._block_until(call.provider, error)
        note = await self._quietly(
            self.ledger.record_failure(
                call.hold, record, error, block_until=block_until, key_fingerprint=call.key_fp
            )
        )
        if isinstance(error, ModelUnavailable):  # every process skips it from now on
            marked = self.ledger.mark_retired(call.name, call.model, message)
            note = await self._quietly(marked) or note
        return Attempt(
            call.name,
            error.outcome,
            message,
            call.latency_ms,
            call.tries,
            call.model,
            note=note,
            until=block_until,
        )

    async def _unmark(self, call: _Call) -> None:
        await self.ledger.unmark_retired(call.name, call.model)

    @staticmethod
    async def _quietly(step: Awaitable[None]) -> str | None:
        """Run a ledger write whose failure loses nothing that matters (a release: the hold
        then expires as used; a failure record): its message becomes a note, never a crash."""
        try:
            await step
        except LedgerError as exc:
            return str(exc)
        return None

    async def _bounded(self, call: Awaitable[T], task: Task, *, sent: bool = False) -> T:
        """One provider call within `timeout_s` in all (httpx's timeout bounds each read, not a
        whole slowly trickled answer), counted from when its first request is sent (`sent`: it
        already was, a stream's next piece): an SDK imported and a client built before it are
        no slowness of the provider, and get up to `WARM_UP_S` of their own. Speech gets its
        length on top: a local transcription of an hour of audio is not a hung call."""
        limit = self.config.settings.timeout_s + _audio_seconds(task)
        loop = asyncio.get_running_loop()
        cap_at = loop.time() + limit + (0.0 if sent else WARM_UP_S)
        try:
            async with asyncio.timeout_at(cap_at) as cap:
                with call_clock.watching(lambda: cap.reschedule(loop.time() + limit)):
                    return await call
        except TimeoutError:
            raise Transient(f"timed out after {limit:g} s") from None

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


def _retired(retired: Retired, task: Task) -> str:
    """Why a retired model is skipped, and what to change: "model X retired on 2026-08-16:
    HTTP 404: ..., set providers.groq.models.text"."""
    day = time.strftime("%Y-%m-%d", time.gmtime(retired.since))
    return (
        f"model {retired.model} retired on {day}: {retired.reason},"
        f" set providers.{retired.provider}.models.{task.kind}"
    )


def _as_counted(call: _Call, result: ProviderResult) -> ProviderResult:
    """`result` with the usage the ledger counted (`trust.settle_usage`), not figures it did
    not believe: what --json, the gateway's usage and the library show agree with the calls row
    (which keeps the flag saying what was replaced)."""
    settled = trust.settle_usage(result.usage, call.estimate, call.pricing)
    if not settled.flags:
        return result
    return replace(result, usage={k: v for k, v in settled.usage.items() if k in result.usage})


def _partial(call: _Call, text: str, *, truncated: bool = True) -> ProviderResult:
    """What a stream that ended without its final result leaves: the text that arrived, billed
    as its counted tokens on top of the prompt's estimate."""
    return ProviderResult(
        output=text,
        model=call.model,
        usage=text_usage(int(call.estimate.get("input_tokens", 0)), estimate_tokens(text)),
        truncated=truncated,
    )


async def _close(stream: AsyncIterator[Any]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


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


__all__ = [
    "DEFAULT_COOLDOWN_S",
    "Attempt",
    "Dispatcher",
    "RunResult",
    "StreamEvent",
    "check_provider",
]
