"""SCHED_LOAD pins the load reading; a value that is not a load is an error, never ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.errors import ConfigError
from scheduler.load import read_load
from tests.cli_inprocess import sched
from tests.conftest import openai_provider, write_config
from tests.fakes import local_shapes


@pytest.mark.parametrize("value", ["0.95", "0", "1.5"])
def test_a_pinned_load_is_read_as_given(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("SCHED_LOAD", value)
    reading = read_load()
    assert (reading.value, reading.source) == (float(value), "SCHED_LOAD")


@pytest.mark.parametrize("value", ["high", "95%", "-0.1", "nan", "inf"])
def test_an_invalid_pinned_load_is_an_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("SCHED_LOAD", value)
    with pytest.raises(ConfigError, match=r"^SCHED_LOAD=.*: expected a load from 0"):
        read_load()


def test_the_cli_says_so_in_one_line_with_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Local is in the order, so the dispatcher reads the load to place it."""
    port = local_shapes.closed_port()
    write_config(
        tmp_path / "providers.yaml",
        {
            "a": openai_provider(f"http://127.0.0.1:{port}/v1", "A_KEY"),
            "local": f"adapter: local\nbase_url: http://127.0.0.1:{port}/v1\nmodels: {{text: m}}",
        },
        {"text": ["a", "local"]},
    )
    monkeypatch.setenv("SCHED_LOAD", "busy")
    result = sched(capsys, "run", "text", "hi", "--no-stream")
    assert result.code == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "sched: error: SCHED_LOAD='busy': expected a load from 0 (idle) to 1 (busy), e.g. 0.95"
    )
