"""`sched serve`: an OpenAI-compatible HTTP gateway over the scheduler (optional extra `serve`).

Nothing here is imported by `sched --help` or `sched run`: Starlette and uvicorn load only when
the gateway starts.
"""

from __future__ import annotations

__all__: list[str] = []
