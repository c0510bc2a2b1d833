"""Where the CLI's text results go: one file name per input that never collides, and text files
that end with a newline (as every Unix tool expects of a text file)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path


def transcript_names(files: Sequence[Path], suffix: str = ".txt") -> list[str]:
    """A file name per input, distinct even on a case-insensitive file system.

    `x.wav` gets `x.txt`; when two inputs share the stem (`clash.wav`, `clash.mp3`) the whole
    name is kept (`clash.wav.txt`); when they share the name too (`a/x.wav`, `b/x.wav`) the
    folder is put in front (`a-x.wav.txt`); anything still taken (the same file twice) gets
    `-2`, `-3`, ...
    """
    stems = Counter(path.stem.lower() for path in files)
    names = Counter(path.name.lower() for path in files)
    folders: dict[str, set[str]] = {}
    for path in files:
        folders.setdefault(path.name.lower(), set()).add(_folder(path))
    taken: set[str] = set()
    result = []
    for path in files:
        if stems[path.stem.lower()] == 1:
            base = path.stem
        elif names[path.name.lower()] == 1:
            base = path.name
        elif len(folders[path.name.lower()]) > 1:
            base = f"{_folder(path)}-{path.name}"
        else:
            base = path.stem
        name, count = f"{base}{suffix}", 1
        while name.lower() in taken:
            count += 1
            name = f"{base}-{count}{suffix}"
        taken.add(name.lower())
        result.append(name)
    return result


def _folder(path: Path) -> str:
    return path.resolve().parent.name


def text_bytes(text: str) -> bytes:
    """`text` as a UTF-8 file's content: ending with exactly one newline."""
    return (text.rstrip("\n") + "\n").encode("utf-8")


def save_text(path: Path, text: str) -> Path:
    """Write a text result atomically (a reader never sees half a transcript)."""
    from scheduler import media

    media.write_atomically(path, text_bytes(text))
    return path


__all__ = ["save_text", "text_bytes", "transcript_names"]
