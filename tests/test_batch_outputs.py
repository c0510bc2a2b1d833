"""A batch never overwrites its own outputs: inputs that share a name or a stem get distinct
transcript files, and the summary names the file each input went to."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler import media
from scheduler.cli.outputs import text_bytes, transcript_names
from tests.cli_inprocess import sched
from tests.conftest import write_config
from tests.fakes import openai_shapes as openai
from tests.fakes.audio import write_wav
from tests.fakes.server import FakeServer

WHISPER = "whisper-large-v3-turbo"


def test_names_are_distinct_for_shared_names_and_stems() -> None:
    files = [Path("a/x.wav"), Path("b/x.wav"), Path("clash.wav"), Path("clash.mp3"), Path("y.wav")]
    assert transcript_names(files) == [
        "a-x.wav.txt", "b-x.wav.txt", "clash.wav.txt", "clash.mp3.txt", "y.txt",
    ]  # fmt: skip
    # the same file twice, and names that differ only in case
    assert transcript_names([Path("s.wav"), Path("s.wav")]) == ["s.txt", "s-2.txt"]
    assert transcript_names([Path("A.wav"), Path("a.wav")]) == ["A.txt", "a-2.txt"]


def test_a_text_file_ends_with_one_newline() -> None:
    assert text_bytes("hello") == b"hello\n"
    assert text_bytes("hello\n\n") == b"hello\n"


@pytest.fixture
def groq(tmp_path: Path, fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    body = (
        f"adapter: openai\nbase_url: {fake.url}{openai.base_path('groq')}\napi_key_env: GROQ_KEY\n"
        f"models: {{stt: {WHISPER}}}"
    )
    write_config(tmp_path / "providers.yaml", {"groq": body}, {"stt": ["groq"]})
    monkeypatch.setenv("GROQ_KEY", "gsk_test_key_for_batches")
    replies = [
        openai.transcription_verbose(f" text {i}", [(0.0, 0.5, f" text {i}")], duration=0.5)
        for i in range(4)
    ]
    fake.route("POST", openai.transcriptions_path("groq"), *replies)
    return fake


def test_colliding_inputs_get_their_own_transcripts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, groq: FakeServer
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    inputs = [write_wav(tmp_path / "a" / "x.wav", 0.5), write_wav(tmp_path / "b" / "x.wav", 0.5)]
    inputs.append(write_wav(tmp_path / "clash.wav", 0.5))
    mp3 = tmp_path / "clash.mp3"
    mp3.write_bytes(media.convert_audio(inputs[0].read_bytes(), "mp3"))
    inputs.append(mp3)

    result = sched(capsys, "run", "stt", *map(str, inputs), "-o", "out", "--jobs", "1")

    assert result.code == 0, result.stderr
    out = tmp_path / "out"
    written = {path.name: path.read_text(encoding="utf-8") for path in out.iterdir()}
    assert written == {
        "a-x.wav.txt": "text 0\n",
        "b-x.wav.txt": "text 1\n",
        "clash.wav.txt": "text 2\n",
        "clash.mp3.txt": "text 3\n",
    }
    assert "4/4 transcribed: groq 4" in result.stderr
    for name in written:  # the summary names each input's output file
        assert str(Path("out") / name) in result.stderr


def test_json_names_each_output_and_the_summary_fits_80_columns(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    groq: FakeServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inputs = [str(write_wav(tmp_path / f"clip{i}.wav", 0.5)) for i in range(2)]
    monkeypatch.setenv("COLUMNS", "80")
    result = sched(capsys, "run", "stt", *inputs, "-o", "out", "--jobs", "1", "--json")
    assert result.code == 0
    paths = [item["path"] for item in result.json()["results"]]  # type: ignore[union-attr]
    assert paths == [str(Path("out") / "clip0.txt"), str(Path("out") / "clip1.txt")]
    assert all(len(line) <= 80 for line in result.stderr.splitlines())
