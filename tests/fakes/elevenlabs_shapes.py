"""Replies shaped like ElevenLabs' text-to-speech API answers.

Sources: ElevenLabs API reference (`POST /v1/text-to-speech/{voice_id}?output_format=...`,
`xi-api-key`, JSON `{"text", "model_id"}` -> raw audio; output_format values such as
`mp3_44100_128`, `opus_48000_64`, `pcm_24000`, PCM being headerless 16-bit mono), and real error
bodies quoted in issues: 401 `{"detail": {"status": "quota_exceeded", "message": "This request
exceeds your quota of 10000. You have 0 credits remaining, while 91 credits are required for this
request."}}` (home-assistant/core#160414, 2026-01), 401 `invalid_api_key` (media.md [obs]),
401 `detected_unusual_activity` (OWASP/Nest#3861, 2026-02), 402 `{"detail": {"type":
"payment_required", "code": "paid_plan_required", "message": "Free users cannot use library voices
via the API. ...", "status": "payment_required", "request_id": ...}}` (dograh-hq/dograh#290,
2026-05); 429 `too_many_concurrent_requests` / `system_busy` and 422 validation errors (docs).
"""

from __future__ import annotations

import io
import math
import struct
from functools import cache

from tests.fakes.server import FakeServer, Reply

__all__ = [
    "QUOTA_MESSAGE",
    "bad_key",
    "busy",
    "detail_error",
    "mount_elevenlabs_ok",
    "mp3_bytes",
    "opus_bytes",
    "paid_plan_required",
    "pcm_bytes",
    "quota_exceeded",
    "speech_ok",
    "tts_path",
    "unusual_activity",
    "validation_error",
]

QUOTA_MESSAGE = (
    "This request exceeds your quota of 10000. You have 0 credits remaining, while 91 credits "
    "are required for this request."
)
PLAN_MESSAGE = (
    "Free users cannot use library voices via the API. Please upgrade your subscription to use "
    "this voice."
)


def _root(prefix: str) -> str:
    """Where a fake provider is mounted: "aai", "/aai" and "/aai/" all mean /aai; "" the root."""
    prefix = prefix.strip("/")
    return f"/{prefix}" if prefix else ""


def tts_path(voice: str, prefix: str = "") -> str:
    return f"{_root(prefix)}/v1/text-to-speech/{voice}"


def pcm_bytes(seconds: float = 0.25, rate: int = 24000) -> bytes:
    """What `pcm_24000` answers: headerless 16-bit little-endian mono samples (a 440 Hz sine)."""
    return b"".join(
        struct.pack("<h", int(6000 * math.sin(2 * math.pi * 440 * i / rate)))
        for i in range(int(seconds * rate))
    )


def _encode(container: str, codec: str, rate: int) -> bytes:
    import av
    import numpy as np

    out = io.BytesIO()
    with av.open(out, "w", format=container) as sink:
        stream = sink.add_stream(codec, rate=rate)
        stream.layout = "mono"
        samples = np.frombuffer(pcm_bytes(0.25, rate), dtype="<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = rate
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=rate)
        for chunk in (*resampler.resample(frame), *resampler.resample(None)):
            sink.mux(stream.encode(chunk))
        sink.mux(stream.encode(None))
    return out.getvalue()


@cache
def mp3_bytes() -> bytes:
    """A real, playable MP3 (what `mp3_44100_128` answers), encoded with PyAV."""
    return _encode("mp3", "libmp3lame", 44100)


@cache
def opus_bytes() -> bytes:
    """A real Ogg Opus file (what `opus_48000_64` answers)."""
    return _encode("ogg", "libopus", 48000)


def speech_ok(data: bytes, media_type: str = "audio/mpeg") -> Reply:
    return Reply(body=data, headers={"content-type": media_type, "request-id": "req-0001"})


def detail_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Reply:
    return Reply(
        status=status,
        json={"detail": {"status": code, "message": message}},
        headers=headers or {},
    )


def quota_exceeded() -> Reply:
    """Out of credit is a 401: only `detail.status` tells it from a bad key."""
    return detail_error(401, "quota_exceeded", QUOTA_MESSAGE)


def bad_key() -> Reply:
    return detail_error(401, "invalid_api_key", "Invalid API key")


def unusual_activity() -> Reply:
    return detail_error(
        401,
        "detected_unusual_activity",
        "Unusual activity detected. Free Tier usage disabled.",
    )


def paid_plan_required() -> Reply:
    return Reply(
        status=402,
        json={
            "detail": {
                "type": "payment_required",
                "code": "paid_plan_required",
                "message": PLAN_MESSAGE,
                "status": "payment_required",
                "request_id": "0x5d3c11c",
            }
        },
    )


def busy(code: str = "too_many_concurrent_requests", retry_after: str | None = None) -> Reply:
    headers = {"retry-after": retry_after} if retry_after else {}
    return detail_error(
        429,
        code,
        "Too many concurrent requests for your subscription."
        if code == "too_many_concurrent_requests"
        else "The system is busy, please try again later.",
        headers,
    )


def validation_error() -> Reply:
    return Reply(
        status=422,
        json={
            "detail": [
                {
                    "loc": ["body", "text"],
                    "msg": "Field required",
                    "type": "missing",
                }
            ]
        },
    )


def mount_elevenlabs_ok(
    fake: FakeServer,
    prefix: str = "",
    *,
    voice: str = "JBFqnCBsd6RMkjVDRZzb",
    audio: bytes | None = None,
    media_type: str = "audio/mpeg",
) -> None:
    """One successful speech request for `voice` (default: a real MP3)."""
    fake.route(
        "POST",
        tts_path(voice, prefix),
        speech_ok(mp3_bytes() if audio is None else audio, media_type),
    )
