"""The models-check cron job against wire-level fakes of the providers' list endpoints
(tests/fakes/model_lists.py names the page each shape is from): a configured model that vanished
is reported, marked retired and skipped by the next run at no cost; one listed again is unmarked;
providers that cannot be listed are reported and never marked."""

from __future__ import annotations

import json
import stat
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jobs.models_check import models_check
from scheduler.ledger import Ledger
from scheduler.ledger.models import mark_retired, published_prices, retired_models
from tests.conftest import clean_env, run_cli, write_config
from tests.fakes import model_lists, openai_shapes
from tests.fakes.server import FakeServer, Reply

OLD, NEW = "llama-3.3-70b-versatile", "openai/gpt-oss-120b"
BACK = "claude-haiku-4-5"
SECRETS = {
    "GROQ_API_KEY": "gsk_models_check_secret_0001",
    "ANTHROPIC_API_KEY": "sk-ant-models-check-secret-0002",
    "MISTRAL_API_KEY": "mistral-models-check-secret-0003",
}
HOOK = "/hooks/T000/B000/models-secret"


def _config(tmp_path: Path, fake: FakeServer) -> Path:
    groq = (
        f"adapter: openai\nbase_url: {fake.base_url('groq')}\napi_key_env: GROQ_API_KEY\n"
        f"models: {{text: [{OLD}, {NEW}]}}"
    )
    anthropic = (
        f"adapter: anthropic\nbase_url: {fake.url}\napi_key_env: ANTHROPIC_API_KEY\n"
        f"models: {{text: {BACK}}}"
    )
    mistral = (
        f"adapter: openai\nbase_url: {fake.base_url('mistral')}\napi_key_env: MISTRAL_API_KEY\n"
        "models: {text: mistral-small-latest}"
    )
    nokey = (
        f"adapter: openai\nbase_url: {fake.base_url('nokey')}\napi_key_env: NOKEY_API_KEY\n"
        "models: {text: some-model}"
    )
    return write_config(
        tmp_path / "providers.yaml",
        {"groq": groq, "anthropic": anthropic, "mistral": mistral, "nokey": nokey},
        {"text": ["groq", "anthropic", "mistral", "nokey"]},
        settings=f"cron: {{reports_dir: {tmp_path / 'reports'}}}",
    )


def _serve_lists(fake: FakeServer) -> None:
    # Groq's list no longer has the old Llama; Anthropic's has Haiku again; Mistral's list fails.
    fake.route("GET", "/groq/v1/models", default=model_lists.openai_models([NEW, "qwen/x"]))
    fake.route(
        "GET",
        "/v1/models",
        default=model_lists.anthropic_models_page([BACK, "claude-sonnet-4-5"], has_more=False),
    )
    fake.route("GET", "/mistral/v1/models", default=Reply(503, json={"message": "down"}))
    fake.route("POST", HOOK, Reply(200, body="ok"))


def test_a_vanished_model_is_reported_marked_and_posted_a_listed_one_unmarked(
    tmp_path: Path,
    fake: FakeServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    db_target: str,
) -> None:
    config = _config(tmp_path, fake)
    _serve_lists(fake)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SCHED_REPORT_WEBHOOK", f"{fake.url}{HOOK}")
    ledger = Ledger.open(db_target)
    # A mark from an earlier "model gone" answer, and one on a model the table does not use.
    mark_retired(ledger, "anthropic", BACK, "HTTP 404: model not found", now=1.0)
    mark_retired(ledger, "mistral", "mistral-small-latest", "HTTP 404: gone", now=2.0)

    # The real clock: a frozen one stalls psycopg's connect loop at the lowest versions
    # (.ci/lowest-versions: psycopg 3.2.1, time-machine 2.14).
    before = time.time()
    did: Any = models_check(str(config), db_target)
    after = time.time()

    assert did["listed"] == ["groq", "anthropic"]
    assert did["retired"] == [f"groq: {OLD}"]
    assert did["served_again"] == [f"anthropic: {BACK}"]
    assert did["not_listed"] == {
        "mistral": did["not_listed"]["mistral"],
        "nokey": "no NOKEY_API_KEY",
    }
    assert did["not_listed"]["mistral"].startswith("transient")
    assert did["webhook"] == "posted (HTTP 200)"

    # The ledger: groq's old model marked with the check's reason, Haiku unmarked, and the
    # failed Mistral listing left its mark alone (only a full listing says a model is gone).
    marks = {(m.provider, m.model): m for m in retired_models(ledger)}
    assert set(marks) == {("groq", OLD), ("mistral", "mistral-small-latest")}
    since = marks["groq", OLD].since
    assert before <= since <= after
    stamp = datetime.fromtimestamp(since, UTC)
    reason = f"not in groq's model list (models-check {stamp:%Y-%m-%dT%H:%M:%SZ})"
    assert marks["groq", OLD].reason == reason
    assert marks["mistral", "mistral-small-latest"].since == 2.0
    listed = ledger.read(
        "SELECT provider, model FROM model_state WHERE listed = 1 ORDER BY provider, model"
    )
    assert listed == [
        ("anthropic", BACK),
        ("anthropic", "claude-sonnet-4-5"),
        ("groq", NEW),
        ("groq", "qwen/x"),
    ]
    ledger.close()

    # The report file, for the owner only, says the same per provider.
    path = Path(did["path"])
    assert path == tmp_path / "reports" / f"models-check-{stamp:%Y%m%dT%H%M%SZ}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    report = json.loads(path.read_text())
    by_name = {p["provider"]: p for p in report["providers"]}
    assert by_name["groq"] == {
        "provider": "groq",
        "status": "ok",
        "listed_models": 2,
        "present": [NEW],
        "retired": [OLD],
        "still_retired": [],
        "served_again": [],
    }
    assert by_name["anthropic"]["served_again"] == [BACK]
    assert by_name["nokey"] == {
        "provider": "nokey",
        "status": "skipped",
        "reason": "no NOKEY_API_KEY",
    }

    # The webhook got the message, and each list call carried its own provider's key only.
    [posted] = fake.requests(HOOK)
    text = posted.json()["text"]
    assert text.startswith(f"sched models check, {stamp:%Y-%m-%dT%H:%M:%SZ}\n")
    assert f"  groq: 1 of the table's models listed; gone, now marked retired: {OLD}" in text
    assert f"  anthropic: 1 of the table's models listed; listed again: {BACK}" in text
    assert "  mistral: not listed (failed: transient" in text
    [groq] = fake.requests("/groq/v1/models")
    assert groq.headers["authorization"] == f"Bearer {SECRETS['GROQ_API_KEY']}"
    [anthropic] = fake.requests("/v1/models")
    assert anthropic.headers["x-api-key"] == SECRETS["ANTHROPIC_API_KEY"]
    assert fake.count("/nokey/v1/models") == 0
    recorded = json.dumps(_job_runs(db_target))
    for secret in (*SECRETS.values(), "models-secret"):
        assert secret not in json.dumps(did)
        assert secret not in text
        assert secret not in path.read_text()
        assert secret not in caplog.text
        assert secret not in recorded


def test_a_second_check_keeps_the_first_date_and_the_next_run_skips_at_no_cost(
    tmp_path: Path, fake: FakeServer
) -> None:
    config = _config(tmp_path, fake)
    _serve_lists(fake)
    chat = openai_shapes.chat_path("groq")
    fake.route("POST", chat, default=openai_shapes.chat_ok("from the next model", model=NEW))
    env = clean_env(**SECRETS)

    first = run_cli("--config", str(config), "cron", "run", "models-check", env=env)
    assert first.code == 0, first.stderr
    assert json.loads(first.stdout)["did"]["retired"] == [f"groq: {OLD}"]
    again = run_cli("--config", str(config), "cron", "run", "models-check", env=env)
    assert again.code == 0, again.stderr
    did = json.loads(again.stdout)["did"]
    assert did["retired"] == []  # already marked: reported as still retired, not re-marked
    report = json.loads(Path(did["path"]).read_text())
    groq = next(p for p in report["providers"] if p["provider"] == "groq")
    assert groq["still_retired"] == [OLD]
    with closing(Ledger.open(str(tmp_path / "quota.db"))) as ledger:
        [mark] = retired_models(ledger, "groq")
        assert published_prices(ledger, "groq") == {}  # Groq's list publishes no prices
    assert _job_runs(str(tmp_path / "quota.db")) == [("models-check", 1), ("models-check", 1)]

    run = run_cli("--config", str(config), "run", "text", "hi", env=env)
    assert (run.code, run.stdout.strip()) == (0, "from the next model"), run.stderr
    assert f"groq: model {OLD} retired on " in run.stderr
    assert [r.json()["model"] for r in fake.requests(chat)] == [NEW]  # never the retired one
    assert mark.model == OLD


def test_cron_list_and_help_name_the_job(tmp_path: Path, fake: FakeServer) -> None:
    config = _config(tmp_path, fake)
    listed = run_cli("--config", str(config), "cron", "list", "--json")
    assert listed.code == 0, listed.stderr
    rows = {row["job"]: row for row in listed.json()["jobs"]}  # type: ignore[union-attr]
    assert rows["models-check"]["function"] == "jobs.models_check:models_check"
    assert rows["models-check"]["schedule"] == "weekly mon 08:30"
    helped = run_cli("cron", "run", "--help")
    assert "models-check" in helped.stdout
    unknown = run_cli("--config", str(config), "cron", "run", "model-check")
    assert unknown.code == 2 and "models-check" in unknown.stderr


def _job_runs(db: str) -> list[tuple[object, ...]]:
    with closing(Ledger.open(db)) as ledger:
        return ledger.read("SELECT job, ok FROM job_runs ORDER BY id")
