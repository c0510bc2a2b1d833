"""Audio files for tests: the product's own probe tone, written where a test needs it."""

from __future__ import annotations

from pathlib import Path

from scheduler.probes import tone_wav


def write_wav(path: Path, seconds: float = 1.0, rate: int = 8000) -> Path:
    """A mono 16-bit WAV of a 440 Hz tone at `path`."""
    path.write_bytes(tone_wav(seconds, rate))
    return path


def sine_wav(path: Path, seconds: float = 0.5, rate: int = 8000) -> bytes:
    """The same, returning the bytes written (for asserting what a request carried)."""
    data = tone_wav(seconds, rate)
    path.write_bytes(data)
    return data


__all__ = ["sine_wav", "write_wav"]
