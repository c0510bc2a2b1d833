"""`sched run text` in-process: `-o FILE` writes the answer (not echoed; with --stream printed as
it comes and written too), and a piped prompt loses the newline the shell added."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tests.cli_inprocess import sched
from tests.conftest import openai_provider, write_config
from tests.fakes import openai_shapes as shapes
from tests.fakes.server import FakeServer, Reply


@pytest.fixture
def one_provider(tmp_path: Path, fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    write_config(
        tmp_path / "providers.yaml",
        {"a": openai_provider(fake.base_url("a"), "A_KEY")},
        {"text": ["a"]},
    )
    monkeypatch.setenv("A_KEY", "sk-a-0000000000000001")
    return fake


def test_output_file_gets_the_answer_and_stdout_stays_empty(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, one_provider: FakeServer
) -> None:
    one_provider.route("POST", shapes.chat_path("a"), default=shapes.chat_ok("Bonjour !"))
    out = tmp_path / "answer.md"
    result = sched(capsys, "run", "text", "hi", "-o", str(out), "--no-stream")
    assert result.code == 0, result.stderr
    assert result.stdout == ""
    assert out.read_text(encoding="utf-8") == "Bonjour !\n"
    assert result.stderr.rstrip().endswith(f"→ {out}")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".answer")] == []  # atomic


def test_json_names_the_output_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, one_provider: FakeServer
) -> None:
    one_provider.route("POST", shapes.chat_path("a"), default=shapes.chat_ok("Bonjour !"))
    result = sched(capsys, "run", "text", "hi", "-o", "a.txt", "--json")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["ok"], data["path"], data["output"]) == (True, "a.txt", "Bonjour !")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "Bonjour !\n"


def test_stream_prints_as_it_comes_and_writes_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, one_provider: FakeServer
) -> None:
    chunks = shapes.chat_stream_chunks(["Once ", "upon ", "a time."])
    one_provider.route("POST", shapes.chat_path("a"), default=Reply(chunks=chunks))
    result = sched(capsys, "run", "text", "hi", "-o", "story.txt", "--stream")
    assert result.code == 0, result.stderr
    assert result.stdout == "Once upon a time.\n"  # once, as it streamed, not echoed again
    assert (tmp_path / "story.txt").read_text(encoding="utf-8") == "Once upon a time.\n"
    assert one_provider.requests(shapes.chat_path("a"))[0].json()["stream"] is True


def test_an_unwritable_output_is_refused_before_the_call(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, one_provider: FakeServer
) -> None:
    one_provider.route("POST", shapes.chat_path("a"), default=shapes.chat_ok("never"))
    result = sched(capsys, "run", "text", "hi", "-o", str(tmp_path / "nowhere" / "a.txt"))
    assert result.code == 2
    assert "the directory" in result.stderr and "does not exist" in result.stderr
    assert one_provider.requests(shapes.chat_path("a")) == []


def test_a_piped_prompt_loses_the_shells_trailing_newline(
    capsys: pytest.CaptureFixture[str],
    one_provider: FakeServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    one_provider.route("POST", shapes.chat_path("a"), default=shapes.chat_ok("ok"))
    monkeypatch.setattr("sys.stdin", io.StringIO("  line one\nline two\n\n"))
    result = sched(capsys, "run", "text", "--no-stream")
    assert result.code == 0, result.stderr
    (request,) = one_provider.requests(shapes.chat_path("a"))
    messages = request.json()["messages"]
    assert messages[-1]["content"] == "  line one\nline two"  # inner newlines and indent kept
