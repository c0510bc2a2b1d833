"""The local text-to-speech engine: espeak-ng, from the system when it has one, else from PyPI.

Two engines speak the same way (text in, a 16-bit mono RIFF WAV out):

- **the system's `espeak-ng` binary** on PATH, run as a subprocess with the text on stdin (no
  shell; text that starts with '-' is spoken, never parsed as options). Preferred when present:
  the user installed it on purpose, with the voices they chose.
- **the library `espeakng-loader` ships** (the `local` extra): its wheel holds libespeak-ng and
  its voice data, driven here through espeak-ng's C API with ctypes (`espeak_Initialize` in
  synchronous mode, `espeak_SetVoiceByName`, `espeak_Synth` with a callback that collects the
  samples). That makes the first `sched run tts` work on a machine with no espeak-ng at all.

`find_engine` is the lookup; `LocalAdapter` takes it as an injectable callable, so tests can hide
either engine. The library keeps global state (one voice, one callback), so every call into it
holds one process-wide lock, and runs in a worker thread off the event loop.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib.util
import io
import shutil
import tempfile
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# espeak-ng's speak_lib.h: the enum values and flags this module passes.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # report a data error instead of calling exit()
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK = 0
_EE_NOT_FOUND = 2

# int SynthCallback(short *wav, int numsamples, espeak_EVENT *events): 0 goes on, 1 aborts.
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class SpeechFailed(Exception):
    """The engine could not speak the text (a crash, a timeout, no audio)."""


class UnknownVoice(SpeechFailed):
    """The engine has no voice of that name: the caller's input, not a fault of the engine."""


class SpeechEngine(Protocol):
    """Something that speaks text to WAV bytes with an espeak-ng voice."""

    @property
    def description(self) -> str:
        """Which engine this is, for messages and `providers check`."""
        ...

    async def speak(self, text: str, voice: str, timeout_s: float) -> bytes: ...


# -- the system binary -----------------------------------------------------------------------


@dataclass(frozen=True)
class EspeakBinary:
    """The `espeak-ng` program at `path`."""

    path: str

    @property
    def description(self) -> str:
        return f"espeak-ng at {self.path}"

    async def speak(self, text: str, voice: str, timeout_s: float) -> bytes:
        with tempfile.TemporaryDirectory(prefix="sched-tts-") as folder:
            out = Path(folder) / "speech.wav"
            await self._run(text, voice, out, timeout_s)
            return out.read_bytes() if out.is_file() else b""

    async def _run(self, text: str, voice: str, out: Path, timeout_s: float) -> None:
        try:
            process = await asyncio.create_subprocess_exec(
                self.path,
                "--stdin",
                "-b",
                "1",  # the input is UTF-8
                "-v",
                voice,
                "-w",
                str(out),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise SpeechFailed(f"cannot run espeak-ng: {exc}") from None
        try:
            _, stderr = await asyncio.wait_for(process.communicate(text.encode("utf-8")), timeout_s)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise SpeechFailed(f"espeak-ng timed out after {timeout_s:g} s") from None
        if process.returncode != 0:
            message = stderr.decode("utf-8", "replace").strip()[:200]
            if "voice does not exist" in message:
                raise UnknownVoice(voice)
            raise SpeechFailed(f"espeak-ng exited with {process.returncode}: {message}")


# -- the bundled library ---------------------------------------------------------------------

# One library per process: its state is global, so calls into it never overlap.
_library_lock = threading.Lock()
_libraries: dict[str, tuple[ctypes.CDLL, int]] = {}  # library path -> (handle, sample rate)


@dataclass(frozen=True)
class EspeakLibrary:
    """libespeak-ng at `library` with its voice data in `data`, driven through the C API."""

    library: str
    data: str

    @property
    def description(self) -> str:
        return f"libespeak-ng at {self.library}"

    async def speak(self, text: str, voice: str, timeout_s: float) -> bytes:
        return await asyncio.to_thread(self.speak_blocking, text, voice, timeout_s)

    def speak_blocking(self, text: str, voice: str, timeout_s: float) -> bytes:
        """The WAV of `text`; blocking, so call it off the event loop (`speak` does)."""
        deadline = time.monotonic() + timeout_s
        chunks: list[bytes] = []
        timed_out = False

        def collect(wav: ctypes._Pointer[ctypes.c_short], samples: int, _events: int) -> int:
            nonlocal timed_out
            if wav and samples > 0:
                chunks.append(ctypes.string_at(wav, samples * 2))
            if time.monotonic() > deadline:
                timed_out = True
                return 1  # abort the synthesis
            return 0

        callback = _SYNTH_CALLBACK(collect)  # kept referenced until the lock is released
        encoded = text.encode("utf-8") + b"\0"
        with _library_lock:
            lib, rate = self._initialized()
            lib.espeak_SetSynthCallback(callback)
            status = lib.espeak_SetVoiceByName(voice.encode("utf-8"))
            if status == _EE_NOT_FOUND:
                raise UnknownVoice(voice)
            if status != _EE_OK:
                raise SpeechFailed(f"libespeak-ng cannot select voice {voice!r} (error {status})")
            status = lib.espeak_Synth(
                encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
            lib.espeak_Synchronize()
        if timed_out:
            raise SpeechFailed(f"libespeak-ng timed out after {timeout_s:g} s")
        if status != _EE_OK:
            raise SpeechFailed(f"libespeak-ng could not speak the text (error {status})")
        return _wav(b"".join(chunks), rate)

    def _initialized(self) -> tuple[ctypes.CDLL, int]:
        """The loaded, initialized library (once per process; the caller holds the lock)."""
        known = _libraries.get(self.library)
        if known is not None:
            return known
        try:
            lib = ctypes.CDLL(self.library)
        except OSError as exc:
            raise SpeechFailed(f"cannot load libespeak-ng: {exc}") from None
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, self.data.encode(), _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise SpeechFailed(f"libespeak-ng found no voice data in {self.data}")
        _libraries[self.library] = (lib, rate)
        return lib, rate


def _wav(samples: bytes, rate: int) -> bytes:
    """16-bit mono PCM samples as a RIFF WAV, what the binary's `-w` writes."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as sink:
        sink.setnchannels(1)
        sink.setsampwidth(2)
        sink.setframerate(rate)
        sink.writeframes(samples)
    return buffer.getvalue()


# -- the lookup --------------------------------------------------------------------------------


def bundled_library() -> EspeakLibrary | None:
    """The library and voice data espeakng-loader ships, when it is installed and complete."""
    if importlib.util.find_spec("espeakng_loader") is None:
        return None
    import espeakng_loader  # type: ignore[import-untyped,import-not-found,unused-ignore]

    library = Path(espeakng_loader.get_library_path())
    data = Path(espeakng_loader.__file__).parent / "espeak-ng-data"
    if not (library.is_file() and data.is_dir()):
        return None
    return EspeakLibrary(str(library), str(data))


def find_engine(
    which: Callable[[str], str | None] = shutil.which,
    bundled: Callable[[], SpeechEngine | None] = bundled_library,
) -> SpeechEngine | None:
    """The system's espeak-ng when PATH has it, else the bundled library, else None."""
    path = which("espeak-ng")
    if path is not None:
        return EspeakBinary(path)
    return bundled()


__all__ = [
    "EspeakBinary",
    "EspeakLibrary",
    "SpeechEngine",
    "SpeechFailed",
    "UnknownVoice",
    "bundled_library",
    "find_engine",
]
