"""Task and result types shared by the CLI, the dispatcher, the adapters and the ledger.

Usage is a plain mapping from ledger metric to amount so that one reservation protocol serves every
task kind: a text call reserves requests and tokens, a TTS call characters, an STT call audio
seconds. Adapters report what the provider said it used; the dispatcher commits that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

TaskKind = Literal["text", "image", "stt", "tts", "multimodal"]
TASK_KINDS: tuple[TaskKind, ...] = ("text", "image", "stt", "tts", "multimodal")

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
METRICS: tuple[Metric, ...] = (
    "requests",
    "tokens",
    "input_tokens",
    "output_tokens",
    "characters",
    "audio_seconds",
    "images",
    "credits",
    "usd",
)

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


Task = TextTask


@dataclass(frozen=True)
class RateLimitReport:
    """A provider's rate-limit header: `remaining` units of `metric` until `resets_at`."""

    metric: str
    remaining: float
    resets_at: float | None = None
    limit: float | None = None


@dataclass(frozen=True)
class ProviderResult:
    """One successful provider call, as the adapter translated it back."""

    output: str
    model: str
    usage: dict[str, float]
    rate_limits: tuple[RateLimitReport, ...] = ()


def text_usage(input_tokens: int, output_tokens: int) -> dict[str, float]:
    """Ledger usage of one text call from the provider's token counts."""
    return {
        "requests": 1,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "tokens": input_tokens + output_tokens,
    }


__all__ = [
    "DEFAULT_MAX_OUTPUT_TOKENS",
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
