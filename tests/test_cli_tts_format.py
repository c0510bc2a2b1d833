"""`sched run tts`: --format and -o's extension are inferred from each other, and the default
output name is in --help. Local espeak-ng speaks for real (a WAV, converted when asked)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.media import sniff_media_type
from tests.cli_inprocess import sched
from tests.conftest import write_config


@pytest.fixture(autouse=True)
def _local_tts(tmp_path: Path) -> None:
    local = "adapter: local\nmodels: {tts: en-us}"
    write_config(tmp_path / "providers.yaml", {"local": local}, {"tts": ["local"]})


@pytest.mark.parametrize(
    ("args", "written", "media_type"),
    [
        (["--format", "wav"], "speech.wav", "audio/wav"),
        ([], "speech.mp3", "audio/mpeg"),
        (["-o", "hello", "--format", "wav"], "hello.wav", "audio/wav"),
        (["-o", "hello"], "hello.mp3", "audio/mpeg"),
        (["-o", "hi.wav"], "hi.wav", "audio/wav"),
    ],
)
def test_format_and_extension_follow_each_other(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    args: list[str],
    written: str,
    media_type: str,
) -> None:
    result = sched(capsys, "run", "tts", "Hello.", *args)
    assert result.code == 0, result.stderr
    assert result.stderr.rstrip().endswith(f"→ {written}")
    assert sniff_media_type((tmp_path / written).read_bytes()[:16]) == media_type


def test_a_contradiction_is_refused_and_help_names_the_default(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = sched(capsys, "run", "tts", "Hello.", "-o", "x.mp3", "--format", "wav")
    assert bad.code == 2 and "--format wav does not match the output file x.mp3" in bad.stderr
    assert not (tmp_path / "x.mp3").exists()
    help_text = " ".join(sched(capsys, "run", "tts", "--help").stdout.split())
    assert "Default: speech.mp3, or speech.FORMAT with --format" in help_text.replace("│ ", "")
