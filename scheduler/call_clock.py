"""When a provider call's time starts: when its first request is sent, not when the adapter is
asked.

`settings.timeout_s` promises the user that a provider which does not answer in that time is given
up on. Before its first request, though, an adapter may import its SDK and build a client: once per
process, and on a busy two-core machine that alone takes seconds (`import openai` measured 2.7 s).
Timing that as the provider's slowness made a healthy provider "time out" in a short CLI run, and
made the suite fail at random under load.

So the dispatcher opens a clock around each call (`watching`), and the request hook every HTTP
client of this product carries (`http_guard.guard_request`, installed on SDK-built clients too)
calls `request_sent`, which starts the call's timeout at that moment. The clock lives in a context
variable: each asyncio task (each concurrent run) sees its own, and tasks an SDK spawns inherit it.
A call that never sends a request through httpx (a local engine in-process) keeps the dispatcher's
generous cap instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class _Clock:
    """One call's clock: starts its timeout (the `start` callback) at the first request only, so a
    redirect hop or an upload followed by polls does not restart it."""

    __slots__ = ("_start", "sent")

    def __init__(self, start: Callable[[], None]) -> None:
        self._start = start
        self.sent = False

    def request_sent(self) -> None:
        if not self.sent:
            self.sent = True
            self._start()


_current: ContextVar[_Clock | None] = ContextVar("sched_call_clock", default=None)


@contextmanager
def watching(start: Callable[[], None]) -> Iterator[None]:
    """Within the block, the first request sent calls `start` (in the sending task, on the event
    loop: httpx's async hooks run there)."""
    token = _current.set(_Clock(start))
    try:
        yield
    finally:
        _current.reset(token)


def request_sent() -> None:
    """Called by the request hook just before a request goes out: starts the current call's
    timeout, if a call is being timed."""
    clock = _current.get()
    if clock is not None:
        clock.request_sent()


__all__ = ["request_sent", "watching"]
