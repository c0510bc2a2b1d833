"""Shared fixtures: every test runs in its own directory with no keys and no SCHED_* settings."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fakes.server import FakeServer

REPO = Path(__file__).resolve().parents[1]


def _is_app_or_key_variable(name: str) -> bool:
    return name.startswith("SCHED_") or name.endswith(("_API_KEY", "_API_TOKEN", "_KEY"))


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory (so ./quota.db and ./.env are the test's own) and a clean
    environment: a developer's real keys must never reach a test, let alone a provider."""
    for name in list(os.environ):
        if _is_app_or_key_variable(name):
            monkeypatch.delenv(name)
    # No terminal size from outside (pytest-xdist's workers set COLUMNS=80): a test that needs a
    # width sets it, and output to a pipe is as wide as the CLI makes it.
    for name in ("COLUMNS", "LINES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


PG_URL = os.environ.get("SCHED_TEST_PG", "postgresql+psycopg://127.0.0.1:5432/test")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_target(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A fresh ledger location on each backend: a SQLite file, or a PostgreSQL schema of its own
    on the server this machine runs (dropped afterwards). Ledgers the test opens are closed."""
    from scheduler.ledger import Ledger

    opened: list[Ledger] = []
    original = Ledger.open.__func__  # type: ignore[attr-defined]

    def tracking_open(cls: type[Ledger], target: str, **kwargs: object) -> Ledger:
        ledger: Ledger = original(cls, target, **kwargs)
        opened.append(ledger)
        return ledger

    monkeypatch.setattr(Ledger, "open", classmethod(tracking_open))
    backend = _backend(request.param, tmp_path)
    try:
        yield next(backend)
    finally:
        for ledger in opened:  # close before the schema is dropped
            ledger.close()
        next(backend, None)


def _backend(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield str(tmp_path / "quota.db")
        return
    import uuid

    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin_url = "postgresql://" + PG_URL.split("://", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    """A local HTTP server answering as the providers document, scripted per test."""
    with FakeServer() as server:
        yield server


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, object]:
        data: dict[str, object] = json.loads(self.stdout)
        return data


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without keys or SCHED_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not _is_app_or_key_variable(k)}
    env.update(extra)
    return env


def at_a_terminal() -> None:
    """preexec_fn of a process the test will Ctrl-C: SIGINT as a terminal delivers it. A test
    run started in the background by a shell without job control (CI scripts, `cmd &` in a
    script) inherits SIGINT ignored, and Python keeps an ignored SIGINT ignored: the child
    would never see the test's Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(
    *args: str, env: dict[str, str] | None = None, input: str | None = None, cwd: Path | None = None
) -> CliResult:
    """Run the real `sched` in a subprocess, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "scheduler", *args],
        capture_output=True,
        text=True,
        env=env if env is not None else clean_env(),
        input=input,
        cwd=cwd,
        timeout=120,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def write_config(
    path: Path, providers: dict[str, str], tasks: dict[str, list[str]], settings: str = ""
) -> Path:
    """A providers.yaml from YAML snippets per provider (indented under the provider name)."""
    lines = []
    if settings:
        lines += ["settings:", *(f"  {line}" for line in settings.strip().splitlines())]
    lines.append("providers:")
    for name, body in providers.items():
        lines.append(f"  {name}:")
        lines += [f"    {line}" for line in body.strip().splitlines()]
    lines.append("tasks:")
    for kind, names in tasks.items():
        lines.append(f"  {kind}: [{', '.join(names)}]")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def openai_provider(base_url: str, key_env: str, quotas: str = "", model: str = "m") -> str:
    """The YAML body of an OpenAI-compatible provider entry pointing at a fake."""
    body = (
        f"adapter: openai\nbase_url: {base_url}\napi_key_env: {key_env}\nmodels: {{text: {model}}}"
    )
    if quotas:
        body += "\nquotas:\n" + "\n".join(f"  - {rule}" for rule in quotas.strip().splitlines())
    return body


# -- sched serve in a real process ---------------------------------------------------------

GATEWAY_PATIENCE_S = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(
    tmp_path: Path,
    config: Path,
    *args: str,
    db: str | None = None,
    keys: dict[str, str] | None = None,
) -> Iterator[str]:
    """`sched serve` on a free port until the block ends; yields its base URL."""
    port = _free_port()
    db = db or str(tmp_path / "quota.db")
    command = [sys.executable, "-m", "scheduler", "--config", str(config), "--db", db]
    command += ["serve", "--port", str(port), *args]
    proc = subprocess.Popen(
        command,
        env={**clean_env(), **(keys or {})},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + GATEWAY_PATIENCE_S
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "sched serve did not become healthy"
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=GATEWAY_PATIENCE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
