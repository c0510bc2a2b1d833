"""Issue 11, class 7: output files are safe, and a paid answer survives an unwritable output.

Real `sched` processes against a fake provider: a symlink planted at the old predictable
temporary name is never written through; an output path that fails only after the call (its
directory removed meanwhile, a /proc path, a full disk) leaves the answer in a file the one-line
error names, and the call is still counted.
"""

from __future__ import annotations

import base64
import io
import os
import re
import sqlite3
from pathlib import Path

import pytest

from scheduler import media
from scheduler.tasks import ProviderResult
from tests.conftest import CliResult, clean_env, run_cli, write_config
from tests.fakes.server import FakeServer, Reply


def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 10, 10)).save(out, format="PNG")
    return out.getvalue()


PNG = _png()


def _image_config(tmp_path: Path, fake: FakeServer) -> Path:
    encoded = base64.b64encode(PNG).decode("ascii")
    fake.route("POST", "/v1/images/generations", Reply(json={"data": [{"b64_json": encoded}]}))
    body = f"adapter: openai\nbase_url: {fake.url}/v1\napi_key_env: A_API_KEY\nmodels: {{image: m}}"
    return write_config(tmp_path / "p.yaml", {"a": body}, {"image": ["a"]})


def _run_image(tmp_path: Path, fake: FakeServer, output: str) -> CliResult:
    config = _image_config(tmp_path, fake)
    return run_cli(
        "--config",
        str(config),
        "run",
        "image",
        "x",
        "-o",
        output,
        env=clean_env(A_API_KEY="k"),
        cwd=tmp_path,
    )


def _outcomes(tmp_path: Path) -> list[str]:
    with sqlite3.connect(tmp_path / "quota.db") as conn:
        return [row[0] for row in conn.execute("SELECT outcome FROM calls")]


def test_a_planted_symlink_at_the_old_temp_name_is_not_followed(
    tmp_path: Path, fake: FakeServer
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious", encoding="utf-8")
    (tmp_path / ".out.png.partial").symlink_to(victim)
    result = _run_image(tmp_path, fake, "out.png")
    assert result.code == 0, result.stderr
    assert victim.read_text(encoding="utf-8") == "precious"
    assert (tmp_path / "out.png").read_bytes() == PNG
    assert not [
        p
        for p in tmp_path.iterdir()
        if p.name.startswith(".out.png.") and p.name != ".out.png.partial"
    ]


def test_a_symlink_at_the_output_is_replaced_not_written_through(
    tmp_path: Path, fake: FakeServer
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious", encoding="utf-8")
    (tmp_path / "out.png").symlink_to(victim)
    result = _run_image(tmp_path, fake, "out.png")
    assert result.code == 0, result.stderr
    assert victim.read_text(encoding="utf-8") == "precious"
    assert not (tmp_path / "out.png").is_symlink()


def _rescued(result: CliResult) -> Path:
    assert result.code == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("sched: error:")]
    assert len(lines) == 1, result.stderr
    found = re.search(r"the answer is saved in (\S+)$", lines[0])
    assert found, lines[0]
    return Path(found.group(1))


def test_a_proc_output_path_is_refused_before_any_call(tmp_path: Path, fake: FakeServer) -> None:
    """/proc refuses new files: found by the pre-flight check, so nothing is called or spent."""
    result = _run_image(tmp_path, fake, "/proc/self/out.png")
    assert result.code == 2
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not fake.requests()


def test_a_directory_removed_after_the_check_leaves_the_answer_in_the_working_directory(
    tmp_path: Path, fake: FakeServer
) -> None:
    """The output directory vanishes while the provider works: the fake removes it on request."""
    gone = tmp_path / "gone"
    gone.mkdir()
    encoded = base64.b64encode(PNG).decode("ascii")

    class Removing(Reply):
        def encode(self) -> tuple[bytes, dict[str, str]]:
            if gone.exists():
                gone.rmdir()
            return super().encode()

    config = _image_config(tmp_path, fake)
    fake.route("POST", "/v1/images/generations", Removing(json={"data": [{"b64_json": encoded}]}))
    result = run_cli(
        "--config",
        str(config),
        "run",
        "image",
        "x",
        "-o",
        str(gone / "out.png"),
        env=clean_env(A_API_KEY="k"),
        cwd=tmp_path,
    )
    saved = _rescued(result)
    assert "cannot write" in result.stderr and "No such file or directory" in result.stderr
    assert saved.read_bytes() == PNG
    assert _outcomes(tmp_path) == ["ok"]


def test_an_unwritable_directory_rescues_to_the_working_directory(tmp_path: Path) -> None:
    """mkstemp fails in the target's directory (/proc refuses new files, even to root)."""
    result = ProviderResult(output="", model="m", usage={}, data=PNG, media_type="image/png")
    saved = media.save_or_rescue(result, Path("/proc/self/task/out.png"))
    assert saved.rescued and saved.path is not None
    assert saved.path.parent == tmp_path.resolve()
    assert saved.path.read_bytes() == PNG
    assert saved.note is not None and str(saved.path) in saved.note


def test_text_with_nowhere_to_go_is_returned_for_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every place fails: a transcript is still the caller's to print (path None)."""
    monkeypatch.setattr(media, "_rescue_dirs", lambda target: [Path("/proc/self")])
    result = ProviderResult(output="the transcript", model="m", usage={})
    saved = media.save_or_rescue(result, Path("/proc/self/out.txt"))
    assert saved.rescued and saved.path is None
    assert saved.note is not None and "nor anywhere else" in saved.note


def test_the_temporary_file_is_exclusive_and_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    media.write_atomically(target, b"one")
    media.write_atomically(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
