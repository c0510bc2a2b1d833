"""Media files: check inputs before any call, measure audio, convert outputs to what was asked.

Input problems (missing file, directory, empty or undecodable audio, not an image) are found here,
before the ledger reserves anything, so a bad file costs no quota. Audio length is measured from
the file because speech providers bill by audio duration, and the reservation must be made before
the call. PyAV (av) decodes and encodes audio; Pillow converts images. Both are imported only when
a media task runs.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from scheduler.errors import InputError
from scheduler.tasks import AudioFormat, ProviderResult

_AUDIO_CONTAINERS = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "flac": "audio/flac",
    "mov,mp4,m4a,3gp,3g2,mj2": "audio/mp4",
    "matroska,webm": "audio/webm",
    "aac": "audio/aac",
}
_AUDIO_TYPES: dict[str, AudioFormat] = {
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/ogg": "opus",
    "audio/opus": "opus",
}
IMAGE_SUFFIXES = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
# The suffix media is kept under when it cannot be converted to what was asked.
_SUFFIX_OF = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "audio/wav": ".wav",
    "audio/mpeg": ".mp3",
    "audio/ogg": ".ogg",
    "audio/flac": ".flac",
    "audio/aac": ".aac",
    "audio/mp4": ".m4a",
}
AUDIO_SUFFIXES: dict[str, AudioFormat] = {
    ".mp3": "mp3",
    ".wav": "wav",
    ".opus": "opus",
    ".ogg": "opus",
}


@dataclass(frozen=True)
class AudioInfo:
    """What the dispatcher needs to know of an audio file before sending it anywhere."""

    path: Path
    seconds: float
    mime_type: str


def _read_checked(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected {what}")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: cannot read it (permission denied)")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty, expected {what}")


def probe_audio(path: Path) -> AudioInfo:
    """Duration and type of an audio file, or an InputError saying what is wrong with it."""
    _read_checked(path, "an audio file")
    import av

    try:
        with av.open(str(path)) as container:
            streams = container.streams.audio
            if not streams:
                raise InputError(f"{path}: has no audio stream")
            seconds = _duration(container, streams[0])
            mime = _AUDIO_CONTAINERS.get(container.format.name, "application/octet-stream")
    except InputError:
        raise
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}: not a readable audio file ({type(exc).__name__})") from None
    if seconds <= 0:
        raise InputError(f"{path}: the audio has no length")
    return AudioInfo(path, seconds, mime)


def _duration(container: object, stream: object) -> float:
    """The container's duration when it states one, else the decoded frames' total."""
    import av

    assert isinstance(container, av.container.InputContainer)
    assert isinstance(stream, av.audio.stream.AudioStream)
    if container.duration:
        return float(container.duration) / av.time_base
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    total = 0
    for frame in container.decode(stream):
        total += frame.samples
    return total / stream.rate if stream.rate else 0.0


def probe_image(path: Path) -> str:
    """The image's MIME type from its first bytes, or an InputError."""
    _read_checked(path, "an image file")
    with path.open("rb") as handle:
        head = handle.read(16)
    media_type = sniff_media_type(head)
    if media_type is None or not media_type.startswith("image/"):
        raise InputError(f"{path}: not an image (PNG, JPEG, WEBP or GIF)")
    return media_type


def sniff_media_type(data: bytes) -> str | None:
    """The media type of image or audio bytes from their signature (providers mislabel them)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    if data.startswith(b"ID3"):
        return "audio/mpeg"
    # An MPEG audio frame: 11 sync bits and a layer other than 00 (00 is AAC's ADTS header,
    # which must be converted, not saved as .mp3).
    if len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0 and data[1] & 0x06:
        return "audio/mpeg"
    if data.startswith(b"OggS"):
        return "audio/ogg"
    if data.startswith(b"fLaC"):
        return "audio/flac"
    return None


def audio_format_of(media_type: str | None, data: bytes) -> AudioFormat | None:
    """Which of our output formats these bytes already are (None: must be converted)."""
    sniffed = sniff_media_type(data[:16])
    for candidate in (sniffed, media_type):
        if candidate and candidate.split(";")[0].strip() in _AUDIO_TYPES:
            return _AUDIO_TYPES[candidate.split(";")[0].strip()]
    return None


def convert_audio(data: bytes, target: AudioFormat) -> bytes:
    """Re-encode audio bytes of any format PyAV reads as mp3, wav (16-bit PCM) or opus (Ogg)."""
    import av

    codec, container_format, rate = {
        "mp3": ("libmp3lame", "mp3", None),
        "wav": ("pcm_s16le", "wav", None),
        "opus": ("libopus", "ogg", 48000),
    }[target]
    out = io.BytesIO()
    try:
        with av.open(io.BytesIO(data), "r") as source:
            in_stream = source.streams.audio[0]
            with av.open(out, "w", format=container_format) as sink:
                out_stream = sink.add_stream(codec, rate=rate or in_stream.rate or 24000)
                assert isinstance(out_stream, av.audio.stream.AudioStream)
                layout = "mono" if in_stream.channels == 1 else "stereo"
                out_stream.layout = layout
                resampler = av.AudioResampler(
                    format=out_stream.format.name, layout=layout, rate=out_stream.rate
                )
                for frame in source.decode(in_stream):
                    for resampled in resampler.resample(frame):
                        sink.mux(out_stream.encode(resampled))
                for resampled in resampler.resample(None):
                    sink.mux(out_stream.encode(resampled))
                sink.mux(out_stream.encode(None))
    except (av.error.FFmpegError, IndexError) as exc:
        raise NotConverted(f"not convertible to {target} ({type(exc).__name__})") from None
    return out.getvalue()


class NotConverted(Exception):
    """The provider's media could not be converted (too large to decode, undecodable): it is
    kept as it came rather than lost."""


def convert_image(data: bytes, suffix: str) -> bytes:
    """Re-encode image bytes as the format the output file's suffix names.

    Pillow refuses images past its pixel limit (a decompression bomb: a small PNG that decodes to
    gigabytes); that, and bytes Pillow cannot read, raise NotConverted."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    target = IMAGE_SUFFIXES[suffix.lower()]
    try:
        with warnings.catch_warnings():
            # Between one and two times the limit Pillow only warns; a warning is still a bomb.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                out = io.BytesIO()
                (image.convert("RGB") if target == "JPEG" else image).save(out, format=target)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise NotConverted(f"too large to convert ({_pixels(exc)})") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise NotConverted(f"not convertible ({type(exc).__name__})") from None
    return out.getvalue()


def _pixels(exc: BaseException) -> str:
    """`400000000 pixels` from Pillow's "Image size (400000000 pixels) exceeds limit of ..."."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return f"{found.group(1)} pixels" if found else "past Pillow's limit"


def check_output_path(path: Path, suffixes: Collection[str]) -> None:
    """Fail before any call when the result could not be written where the user asked."""
    if path.suffix.lower() not in suffixes:
        allowed = ", ".join(sorted(suffixes))
        raise InputError(
            f"{path}: unsupported output type {path.suffix or '(none)'}; use {allowed}"
        )
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected an output file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        if parent.exists():
            raise InputError(f"{path}: {parent} is not a directory")
        raise InputError(f"{path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise InputError(f"{path}: cannot write there (permission denied)")


def write_atomically(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file.

    The temporary file is created by `mkstemp` in the target's directory: a new, unguessable
    name opened with O_CREAT|O_EXCL, so a link planted under a predictable name (the old
    `.NAME.partial`) is never followed, and nobody else can open it while it is written. The
    rename replaces a link at `path` itself rather than writing through it. The file gets the
    mode a plain `open()` would give (0666 less the umask), not mkstemp's 0600."""
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".partial")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~_umask())
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


@dataclass(frozen=True)
class SavedTo:
    """Where a result ended up. `path` is None when no file could be written anywhere: a text
    answer is then for the caller to print. `note` is one line for the user, None when the file
    is exactly what was asked; `rescued` means the asked-for path could not be written."""

    path: Path | None
    requested: Path
    note: str | None = None
    rescued: bool = False


def encode_result(result: ProviderResult, path: Path) -> tuple[bytes, Path, str | None]:
    """(bytes, path, note): the result in the format `path`'s suffix names, converted when the
    provider answered another. Media that cannot be converted is kept as it came, under
    `path` with the suffix of what it really is, and the note says so."""
    data = result.data
    suffix = path.suffix.lower()
    if data is None:
        return result.output.encode("utf-8"), path, None
    try:
        if suffix in IMAGE_SUFFIXES:
            wanted = IMAGE_SUFFIXES[suffix].lower()
            have = (sniff_media_type(data[:16]) or "").removeprefix("image/")
            if have != wanted:
                return convert_image(data, suffix), path, None
        elif suffix in AUDIO_SUFFIXES:
            target = AUDIO_SUFFIXES[suffix]
            if audio_format_of(result.media_type, data) != target:
                return convert_audio(data, target), path, None
    except NotConverted as exc:
        kind = sniff_media_type(data[:16]) or result.media_type or ""
        real = _SUFFIX_OF.get(kind.split(";")[0].strip(), ".bin")
        kept = path.with_suffix(real) if real != suffix else path
        return data, kept, f"the provider's {kind or 'answer'} is {exc}; saved as it came"
    return data, path, None


def save_or_rescue(result: ProviderResult, path: Path) -> SavedTo:
    """Save a result where the user asked; if that fails after the call (disk full, the
    directory removed meanwhile, a path under /proc), save it in the working directory, else in
    the temporary directory, and say where. The call is paid for: its answer is never lost to
    an output error. Never raises for an unwritable place; SavedTo says what happened."""
    data, target, note = encode_result(result, path)
    try:
        write_atomically(target, data)
        return SavedTo(target, path, note)
    except OSError as exc:
        failure = f"cannot write {target} ({exc.strerror or type(exc).__name__})"
    for directory in _rescue_dirs(target):
        try:
            fd, name = tempfile.mkstemp(
                dir=directory, prefix=f"sched-rescued-{target.stem[:40]}-", suffix=target.suffix
            )
        except OSError:
            continue
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError:
            Path(name).unlink(missing_ok=True)  # a half rescue is no rescue
            continue
        return SavedTo(Path(name), path, f"{failure}; the answer is saved in {name}", rescued=True)
    return SavedTo(None, path, f"{failure}, nor anywhere else", rescued=True)


def _rescue_dirs(target: Path) -> list[Path]:
    """The working directory, then $TMPDIR (tempfile's choice), skipping the failed one."""
    failed = (target.parent if str(target.parent) else Path(".")).resolve()
    places: list[Path] = []
    for place in (Path.cwd(), Path(tempfile.gettempdir())):
        if place.resolve() != failed and place.resolve() not in places:
            places.append(place.resolve())
    return places


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of an image's bytes, read from its header only; None if unreadable."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def save_result(result: ProviderResult, path: Path) -> Path:
    """Write an image or speech result to `path` in the format its extension names, converting
    when the provider answered another one (WebP for a .png, MP3 for a .wav). A text result is
    written as UTF-8. The write is atomic: a reader never sees half a file. Raises OSError when
    `path` cannot be written; `save_or_rescue` is the variant that keeps the answer anyway."""
    data, target, _ = encode_result(result, path)
    write_atomically(target, data)
    return target


__all__ = [
    "AUDIO_SUFFIXES",
    "IMAGE_SUFFIXES",
    "AudioInfo",
    "NotConverted",
    "SavedTo",
    "audio_format_of",
    "check_output_path",
    "convert_audio",
    "convert_image",
    "image_size",
    "probe_audio",
    "encode_result",
    "probe_image",
    "save_or_rescue",
    "save_result",
    "sniff_media_type",
    "write_atomically",
]
