"""`providers list` shows what the ledger holds a provider back for; `providers enable` and
`providers reset` lift it by hand, through ledger functions."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_inprocess import sched
from tests.conftest import openai_provider, write_config
from tests.fakes import openai_shapes as shapes
from tests.fakes.server import FakeServer, Reply


@pytest.fixture
def held_back(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    fake: FakeServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`a` disabled by an auth failure, `b` cooling down after a 429, `c` answers."""
    providers = {
        name: openai_provider(fake.base_url(name), f"{name.upper()}_KEY") for name in "abc"
    }
    write_config(tmp_path / "providers.yaml", providers, {"text": ["a", "b", "c"]})
    for name in "abc":
        monkeypatch.setenv(f"{name.upper()}_KEY", f"sk-{name}-test-key-state")
    fake.route("POST", shapes.chat_path("a"), Reply(401, json={"error": "bad key"}))
    fake.route(
        "POST",
        shapes.chat_path("b"),
        Reply(429, json={"error": "slow"}, headers={"retry-after": "600"}),
    )
    fake.route("POST", shapes.chat_path("c"), default=shapes.chat_ok("fine"))
    assert sched(capsys, "run", "text", "hi").code == 0


def _statuses(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    result = sched(capsys, "providers", "list", "--json")
    assert result.code == 0
    return {row["provider"]: row["status"] for row in result.json()["providers"]}  # type: ignore[union-attr]


def test_list_shows_the_ledger_state_and_enable_and_reset_clear_it(
    capsys: pytest.CaptureFixture[str], held_back: None
) -> None:
    statuses = _statuses(capsys)
    assert statuses["a"].startswith("disabled: ")
    assert statuses["b"].startswith("cooling_down: ") and "(until " in statuses["b"]
    assert statuses["c"] == "configured"

    result = sched(capsys, "providers", "enable", "a")
    assert (result.code, result.stderr) == (0, "sched: a enabled\n")
    result = sched(capsys, "providers", "enable", "b")  # a cool-down is not a disable
    assert result.stderr == "sched: b was not disabled\n"
    assert _statuses(capsys) == {"a": "configured", "b": statuses["b"], "c": "configured"}

    result = sched(capsys, "providers", "reset", "b")
    assert (result.code, result.stderr) == (0, "sched: b reset\n")
    assert set(_statuses(capsys).values()) == {"configured"}
    assert sched(capsys, "providers", "reset", "b").stderr == "sched: b had nothing to reset\n"


def test_enable_of_an_unknown_provider_is_an_input_error(
    capsys: pytest.CaptureFixture[str], held_back: None
) -> None:
    result = sched(capsys, "providers", "enable", "zz")
    assert result.code == 2
    assert result.stderr == "sched: error: unknown provider 'zz'; known: a, b, c\n"


def test_list_without_a_ledger_does_not_create_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write_config(
        tmp_path / "providers.yaml", {"a": openai_provider("http://x", "A_KEY")}, {"text": ["a"]}
    )
    assert _statuses(capsys) == {"a": "no key"}
    assert not (tmp_path / "quota.db").exists()
