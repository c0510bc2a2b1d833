"""Task and result types shared by the CLI, the dispatcher, the adapters and the ledger.

Usage is a plain mapping from ledger metric to amount so that one reservation protocol serves every
task kind: a text call reserves requests and tokens, a TTS call characters, an STT call audio
seconds. Adapters report what the provider said it used; the dispatcher commits that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

TaskKind = Literal["text", "image", "stt", "tts", "multimodal"]
TASK_KINDS: tuple[TaskKind, ...] = get_args(TaskKind)

Metric = Literal[
    "requests",
    "tokens",
    "input_tokens",
    "output_tokens",
    "characters",
    "audio_seconds",
    "images",
    "credits",
    "usd",
]
METRICS: tuple[Metric, ...] = get_args(Metric)

Usage = Mapping[str, float]

# A text reservation assumes the model may write this much when the user set no --max-tokens.
DEFAULT_MAX_OUTPUT_TOKENS = 1024


def estimate_tokens(text: str) -> int:
    """An upper-leaning token estimate (about 3 characters per token) used only for reservations.

    Real tokenisers average about 4 characters per token for English; reserving on 3 keeps the
    estimate above the truth for most text, so the corrected usage rarely exceeds the reservation.
    """
    return len(text) // 3 + 1


@dataclass(frozen=True)
class TextTask:
    """A chat completion: one user prompt, an optional system prompt."""

    prompt: str
    system: str | None = None
    max_tokens: int | None = None
    model: str | None = None  # overrides the provider's configured model
    kind: TaskKind = field(default="text", init=False)

    def estimate(self) -> dict[str, float]:
        """What one call may consume, for the reservation made before it."""
        prompt_tokens = estimate_tokens(self.prompt) + estimate_tokens(self.system or "")
        output_tokens = self.max_tokens or DEFAULT_MAX_OUTPUT_TOKENS
        return {
            "requests": 1,
            "input_tokens": prompt_tokens,
            "output_tokens": output_tokens,
            "tokens": prompt_tokens + output_tokens,
        }


# Tokens a multimodal provider counts for media (Gemini: 258 per image tile, 32 per audio second);
# reservations use these until the provider reports the real count.
IMAGE_TOKENS = 1290
AUDIO_TOKENS_PER_SECOND = 32

AudioFormat = Literal["mp3", "wav", "opus"]
AUDIO_FORMATS: tuple[AudioFormat, ...] = get_args(AudioFormat)


@dataclass(frozen=True)
class ImageTask:
    """Text to image: one image for one prompt."""

    prompt: str
    size: str | None = None  # "WIDTHxHEIGHT"; adapters map it to what the provider takes
    model: str | None = None
    kind: TaskKind = field(default="image", init=False)

    def estimate(self) -> dict[str, float]:
        return {"requests": 1, "images": 1}


@dataclass(frozen=True)
class SttTask:
    """Speech to text. `audio_seconds` is measured from the file before any call, so it can be
    reserved (providers bill audio by length, never by the words that come back)."""

    audio: Path
    audio_seconds: float
    mime_type: str  # e.g. "audio/wav", "audio/mpeg"
    language: str | None = None  # ISO 639-1, e.g. "en"; None lets the provider detect it
    model: str | None = None
    kind: TaskKind = field(default="stt", init=False)

    def estimate(self) -> dict[str, float]:
        return {"requests": 1, "audio_seconds": self.audio_seconds}


@dataclass(frozen=True)
class TtsTask:
    """Text to speech; `format` is what the user asked for, the CLI converts if needed."""

    text: str
    voice: str | None = None
    format: AudioFormat = "mp3"
    model: str | None = None
    kind: TaskKind = field(default="tts", init=False)

    def estimate(self) -> dict[str, float]:
        return {"requests": 1, "characters": len(self.text)}


@dataclass(frozen=True)
class MultimodalTask:
    """A prompt about one image or audio file; the answer is text."""

    prompt: str
    media: Path
    mime_type: str  # "image/png", "audio/wav", ...
    audio_seconds: float | None = None  # set for audio media
    max_tokens: int | None = None
    model: str | None = None
    kind: TaskKind = field(default="multimodal", init=False)

    @property
    def is_audio(self) -> bool:
        return self.mime_type.startswith("audio/")

    def estimate(self) -> dict[str, float]:
        media_tokens = (
            int((self.audio_seconds or 0) * AUDIO_TOKENS_PER_SECOND) + 1
            if self.is_audio
            else IMAGE_TOKENS
        )
        prompt_tokens = estimate_tokens(self.prompt) + media_tokens
        output_tokens = self.max_tokens or DEFAULT_MAX_OUTPUT_TOKENS
        usage: dict[str, float] = {
            "requests": 1,
            "input_tokens": prompt_tokens,
            "output_tokens": output_tokens,
            "tokens": prompt_tokens + output_tokens,
        }
        if self.is_audio and self.audio_seconds:
            usage["audio_seconds"] = self.audio_seconds
        return usage


Task = TextTask | ImageTask | SttTask | TtsTask | MultimodalTask


@dataclass(frozen=True)
class Segment:
    """A stretch of a transcript with its timestamps in seconds."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class RateLimitReport:
    """A provider's rate-limit header: `remaining` units of `metric` until `resets_at`."""

    metric: str
    remaining: float
    resets_at: float | None = None
    limit: float | None = None


@dataclass(frozen=True)
class ProviderResult:
    """One successful provider call, as the adapter translated it back.

    Text answers and transcripts are in `output`; images and speech are the bytes in `data` with
    their `media_type` ("image/png", "audio/mpeg", ...), which the CLI converts to the format the
    user asked for when the provider's differs.
    """

    output: str
    model: str
    usage: dict[str, float]
    rate_limits: tuple[RateLimitReport, ...] = ()
    data: bytes | None = None
    media_type: str | None = None
    segments: tuple[Segment, ...] = ()


def text_usage(input_tokens: int, output_tokens: int) -> dict[str, float]:
    """Ledger usage of one text call from the provider's token counts."""
    return {
        "requests": 1,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "tokens": input_tokens + output_tokens,
    }


__all__ = [
    "AUDIO_FORMATS",
    "AUDIO_TOKENS_PER_SECOND",
    "DEFAULT_MAX_OUTPUT_TOKENS",
    "IMAGE_TOKENS",
    "AudioFormat",
    "ImageTask",
    "MultimodalTask",
    "Segment",
    "SttTask",
    "TtsTask",
    "METRICS",
    "TASK_KINDS",
    "Metric",
    "ProviderResult",
    "RateLimitReport",
    "Task",
    "TaskKind",
    "TextTask",
    "Usage",
    "estimate_tokens",
    "text_usage",
]
