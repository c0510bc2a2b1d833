"""Several speech files in one run: concurrent, with a progress bar and a summary at the end.

A file that cannot be used (missing, not audio) fails on its own line without a call; the other
files go on. The exit code is 0 when every file was transcribed, 3 when no provider was available
for any, 1 otherwise.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from scheduler.cli.context import AppState
    from scheduler.dispatcher import RunResult
    from scheduler.options import RunOptions
    from scheduler.tasks import SttTask, Task


def stt_task(path: Path, language: str | None, model: str | None) -> SttTask:
    """A speech-to-text task with the audio measured (InputError when it is not usable)."""
    from scheduler import media
    from scheduler.tasks import SttTask

    info = media.probe_audio(path)
    return SttTask(
        audio=path,
        audio_seconds=info.seconds,
        mime_type=info.mime_type,
        language=language,
        model=model,
    )


def run_stt_batch(
    state: AppState,
    files: list[Path],
    output: Path | None,
    language: str | None,
    model: str | None,
    options: RunOptions,
    jobs: int,
    as_json: bool,
    verbose: bool,
) -> None:
    from scheduler.cli.outputs import save_text, transcript_names
    from scheduler.cli.render import run_payload
    from scheduler.cli.run_cmd import _dispatch
    from scheduler.errors import InputError

    if output is not None:
        if output.exists() and not output.is_dir():
            raise InputError(f"{output}: with several files, -o must be a directory")
        try:  # fail here, before any call, rather than with a traceback after paying for it
            output.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(
                f"{output}: cannot create the output directory ({exc.strerror})"
            ) from None
        if not os.access(output, os.W_OK):
            raise InputError(f"{output}: cannot write there (permission denied)")
    names = transcript_names(files) if output is not None else [None] * len(files)
    tasks: list[Task] = []
    invalid: dict[int, str] = {}
    for index, path in enumerate(files):
        try:
            tasks.append(stt_task(path, language, model))
        except InputError as exc:
            invalid[index] = str(exc)
    runs = iter(_dispatch(state, list(tasks), options, jobs=jobs, progress=True) if tasks else [])

    # Rows by position, not by path: the same file given twice is two rows and two outputs.
    rows: list[Row] = []
    for index, (path, name) in enumerate(zip(files, names, strict=True)):
        run = None if index in invalid else next(runs)
        written = None
        if run is not None and run.result is not None and output is not None and name:
            written = save_text(output / name, run.result.output)
        rows.append(Row(path, run, written, invalid.get(index)))

    failed = [row for row in rows if row.run is None or not row.run.ok]
    code = 0
    if failed:
        all_unavailable = not invalid and all(row.run and row.run.exit_code == 3 for row in rows)
        code = 3 if all_unavailable else 1
    if as_json:
        results = []
        for row in rows:
            if row.run is None:
                results.append({"file": str(row.path), "ok": False, "error": row.error})
            else:
                results.append({"file": str(row.path), **run_payload(row.run, path=row.written)})
        payload = {"ok": not failed, "task": "stt", "results": results}
        if code:
            payload |= {"error": f"{len(failed)} of {len(rows)} files failed", "exit_code": code}
        typer.echo(json.dumps(payload, ensure_ascii=False))
    elif output is None:
        for row in rows:
            if row.run is not None and row.run.result is not None:
                typer.echo(f"==> {row.path} <==\n{row.run.result.output}")
    _summary(rows, verbose, with_outputs=output is not None)
    if code:
        raise typer.Exit(code)


@dataclass(frozen=True)
class Row:
    """One input of the batch: its run (None when the file was unusable) and where it went."""

    path: Path
    run: RunResult | None
    written: Path | None
    error: str | None


def _summary(rows: list[Row], verbose: bool, *, with_outputs: bool) -> None:
    """Each file's provider, outcome and output file, then the count per provider (stderr)."""
    from scheduler.cli.render import Column, console, fit_table, trace_line, trace_lines

    columns = [
        Column("file"),  # never cut: a path cut in two can't be found or pasted
        Column("provider"),
        Column("outcome"),
        Column("audio s", 2, "right"),
        *([Column("output")] if with_outputs else []),
        Column("detail", 1, shrink=True),
    ]
    served: Counter[str] = Counter()
    lines = []
    for row in rows:
        written = [str(row.written) if row.written else "-"] if with_outputs else []
        if row.run is None:
            lines.append((str(row.path), "-", "invalid", "-", *written, row.error or ""))
            continue
        seconds = f"{row.run.task.audio_seconds:.1f}"  # type: ignore[union-attr]
        if row.run.ok:
            served[row.run.provider or "?"] += 1
            lines.append((str(row.path), row.run.provider or "", "ok", seconds, *written, ""))
        else:
            lines.append((str(row.path), "-", "failed", seconds, *written, trace_line(row.run)))
    out = console(stderr=True)
    out.print(fit_table(columns, lines, out.width, title="Batch summary"))
    done = sum(served.values())
    by_provider = ", ".join(f"{name} {count}" for name, count in served.most_common())
    out.print(
        f"{done}/{len(rows)} transcribed" + (f": {by_provider}" if by_provider else ""),
        highlight=False,
    )
    if verbose:
        for row in rows:
            if row.run is not None:
                for line in trace_lines(row.run):
                    out.print(line, highlight=False)


__all__ = ["Row", "run_stt_batch", "stt_task"]
