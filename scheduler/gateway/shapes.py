"""OpenAI's HTTP shapes, in and out: request bodies become tasks, results become answers.

Only what this translation needs lives here; the app decides routes, auth and status codes.
Request bodies are checked the way OpenAI checks them (a wrong type is a 400 naming the field)
so a client learns of its mistake before any quota is touched.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from typing import Any

from scheduler.dispatcher import RunResult
from scheduler.media import sniff_media_type
from scheduler.tasks import (
    AUDIO_FORMATS,
    AudioFormat,
    ImagePart,
    ImageTask,
    Message,
    Part,
    ProviderResult,
    TextTask,
    TtsTask,
)

_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
_IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
AUDIO_MEDIA_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav", "opus": "audio/ogg"}


class BadRequest(Exception):
    """The request is malformed; `param` names the offending field as OpenAI's errors do."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def _field(
    body: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = None
) -> Any:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise BadRequest(f"'{name}' must be a number", name)
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise BadRequest(f"'{name}' must be {names}", name)
    return value


# -- chat completions -----------------------------------------------------------------------


def chat_task(body: dict[str, Any], model: str | None) -> TextTask:
    """`/v1/chat/completions` -> a TextTask with the whole conversation."""
    raw = _field(body, "messages", list)
    if not raw:
        raise BadRequest("'messages' must be a non-empty array", "messages")
    messages = [_message(item, f"messages[{i}]") for i, item in enumerate(raw)]
    max_tokens = _field(body, "max_completion_tokens", int) or _field(body, "max_tokens", int)
    if max_tokens is not None and max_tokens < 1:
        raise BadRequest("'max_tokens' must be at least 1", "max_tokens")
    temperature = _field(body, "temperature", (int, float))
    if temperature is not None and not 0 <= temperature <= 2:
        raise BadRequest("'temperature' must be between 0 and 2", "temperature")
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise BadRequest("'stop' must be a string or an array of strings", "stop")
    n = _field(body, "n", int, 1)
    if n != 1:
        raise BadRequest("only n=1 is supported", "n")
    if not any(message.role == "user" for message in messages):
        raise BadRequest("'messages' must hold at least one user message", "messages")
    return TextTask(
        messages=tuple(messages),
        max_tokens=max_tokens,
        model=model,
        temperature=None if temperature is None else float(temperature),
        stop=tuple(stop or ()),
    )


def _message(item: object, where: str) -> Message:
    if not isinstance(item, dict):
        raise BadRequest(f"'{where}' must be an object", where)
    role = _ROLES.get(str(item.get("role")))
    if role is None:
        raise BadRequest(f"'{where}.role' must be system, developer, user or assistant", where)
    content = item.get("content")
    if isinstance(content, str):
        return Message(role, content)  # type: ignore[arg-type]
    if not isinstance(content, list):
        raise BadRequest(f"'{where}.content' must be a string or an array of parts", where)
    parts: list[Part] = []
    for j, part in enumerate(content):
        parts.append(_part(part, f"{where}.content[{j}]"))
    return Message(role, tuple(parts))  # type: ignore[arg-type]


def _part(part: object, where: str) -> Part:
    if not isinstance(part, dict):
        raise BadRequest(f"'{where}' must be an object", where)
    if part.get("type") == "text" and isinstance(part.get("text"), str):
        return str(part["text"])
    if part.get("type") == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str):
            raise BadRequest(f"'{where}.image_url.url' must be a string", where)
        return _data_url_image(url, where)
    raise BadRequest(f"'{where}': only text and image_url parts are supported", where)


def _data_url_image(url: str, where: str) -> ImagePart:
    """An image given inline as a data URL. Remote URLs are refused: fetching whatever a client
    names would let it make the gateway reach any host it can reach."""
    if not url.startswith("data:"):
        raise BadRequest(f"'{where}': images must be data: URLs (base64), not links", where)
    header, _, encoded = url.partition(",")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"'{where}': the data URL is not valid base64", where) from None
    mime = sniff_media_type(data[:16]) or header[5:].split(";")[0]
    if mime not in _IMAGE_TYPES:
        raise BadRequest(f"'{where}': not a PNG, JPEG, WEBP or GIF image", where)
    return ImagePart(data, mime)


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def served_model(run: RunResult) -> str:
    result = run.result
    return f"{run.provider}/{result.model}" if result is not None else "none"


def _usage(result: ProviderResult) -> dict[str, int]:
    prompt = int(result.usage.get("input_tokens", 0))
    completion = int(result.usage.get("output_tokens", 0))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def chat_completion(run: RunResult) -> dict[str, Any]:
    result = run.result
    assert result is not None
    return {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": served_model(run),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.output},
                "finish_reason": "length" if result.truncated else "stop",
            }
        ],
        "usage": _usage(result),
    }


def chat_chunk(
    ident: str,
    model: str,
    *,
    content: str | None = None,
    finish: str | None = None,
    role: bool = False,
) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    if role:
        delta["role"] = "assistant"
    if content is not None:
        delta["content"] = content
    return {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def usage_chunk(ident: str, run: RunResult) -> dict[str, Any]:
    assert run.result is not None
    return {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": served_model(run),
        "choices": [],
        "usage": _usage(run.result),
    }


# -- images -------------------------------------------------------------------------------------


def image_task(body: dict[str, Any], model: str | None) -> tuple[ImageTask, str]:
    """`/v1/images/generations` -> (task, response_format)."""
    prompt = _field(body, "prompt", str)
    if not prompt or not prompt.strip():
        raise BadRequest("'prompt' must be a non-empty string", "prompt")
    if _field(body, "n", int, 1) != 1:
        raise BadRequest("only n=1 is supported", "n")
    size = _field(body, "size", str)
    if size in ("auto", ""):
        size = None
    fmt = _field(body, "response_format", str, "b64_json")
    if fmt not in ("b64_json", "url"):
        raise BadRequest("'response_format' must be b64_json or url", "response_format")
    return ImageTask(prompt=prompt, size=size, model=model), fmt


def image_answer(png: bytes, fmt: str) -> dict[str, Any]:
    """The image as base64, or for `url` as a data URL: the gateway keeps no files, and a link
    to one worker's memory would break behind several workers."""
    encoded = base64.b64encode(png).decode("ascii")
    item = (
        {"b64_json": encoded} if fmt == "b64_json" else {"url": f"data:image/png;base64,{encoded}"}
    )
    return {"created": int(time.time()), "data": [item]}


# -- speech -------------------------------------------------------------------------------------


def speech_task(body: dict[str, Any], model: str | None) -> TtsTask:
    text = _field(body, "input", str)
    if not text or not text.strip():
        raise BadRequest("'input' must be a non-empty string", "input")
    fmt = _field(body, "response_format", str, "mp3")
    if fmt not in AUDIO_FORMATS:
        raise BadRequest(
            f"'response_format' must be one of {', '.join(AUDIO_FORMATS)}", "response_format"
        )
    voice = _field(body, "voice", str)
    audio_format: AudioFormat = fmt
    return TtsTask(text=text, voice=voice, format=audio_format, model=model)


# -- transcriptions -----------------------------------------------------------------------------

TRANSCRIPT_FORMATS = ("json", "text", "verbose_json")


def transcript_answer(run: RunResult, fmt: str, seconds: float, language: str | None) -> Any:
    result = run.result
    assert result is not None
    if fmt == "text":
        return result.output + "\n"
    if fmt == "json":
        return {"text": result.output}
    return {
        "task": "transcribe",
        "language": language or "unknown",
        "duration": round(seconds, 3),
        "text": result.output,
        "segments": [
            {"id": i, "start": seg.start, "end": seg.end, "text": seg.text}
            for i, seg in enumerate(result.segments)
        ],
    }


__all__ = [
    "AUDIO_MEDIA_TYPES",
    "TRANSCRIPT_FORMATS",
    "BadRequest",
    "chat_chunk",
    "chat_completion",
    "chat_task",
    "completion_id",
    "image_answer",
    "image_task",
    "served_model",
    "speech_task",
    "transcript_answer",
    "usage_chunk",
]
