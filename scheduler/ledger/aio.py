"""The ledger for coroutines: every call runs on the ledger's own worker thread.

The ledger's drivers (sqlite3, psycopg in its sync form) block: a SQLite writer waits in short
sleeps while another process holds the write lock, up to the busy timeout. Called from a
coroutine, that wait would stall every other coroutine of the process: a gateway's other
requests, a batch's other files. So async code goes through this wrapper, which runs each call
on one dedicated thread. One thread, not a pool: a connection serves one transaction at a time
anyway (the ledger holds a lock per connection), and a single thread keeps the order of a
process's ledger writes the order they were asked in.

The hop to that thread and back costs more than a SQLite transaction itself (two GIL hand-offs
and a wake-up of the loop: 0.3-0.6 ms per call on a loaded 2-core machine, against 0.05 ms for
the transaction). So on SQLite a call first runs right here, without waiting: when the thread has
nothing queued and the write lock is free it is done at once; when either would wait (another
process holds the lock) it raises `Busy` before doing anything, and goes to the thread, which
waits. PostgreSQL calls always go to the thread (each statement is a network round trip).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

from scheduler.ledger import models
from scheduler.ledger.db import Busy
from scheduler.ledger.store import CallRecord, Hold, Ledger, Refusal, SpendPolicy

if TYPE_CHECKING:
    from scheduler.config.schema import QuotaRule
    from scheduler.cost import FreeShare
    from scheduler.errors import ProviderError
    from scheduler.tasks import RateLimitReport

P = ParamSpec("P")
T = TypeVar("T")


class AsyncLedger:
    """Awaitable versions of the ledger calls a dispatcher makes; `sync` is the ledger itself."""

    def __init__(self, ledger: Ledger) -> None:
        self.sync = ledger
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sched-ledger")
        self._queued = 0  # calls handed to the thread and not finished: order is theirs
        self.inline = ledger.dialect == "sqlite"

    async def _call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self.inline and self._queued == 0:
            try:
                with self.sync.no_wait():
                    return fn(*args, **kwargs)
            except Busy:
                pass  # nothing was done: the thread waits for the lock
        return await self._on_thread(functools.partial(fn, *args, **kwargs))

    async def _on_thread(self, call: Callable[[], T]) -> T:
        future = self._thread.submit(call)
        self._queued += 1
        try:
            return await asyncio.wrap_future(future)
        finally:
            self._queued -= 1

    async def run(
        self, fn: Callable[Concatenate[Ledger, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`fn(ledger, ...)` on the ledger thread: reports, token lookups, maintenance."""
        return await self._call(fn, self.sync, *args, **kwargs)

    async def reserve(
        self,
        provider: str,
        rules: Sequence[QuotaRule],
        amounts: Mapping[str, float],
        *,
        task: str,
        model: str,
        key_fingerprint: str | None = None,
        spend: SpendPolicy | None = None,
        probe: bool = False,
    ) -> Hold | Refusal:
        """Reserve on the ledger thread. If the caller is cancelled while the thread works, the
        hold it may still take is released when it lands, instead of blocking quota until its
        lease runs out."""
        if self.inline and self._queued == 0:
            try:
                with self.sync.no_wait():
                    return self.sync.reserve(
                        provider,
                        rules,
                        amounts,
                        task=task,
                        model=model,
                        key_fingerprint=key_fingerprint,
                        spend=spend,
                        probe=probe,
                    )
            except Busy:
                pass
        call = functools.partial(
            self.sync.reserve,
            provider,
            rules,
            amounts,
            task=task,
            model=model,
            key_fingerprint=key_fingerprint,
            spend=spend,
            probe=probe,
        )
        future = self._thread.submit(call)
        self._queued += 1
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.add_done_callback(self._release_orphan)
            raise
        finally:
            self._queued -= 1

    def _release_orphan(self, future: Future[Hold | Refusal]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        hold = future.result()
        if isinstance(hold, Hold):
            self._thread.submit(self.sync.release, hold)

    async def commit(
        self, hold: Hold, record: CallRecord, *, rate_limits: Sequence[RateLimitReport] = ()
    ) -> float:
        return await self._call(self.sync.commit, hold, record, rate_limits=rate_limits)

    async def release(self, hold: Hold) -> None:
        await self._call(self.sync.release, hold)

    async def record_failure(
        self,
        hold: Hold | None,
        record: CallRecord,
        error: ProviderError,
        *,
        block_until: float | None = None,
        key_fingerprint: str | None = None,
    ) -> None:
        await self._call(
            self.sync.record_failure,
            hold,
            record,
            error,
            block_until=block_until,
            key_fingerprint=key_fingerprint,
        )

    async def free_remaining(
        self, provider: str, rules: Sequence[QuotaRule], now: float
    ) -> list[FreeShare]:
        return await self._call(self.sync.free_remaining, provider, rules, now)

    async def median_latency_ms(self, task: str, since: float) -> dict[str, float]:
        return await self._call(self.sync.median_latency_ms, task, since)

    async def expire(self) -> int:
        return await self._call(self.sync.expire)

    # -- retired models (scheduler.ledger.models) ---------------------------------------------

    async def retired_model(self, provider: str, model: str) -> models.Retired | None:
        return await self._call(models.retired_model, self.sync, provider, model)

    async def mark_retired(self, provider: str, model: str, reason: str) -> None:
        await self._call(models.mark_retired, self.sync, provider, model, reason)

    async def unmark_retired(self, provider: str, model: str) -> bool:
        return await self._call(models.unmark_retired, self.sync, provider, model)

    def close(self) -> None:
        """Finish what was asked, then stop the thread (the ledger itself is closed by its
        owner)."""
        self._thread.shutdown(wait=True)


__all__ = ["AsyncLedger"]
