"""`sched init`: the two files a new user edits, written into a directory (the current one).

- `.env` from the packaged key template (scheduler/env.example, also the repository's
  `.env.example`), mode 0600 from its creation on: it is about to hold API keys, so no other user
  may read it even for the moment between writing and a chmod.
- `providers.yaml`, a copy of the packaged table, to edit instead of the one inside the package.

Neither is ever overwritten (no `--force`): a filled-in `.env` or an edited table is the user's
work. When either exists nothing is written and the command exits 2 with one line.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

ENV_MODE = 0o600


def init(
    directory: Annotated[
        Path,
        typer.Argument(help="Where to write .env and providers.yaml.", metavar="DIR"),
    ] = Path("."),
) -> None:
    """Write .env (mode 0600, keys to fill in) and providers.yaml (the packaged table) to edit;
    refuses to overwrite either."""
    from scheduler.errors import InputError

    if not directory.is_dir():
        raise InputError(f"{directory}: not a directory")
    package = resources.files("scheduler")
    files = {
        directory / ".env": (package / "env.example").read_bytes(),
        directory / "providers.yaml": (package / "providers.yaml").read_bytes(),
    }
    taken = [path for path in files if path.exists() or path.is_symlink()]
    if taken:
        names = " and ".join(str(path) for path in taken)
        raise InputError(
            f"{names} already {'exist' if len(taken) > 1 else 'exists'}; not overwritten"
        )
    for path, data in files.items():
        _create(path, data, ENV_MODE if path.name == ".env" else None)
        typer.echo(f"wrote {path}", err=True)
    typer.echo(
        "next: fill in the keys you have in .env; `sched providers list` shows them", err=True
    )


def _create(path: Path, data: bytes, mode: int | None) -> None:
    """Create `path` exclusively (O_EXCL: a file or link that appeared meanwhile is never
    written through) with `mode`, or the umask's default."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, mode if mode is not None else 0o666)
    except FileExistsError:
        from scheduler.errors import InputError

        raise InputError(f"{path} already exists; not overwritten") from None
    with os.fdopen(fd, "wb") as handle:
        if mode is not None:
            os.fchmod(handle.fileno(), mode)  # exactly `mode`, whatever the umask
        handle.write(data)


__all__ = ["init"]
