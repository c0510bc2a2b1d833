"""Local speech to text: raw faster-whisper vs `sched`'s local path on the same audio.

Both run in this one process with the model already loaded (its load time is reported apart).
espeak-ng speaks three sentences; each path transcribes them RUNS times; the script prints the
medians, the overhead of the dispatcher + ledger + adapter over the raw call, the real-time factor,
and the load count after every call (1: the model is never reloaded).

    python benchmarks/local_stt.py [--runs 15]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from scheduler import Scheduler
from scheduler.config import parse_config
from scheduler.media import probe_audio
from scheduler.providers.local import (
    ModelKey,
    _transcribe,
    model_loads,
    resolve_device,
    resolve_model,
    whisper_model,
)
from scheduler.tasks import SttTask

TEXT = (
    "The quick brown fox jumps over the lazy dog. "
    "Please schedule the meeting for next Tuesday afternoon. "
    "Free tiers reset at midnight, so plan your calls ahead of time."
)
CONFIG = """
settings: {prefer_local_below_load: null}
providers:
  local: {adapter: local, models: {stt: tiny.en}}
tasks:
  stt: [local]
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise SystemExit("espeak-ng is needed to make the audio: apt-get install espeak-ng")
    with tempfile.TemporaryDirectory() as tmp:
        audio = Path(tmp) / "speech.wav"
        subprocess.run([espeak, "--stdin", "-w", str(audio)], input=TEXT.encode(), check=True)
        info = probe_audio(audio)
        device, compute = resolve_device("auto", None)
        key = ModelKey(resolve_model("tiny.en"), device, compute)
        model = whisper_model(key)  # loaded once, here
        load = model_loads()[key]

        task = SttTask(audio=audio, audio_seconds=info.seconds, mime_type=info.mime_type)

        async def compare() -> tuple[list[float], list[float]]:
            """Alternate the two paths run by run, so a busy moment of the machine falls on
            both alike instead of on whichever ran second."""
            raw_times, sched_times = [], []
            async with Scheduler(parse_config(CONFIG), db=Path(tmp) / "quota.db", keys={}) as s:
                for _ in range(args.runs):
                    start = time.perf_counter()
                    _transcribe(model, audio, None, False)
                    raw_times.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    run = await s.run(task)
                    sched_times.append(time.perf_counter() - start)
                    assert run.provider == "local", run.attempts
            return raw_times, sched_times

        raw_times, sched_times = asyncio.run(compare())
    raw = statistics.median(raw_times)
    via = statistics.median(sched_times)
    print(f"audio {info.seconds:.2f} s; model tiny.en on {device} ({compute})")
    print(f"model load            {load.seconds:.2f} s (once; loads after all calls:"
          f" {model_loads()[key].loads})")  # fmt: skip
    print(f"raw faster-whisper    median {raw:.3f} s over {args.runs} runs")
    print(f"sched local path      median {via:.3f} s over {args.runs} runs")
    print(f"overhead              {(via - raw) / raw:+.1%} ({(via - raw) * 1000:+.1f} ms)")
    print(f"real-time factor      {raw / info.seconds:.3f} (raw), {via / info.seconds:.3f} (sched)")


if __name__ == "__main__":
    main()
