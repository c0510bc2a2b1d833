"""What every adapter is: a thin translator between one task and one provider's wire format.

An adapter translates, calls, classifies the failure into `scheduler.errors`, and reports usage and
rate-limit hints. Policy (order, retries, fallback) lives in the dispatcher and accounting in the
ledger, so an adapter never sleeps, retries or touches the database.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

from scheduler.errors import RejectedInput
from scheduler.tasks import (
    ImageTask,
    MultimodalTask,
    ProviderResult,
    SttTask,
    Task,
    TaskKind,
    TextDelta,
    TextTask,
    TtsTask,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import httpx

    from scheduler.config.schema import ProviderConfig
    from scheduler.providers.listing import ModelInfo


class Adapter:
    """Base of the adapters; subclasses declare what they serve and implement those kinds."""

    kinds: ClassVar[frozenset[TaskKind]] = frozenset()
    default_base_url: ClassVar[str | None] = None
    # Whether `stream_text` sends tokens as they arrive; the base answers whole, in one piece.
    can_stream: ClassVar[bool] = False

    def __init__(
        self,
        *,
        name: str,
        config: ProviderConfig,
        api_key: str | None,
        http: httpx.AsyncClient,
        timeout_s: float,
    ) -> None:
        self.name = name
        self.config = config
        self.api_key = api_key
        self.http = http
        self.timeout_s = timeout_s
        self.base_url = (config.base_url or self.default_base_url or "").rstrip("/")

    async def unavailable(self, task: Task, *, model: str) -> str | None:
        """Why this provider cannot even be tried now (a local server that is not running, an
        engine that is not installed), or None. Checked before any quota is reserved; must
        answer fast: the dispatcher skips with this reason, it is no failure."""
        return None

    @classmethod
    def estimate(cls, task: Task, *, model: str) -> dict[str, float]:
        """What one call may consume, in the ledger's metrics, for the reservation before it.

        The task's own estimate covers requests, tokens, images, characters and audio seconds;
        an adapter whose provider bills in its own unit (credits per image, say) adds it here,
        so the provider's quota rule for that unit is checked before the call, not after.
        """
        return task.estimate()

    async def run(self, task: Task, *, model: str) -> ProviderResult:
        """Serve `task` with `model`; raises a ProviderError subclass on failure."""
        if isinstance(task, TextTask):
            return await self.text(task, model=model)
        if isinstance(task, ImageTask):
            return await self.image(task, model=model)
        if isinstance(task, SttTask):
            return await self.stt(task, model=model)
        if isinstance(task, TtsTask):
            return await self.tts(task, model=model)
        return await self.multimodal(task, model=model)

    async def stream_text(
        self, task: TextTask, *, model: str
    ) -> AsyncIterator[TextDelta | ProviderResult]:
        """The answer as it is written: TextDelta pieces, then one ProviderResult with the whole
        text and the usage the provider reported. A failure before the first piece is raised
        like `text`'s (the dispatcher may still fall over); one after it is raised mid-stream,
        classified, and the dispatcher keeps what arrived. Adapters that cannot stream answer
        whole: one piece, then the result."""
        result = await self.text(task, model=model)
        if result.output:
            yield TextDelta(result.output)
        yield result

    async def list_models(self) -> list[ModelInfo]:
        """The models the provider serves now, through its own list endpoint (`sched models`,
        `models-check`). Raises NoListing where it has none, a ProviderError when it fails."""
        from scheduler.providers.listing import NoListing

        raise NoListing(f"the {self.config.adapter} adapter reads no model list")

    # One method per task kind. The base refuses, so an adapter implements only the kinds it
    # declares in `kinds` (the dispatcher never offers it others).

    async def text(self, task: TextTask, *, model: str) -> ProviderResult:
        raise self._unsupported(task)

    async def image(self, task: ImageTask, *, model: str) -> ProviderResult:
        raise self._unsupported(task)

    async def stt(self, task: SttTask, *, model: str) -> ProviderResult:
        raise self._unsupported(task)

    async def tts(self, task: TtsTask, *, model: str) -> ProviderResult:
        raise self._unsupported(task)

    async def multimodal(self, task: MultimodalTask, *, model: str) -> ProviderResult:
        raise self._unsupported(task)

    def _unsupported(self, task: Task) -> RejectedInput:
        return RejectedInput(f"{self.name} cannot serve {task.kind} tasks", provider=self.name)


def reported_number(value: object) -> float | None:
    """A figure from a provider's JSON as a float; None when it is no finite number. Total: a
    401-digit integer is None here, not an OverflowError from `math.isfinite`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def reported_count(value: object) -> int | None:
    """A count from a provider's JSON (tokens, characters); None when it is no finite number.
    An integer is returned as sent, however large: the ledger's trust boundary judges it."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = reported_number(value)
    return int(number) if number is not None else None


__all__ = ["Adapter", "reported_count", "reported_number"]
