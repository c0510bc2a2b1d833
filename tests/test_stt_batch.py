"""A batch of 20 audio files, 4 at a time: a 10-per-day first provider takes 10, the rest fall
over to the next; the progress bar, the summary and the output files show it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.conftest import clean_env, run_cli, write_config
from tests.fakes import huggingface_shapes as hf
from tests.fakes import openai_shapes as openai
from tests.fakes.audio import write_wav as _wav
from tests.fakes.server import FakeServer

WHISPER = "whisper-large-v3-turbo"
HF_MODEL = "openai/whisper-large-v3-turbo"


def test_batch_of_20_with_a_10_per_day_first_provider(tmp_path: Path, fake: FakeServer) -> None:
    groq_like = (
        f"adapter: openai\nbase_url: {fake.url}{openai.base_path('groq')}\napi_key_env: GROQ_KEY\n"
        f"models: {{stt: {WHISPER}}}\nquotas:\n  - {{metric: requests, limit: 10, per: day}}"
    )
    hugging = (
        f"adapter: huggingface\nbase_url: {fake.url}/hf\napi_key_env: HF_KEY\n"
        f"models: {{stt: {HF_MODEL}}}"
    )
    write_config(
        tmp_path / "providers.yaml", {"groq": groq_like, "hf": hugging}, {"stt": ["groq", "hf"]}
    )
    fake.route(
        "POST",
        openai.transcriptions_path("groq"),
        default=openai.transcription_verbose(
            " from groq", [(0.0, 0.5, " from groq")], duration=0.5
        ),
    )
    fake.route("POST", hf.model_path(HF_MODEL, "hf"), default=hf.asr_ok("from hf"))
    files = [str(_wav(tmp_path / f"clip{i:02d}.wav", 0.5 + i / 100)) for i in range(20)]
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....not audio at all")

    result = run_cli(
        "run", "stt", *files, str(broken), "--jobs", "4", "-o", "out",
        env=clean_env(GROQ_KEY="gsk_test", HF_KEY="hf_test"),
    )  # fmt: skip

    assert result.code == 1  # one file was unusable; the others went on
    assert fake.count(openai.transcriptions_path("groq")) == 10
    assert fake.count(hf.model_path(HF_MODEL, "hf")) == 10
    transcripts = {path.name: path.read_text() for path in (tmp_path / "out").iterdir()}
    assert len(transcripts) == 20
    assert sorted(transcripts.values()) == ["from groq\n"] * 10 + ["from hf\n"] * 10
    # the progress bar's final state and the summary, on stderr
    assert "20/20" in result.stderr
    assert "20/21 transcribed: groq 10, hf 10" in result.stderr
    assert "broken.wav" in result.stderr and "invalid" in result.stderr
    conn = sqlite3.connect(tmp_path / "quota.db")
    assert conn.execute(
        "SELECT used, reserved FROM usage_windows WHERE provider='groq'"
    ).fetchone() == (
        10.0,
        0.0,
    )
    assert conn.execute(
        "SELECT provider, COUNT(*) FROM calls WHERE outcome='ok' GROUP BY provider"
    ).fetchall() == [
        ("groq", 10),
        ("hf", 10),
    ]
    seconds = conn.execute(
        "SELECT SUM(json_extract(usage, '$.audio_seconds')) FROM calls"
    ).fetchone()[0]
    assert abs(seconds - sum(0.5 + i / 100 for i in range(20))) < 0.01  # measured per file


def test_batch_json_lists_each_file(tmp_path: Path, fake: FakeServer) -> None:
    groq_like = (
        f"adapter: openai\nbase_url: {fake.url}{openai.base_path('groq')}\napi_key_env: GROQ_KEY\n"
        f"models: {{stt: {WHISPER}}}"
    )
    write_config(tmp_path / "providers.yaml", {"groq": groq_like}, {"stt": ["groq"]})
    fake.route(
        "POST",
        openai.transcriptions_path("groq"),
        default=openai.transcription_verbose(" hi", [(0.0, 0.4, " hi")], duration=0.4),
    )
    files = [str(_wav(tmp_path / f"a{i}.wav", 0.4)) for i in range(3)]
    result = run_cli("run", "stt", *files, "--json", env=clean_env(GROQ_KEY="gsk_test"))
    assert result.code == 0
    data = result.json()
    assert data["ok"] is True and data["task"] == "stt"
    results = data["results"]
    assert [item["file"] for item in results] == files  # type: ignore[union-attr]
    assert all(item["provider"] == "groq" and item["output"] == "hi" for item in results)  # type: ignore[union-attr]
    assert results[0]["segments"] == [{"start": 0.0, "end": 0.4, "text": "hi"}]  # type: ignore[index]
