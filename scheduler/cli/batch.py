"""Several speech files in one run: concurrent, with a progress bar and a summary at the end.

A file that cannot be used (missing, not audio) fails on its own line without a call; the other
files go on. The exit code is 0 when every file was transcribed, 3 when no provider was available
for any, 1 otherwise.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from scheduler.cli.context import AppState
    from scheduler.dispatcher import RunResult
    from scheduler.options import RunOptions
    from scheduler.tasks import SttTask


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
    tasks: list[SttTask] = []
    invalid: dict[Path, str] = {}
    for path in files:
        try:
            tasks.append(stt_task(path, language, model))
        except InputError as exc:
            invalid[path] = str(exc)
    runs = _dispatch(state, list(tasks), options, jobs=jobs, progress=True) if tasks else []
    by_file: dict[Path, RunResult] = {run.task.audio: run for run in runs}  # type: ignore[union-attr]

    rows = []
    for path in files:
        run = by_file.get(path)
        written = None
        if run is not None and run.result is not None and output is not None:
            written = output / f"{path.stem}.txt"
            written.write_text(run.result.output, encoding="utf-8")
        rows.append((path, run, written))

    if as_json:
        results = []
        for path, run, written in rows:
            if run is None:
                results.append({"file": str(path), "ok": False, "error": invalid[path]})
            else:
                results.append({"file": str(path), **run_payload(run, path=written)})
        ok = all(item["ok"] for item in results)
        typer.echo(json.dumps({"ok": ok, "task": "stt", "results": results}, ensure_ascii=False))
    elif output is None:
        for path, run, _ in rows:
            if run is not None and run.result is not None:
                typer.echo(f"==> {path} <==\n{run.result.output}")
    _summary(rows, invalid, verbose)
    failed = [path for path, run, _ in rows if run is None or not run.ok]
    if failed:
        all_unavailable = not invalid and all(run.exit_code == 3 for run in runs)
        raise typer.Exit(3 if all_unavailable else 1)


def _summary(
    rows: list[tuple[Path, RunResult | None, Path | None]],
    invalid: dict[Path, str],
    verbose: bool,
) -> None:
    """Each file's provider and outcome, then the count per provider, on standard error."""
    from rich.console import Console
    from rich.table import Table

    from scheduler.cli.render import trace_line, trace_lines

    table = Table(title="Batch summary", title_justify="left")
    table.add_column("file", no_wrap=True)  # a path cut in two can't be found or pasted
    for column in ("provider", "outcome", "audio s"):
        table.add_column(column, no_wrap=True)
    table.add_column("detail", overflow="fold")
    served: Counter[str] = Counter()
    for path, run, _ in rows:
        if run is None:
            table.add_row(str(path), "-", "invalid", "-", invalid[path])
            continue
        seconds = f"{run.task.audio_seconds:.1f}"  # type: ignore[union-attr]
        if run.ok:
            served[run.provider or "?"] += 1
            table.add_row(str(path), run.provider or "", "ok", seconds, "")
        else:
            table.add_row(str(path), "-", "failed", seconds, trace_line(run))
    console = Console(stderr=True, width=200)
    console.print(table)
    done = sum(served.values())
    by_provider = ", ".join(f"{name} {count}" for name, count in served.most_common())
    console.print(f"{done}/{len(rows)} transcribed" + (f": {by_provider}" if by_provider else ""))
    if verbose:
        for _, run, _ in rows:
            if run is not None:
                for line in trace_lines(run):
                    console.print(line, highlight=False)


__all__ = ["run_stt_batch", "stt_task"]
