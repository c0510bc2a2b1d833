"""Replies shaped like Play.ht's historical v2 streaming TTS API answered (closed 2025-12-31).

Sources: Play.ht's archived API reference and the client code quoted in public repositories:
`POST https://api.play.ht/api/v2/tts/stream`, headers `AUTHORIZATION: <secret key>` and
`X-USER-ID: <user id>`, `accept: audio/mpeg` (or `audio/wav`), JSON `{"text", "voice",
"output_format", "voice_engine"}` -> the audio bytes. Error bodies were never documented; the
`{"error_message", "error_id"}` shape here is what clients reported, the texts are assumptions.
"""

from __future__ import annotations

from tests.fakes.server import FakeServer, Reply

__all__ = [
    "MP3",
    "error_reply",
    "mount_playht_ok",
    "speech_ok",
    "stream_path",
]

# An MPEG-1 Layer III frame header (0xFFFB: sync, 128 kb/s, 44.1 kHz) and silence: enough for
# anything that sniffs the signature, not a file to play.
MP3 = b"\xff\xfb\x90\x64" + bytes(413)


def _root(prefix: str) -> str:
    """Where a fake provider is mounted: "aai", "/aai" and "/aai/" all mean /aai; "" the root."""
    prefix = prefix.strip("/")
    return f"/{prefix}" if prefix else ""


def stream_path(prefix: str = "") -> str:
    return f"{_root(prefix)}/api/v2/tts/stream"


def speech_ok(data: bytes = MP3, media_type: str = "audio/mpeg") -> Reply:
    return Reply(body=data, headers={"content-type": media_type})


def error_reply(
    status: int, message: str, error_id: str, headers: dict[str, str] | None = None
) -> Reply:
    return Reply(
        status=status,
        json={"error_message": message, "error_id": error_id},
        headers=headers or {},
    )


def mount_playht_ok(fake: FakeServer, prefix: str = "", *, data: bytes = MP3) -> None:
    """One successful streaming request."""
    fake.route("POST", stream_path(prefix), speech_ok(data))
