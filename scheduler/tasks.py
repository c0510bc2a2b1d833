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


Role = Literal["system", "user", "assistant"]
ROLES: tuple[Role, ...] = get_args(Role)


@dataclass(frozen=True)
class ImagePart:
    """An image inside a chat message, as bytes: adapters encode it the way their API wants
    (a data URL, a base64 block, inline bytes). URLs are not fetched here: an arbitrary URL in a
    message would let a caller make this process download anything it can reach."""

    data: bytes
    mime_type: str  # "image/png", "image/jpeg", ...


Part = str | ImagePart  # a message's content: text pieces and images, in order


@dataclass(frozen=True)
class Message:
    """One chat turn. `content` is a plain string or a sequence of parts (text and images)."""

    role: Role
    content: str | tuple[Part, ...]

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"message role {self.role!r}: expected one of {', '.join(ROLES)}")
        if not isinstance(self.content, str):
            object.__setattr__(self, "content", tuple(self.content))

    @property
    def parts(self) -> tuple[Part, ...]:
        return (self.content,) if isinstance(self.content, str) else self.content

    @property
    def text(self) -> str:
        """The message's text parts joined (what a text-only provider can be sent)."""
        return "".join(part for part in self.parts if isinstance(part, str))

    @property
    def images(self) -> tuple[ImagePart, ...]:
        return tuple(part for part in self.parts if isinstance(part, ImagePart))


def _last_user_text(messages: tuple[Message, ...]) -> str:
    users = [message for message in messages if message.role == "user"]
    return users[-1].text if users else ""


def _system_text(messages: tuple[Message, ...]) -> str | None:
    systems = [message.text for message in messages if message.role == "system"]
    return "\n\n".join(systems) if systems else None


@dataclass(frozen=True)
class TextTask:
    """A chat completion: a conversation of messages, or (the shorthand) one prompt with an
    optional system prompt, which becomes the messages `[system, user]`.

    `prompt` and `system` stay readable on every task: they are the last user message's text and
    the system messages' text, so a trace or a log never needs to know which form was used.
    """

    prompt: str = ""
    system: str | None = None
    max_tokens: int | None = None
    model: str | None = None  # overrides the provider's configured model
    messages: tuple[Message, ...] = ()
    temperature: float | None = None
    stop: tuple[str, ...] = ()
    kind: TaskKind = field(default="text", init=False)

    def __post_init__(self) -> None:
        messages = tuple(self.messages)
        if not messages:
            if self.system:
                messages += (Message("system", self.system),)
            messages += (Message("user", self.prompt),)
        else:
            # `prompt` and `system` given with messages must be the ones derived from them (as
            # `dataclasses.replace` passes them back); a different system prompt is put first.
            if self.prompt and self.prompt != _last_user_text(messages):
                raise ValueError("give either prompt or messages, not both")
            if self.system and self.system != _system_text(messages):
                messages = (Message("system", self.system), *messages)
        set_field = object.__setattr__  # frozen: normalise once, here
        set_field(self, "messages", messages)
        set_field(self, "stop", tuple(self.stop))
        set_field(self, "prompt", _last_user_text(messages))
        set_field(self, "system", _system_text(messages))

    @property
    def has_images(self) -> bool:
        return any(message.images for message in self.messages)

    def estimate(self) -> dict[str, float]:
        """What one call may consume, for the reservation made before it."""
        # Each message costs its text and images; one more token primes the reply (chat formats
        # add a few such tokens around the messages).
        prompt_tokens = 1 + sum(
            estimate_tokens(message.text) + IMAGE_TOKENS * len(message.images)
            for message in self.messages
        )
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
    truncated: bool = False  # a stream that broke after its first token: `output` is partial


@dataclass(frozen=True)
class TextDelta:
    """A piece of a streamed answer, as the provider sent it. A streaming adapter yields these,
    then one ProviderResult with the whole text and the usage the provider reported. The
    dispatcher names the provider and model on the first piece of a run's stream, so a caller
    (the gateway's response headers) knows who answers before the answer is whole."""

    text: str
    provider: str | None = None
    model: str | None = None


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
    "ImagePart",
    "ImageTask",
    "Message",
    "MultimodalTask",
    "Part",
    "ROLES",
    "Role",
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
    "TextDelta",
    "TextTask",
    "Usage",
    "estimate_tokens",
    "text_usage",
]
