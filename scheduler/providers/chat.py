"""A `TextTask`'s conversation in each chat dialect: OpenAI's messages, Anthropic's, Gemini's.

The task holds one neutral form (`Message`s of text and image parts); every adapter that speaks
chat translates it here, so a conversation, its images, temperature and stop sequences reach each
provider the same way and an adapter keeps only what is its own (the endpoint, the errors).
"""

from __future__ import annotations

import base64
from typing import Any

from scheduler.tasks import ImagePart, Message, TextTask


def data_url(image: ImagePart) -> str:
    return f"data:{image.mime_type};base64,{base64.b64encode(image.data).decode('ascii')}"


def openai_content(message: Message) -> str | list[dict[str, Any]]:
    """A plain string for a text-only message (what every compatible server accepts), parts
    with `image_url` data URLs when it holds images."""
    if isinstance(message.content, str):
        return message.content
    parts: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, str):
            parts.append({"type": "text", "text": part})
        else:
            parts.append({"type": "image_url", "image_url": {"url": data_url(part)}})
    return parts


def openai_messages(task: TextTask) -> list[dict[str, Any]]:
    """OpenAI's chat messages, which Groq, Mistral, Cohere v2 and local servers share."""
    return [{"role": m.role, "content": openai_content(m)} for m in task.messages]


def openai_max_tokens(max_tokens: int | None, *, completion_tokens: bool = False) -> dict[str, Any]:
    """The answer's length cap, if set, under the name the server takes: `max_completion_tokens`
    for OpenAI's own API (`completion_tokens`), `max_tokens` for every other compatible one."""
    if not max_tokens:
        return {}
    return {"max_completion_tokens" if completion_tokens else "max_tokens": max_tokens}


def openai_sampling(task: TextTask, *, completion_tokens: bool = False) -> dict[str, Any]:
    """max_tokens, temperature and stop, only those set: a provider keeps its own defaults.
    `completion_tokens` sends the cap as `max_completion_tokens` (see `openai_max_tokens`)."""
    body: dict[str, Any] = openai_max_tokens(task.max_tokens, completion_tokens=completion_tokens)
    if task.temperature is not None:
        body["temperature"] = task.temperature
    if task.stop:
        body["stop"] = list(task.stop)
    return body


def anthropic_messages(task: TextTask) -> tuple[str | None, list[dict[str, Any]]]:
    """(system, messages): Anthropic takes the system prompt apart and images as base64 blocks;
    a text-only message stays a plain string. Consecutive turns of one role are merged, as the
    Messages API wants them alternating."""
    messages: list[dict[str, Any]] = []
    for message in task.messages:
        if message.role == "system":
            continue
        content: str | list[dict[str, Any]] = (
            message.content if isinstance(message.content, str) else _anthropic_blocks(message)
        )
        if messages and messages[-1]["role"] == message.role:
            messages[-1]["content"] = _as_blocks(messages[-1]["content"]) + _as_blocks(content)
        else:
            messages.append({"role": message.role, "content": content})
    return task.system, messages


def _anthropic_blocks(message: Message) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, str):
            if part:
                blocks.append({"type": "text", "text": part})
        else:
            source = {
                "type": "base64",
                "media_type": part.mime_type,
                "data": base64.b64encode(part.data).decode("ascii"),
            }
            blocks.append({"type": "image", "source": source})
    return blocks


def _as_blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def gemini_contents(task: TextTask) -> list[dict[str, Any]]:
    """Gemini's `contents`: roles user and model, parts of text and inline data (the system
    prompt goes to `system_instruction`). Consecutive turns of one role are merged: Gemini
    wants a conversation to alternate, as Anthropic does."""
    contents: list[dict[str, Any]] = []
    for message in task.messages:
        if message.role == "system":
            continue
        parts: list[dict[str, Any]] = []
        for part in message.parts:
            if isinstance(part, str):
                if part:
                    parts.append({"text": part})
            else:
                parts.append({"inline_data": {"mime_type": part.mime_type, "data": part.data}})
        role = "model" if message.role == "assistant" else "user"
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"] += parts
        else:
            contents.append({"role": role, "parts": parts})
    return contents


__all__ = [
    "anthropic_messages",
    "data_url",
    "gemini_contents",
    "openai_content",
    "openai_max_tokens",
    "openai_messages",
    "openai_sampling",
]
