"""The smallest real task of each kind, to check a provider with a call of its own kind.

`sched providers check` and the cron service's re-probe of disabled providers use these: an image
provider is probed with an image request, a speech provider with a second of audio, never with a
chat call that would prove nothing about the endpoint that failed.
"""

from __future__ import annotations

import io
import math
import struct
import wave
from pathlib import Path
from typing import TYPE_CHECKING

from scheduler.tasks import (
    TASK_KINDS,
    ImageTask,
    MultimodalTask,
    SttTask,
    Task,
    TaskKind,
    TextTask,
    TtsTask,
)

if TYPE_CHECKING:
    from scheduler.config.schema import Config

PROBE_AUDIO_SECONDS = 1.0


def probe_kind(config: Config, provider: str) -> TaskKind | None:
    """The first task kind whose priority list names the provider (its own kind)."""
    for kind in TASK_KINDS:
        if provider in config.tasks.get(kind, ()):
            return kind
    models = config.providers[provider].models
    return next((kind for kind in TASK_KINDS if kind in models), None)


def probe_kinds(config: Config, provider: str) -> list[TaskKind]:
    """Every task kind the provider serves: each priority list that names it (in TASK_KINDS
    order), else the kinds it configures a model for. `local` serves several (text, stt, tts,
    ...), and one of them working says nothing about the others."""
    listed = [kind for kind in TASK_KINDS if provider in config.tasks.get(kind, ())]
    if listed:
        return listed
    models = config.providers[provider].models
    return [kind for kind in TASK_KINDS if kind in models]


def tone_wav(seconds: float = PROBE_AUDIO_SECONDS, rate: int = 16000) -> bytes:
    """A mono 16-bit WAV of a 440 Hz tone: the smallest audio every speech API accepts."""
    frames = b"".join(
        struct.pack("<h", int(6000 * math.sin(2 * math.pi * 440 * i / rate)))
        for i in range(int(seconds * rate))
    )
    out = io.BytesIO()
    with wave.open(out, "wb") as sink:
        sink.setnchannels(1)
        sink.setsampwidth(2)
        sink.setframerate(rate)
        sink.writeframes(frames)
    return out.getvalue()


def _dot_png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (16, 16), (220, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def probe_task(kind: TaskKind, workdir: Path) -> Task:
    """A tiny task of `kind`; media it needs is written into `workdir`."""
    if kind == "text":
        return TextTask(prompt="Reply with the word OK.", max_tokens=5)
    if kind == "image":
        return ImageTask(prompt="a single red dot on a white background")
    if kind == "tts":
        return TtsTask(text="OK.", format="mp3")
    if kind == "stt":
        path = workdir / "probe.wav"
        path.write_bytes(tone_wav())
        return SttTask(audio=path, audio_seconds=PROBE_AUDIO_SECONDS, mime_type="audio/wav")
    path = workdir / "probe.png"
    path.write_bytes(_dot_png())
    return MultimodalTask(
        prompt="What colour is this image? One word.", media=path, mime_type="image/png",
        max_tokens=5,
    )  # fmt: skip


__all__ = ["PROBE_AUDIO_SECONDS", "probe_kind", "probe_kinds", "probe_task", "tone_wav"]
