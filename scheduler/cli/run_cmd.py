"""`sched run KIND ...`: tasks through the priority table, one or a batch at a time.

Input is checked before anything is dispatched (files exist and decode, the output can be
written), so bad input costs no quota and exits with code 2. Results go to stdout or the output
file; the trace of who was tried goes to stderr.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from scheduler.cli.context import json_flag

if TYPE_CHECKING:
    from scheduler.cli.context import AppState
    from scheduler.dispatcher import RunResult
    from scheduler.options import RunOptions
    from scheduler.tasks import Task, TextTask

app = typer.Typer(help="Run a task on the first provider with quota left.", no_args_is_help=True)

Provider = Annotated[
    str | None,
    typer.Option(
        "--provider",
        "-p",
        metavar="NAME",
        help="Use only this provider (its quota rules still apply).",
    ),
]
Model = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Model name, overriding each provider's configured model."),
]
Json = Annotated[
    bool,
    json_flag(
        "Print one JSON object: ok, task, provider, model, output, path, attempts, usage, "
        "cost_usd (on failure: error and exit_code too)."
    ),
]
Verbose = Annotated[
    bool,
    typer.Option(
        "--verbose", "-v", help="Show every candidate with model, tries, latency and its error."
    ),
]
MaxTokens = Annotated[
    int | None,
    typer.Option("--max-tokens", min=1, help="Most tokens the answer may have (default 1024)."),
]
StrategyOpt = Annotated[
    str | None,
    typer.Option(
        "--strategy",
        help="priority (table order), cheapest (estimated cost of this task) or fastest "
        "(median latency over 24 h). Default: the table's setting.",
    ),
]
MaxCost = Annotated[
    float | None,
    typer.Option(
        "--max-cost", min=0, metavar="USD", help="Spend at most this many USD on this run."
    ),
]
FreeOnly = Annotated[
    bool, typer.Option("--free-only", help="Refuse every call that would cost money.")
]
_SIZE = re.compile(r"^[1-9]\d{1,4}x[1-9]\d{1,4}$")


def _read_text(value: str | None, what: str) -> str:
    """VALUE, or standard input when VALUE is '-' or absent and stdin is piped."""
    import sys

    from scheduler.errors import InputError

    source = f"the {what}"
    if value is None or value == "-":
        if value is None and sys.stdin.isatty():
            raise InputError(f"no {what}: pass it as an argument, or pipe it on standard input")
        source = "standard input"
        try:
            # `echo hi | sched ...` sends "hi\n": the newline is the shell's, not the prompt's.
            value = sys.stdin.read().rstrip("\r\n")
        except UnicodeDecodeError:
            raise InputError(_NOT_UTF8.format(source=source)) from None
    _utf8(value, source)
    if not value.strip():
        raise InputError(f"the {what} is empty")
    return value


_NOT_UTF8 = "{source} is not UTF-8 text; convert it first (e.g. iconv -t UTF-8)"


def _utf8(value: str, source: str) -> str:
    """VALUE, if it is text: under a C/POSIX locale or in UTF-8 mode Python lets undecodable
    bytes of stdin and argv through as lone surrogates, which crash the request mid-call."""
    from scheduler.errors import InputError

    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(_NOT_UTF8.format(source=source)) from None
    return value


def _options(
    provider: str | None, strategy: str | None, max_cost: float | None, free_only: bool
) -> RunOptions:
    """The run's options; a bad --strategy or --max-cost is an input error (exit 2)."""
    from scheduler.options import RunOptions

    return RunOptions(provider, strategy, max_cost, free_only)  # type: ignore[arg-type]


def _dispatch(
    state: AppState, tasks: list[Task], options: RunOptions, jobs: int = 1, progress: bool = False
) -> list[RunResult]:
    """Run `tasks` with at most `jobs` at once through one library `Scheduler`."""
    import asyncio

    from scheduler.dispatcher import check_provider

    if options.provider is not None:  # before the ledger is opened: bad input touches nothing
        check_provider(state.config(), options.provider)
    return asyncio.run(_run_all(state, tasks, options, jobs, progress))


async def _run_all(
    state: AppState, tasks: list[Task], options: RunOptions, jobs: int, progress: bool
) -> list[RunResult]:
    import asyncio

    limit = asyncio.Semaphore(jobs)
    async with state.scheduler() as scheduler:
        if not progress:
            return [await scheduler.run(task, options) for task in tasks]
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=Console(stderr=True),
        )

        async def one(task: Task) -> RunResult:
            async with limit:
                result = await scheduler.run(task, options)
            bar.advance(tracker, 1)
            return result

        with bar:
            tracker = bar.add_task(f"{tasks[0].kind} ({jobs} at once)", total=len(tasks))
            return list(await asyncio.gather(*(one(task) for task in tasks)))


def _stream(state: AppState, task: TextTask, options: RunOptions) -> RunResult:
    """Print the answer as it is written; the trace follows when it is done."""
    import asyncio
    import sys

    from scheduler.dispatcher import check_provider
    from scheduler.tasks import TextDelta

    if options.provider is not None:
        check_provider(state.config(), options.provider)

    async def go() -> RunResult:
        last = "\n"
        async with state.scheduler() as scheduler:
            async for event in scheduler.stream(task, options):
                if isinstance(event, TextDelta):
                    sys.stdout.write(event.text)
                    sys.stdout.flush()
                    last = event.text[-1:] or last
                    continue
                if last != "\n":
                    sys.stdout.write("\n")
                    sys.stdout.flush()
                return event
        raise AssertionError("a stream always ends with its RunResult")

    return asyncio.run(go())


def _report(
    run: RunResult,
    *,
    as_json: bool,
    verbose: bool,
    path: Path | None = None,
    printed: bool = False,
) -> None:
    """Print one run's result and trace; exit with its code when it failed."""
    from scheduler.cli.render import failure_reason, run_json, trace_line, trace_lines

    if as_json:
        typer.echo(run_json(run, path=path))
    elif run.result is not None and path is None and not printed:
        typer.echo(run.result.output)
    trace = trace_line(run)
    if path is not None and run.ok:
        trace += f" → {path}"
    typer.echo(trace, err=True)
    if verbose:
        for line in trace_lines(run):
            typer.echo(line, err=True)
    for note in run.notes:
        typer.echo(f"sched: note: {note}", err=True)
    if run.exit_code:  # the stderr line with or without --json: the JSON is on stdout
        typer.echo(f"sched: error: {failure_reason(run)}", err=True)
        raise typer.Exit(run.exit_code)


def _save_media(run: RunResult, path: Path, kind: str) -> Path:
    """Write an image, audio or transcript result (media.save_or_rescue converts, and keeps a
    paid answer when `path` fails); the path it is in, for the report."""
    from dataclasses import replace

    from scheduler import media
    from scheduler.errors import OutputError

    text_kind = kind in ("stt", "text")
    if run.result is None or (not text_kind and run.result.data is None):
        return path
    result = run.result
    if text_kind and not result.output.endswith("\n"):  # a text file ends with a newline
        result = replace(result, output=result.output + "\n")
    saved = media.save_or_rescue(result, path)
    if saved.rescued:
        if saved.path is None and run.result.data is None:
            typer.echo(run.result.output)  # the transcript itself, as the last place left
        raise OutputError(saved.note or f"cannot write {path}")
    if saved.note:
        typer.echo(f"sched: note: {saved.note}", err=True)
    return saved.path or path


@app.command("text")
def text(
    ctx: typer.Context,
    prompt: Annotated[
        str | None,
        typer.Argument(help="The prompt. '-' or nothing (with piped input) reads standard input."),
    ] = None,
    system: Annotated[str | None, typer.Option("--system", "-s", help="System prompt.")] = None,
    model: Model = None,
    provider: Provider = None,
    strategy: StrategyOpt = None,
    max_cost: MaxCost = None,
    free_only: FreeOnly = False,
    max_tokens: MaxTokens = None,
    temperature: Annotated[
        float | None,
        typer.Option("--temperature", "-t", min=0, max=2, help="Sampling temperature, 0 to 2."),
    ] = None,
    stop: Annotated[
        list[str] | None,
        typer.Option("--stop", help="Stop the answer at this text (repeatable)."),
    ] = None,
    stream: Annotated[
        bool | None,
        typer.Option(
            "--stream/--no-stream",
            help="Print the answer as it is written (default: when standard output is a "
            "terminal; --json always waits for the whole answer).",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the answer to this file instead of printing it (with --stream it is "
            "printed as it comes and written when whole).",
        ),
    ] = None,
    as_json: Json = False,
    verbose: Verbose = False,
) -> None:
    """Chat completion: print the answer of the first provider that can give it."""
    from scheduler import media
    from scheduler.tasks import TextTask

    if output is not None:  # before the call: an unwritable place costs no quota
        media.check_output_path(output, (output.suffix.lower() or ".txt",))

    task = TextTask(
        prompt=_read_text(prompt, "prompt"),
        system=_utf8(system, "--system") if system is not None else None,
        max_tokens=max_tokens,
        model=model,
        temperature=temperature,
        stop=tuple(stop or ()),
    )
    options = _options(provider, strategy, max_cost, free_only)
    if stream is None:
        import sys

        stream = sys.stdout.isatty()
    if stream and not as_json:
        run = _stream(ctx.obj, task, options)
    else:
        (run,) = _dispatch(ctx.obj, [task], options)
    saved = _save_media(run, output, "text") if output is not None else None
    printed = bool(stream and not as_json)
    kept = saved if run.result is not None else None
    _report(run, as_json=as_json, verbose=verbose, path=kept, printed=printed)


@app.command("image")
def image(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help="What to draw.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Image file to write (.png, .jpg, .webp).")
    ],
    size: Annotated[
        str | None, typer.Option("--size", metavar="WxH", help="WIDTHxHEIGHT, e.g. 1024x1024.")
    ] = None,
    model: Model = None,
    provider: Provider = None,
    strategy: StrategyOpt = None,
    max_cost: MaxCost = None,
    free_only: FreeOnly = False,
    as_json: Json = False,
    verbose: Verbose = False,
) -> None:
    """Text to image: write the first provider's picture to OUTPUT (converted to its type)."""
    from scheduler import media
    from scheduler.errors import InputError
    from scheduler.tasks import ImageTask

    if size is not None and not _SIZE.match(size):
        raise InputError(f"--size {size!r}: expected WIDTHxHEIGHT, e.g. 1024x1024")
    media.check_output_path(output, media.IMAGE_SUFFIXES)
    task = ImageTask(prompt=_read_text(prompt, "prompt"), size=size, model=model)
    (run,) = _dispatch(ctx.obj, [task], _options(provider, strategy, max_cost, free_only))
    saved = _save_media(run, output, "image")
    if size is not None and run.result is not None and run.result.data is not None:
        got = media.image_size(run.result.data)
        if got is not None and f"{got[0]}x{got[1]}" != size:
            typer.echo(
                f"sched: note: asked for {size}, {run.provider} drew {got[0]}x{got[1]}", err=True
            )
    _report(run, as_json=as_json, verbose=verbose, path=saved if run.ok else None)


@app.command("tts")
def tts(
    ctx: typer.Context,
    text: Annotated[
        str | None, typer.Argument(help="Text to speak. '-' or nothing reads standard input.")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Audio file to write (.mp3, .wav, .opus). Default: speech.mp3, or "
            "speech.FORMAT with --format; a name without extension gets --format's.",
        ),
    ] = None,
    voice: Annotated[str | None, typer.Option("--voice", help="Provider voice name or id.")] = None,
    audio_format: Annotated[
        str | None,
        typer.Option(
            "--format", help="mp3, wav or opus (default: from OUTPUT's extension, else mp3)."
        ),
    ] = None,
    model: Model = None,
    provider: Provider = None,
    strategy: StrategyOpt = None,
    max_cost: MaxCost = None,
    free_only: FreeOnly = False,
    as_json: Json = False,
    verbose: Verbose = False,
) -> None:
    """Text to speech: write the first provider's audio to OUTPUT (converted to its format)."""
    from scheduler import media
    from scheduler.errors import InputError
    from scheduler.tasks import AUDIO_FORMATS, TtsTask

    if audio_format is not None and audio_format not in AUDIO_FORMATS:
        raise InputError(f"--format {audio_format!r}: expected one of mp3, wav, opus")
    if output is None:
        output = Path(f"speech.{audio_format or 'mp3'}")
    elif not output.suffix:  # `-o hello --format wav` is hello.wav; `-o hello` is hello.mp3
        output = output.with_name(f"{output.name}.{audio_format or 'mp3'}")
    media.check_output_path(output, media.AUDIO_SUFFIXES)
    from_suffix = media.AUDIO_SUFFIXES[output.suffix.lower()]
    if audio_format is not None and audio_format != from_suffix:
        raise InputError(f"--format {audio_format} does not match the output file {output.name}")
    task = TtsTask(text=_read_text(text, "text"), voice=voice, format=from_suffix, model=model)
    (run,) = _dispatch(ctx.obj, [task], _options(provider, strategy, max_cost, free_only))
    saved = _save_media(run, output, "tts")
    _report(run, as_json=as_json, verbose=verbose, path=saved if run.ok else None)


@app.command("multimodal")
def multimodal(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help="The question about the file.")],
    image_file: Annotated[
        Path | None, typer.Option("--image", help="An image (PNG, JPEG, WEBP, GIF).")
    ] = None,
    audio_file: Annotated[
        Path | None, typer.Option("--audio", help="An audio file (anything FFmpeg reads).")
    ] = None,
    model: Model = None,
    provider: Provider = None,
    strategy: StrategyOpt = None,
    max_cost: MaxCost = None,
    free_only: FreeOnly = False,
    max_tokens: MaxTokens = None,
    as_json: Json = False,
    verbose: Verbose = False,
) -> None:
    """A prompt about one image or audio file; prints the answer."""
    from scheduler import media
    from scheduler.errors import InputError
    from scheduler.tasks import MultimodalTask

    if (image_file is None) == (audio_file is None):
        raise InputError("give exactly one of --image FILE or --audio FILE")
    if image_file is not None:
        task = MultimodalTask(
            prompt=_read_text(prompt, "prompt"),
            media=image_file,
            mime_type=media.probe_image(image_file),
            max_tokens=max_tokens,
            model=model,
        )
    else:
        assert audio_file is not None
        info = media.probe_audio(audio_file)
        task = MultimodalTask(
            prompt=_read_text(prompt, "prompt"),
            media=audio_file,
            mime_type=info.mime_type,
            audio_seconds=info.seconds,
            max_tokens=max_tokens,
            model=model,
        )
    (run,) = _dispatch(ctx.obj, [task], _options(provider, strategy, max_cost, free_only))
    _report(run, as_json=as_json, verbose=verbose)


@app.command("stt")
def stt(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="Audio files; several run as a batch.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Transcript file for one input; for a batch, a directory that gets NAME.txt "
            "per input. Default: print to standard output.",
        ),
    ] = None,
    language: Annotated[
        str | None, typer.Option("--language", help="Spoken language, e.g. en (default: detect).")
    ] = None,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", min=1, max=64, help="Files transcribed at once.")
    ] = 4,
    model: Model = None,
    provider: Provider = None,
    strategy: StrategyOpt = None,
    max_cost: MaxCost = None,
    free_only: FreeOnly = False,
    as_json: Json = False,
    verbose: Verbose = False,
) -> None:
    """Speech to text: print (or write) the transcript of each file."""
    from scheduler.cli import batch

    if len(files) == 1:
        from scheduler import media

        if output is not None:
            media.check_output_path(output, (output.suffix.lower() or ".txt",))
        task = batch.stt_task(files[0], language, model)
        (run,) = _dispatch(ctx.obj, [task], _options(provider, strategy, max_cost, free_only))
        saved = _save_media(run, output, "stt") if output is not None else None
        _report(run, as_json=as_json, verbose=verbose, path=saved if run.ok else None)
        return
    options = _options(provider, strategy, max_cost, free_only)
    batch.run_stt_batch(ctx.obj, files, output, language, model, options, jobs, as_json, verbose)


__all__ = ["app"]
