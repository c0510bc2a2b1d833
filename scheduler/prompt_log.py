"""What `settings.log_prompts` keeps of a task in the calls table: the words a user sent, never
a key.

Off by default: a prompt is the user's data, and the ledger is a file many tools read. On, every
calls row of the task carries its text (chat turns as "role: text", a tts input, an image or
multimodal prompt; a transcription has no text to keep), with the configured keys' values and
anything key-shaped replaced by `***`, cut to `MAX_PROMPT_CHARS` so a 10 MB prompt does not grow
the ledger by 10 MB a call.
"""

from __future__ import annotations

from collections.abc import Iterable

from scheduler.errors import redact
from scheduler.tasks import ImageTask, MultimodalTask, SttTask, Task, TextTask, TtsTask

MAX_PROMPT_CHARS = 4000


def logged_prompt(task: Task, secrets: Iterable[str | None]) -> str | None:
    """The text of `task` as the calls table keeps it, or None when it has none."""
    text = _text(task)
    if not text:
        return None
    text = redact(text, *secrets)
    if len(text) > MAX_PROMPT_CHARS:
        text = f"{text[: MAX_PROMPT_CHARS - 1]}…"
    return text


def _text(task: Task) -> str | None:
    if isinstance(task, TextTask):
        if task.messages:
            return "\n".join(
                _turn(message.role, message.text, len(message.images)) for message in task.messages
            )
        turns = [("system", task.system)] if task.system else []
        return "\n".join(f"{role}: {text}" for role, text in [*turns, ("user", task.prompt)])
    if isinstance(task, TtsTask):
        return task.text
    if isinstance(task, ImageTask | MultimodalTask):
        return task.prompt
    assert isinstance(task, SttTask)
    return None


def _turn(role: str, text: str, images: int) -> str:
    shown = f"{role}: {text}"
    return f"{shown} [{images} image{'s' if images != 1 else ''}]" if images else shown


__all__ = ["MAX_PROMPT_CHARS", "logged_prompt"]
