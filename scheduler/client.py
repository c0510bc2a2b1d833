"""`Scheduler`: the one way in for the CLI, the cron jobs, the gateway and any Python program.

It owns what a run needs (the priority table, the keys, the ledger, one HTTP client and the
dispatcher) for as long as it is open, and hands out nothing that outlives it. Building these is
the expensive part (opening and migrating the ledger, a connection pool), so a program opens one
`Scheduler` and runs all its tasks through it, concurrently if it likes: per-call choices travel
in `RunOptions`, never on the shared objects.

    async with Scheduler() as s:                      # ./providers.yaml, ./quota.db, .env
        result = await s.run(TextTask("Say hi"), RunOptions(free_only=True))
        print(result.result.output if result.ok else result.exit_code)

Code without an event loop uses `Scheduler.sync()` (a context manager with the same methods,
blocking) or `run_text()` for one answer.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from scheduler.config.keys import KeyStore
from scheduler.config.schema import Config
from scheduler.errors import SchedError
from scheduler.options import RunOptions

if TYPE_CHECKING:
    import httpx

    from scheduler.config.loader import ConfigSource
    from scheduler.dispatcher import Dispatcher, RunResult, StreamEvent
    from scheduler.ledger.aio import AsyncLedger
    from scheduler.ledger.store import Ledger
    from scheduler.tasks import Task, TextTask


P = ParamSpec("P")
T = TypeVar("T")


class RunFailed(SchedError):
    """No provider served the task; `run` holds the trace of who was tried and why."""

    def __init__(self, run: RunResult) -> None:
        from scheduler.cli.render import trace_line

        self.run = run
        self.exit_code = run.exit_code  # type: ignore[misc]  # per instance: 1 or 3
        reason = "no provider was available" if run.exit_code == 3 else "every provider failed"
        super().__init__(f"{reason} for this {run.task.kind} task: {trace_line(run)}")


class Scheduler:
    """Config, keys, ledger, HTTP client and dispatcher, opened together and closed together.

    - `config`: a `Config`, or the path of a providers.yaml; None looks where the CLI does
      (`$SCHED_CONFIG`, ./providers.yaml, the packaged table).
    - `db`: the ledger, a SQLite path or a PostgreSQL URL; None is `$SCHED_DB` or ./quota.db.
    - `keys`: a `KeyStore`, or a mapping of variable to key; None reads the environment and .env.
    - `transport`: an httpx transport for every provider call (tests and benchmarks).
    """

    def __init__(
        self,
        config: Config | str | os.PathLike[str] | None = None,
        *,
        db: str | os.PathLike[str] | None = None,
        keys: KeyStore | Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        load_reader: Any = None,
        sleep: Any = None,
    ) -> None:
        self._config_arg = config
        self._db_arg = None if db is None else str(db)
        self._keys_arg = keys
        self._transport = transport
        self._load_reader: Any = load_reader
        self._sleep: Any = sleep
        self._config: Config | None = None
        self._source: ConfigSource | None = None
        self._keys: KeyStore | None = None
        self._ledger: AsyncLedger | None = None
        self._http: httpx.AsyncClient | None = None
        self._dispatcher: Dispatcher | None = None

    # -- what it owns --------------------------------------------------------------------------

    @property
    def config(self) -> Config:
        """The priority table (loaded on first use, so a bad one fails before the ledger opens)."""
        if self._config is None:
            if isinstance(self._config_arg, Config):
                self._config = self._config_arg
            else:
                from scheduler.config.loader import load_config

                self._config, self._source = load_config(self._config_arg)
        return self._config

    @property
    def config_source(self) -> ConfigSource | None:
        """Where the table came from (None when a `Config` was passed in)."""
        self.config  # noqa: B018 - loads it
        return self._source

    @property
    def keys(self) -> KeyStore:
        if self._keys is None:
            arg = self._keys_arg
            self._keys = arg if isinstance(arg, KeyStore) else KeyStore(environ=arg)
        return self._keys

    @property
    def ledger(self) -> Ledger:
        """The open ledger, for reports and maintenance (an error before `open`)."""
        return self._opened().ledger.sync

    @property
    def dispatcher(self) -> Dispatcher:
        return self._opened()

    async def on_ledger(
        self, fn: Callable[Concatenate[Ledger, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`fn(ledger, ...)` on the ledger's own thread, so a busy database never stalls the
        event loop: for reports and lookups next to runs (the gateway's token checks)."""
        return await self._opened().ledger.run(fn, *args, **kwargs)

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> Scheduler:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Load the table, open (and migrate) the ledger, settle holds of dead processes, and
        build the HTTP client. Idempotent."""
        if self._dispatcher is not None:
            return
        from scheduler.dispatcher import Dispatcher
        from scheduler.ledger.aio import AsyncLedger
        from scheduler.ledger.db import resolve_db_target
        from scheduler.ledger.store import Ledger
        from scheduler.providers.http import make_client

        config = self.config
        target = resolve_db_target(self._db_arg)
        opened = await asyncio.to_thread(
            Ledger.open,
            target,
            lease_s=config.settings.reservation_lease_s,
            max_block_s=config.settings.max_block_s,
        )
        ledger = AsyncLedger(opened)
        try:
            await ledger.expire()  # holds of processes that died: reports stay truthful
        except BaseException:
            ledger.close()
            opened.close()
            raise
        self._ledger = ledger
        self._http = make_client(
            config.settings.timeout_s,
            transport=self._transport,
            max_response_mb=config.settings.max_response_mb,
        )
        extra: dict[str, Any] = {}
        if self._load_reader is not None:
            extra["load_reader"] = self._load_reader
        if self._sleep is not None:
            extra["sleep"] = self._sleep
        self._dispatcher = Dispatcher(config, ledger, self.keys, self._http, **extra)

    async def aclose(self) -> None:
        """Close the HTTP client, finish the ledger's pending writes and close it."""
        http, ledger = self._http, self._ledger
        self._http = self._ledger = self._dispatcher = None
        try:
            if http is not None:
                await http.aclose()
        finally:
            if ledger is not None:
                ledger.close()
                ledger.sync.close()

    def _opened(self) -> Dispatcher:
        if self._dispatcher is None:
            raise RuntimeError("the Scheduler is not open: use `async with Scheduler() as s:`")
        return self._dispatcher

    # -- running tasks -------------------------------------------------------------------------

    async def run(self, task: Task, options: RunOptions | None = None) -> RunResult:
        """Serve `task` on the first provider of the table that can; never raises for a provider
        failure (the result's `ok`, `exit_code` and `attempts` say what happened)."""
        return await self._opened().run(task, options)

    async def stream(
        self, task: TextTask, options: RunOptions | None = None
    ) -> AsyncGenerator[StreamEvent, None]:
        """`TextDelta` pieces as the answer is written, then the `RunResult`."""
        async for event in self._opened().stream(task, options):
            yield event

    async def candidates(self, task: Task, options: RunOptions | None = None) -> tuple[str, ...]:
        """Who would be tried for `task`, in order (no call, no reservation)."""
        return await self._opened().candidates(task, options)

    @classmethod
    def sync(cls, *args: Any, **kwargs: Any) -> SyncScheduler:
        """The same, for code without an event loop: `with Scheduler.sync() as s: s.run(task)`."""
        return SyncScheduler(cls(*args, **kwargs))


class SyncScheduler:
    """A `Scheduler` driven by an event loop of its own, one blocking call at a time."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self._runner = asyncio.Runner()
        try:
            self._runner.run(scheduler.open())
        except BaseException:
            self._runner.close()
            raise

    def __enter__(self) -> SyncScheduler:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._runner.run(self.scheduler.aclose())
        finally:
            self._runner.close()

    @property
    def ledger(self) -> Ledger:
        return self.scheduler.ledger

    def run(self, task: Task, options: RunOptions | None = None) -> RunResult:
        return self._runner.run(self.scheduler.run(task, options))

    def stream(self, task: TextTask, options: RunOptions | None = None) -> Iterator[StreamEvent]:
        events = self.scheduler.stream(task, options)
        try:
            while True:
                try:
                    yield self._runner.run(_next(events))
                except StopAsyncIteration:
                    return
        finally:
            self._runner.run(events.aclose())


async def _next(events: AsyncGenerator[StreamEvent, None]) -> StreamEvent:
    return await anext(events)


def run_text(
    prompt: str,
    *,
    system: str | None = None,
    config: Config | str | os.PathLike[str] | None = None,
    db: str | os.PathLike[str] | None = None,
    options: RunOptions | None = None,
) -> str:
    """One answer, blocking: the text of the first provider that serves `prompt`. Raises
    `RunFailed` (with the trace) when none does."""
    from scheduler.tasks import TextTask

    with Scheduler.sync(config, db=db) as scheduler:
        run = scheduler.run(TextTask(prompt, system=system), options)
    if run.result is None:
        raise RunFailed(run)
    return run.result.output


def save(run: RunResult, path: str | os.PathLike[str]) -> Path:
    """Write a run's image, speech or text to `path`, converted to the format its extension
    names."""
    from scheduler import media

    if run.result is None:
        raise RunFailed(run)
    return media.save_result(run.result, Path(path))


__all__ = ["RunFailed", "Scheduler", "SyncScheduler", "run_text", "save"]
