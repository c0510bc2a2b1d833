"""`sched init` in-process: .env from the key template at mode 0600, providers.yaml as the
packaged table, and nothing overwritten, ever (exit 2, one line, both files left as they were)."""

from __future__ import annotations

import os
import stat
from importlib import resources
from pathlib import Path

import pytest

from scheduler.config import parse_config
from tests.cli_inprocess import sched

ROOT = Path(__file__).parents[1]


def test_init_writes_env_0600_and_the_packaged_table(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    old = os.umask(0)  # the most permissive umask: the mode must not depend on it
    try:
        result = sched(capsys, "init")
    finally:
        os.umask(old)
    assert result.code == 0, result.stderr
    env = tmp_path / ".env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert env.read_text(encoding="utf-8") == (ROOT / ".env.example").read_text(encoding="utf-8")
    packaged = resources.files("scheduler").joinpath("providers.yaml").read_text(encoding="utf-8")
    table = tmp_path / "providers.yaml"
    assert table.read_text(encoding="utf-8") == packaged
    assert parse_config(table.read_text(encoding="utf-8")).tasks["tts"]  # a usable table
    assert result.stderr.splitlines()[:2] == [f"wrote {Path('.env')}", "wrote providers.yaml"]
    # The written table is the one `sched` now reads: config check finds it in the directory.
    checked = sched(capsys, "config", "check")
    assert checked.code == 0, checked.stderr


@pytest.mark.parametrize("existing", [[".env"], ["providers.yaml"], [".env", "providers.yaml"]])
def test_init_never_overwrites(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, existing: list[str]
) -> None:
    for name in existing:
        (tmp_path / name).write_text("mine\n", encoding="utf-8")
    result = sched(capsys, "init")
    assert result.code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("sched: error: ") and line.endswith("; not overwritten")
    for name in existing:
        assert name in line
        assert (tmp_path / name).read_text(encoding="utf-8") == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(existing)  # nothing else written


def test_init_does_not_write_through_a_planted_link(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "elsewhere"
    (tmp_path / ".env").symlink_to(target)  # dangling: exists() is False, the link is there
    result = sched(capsys, "init")
    assert result.code == 2
    assert not target.exists()


def test_init_into_a_named_directory_and_help_offers_no_force(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    assert sched(capsys, "init", str(folder)).code == 0
    assert {p.name for p in folder.iterdir()} == {".env", "providers.yaml"}
    help_text = sched(capsys, "init", "--help").stdout
    assert "--force" not in help_text
    assert sched(capsys, "init", str(tmp_path / "missing")).code == 2
