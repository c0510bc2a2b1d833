"""Replies shaped exactly like OpenAI-compatible providers answer.

Why: the scheduler classifies failures (quota gone, key wrong, rate limited,
overloaded, context too long) from status codes, headers and error bodies.
These builders pin the documented or observed shapes in one place, so tests
exercise the classifier against what providers really send, including their
quirks: OpenRouter's numeric ``code`` and ``metadata``, Groq's per-day token
limit, Perplexity's HTML 401 from its proxy, Gemini's OpenAI-compatible
endpoint wrapping its error in a JSON array, and Anthropic-style 529.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Mapping

from tests.fakes.server import FakeServer, Reply

__all__ = [
    "chat_ok",
    "chat_path",
    "context_too_long",
    "gemini_compat_exhausted_array",
    "groq_daily_tokens",
    "insufficient_quota",
    "invalid_key",
    "openrouter_credits",
    "openrouter_free_daily",
    "overloaded_529",
    "perplexity_html_401",
    "rate_limited",
    "server_error",
]

# Distinct, deterministic completion ids: tests can tell answers apart without
# depending on randomness.
_ids = itertools.count(1)

INSUFFICIENT_QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. "
    "For more information on this error, read the docs: "
    "https://platform.openai.com/docs/guides/error-codes/api-errors."
)
SERVER_ERROR_MESSAGE = "The server had an error while processing your request. Sorry about that!"
RATE_LIMIT_MESSAGE = (
    "Rate limit reached for m in organization org-x on requests per min (RPM): "
    "Limit 3, Used 3, Requested 1. Please try again in 20s."
)
GROQ_TPD_MESSAGE = (
    "Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_01` "
    "service tier `on_demand` on tokens per day (TPD): Limit 100000, Used 97050, "
    "Requested 3619. Please try again in 9m38.016s. Need more tokens? Upgrade to Dev Tier "
    "today at https://console.groq.com/settings/billing"
)
OPENROUTER_CREDITS_MESSAGE = (
    "Insufficient credits. Add more using https://openrouter.ai/settings/credits"
)
OPENROUTER_FREE_DAILY_MESSAGE = (
    "Rate limit exceeded: free-models-per-day. "
    "Add 10 credits to unlock 1000 free model requests per day"
)
PERPLEXITY_HTML_401 = (
    "<html><head><title>401 Authorization Required</title></head><body>"
    "<center><h1>401 Authorization Required</h1></center><hr>"
    "<center>openresty/1.25.3.1</center></body></html>"
)
CONTEXT_TOO_LONG_MESSAGE = (
    "This model's maximum context length is 8192 tokens. However, your messages resulted "
    "in 9000 tokens. Please reduce the length of the messages."
)


def chat_path(prefix: str) -> str:
    """Path of the chat endpoint for the fake provider mounted at ``/{prefix}/v1``."""
    return f"/{prefix}/v1/chat/completions"


def chat_ok(
    text: str,
    *,
    model: str = "m",
    prompt_tokens: int = 5,
    completion_tokens: int = 7,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """200 chat.completion with one assistant choice and usage."""
    return Reply(
        status=200,
        json={
            "id": f"chatcmpl-fake{next(_ids):06d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        },
        headers=dict(headers or {}),
    )


def insufficient_quota() -> Reply:
    """OpenAI 429 when the account's credit/quota is gone (not a transient limit)."""
    return Reply(
        status=429,
        json={
            "error": {
                "message": INSUFFICIENT_QUOTA_MESSAGE,
                "type": "insufficient_quota",
                "param": None,
                "code": "insufficient_quota",
            }
        },
    )


def invalid_key(key_hint: str = "sk-abc...wxyz") -> Reply:
    """OpenAI 401 for a wrong API key; the message echoes a masked key."""
    return Reply(
        status=401,
        json={
            "error": {
                "message": (
                    f"Incorrect API key provided: {key_hint}. You can find your API key "
                    "at https://platform.openai.com/account/api-keys."
                ),
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        },
    )


def server_error() -> Reply:
    """OpenAI 500 (transient, retryable)."""
    return Reply(
        status=500,
        json={
            "error": {
                "message": SERVER_ERROR_MESSAGE,
                "type": "server_error",
                "param": None,
                "code": None,
            }
        },
    )


def rate_limited(retry_after: str | None = "2", *, kind: str = "requests") -> Reply:
    """OpenAI 429 per-minute rate limit, with retry-after and x-ratelimit-* headers."""
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "20s"}
    if retry_after is not None:
        headers["retry-after"] = retry_after
    return Reply(
        status=429,
        json={
            "error": {
                "message": RATE_LIMIT_MESSAGE,
                "type": kind,
                "param": None,
                "code": "rate_limit_exceeded",
            }
        },
        headers=headers,
    )


def groq_daily_tokens() -> Reply:
    """Groq 429 for the tokens-per-day limit: retry-after is minutes, not seconds away."""
    return Reply(
        status=429,
        json={
            "error": {
                "message": GROQ_TPD_MESSAGE,
                "type": "tokens",
                "code": "rate_limit_exceeded",
            }
        },
        headers={"retry-after": "578"},
    )


def openrouter_credits() -> Reply:
    """OpenRouter 402: no credits left (numeric code, metadata.limit_source)."""
    return Reply(
        status=402,
        json={
            "error": {
                "code": 402,
                "message": OPENROUTER_CREDITS_MESSAGE,
                "metadata": {"limit_source": "openrouter_credits"},
            }
        },
    )


def openrouter_free_daily(reset_ms: int) -> Reply:
    """OpenRouter 429 for the free-model daily cap; reset is epoch milliseconds."""
    limit_headers = {
        "X-RateLimit-Limit": "50",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(reset_ms),
    }
    return Reply(
        status=429,
        json={
            "error": {
                "code": 429,
                "message": OPENROUTER_FREE_DAILY_MESSAGE,
                "metadata": {
                    "limit_source": "openrouter_free_tier_daily",
                    "headers": dict(limit_headers),
                },
            }
        },
        headers=limit_headers,
    )


def perplexity_html_401() -> Reply:
    """Perplexity's 401 comes from its openresty proxy as HTML, not JSON."""
    return Reply(status=401, body=PERPLEXITY_HTML_401, headers={"content-type": "text/html"})


def gemini_compat_exhausted_array() -> Reply:
    """Gemini's OpenAI-compatible endpoint: a 429 whose body is a JSON *array*."""
    return Reply(
        status=429,
        json=[
            {
                "error": {
                    "code": 429,
                    "message": "Resource has been exhausted (e.g. check quota).",
                    "status": "RESOURCE_EXHAUSTED",
                }
            }
        ],
    )


def context_too_long() -> Reply:
    """OpenAI 400 when the prompt exceeds the model's context (not worth retrying)."""
    return Reply(
        status=400,
        json={
            "error": {
                "message": CONTEXT_TOO_LONG_MESSAGE,
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
        },
    )


def overloaded_529() -> Reply:
    """Anthropic-style 529 overloaded (transient)."""
    return Reply(
        status=529,
        json={"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    )


# --------------------------------------------------------------------------------------------
# Media endpoints: /images/generations, /audio/transcriptions, /audio/speech.
# Shapes from the OpenAI API reference (platform.openai.com/docs/api-reference: images/create,
# audio/createTranscription, audio/createSpeech), Groq's speech-to-text guide
# (console.groq.com/docs/speech-to-text: same paths under /openai/v1, verbose_json adds
# `x_groq`) and DeepInfra's OpenAI-compatible images endpoint (/v1/openai/images/generations,
# `data[0].b64_json` plus `revised_prompt`).
# --------------------------------------------------------------------------------------------


def base_path(prefix: str) -> str:
    """The OpenAI-style base path of the fake provider mounted at ``/{prefix}/v1``."""
    return f"/{prefix}/v1" if prefix else "/v1"


def images_path(prefix: str) -> str:
    return f"{base_path(prefix)}/images/generations"


def transcriptions_path(prefix: str) -> str:
    return f"{base_path(prefix)}/audio/transcriptions"


def speech_path(prefix: str) -> str:
    return f"{base_path(prefix)}/audio/speech"


def tiny_png(color: tuple[int, int, int] = (255, 0, 0), size: tuple[int, int] = (4, 3)) -> bytes:
    """A real PNG made with Pillow at test time (media is generated, never committed)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def tiny_mp3(seconds: float = 0.25, rate: int = 22050) -> bytes:
    """A real MP3 (440 Hz sine) encoded with PyAV's libmp3lame at test time."""
    import io
    import math
    import struct

    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout="mono")
        total, pts = int(rate * seconds), 0
        while pts < total:
            count = min(1152, total - pts)
            frame = av.AudioFrame(format="s16p", layout="mono", samples=count)
            frame.sample_rate, frame.pts = rate, pts
            samples = b"".join(
                struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * (pts + i) / rate)))
                for i in range(count)
            )
            plane = frame.planes[0]
            plane.update(samples + b"\0" * (plane.buffer_size - len(samples)))
            for packet in stream.encode(frame):
                container.mux(packet)
            pts += count
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def images_b64(
    image: bytes,
    *,
    revised_prompt: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """200 from /images/generations with the image base64-encoded in ``data[0].b64_json``."""
    import base64

    item: dict[str, object] = {"b64_json": base64.b64encode(image).decode("ascii")}
    if revised_prompt is not None:
        item["revised_prompt"] = revised_prompt
    return Reply(
        status=200,
        json={"created": int(time.time()), "data": [item]},
        headers=dict(headers or {}),
    )


def images_url(url: str) -> Reply:
    """200 from /images/generations in DALL-E's url mode: a link, no bytes."""
    return Reply(
        status=200,
        json={"created": int(time.time()), "data": [{"url": url, "revised_prompt": "p"}]},
    )


def transcription_verbose(
    text: str,
    segments: list[tuple[float, float, str]],
    *,
    duration: float,
    language: str = "english",
    groq: bool = False,
) -> Reply:
    """200 verbose_json transcript: whisper-1 (OpenAI) or whisper-large-v3* (Groq, `x_groq`).

    Whisper's texts start with a space, as the real ones do.
    """
    body: dict[str, object] = {
        "task": "transcribe",
        "language": language,
        "duration": duration,
        "text": text,
        "segments": [
            {
                "id": index,
                "seek": 0,
                "start": start,
                "end": end,
                "text": segment_text,
                "tokens": [50364, 2425, 50464],
                "temperature": 0.0,
                "avg_logprob": -0.28,
                "compression_ratio": 1.23,
                "no_speech_prob": 0.01,
            }
            for index, (start, end, segment_text) in enumerate(segments)
        ],
    }
    if groq:
        body["x_groq"] = {"id": f"req_fake{next(_ids):06d}"}
    return Reply(status=200, json=body)


def transcription_json(text: str, *, input_tokens: int = 14, output_tokens: int = 45) -> Reply:
    """200 json transcript of a gpt-4o*-transcribe model (text plus token usage)."""
    return Reply(
        status=200,
        json={
            "text": text,
            "usage": {
                "type": "tokens",
                "input_tokens": input_tokens,
                "input_token_details": {"text_tokens": 0, "audio_tokens": input_tokens},
                "output_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
            },
        },
    )


def speech_ok(audio: bytes, content_type: str = "audio/mpeg") -> Reply:
    """200 from /audio/speech: the raw audio, labelled with its content-type."""
    return Reply(status=200, body=audio, headers={"content-type": content_type})


def mount_openai_ok(fake: FakeServer, prefix: str = "") -> str:
    """Script one successful exchange on every endpoint; returns the provider's base_url."""
    fake.route("POST", f"{base_path(prefix)}/chat/completions", chat_ok("ok"))
    fake.route("POST", images_path(prefix), images_b64(tiny_png()))
    fake.route(
        "POST",
        transcriptions_path(prefix),
        transcription_verbose(" Hello world.", [(0.0, 1.0, " Hello world.")], duration=1.0),
    )
    fake.route("POST", speech_path(prefix), speech_ok(tiny_mp3()))
    return f"{fake.url}{base_path(prefix)}"


__all__ += [
    "base_path",
    "images_b64",
    "images_path",
    "images_url",
    "mount_openai_ok",
    "speech_ok",
    "speech_path",
    "tiny_mp3",
    "tiny_png",
    "transcription_json",
    "transcription_verbose",
    "transcriptions_path",
]


def sse(data: object, event: str | None = None) -> bytes:
    """One server-sent event: `event: NAME` when named, `data: JSON`, and the blank line."""
    head = f"event: {event}\n" if event else ""
    body = data if isinstance(data, str) else json.dumps(data)
    return f"{head}data: {body}\n\n".encode()


def chat_stream_chunks(
    pieces: list[str],
    *,
    model: str = "m",
    prompt_tokens: int | None = 5,
    completion_tokens: int = 7,
    done: bool = True,
) -> list[bytes]:
    """A streamed chat completion as OpenAI documents it (API reference, "The chat completion
    chunk object" and `stream_options.include_usage`): a role chunk, one chunk per piece with
    `choices[0].delta.content` and `usage: null`, a `finish_reason: stop` chunk, then (when
    `prompt_tokens` is given) the usage chunk whose `choices` is empty, then `data: [DONE]`."""
    ident = f"chatcmpl-fake{next(_ids):06d}"
    created = int(time.time())

    def chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return sse(
            {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [choice],
                "usage": None,
            }
        )

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": piece}) for piece in pieces]
    out.append(chunk({}, "stop"))
    if prompt_tokens is not None:
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        out.append(
            sse(
                {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
            )
        )
    if done:
        out.append(b"data: [DONE]\n\n")
    return out
