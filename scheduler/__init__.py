"""api-scheduler as a library: run AI tasks on the first provider of a priority table that still
has quota, with the same fallback and the same exact ledger as the `sched` command.

    import asyncio
    from scheduler import RunOptions, Scheduler, TextTask

    async def main() -> None:
        async with Scheduler() as s:
            run = await s.run(TextTask("Say hi"), RunOptions(free_only=True))
            print(run.result.output if run.ok else run.attempts)

    asyncio.run(main())

Names are imported on first use (PEP 562), so `import scheduler` stays cheap for the CLI, whose
`sched --help` must not pay for pydantic, httpx or the provider SDKs.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scheduler.client import RunFailed, Scheduler, SyncScheduler, run_text, save
    from scheduler.dispatcher import Attempt, RunResult, StreamEvent
    from scheduler.errors import (
        ConfigError,
        InputError,
        LedgerError,
        ProviderError,
        SchedError,
    )
    from scheduler.options import RunOptions
    from scheduler.tasks import (
        ImagePart,
        ImageTask,
        Message,
        MultimodalTask,
        ProviderResult,
        SttTask,
        TextDelta,
        TextTask,
        TtsTask,
    )

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "Scheduler": "scheduler.client",
    "SyncScheduler": "scheduler.client",
    "RunFailed": "scheduler.client",
    "run_text": "scheduler.client",
    "save": "scheduler.client",
    "RunOptions": "scheduler.options",
    "RunResult": "scheduler.dispatcher",
    "Attempt": "scheduler.dispatcher",
    "StreamEvent": "scheduler.dispatcher",
    "TextTask": "scheduler.tasks",
    "ImageTask": "scheduler.tasks",
    "SttTask": "scheduler.tasks",
    "TtsTask": "scheduler.tasks",
    "MultimodalTask": "scheduler.tasks",
    "Message": "scheduler.tasks",
    "ImagePart": "scheduler.tasks",
    "TextDelta": "scheduler.tasks",
    "ProviderResult": "scheduler.tasks",
    "SchedError": "scheduler.errors",
    "ConfigError": "scheduler.errors",
    "InputError": "scheduler.errors",
    "LedgerError": "scheduler.errors",
    "ProviderError": "scheduler.errors",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'scheduler' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = [
    "Attempt",
    "ConfigError",
    "ImagePart",
    "ImageTask",
    "InputError",
    "LedgerError",
    "Message",
    "MultimodalTask",
    "ProviderError",
    "ProviderResult",
    "RunFailed",
    "RunOptions",
    "RunResult",
    "SchedError",
    "Scheduler",
    "StreamEvent",
    "SyncScheduler",
    "TextDelta",
    "TextTask",
    "TtsTask",
    "SttTask",
    "__version__",
    "run_text",
    "save",
]
