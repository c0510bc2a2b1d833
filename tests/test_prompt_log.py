"""settings.log_prompts: off, the ledger keeps no prompt; on, every calls row of a task keeps its
text, cut to a cap, and no key (the configured ones, or anything key-shaped) ever reaches it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from scheduler.prompt_log import MAX_PROMPT_CHARS, logged_prompt
from scheduler.tasks import ImagePart, ImageTask, Message, SttTask, TextTask, TtsTask
from tests.cli_inprocess import sched
from tests.conftest import openai_provider, write_config
from tests.fakes import openai_shapes as shapes
from tests.fakes.server import FakeServer, Reply

A_KEY = "a-secret-that-is-not-key-shaped"  # only its value being known can redact it
B_KEY = "sk-b-test-key-prompt-log"


@pytest.mark.parametrize(
    ("task", "kept"),
    [
        (TextTask(prompt="hi", system="be brief"), "system: be brief\nuser: hi"),
        (
            TextTask(
                messages=(
                    Message("user", ("what is this?", ImagePart(b"png", "image/png"))),
                    Message("assistant", "a cat"),
                )
            ),
            "user: what is this? [1 image]\nassistant: a cat",
        ),
        (TtsTask(text="say this"), "say this"),
        (ImageTask(prompt="a red fox"), "a red fox"),
        (SttTask(audio=Path("x.wav"), audio_seconds=1.0, mime_type="audio/wav"), None),
        (TextTask(prompt=f"use {A_KEY} and sk-proj-abcdefgh12345"), "user: use *** and ***"),
    ],
)
def test_what_a_task_leaves_in_its_calls_rows(task: object, kept: str | None) -> None:
    assert logged_prompt(task, [A_KEY, None]) == kept  # type: ignore[arg-type]


def test_a_long_prompt_is_cut_to_the_cap() -> None:
    kept = logged_prompt(TtsTask(text="word " * 5000), [])
    assert kept is not None and len(kept) == MAX_PROMPT_CHARS and kept.endswith("…")


def _setup(tmp_path: Path, fake: FakeServer, monkeypatch: pytest.MonkeyPatch, on: bool) -> None:
    providers = {
        name: openai_provider(fake.base_url(name), f"{name.upper()}_KEY", model=f"model-{name}")
        for name in ("a", "b")
    }
    settings = "log_prompts: true" if on else ""
    write_config(tmp_path / "providers.yaml", providers, {"text": ["a", "b"]}, settings=settings)
    monkeypatch.setenv("A_KEY", A_KEY)
    monkeypatch.setenv("B_KEY", B_KEY)
    fake.route("POST", shapes.chat_path("a"), Reply(500, json={"error": "down"}))
    fake.route("POST", shapes.chat_path("b"), default=shapes.chat_ok("fine"))


def _ledger_bytes(tmp_path: Path) -> bytes:
    return b"".join(path.read_bytes() for path in tmp_path.glob("quota.db*"))


def test_on_every_attempt_keeps_the_prompt_and_no_key_reaches_the_ledger(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    fake: FakeServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _setup(tmp_path, fake, monkeypatch, on=True)
    prompt = f"summarise this; my keys are {A_KEY} and {B_KEY}"
    assert sched(capsys, "run", "text", prompt, "--no-stream").code == 0

    shown = sched(capsys, "history", "--json")
    calls = shown.json()["calls"]
    assert [(c["provider"], c["outcome"]) for c in calls] == [("a", "transient"), ("b", "ok")]
    expected = "user: summarise this; my keys are *** and ***"
    assert [c["prompt"] for c in calls] == [expected, expected]
    table = sched(capsys, "history", "--prompts")
    assert table.code == 0 and "summarise this" in table.stdout and "note:" not in table.stderr
    for key in (A_KEY, B_KEY):
        assert key.encode() not in _ledger_bytes(tmp_path)
        assert key not in shown.stdout + table.stdout


def test_off_no_prompt_is_stored_and_history_says_how_to_turn_it_on(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    fake: FakeServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _setup(tmp_path, fake, monkeypatch, on=False)
    assert sched(capsys, "run", "text", "a private question", "--no-stream").code == 0

    with sqlite3.connect(tmp_path / "quota.db") as db:
        assert db.execute("SELECT count(*), count(prompt) FROM calls").fetchone() == (2, 0)
    assert b"private question" not in _ledger_bytes(tmp_path)
    table = sched(capsys, "history", "--prompts")
    assert table.code == 0
    assert "settings.log_prompts: true" in table.stderr
