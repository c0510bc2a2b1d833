"""Bad input over the real CLI, one row per mistake a user can make.

Every row: exactly the expected message (one line naming the problem and what to do; a run where
no provider could be tried adds its trace line), the exit code of the design (2, or 3 when no
provider could be tried), no traceback, nothing on stdout, and the ledger left as it was: its
bytes unchanged (WAL and shared-memory files included) and `PRAGMA integrity_check` ok.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from scheduler.ledger.db import BUSY_TIMEOUT_S
from tests.cli_inprocess import sched
from tests.conftest import clean_env, openai_provider, write_config
from tests.fakes import openai_shapes as shapes
from tests.fakes.server import FakeServer

IS_ROOT = os.geteuid() == 0
ROOT_SKIP = "root reads and writes through any file mode, so chmod cannot make this fail"
KEYS = {"A_KEY": "sk-a", "B_KEY": "sk-b"}
PROVIDER = "  a:\n    adapter: openai\n    api_key_env: A_KEY\n    models: {text: m}\n"
QUOTAS = "    quotas:\n      - "
TASKS = "tasks:\n  text: [a]\n"
TOKENS_PER_MINUTE = "{metric: tokens, limit: 100, per: minute}"
LONG_PROMPT = "x" * 600  # 600 // 3 + 1 = 201 tokens, + 1 for the empty system prompt, + 1024 out


def _snapshot(db: Path) -> dict[str, str]:
    """Every byte of the ledger, its WAL and shared-memory files included."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(db.parent.glob(db.name + "*"))
    }


def _config(text: str) -> Callable[[Path], None]:
    def make(tmp: Path) -> None:
        (tmp / "bad.yaml").write_text(text, encoding="utf-8")

    return make


def _bytes(name: str, data: bytes, mode: int | None = None) -> Callable[[Path], None]:
    def make(tmp: Path) -> None:
        (tmp / name).write_bytes(data)
        if mode is not None:
            (tmp / name).chmod(mode)

    return make


def _dir(name: str, mode: int | None = None) -> Callable[[Path], None]:
    def make(tmp: Path) -> None:
        (tmp / name).mkdir()
        if mode is not None:
            (tmp / name).chmod(mode)

    return make


def _truncated_mp3(tmp: Path) -> None:
    (tmp / "cut.mp3").write_bytes(shapes.tiny_mp3(0.5)[:200])  # a real MP3, cut off


def _png_as_audio(tmp: Path) -> None:
    (tmp / "photo.png").write_bytes(shapes.tiny_png())


def _too_long_config(tmp: Path) -> None:
    """Two providers that both cap tokens per minute below the long prompt's estimate."""
    (tmp / "small.yaml").write_text(
        "providers:\n"
        f"{PROVIDER}{QUOTAS}{TOKENS_PER_MINUTE}\n"
        "  b:\n    adapter: openai\n    api_key_env: B_KEY\n    models: {text: m}\n"
        f"{QUOTAS}{TOKENS_PER_MINUTE}\n"
        "tasks:\n  text: [a, b]\n",
        encoding="utf-8",
    )


def _corrupt_ledger(tmp: Path) -> None:
    for path in tmp.glob("quota.db*"):
        path.unlink()
    (tmp / "quota.db").write_bytes(b"this is not a database" * 200)


# A WAV whose format chunk says it has zero channels.
ZERO_CHANNEL_WAV = (
    b"RIFF" + struct.pack("<I", 36 + 800) + b"WAVEfmt "
    + struct.pack("<IHHIIHH", 16, 1, 0, 16000, 0, 0, 16)
    + b"data" + struct.pack("<I", 800) + bytes(range(256)) * 3 + bytes(32)
)  # fmt: skip


@dataclass(frozen=True)
class Case:
    args: tuple[str | bytes, ...]
    stderr: str  # the whole of standard error
    setup: Callable[[Path], None] | None = None
    code: int = 2
    stdin: bytes | None = None
    lock_ledger: bool = False  # hold the write lock from this test while the CLI runs
    needs_non_root: bool = False


ERR = "sched: error: "
CASES: dict[str, Case] = {
    "invalid-yaml": Case(
        ("--config", "bad.yaml", "run", "text", "hi"),
        f"{ERR}bad.yaml:2: invalid YAML: found character that cannot start any token",
        _config("providers:\n\ta: {adapter: openai}\n"),
    ),
    "yaml-not-a-mapping": Case(
        ("--config", "bad.yaml", "run", "text", "hi"),
        f"{ERR}bad.yaml: expected a mapping with 'providers' and 'tasks' at the top",
        _config("- providers\n- tasks\n"),
    ),
    "unknown-key-in-provider": Case(
        ("--config", "bad.yaml", "run", "text", "hi"),
        f"{ERR}bad.yaml:6: providers.a.quota: unknown key; did you mean 'quotas'?",
        _config(
            f"providers:\n{PROVIDER}    quota:\n      - {{metric: requests, limit: 5, "
            f"per: day}}\n{TASKS}"
        ),
    ),  # fmt: skip
    "unknown-top-level-key": Case(
        ("--config", "bad.yaml", "run", "text", "hi"),
        f"{ERR}bad.yaml:1: setings: unknown key; did you mean 'settings'?",
        _config(f"setings:\n  timeout_s: 5\nproviders:\n{PROVIDER}{TASKS}"),
    ),
    "duplicate-provider-name": Case(
        ("--config", "bad.yaml", "run", "text", "hi"),
        f"{ERR}bad.yaml:6: providers.a: duplicate key 'a' (first defined on line 2)",
        _config(f"providers:\n{PROVIDER}{PROVIDER}{TASKS}"),
    ),
    "undefined-provider-in-tasks": Case(
        ("--config", "bad.yaml", "run", "text", "hi"),
        f"{ERR}bad.yaml:7: tasks.text[1]: unknown provider 'ghost'; defined providers: a",
        _config(f"providers:\n{PROVIDER}tasks:\n  text: [a, ghost]\n"),
    ),
    "negative-limit": Case(
        ("--config", "bad.yaml", "run", "text", "hi"),
        f"{ERR}bad.yaml:7: providers.a.quotas[0].limit: input should be greater than 0, got -5",
        _config(f"providers:\n{PROVIDER}{QUOTAS}{{metric: tokens, limit: -5, per: day}}\n{TASKS}"),
    ),
    "zero-limit": Case(
        ("--config", "bad.yaml", "run", "text", "hi"),
        f"{ERR}bad.yaml:7: providers.a.quotas[0].limit: input should be greater than 0, got 0",
        _config(f"providers:\n{PROVIDER}{QUOTAS}{{metric: requests, limit: 0, per: day}}\n{TASKS}"),
    ),
    "negative-budget": Case(
        ("--config", "bad.yaml", "run", "text", "hi"),
        f"{ERR}bad.yaml:2: settings.budget.daily_usd: input should be greater than or equal to 0,"
        " got -1",
        _config(f"settings:\n  budget: {{daily_usd: -1}}\nproviders:\n{PROVIDER}{TASKS}"),
    ),
    "zero-timeout": Case(
        ("--config", "bad.yaml", "run", "text", "hi"),
        f"{ERR}bad.yaml:2: settings.timeout_s: input should be greater than 0, got 0",
        _config(f"settings:\n  timeout_s: 0\nproviders:\n{PROVIDER}{TASKS}"),
    ),
    "unknown-time-zone": Case(
        ("--config", "bad.yaml", "run", "text", "hi"),
        f"{ERR}bad.yaml:7: providers.a.quotas[0].tz: unknown time zone 'Mars/Olympus_Mons'",
        _config(
            f"providers:\n{PROVIDER}{QUOTAS}{{metric: requests, limit: 5, per: day, "
            f"tz: Mars/Olympus_Mons}}\n{TASKS}"
        ),
    ),  # fmt: skip
    "missing-config-file": Case(
        ("--config", "nope.yaml", "run", "text", "hi"),
        f"{ERR}nope.yaml: config file not found (from --config); pass --config PATH or set"
        " SCHED_CONFIG",
    ),
    "unreadable-config-file": Case(
        ("--config", "locked.yaml", "run", "text", "hi"),
        f"{ERR}locked.yaml: cannot read: Permission denied",
        _bytes("locked.yaml", f"providers:\n{PROVIDER}{TASKS}".encode(), mode=0o000),
        needs_non_root=True,
    ),
    "config-not-utf8": Case(
        ("--config", "latin1.yaml", "run", "text", "hi"),
        f"{ERR}latin1.yaml: is not UTF-8 text",
        _bytes("latin1.yaml", f"# café\nproviders:\n{PROVIDER}{TASKS}".encode("latin-1")),
    ),
    "missing-audio-file": Case(("run", "stt", "nope.wav"), f"{ERR}nope.wav: no such file"),
    "unreadable-audio-file": Case(
        ("run", "stt", "secret.mp3"),
        f"{ERR}secret.mp3: cannot read it (permission denied)",
        _bytes("secret.mp3", b"ID3" + bytes(500), mode=0o000),
        needs_non_root=True,
    ),
    "directory-as-audio": Case(
        ("run", "stt", "recordings"),
        f"{ERR}recordings: is a directory, expected an audio file",
        _dir("recordings"),
    ),
    "directory-as-audio-for-multimodal": Case(
        ("run", "multimodal", "what is said?", "--audio", "recordings"),
        f"{ERR}recordings: is a directory, expected an audio file",
        _dir("recordings"),
    ),
    "zero-byte-audio": Case(
        ("run", "stt", "empty.wav"),
        f"{ERR}empty.wav: the file is empty, expected an audio file",
        _bytes("empty.wav", b""),
    ),
    "corrupt-audio-truncated-mp3": Case(
        ("run", "stt", "cut.mp3"),
        f"{ERR}cut.mp3: not a readable audio file (InvalidDataError)",
        _truncated_mp3,
    ),
    "corrupt-audio-zero-channel-wav": Case(
        ("run", "stt", "broken.wav"),
        f"{ERR}broken.wav: not a readable audio file (ArgumentError)",
        _bytes("broken.wav", ZERO_CHANNEL_WAV),
    ),
    "text-file-as-audio": Case(
        ("run", "stt", "notes.wav"),
        f"{ERR}notes.wav: not a readable audio file (InvalidDataError)",
        _bytes("notes.wav", b"meeting notes, not a recording\n" * 40),
    ),
    "image-as-audio": Case(
        ("run", "stt", "photo.png"), f"{ERR}photo.png: has no audio stream", _png_as_audio
    ),
    "text-file-as-image": Case(
        ("run", "multimodal", "what is this?", "--image", "notes.txt"),
        f"{ERR}notes.txt: not an image (PNG, JPEG, WEBP or GIF)",
        _bytes("notes.txt", b"meeting notes\n"),
    ),
    "non-utf8-stdin": Case(
        ("run", "text", "-"),
        f"{ERR}standard input is not UTF-8 text; convert it first (e.g. iconv -t UTF-8)",
        stdin="résumé in Latin-1\n".encode("latin-1"),
    ),
    "non-utf8-prompt-argument": Case(
        ("run", "text", "caf\xe9".encode("latin-1")),
        f"{ERR}the prompt is not UTF-8 text; convert it first (e.g. iconv -t UTF-8)",
    ),
    "non-utf8-system-prompt": Case(
        ("run", "text", "hi", "--system", b"\xff\xfebrief"),
        f"{ERR}--system is not UTF-8 text; convert it first (e.g. iconv -t UTF-8)",
    ),
    "prompt-longer-than-every-provider-accepts": Case(
        ("--config", "small.yaml", "run", "text", LONG_PROMPT),
        "a: this call needs 1226 tokens, more than the 100 tokens per minute limit · "
        "b: this call needs 1226 tokens, more than the 100 tokens per minute limit\n"
        f"{ERR}no provider was available for this text task",
        _too_long_config,
        code=3,
    ),
    "output-in-missing-directory": Case(
        ("run", "image", "a cat", "-o", "renders/cat.png"),
        f"{ERR}renders/cat.png: the directory renders does not exist",
    ),
    "transcript-in-missing-directory": Case(
        ("run", "stt", "cut.mp3", "-o", "texts/cut.txt"),
        f"{ERR}texts/cut.txt: the directory texts does not exist",
        _truncated_mp3,
    ),
    "output-in-read-only-directory": Case(
        ("run", "tts", "hello", "-o", "readonly/hello.mp3"),
        f"{ERR}readonly/hello.mp3: cannot write there (permission denied)",
        _dir("readonly", mode=0o555),
        needs_non_root=True,
    ),
    "output-under-a-file": Case(
        ("run", "image", "a cat", "-o", "notes.txt/cat.png"),
        f"{ERR}notes.txt/cat.png: notes.txt is not a directory",
        _bytes("notes.txt", b"meeting notes\n"),
    ),
    "batch-transcripts-under-a-file": Case(
        ("run", "stt", "one.mp3", "two.mp3", "-o", "notes.txt/texts"),
        f"{ERR}notes.txt/texts: cannot create the output directory (Not a directory)",
        _bytes("notes.txt", b"meeting notes\n"),
    ),
    "batch-transcripts-in-read-only-directory": Case(
        ("run", "stt", "one.mp3", "two.mp3", "-o", "readonly/texts"),
        f"{ERR}readonly/texts: cannot create the output directory (Permission denied)",
        _dir("readonly", mode=0o555),
        needs_non_root=True,
    ),
    "output-is-a-directory": Case(
        ("run", "image", "a cat", "-o", "cat.png"),
        f"{ERR}cat.png: is a directory, expected an output file name",
        _dir("cat.png"),
    ),
    "corrupt-ledger": Case(
        ("run", "text", "hi"),
        f"{ERR}quota.db: the ledger file is corrupt (file is not a database); move it aside to"
        " start a new one (usage counts restart from zero)",
        _corrupt_ledger,
    ),
    "ledger-locked-past-busy-timeout": Case(
        ("run", "text", "hi"),
        f"{ERR}quota.db: the ledger is locked by another process for more than 5 s; try again,"
        " or check for a stuck process",
        lock_ledger=True,
    ),
}


@pytest.fixture
def ledger_in_use(
    tmp_path: Path,
    fake: FakeServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """A real ledger with one served call in it, and a table whose provider answers (served
    in this process: only the bad input itself needs a real `sched` process)."""
    write_config(
        tmp_path / "providers.yaml",
        {
            "a": openai_provider(
                fake.base_url("a"), "A_KEY", quotas="{metric: requests, limit: 10, per: day}"
            )
        },
        {"text": ["a"]},
    )
    fake.route("POST", shapes.chat_path("a"), shapes.chat_ok("fine"))
    with monkeypatch.context() as env:
        for name, value in KEYS.items():
            env.setenv(name, value)
        assert sched(capsys, "run", "text", "hello").code == 0
    return tmp_path / "quota.db"


def _run(args: tuple[str | bytes, ...], stdin: bytes | None) -> tuple[int, str, str]:
    """The real `sched` with byte-exact arguments and standard input."""
    proc = subprocess.run(
        [sys.executable.encode(), b"-m", b"scheduler", *(os.fsencode(arg) for arg in args)],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        env=clean_env(**KEYS),
        timeout=120,
    )
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def _params() -> list[object]:
    return [
        pytest.param(
            case,
            id=name,
            marks=[pytest.mark.skipif(IS_ROOT, reason=ROOT_SKIP)] if case.needs_non_root else [],
        )
        for name, case in CASES.items()
    ]


@pytest.mark.parametrize("case", _params())
def test_bad_input_gives_one_clear_line_and_leaves_the_ledger_alone(
    ledger_in_use: Path, tmp_path: Path, fake: FakeServer, case: Case
) -> None:
    if case.setup is not None:
        case.setup(tmp_path)
    before = _snapshot(ledger_in_use)
    corrupt = ledger_in_use.read_bytes().startswith(b"this is not")
    served = len(fake.requests())

    started = time.monotonic()
    if case.lock_ledger:  # another process holds the write lock for longer than the CLI waits
        holder = sqlite3.connect(ledger_in_use, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            code, stdout, stderr = _run(case.args, case.stdin)
            holder.execute("ROLLBACK")
        finally:
            holder.close()
    else:
        code, stdout, stderr = _run(case.args, case.stdin)
    elapsed = time.monotonic() - started

    assert "Traceback" not in stderr
    assert stderr.splitlines() == case.stderr.splitlines()
    assert stderr.endswith("\n")
    assert (code, stdout) == (case.code, "")
    assert len(fake.requests()) == served  # no provider was called
    assert _snapshot(ledger_in_use) == before
    if case.lock_ledger:  # it waited the whole busy timeout, and not much longer
        assert BUSY_TIMEOUT_S == 5.0
        assert BUSY_TIMEOUT_S <= elapsed < BUSY_TIMEOUT_S + 10
    if not corrupt:
        conn = sqlite3.connect(ledger_in_use)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert conn.execute("SELECT used, reserved FROM usage_windows").fetchall() == [
                (1.0, 0.0)
            ]
            assert conn.execute("SELECT COUNT(*) FROM reservations").fetchone() == (0,)
        finally:
            conn.close()
