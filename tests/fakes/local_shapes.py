"""Builders for the local backend's tests: real speech from espeak-ng, a word error rate, and a
fake local OpenAI-compatible server (Ollama's chat and images, a Kokoro-style speech server).

Sources: Ollama's "OpenAI compatibility" page (docs.ollama.com/api/openai-compatibility:
base URL http://localhost:11434/v1, the key is "required but ignored", chat at
/v1/chat/completions with image_url content parts for vision) and its experimental image
generation README (ollama x/imagegen/README.md, 2026-01: POST /v1/images/generations answering
`{"created", "data": [{"b64_json"}]}`); OpenAI's speech endpoint (POST /audio/speech answering
raw audio bytes), which Kokoro-FastAPI and similar GPU TTS servers expose on localhost.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from scheduler.providers.espeak import bundled_library
from tests.fakes import openai_shapes
from tests.fakes.server import FakeServer, Reply

__all__ = [
    "ROUND_TRIP_SENTENCES",
    "closed_port",
    "mount_local_ok",
    "speak",
    "wav_bytes",
    "word_error_rate",
    "words",
]

# Three plain English sentences without digits (whisper writes "seven" as "7") or names.
ROUND_TRIP_SENTENCES = (
    "The weather is sunny and warm today. "
    "Please send the report to my office before noon. "
    "Our team finished the project ahead of schedule."
)


def speak(text: str, path: Path, voice: str = "en-us") -> Path:
    """Real speech in a WAV file: the system's espeak-ng (text on stdin, never a shell) when
    PATH has it, else the libespeak-ng that espeakng-loader ships (the `local` extra)."""
    espeak = shutil.which("espeak-ng")
    if espeak is not None:
        subprocess.run(
            [espeak, "--stdin", "-b", "1", "-v", voice, "-w", str(path)],
            input=text.encode("utf-8"),
            check=True,
            timeout=60,
        )
        return path
    library = bundled_library()
    assert library is not None, "these tests need espeak-ng or espeakng-loader (the local extra)"
    path.write_bytes(library.speak_blocking(text, voice, 60))
    return path


def wav_bytes(seconds: float = 0.2, rate: int = 8000) -> bytes:
    """A short silent 16-bit mono WAV, for a fake speech server's answer."""
    import io
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as sink:
        sink.setnchannels(1)
        sink.setsampwidth(2)
        sink.setframerate(rate)
        sink.writeframes(b"\0\0" * int(seconds * rate))
    return buffer.getvalue()


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, so "Noon." and "noon" are the same word."""
    return re.findall(r"[a-z0-9']+", text.lower())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words: word-level Levenshtein."""
    ref, hyp = words(reference), words(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        current = [i]
        for j, hyp_word in enumerate(hyp, start=1):
            current.append(
                min(
                    previous[j] + 1,  # deletion
                    current[j - 1] + 1,  # insertion
                    previous[j - 1] + (ref_word != hyp_word),  # substitution or match
                )
            )
        previous = current
    return previous[-1] / max(len(ref), 1)


def closed_port() -> int:
    """A localhost port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def mount_local_ok(fake: FakeServer, prefix: str = "") -> None:
    """One complete local server: chat (Ollama), image generation, and speech (Kokoro-style)."""
    fake.route(
        "POST",
        f"{openai_shapes.base_path(prefix)}/chat/completions",
        default=openai_shapes.chat_ok("Bonjour !", model="llama3.2"),
    )
    fake.route(
        "POST",
        openai_shapes.images_path(prefix),
        default=openai_shapes.images_b64(openai_shapes.tiny_png()),
    )
    fake.route(
        "POST",
        openai_shapes.speech_path(prefix),
        default=Reply(body=wav_bytes(), headers={"content-type": "audio/wav"}),
    )
