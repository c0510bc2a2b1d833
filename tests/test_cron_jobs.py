"""The cron jobs as plain functions: daily reset, failure report, health disable and re-probe,
free-quota check. No scheduler involved; the clock is controlled with time-machine."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine

from jobs import JobFailed
from jobs.daily_reset import daily_reset
from jobs.failure_report import failure_report
from jobs.probe_disabled import probe_disabled
from jobs.quota_check import quota_check
from scheduler.config.schema import QuotaRule
from scheduler.errors import QuotaExhausted
from scheduler.ledger import CallRecord, Hold, Ledger, Refusal
from scheduler.ledger.maintenance import (
    HEALTH_BLOCK_S,
    disable_unhealthy,
    percentile,
    prune_windows,
)
from tests.conftest import clean_env, openai_provider, run_cli, write_config
from tests.fakes import openai_shapes as shapes
from tests.fakes.server import FakeServer, Reply


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def seed_calls(db: str, rows: Sequence[tuple[str, str, str, float, float, float]]) -> None:
    """(provider, task, outcome, latency_ms, cost_usd, ts) rows straight into the call log."""
    ledger = Ledger.open(db)
    with closing(ledger), ledger.transaction() as conn:
        for provider, task, outcome, latency, cost, at in rows:
            conn.execute(
                "INSERT INTO calls (ts, task, provider, model, outcome, latency_ms, cost_usd,"
                " usage) VALUES (?, ?, ?, 'm', ?, ?, ?, '{\"requests\": 1}')",
                (at, task, provider, outcome, latency, cost),
            )


def query(db: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    ledger = Ledger.open(db)
    with closing(ledger):
        return ledger.read(sql, params)


# -- daily reset -----------------------------------------------------------------------------


def test_exhausted_at_2359_utc_is_available_at_000001_even_if_no_job_ran(
    tmp_path: Path, db_target: str
) -> None:
    db = db_target
    daily = "{metric: requests, limit: 1, per: day, reset: '00:00', tz: UTC}"
    config = write_config(
        tmp_path / "providers.yaml",
        {"groq": openai_provider("http://x/v1", "G", daily)},
        {"text": ["groq"]},
    )
    ledger = Ledger.open(db)
    rules = [QuotaRule.model_validate({"metric": "requests", "limit": 1, "per": "day"})]

    def reserve() -> Hold | Refusal:
        return ledger.reserve("groq", rules, {"requests": 1}, task="text", model="m")

    with time_machine.travel(datetime(2026, 1, 14, 23, 59, tzinfo=UTC), tick=False):
        hold = reserve()
        assert isinstance(hold, Hold)
        ledger.commit(hold, CallRecord("text", "groq", "m", "ok", 120.0, usage={"requests": 1}))
        # The provider says the same: no more today. The dispatcher blocks it until midnight.
        error = QuotaExhausted("daily quota used up", provider="groq")
        failed = CallRecord("text", "groq", "m", "quota_exhausted", 30.0)
        ledger.record_failure(None, failed, error, block_until=ts("2026-01-15T00:00:00"))
        refused = reserve()
        assert isinstance(refused, Refusal)
        assert refused.until == ts("2026-01-15T00:00:00")

    with time_machine.travel(datetime(2026, 1, 15, 0, 0, 1, tzinfo=UTC), tick=False):
        assert isinstance(reserve(), Hold)  # no job has run: the window comes from the clock
        did: Any = daily_reset(str(config), db)

    assert did["cleared_blocks"] == ["groq"]
    assert did["rolled_up_days"] == ["2026-01-14"]
    assert did["pruned_windows"] == 1  # yesterday's window; today's (with its hold) stays
    assert query(db, "SELECT window_start FROM usage_windows") == [(int(ts("2026-01-15")),)]
    assert query(db, "SELECT blocked_until, block_outcome FROM provider_state") == [(0, None)]
    assert query(db, "SELECT job, ok FROM job_runs") == [("daily-reset", 1)]


def test_ended_windows_go_unless_a_call_in_flight_still_holds_them(
    tmp_path: Path, db_target: str
) -> None:
    ledger = Ledger.open(db_target)
    rules = [QuotaRule.model_validate({"metric": "requests", "limit": 5, "per": "day"})]
    at = ts("2026-01-14T23:59:30")
    done = ledger.reserve("a", rules, {"requests": 1}, task="text", model="m", now=at)
    in_flight = ledger.reserve("b", rules, {"requests": 1}, task="text", model="m", now=at)
    assert isinstance(done, Hold) and isinstance(in_flight, Hold)
    ledger.commit(done, CallRecord("text", "a", "m", "ok", 5.0), now=at + 1)

    assert prune_windows(ledger, now=ts("2026-01-15T00:00:01")) == 1
    assert ledger.read("SELECT provider, reserved FROM usage_windows") == [("b", 1.0)]
    ledger.release(in_flight)  # the call ends after midnight; the next reset takes the row
    assert prune_windows(ledger, now=ts("2026-01-16T00:00:01")) == 1
    assert ledger.read("SELECT COUNT(*) FROM usage_windows") == [(0,)]


TEXT_A = {"text": ["a"]}


def test_daily_roll_up_equals_the_calls_and_rerunning_never_double_counts(
    tmp_path: Path, db_target: str
) -> None:
    db = db_target
    config = write_config(tmp_path / "p.yaml", {"a": openai_provider("http://x/v1", "A")}, TEXT_A)
    seed_calls(
        db,
        [
            ("a", "text", "ok", 100, 0.25, ts("2026-03-01T10:00:00")),
            ("a", "text", "ok", 300, 0.50, ts("2026-03-01T23:59:59")),
            ("a", "text", "transient", 50, 0, ts("2026-03-01T12:00:00")),
            ("a", "image", "ok", 900, 0.04, ts("2026-03-02T08:00:00")),
            ("a", "text", "ok", 1, 9.0, ts("2026-03-03T00:00:00")),  # today: not finished
        ],
    )
    summary = "SELECT day, task, outcome, calls, latency_ms_sum, cost_usd, usage FROM daily_summaries ORDER BY 1, 2, 3"  # noqa: E501
    expected = [
        ("2026-03-01", "text", "ok", 2, 400.0, 0.75, '{"requests": 2.0}'),
        ("2026-03-01", "text", "transient", 1, 50.0, 0.0, '{"requests": 1.0}'),
        ("2026-03-02", "image", "ok", 1, 900.0, 0.04, '{"requests": 1.0}'),
    ]
    with time_machine.travel(datetime(2026, 3, 3, 0, 5, tzinfo=UTC), tick=False):
        daily_reset(str(config), db)
        assert query(db, summary) == expected
        daily_reset(str(config), db)
    assert query(db, summary) == expected
    # A late row for a summarised day (an expired hold is logged at its reservation's time).
    seed_calls(db, [("a", "image", "expired", 60000, 0, ts("2026-03-02T23:59:00"))])
    with time_machine.travel(datetime(2026, 3, 4, 0, 5, tzinfo=UTC), tick=False):
        daily_reset(str(config), db)
    rows = query(db, summary)
    assert ("2026-03-02", "image", "expired", 1, 60000.0, 0.0, '{"requests": 1.0}') in rows
    assert ("2026-03-03", "text", "ok", 1, 1.0, 9.0, '{"requests": 1.0}') in rows
    assert len(rows) == 5
    assert query(db, "SELECT COUNT(*) FROM job_runs WHERE job = 'daily-reset' AND ok = 1") == [(3,)]


# -- failure report --------------------------------------------------------------------------

NOW = "2026-01-15T12:00:00"
SEEDED = [
    # last hour
    ("a", "text", "ok", 100, 0.001, ts(NOW) - 60),
    ("a", "text", "ok", 200, 0.001, ts(NOW) - 600),
    ("a", "text", "ok", 300, 0.001, ts(NOW) - 1200),
    ("a", "text", "ok", 400, 0.001, ts(NOW) - 3599),
    ("a", "text", "transient", 1000, 0, ts(NOW) - 120),
    ("a", "text", "transient", 1200, 0, ts(NOW) - 180),
    ("a", "text", "rate_limited", 50, 0, ts(NOW) - 240),
    ("a", "text", "rejected_input", 80, 0, ts(NOW) - 300),
    ("a", "image", "ok", 500, 0.04, ts(NOW) - 30),
    ("b", "text", "ok", 150, 0.002, ts(NOW) - 90),
    ("b", "text", "expired", 90000, 0, ts(NOW) - 400),
    # earlier today
    ("a", "text", "ok", 600, 0.001, ts(NOW) - 5 * 3600),
    ("a", "text", "transient", 700, 0, ts(NOW) - 6 * 3600),
    # older than a day: in no period
    ("a", "text", "ok", 10, 5.0, ts(NOW) - 2 * 86400),
]


def test_failure_report_figures_equal_a_hand_count_and_reach_the_webhook(
    tmp_path: Path, fake: FakeServer, monkeypatch: pytest.MonkeyPatch, db_target: str
) -> None:
    db = db_target
    config = write_config(
        tmp_path / "p.yaml",
        {"a": openai_provider("http://x/v1", "A"), "b": openai_provider("http://y/v1", "B")},
        {"text": ["a", "b"]},
        settings="cron: {reports_dir: out/reports}",
    )
    seed_calls(db, SEEDED)
    fake.route("POST", "/hooks/T000/B000/secret", Reply(200, body="ok"))
    monkeypatch.setenv("SCHED_REPORT_WEBHOOK", f"{fake.url}/hooks/T000/B000/secret")

    with time_machine.travel(datetime.fromisoformat(NOW).replace(tzinfo=UTC), tick=False):
        did: Any = failure_report(str(config), db)

    path = Path(did["path"])
    assert path == Path("out/reports/failure-report-20260115T120000Z.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    report = json.loads(path.read_text())
    hour = {(r["provider"], r["task"]): r for r in report["periods"]["last_hour"]["providers"]}
    day = {(r["provider"], r["task"]): r for r in report["periods"]["last_day"]["providers"]}
    # latencies of a/text in the hour, sorted: 50 80 100 200 300 400 1000 1200
    assert hour["a", "text"] == {
        "provider": "a",
        "task": "text",
        "calls": 8,
        "ok": 4,
        "failed": 4,
        "failures": {"rate_limited": 1, "rejected_input": 1, "transient": 2},
        "failure_rate": 0.5,
        "p50_ms": 200.0,  # 4th of 8
        "p95_ms": 1200.0,  # 8th of 8
        "spend_usd": 0.004,
    }
    assert (hour["a", "image"]["calls"], hour["a", "image"]["p95_ms"]) == (1, 500.0)
    assert hour["a", "image"]["spend_usd"] == 0.04
    # an expired hold counts as a call and a failure, but its latency is the lease, not b's
    assert hour["b", "text"]["failures"] == {"expired": 1}
    assert (hour["b", "text"]["p50_ms"], hour["b", "text"]["p95_ms"]) == (150.0, 150.0)
    # the day adds 600 ok and 700 transient: 50 80 100 200 300 400 600 700 1000 1200
    assert (day["a", "text"]["calls"], day["a", "text"]["ok"]) == (10, 5)
    assert day["a", "text"]["failures"] == {"rate_limited": 1, "rejected_input": 1, "transient": 3}
    assert (day["a", "text"]["p50_ms"], day["a", "text"]["p95_ms"]) == (300.0, 1200.0)
    assert day["a", "text"]["spend_usd"] == 0.005
    assert set(day) == set(hour)
    assert did["webhook"] == "posted (HTTP 200)"
    assert did["disabled"] == []  # a: 2 own-fault failures of 9 calls, under min_calls anyway

    [posted] = fake.requests("/hooks/T000/B000/secret")
    body = posted.json()
    assert list(body) == ["text"]
    text = body["text"]
    assert text.startswith("sched failure report, 2026-01-15T12:00:00Z\nLast hour:\n")
    assert (
        "  a / text: 8 calls, 4 ok, 4 failed (50%: rate_limited 1, rejected_input 1, transient 2);"
        " p50 200 ms, p95 1200 ms; spend $0.0040"
    ) in text
    assert (
        "  a / text: 10 calls, 5 ok, 5 failed (50%: rate_limited 1, rejected_input 1, transient 3);"
        " p50 300 ms, p95 1200 ms; spend $0.0050"
    ) in text.split("Last day:")[1]
    assert "secret" not in json.dumps(did)  # the webhook URL is a credential too


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([float(n) for n in range(1, 21)], 0.95) == 19.0
    assert percentile([float(n) for n in range(1, 21)], 0.5) == 10.0
    assert percentile([5.0, 1.0, 4.0, 2.0, 3.0], 0.5) == 3.0  # ceil(2.5) = 3rd, not interpolated
    assert percentile([float(n) for n in range(1, 11)], 0.95) == 10.0


def test_report_webhook_failure_is_reported_not_fatal(
    tmp_path: Path, fake: FakeServer, monkeypatch: pytest.MonkeyPatch, db_target: str
) -> None:
    config = write_config(tmp_path / "p.yaml", {"a": openai_provider("http://x/v1", "A")}, TEXT_A)
    fake.route("POST", "/hook", Reply(500, body="down"))
    monkeypatch.setenv("SCHED_REPORT_WEBHOOK", f"{fake.url}/hook")
    did: Any = failure_report(str(config), db_target)
    assert did["webhook"] == "failed: HTTP 500"


# -- health: disable, probe, re-enable -------------------------------------------------------

KEYS = {"A_KEY": "sk-a-0000000000000001", "B_KEY": "sk-b-0000000000000002"}
REASON = "failure rate 60% over the last hour (6 of 10 calls)"


def _two_providers(tmp_path: Path, fake: FakeServer) -> Path:
    return write_config(
        tmp_path / "providers.yaml",
        {
            "a": openai_provider(fake.base_url("a"), "A_KEY"),
            "b": openai_provider(fake.base_url("b"), "B_KEY"),
        },
        {"text": ["a", "b"]},
        settings="retries: 2\ncron: {disable_above_failure_rate: 0.5, min_calls: 10}",
    )


def _state(db: str, provider: str) -> tuple[object, ...]:
    rows = query(
        db,
        "SELECT block_outcome, block_reason, blocked_until FROM provider_state WHERE provider = ?",
        (provider,),
    )
    return rows[0] if rows else (None, None, 0)


def test_sick_provider_is_disabled_probed_kept_then_re_enabled(
    tmp_path: Path, fake: FakeServer, monkeypatch: pytest.MonkeyPatch, db_target: str
) -> None:
    config = _two_providers(tmp_path, fake)
    db = db_target
    now = time.time()
    seed_calls(
        db,
        [("a", "text", "transient", 900, 0, now - 60 * i) for i in range(1, 7)]
        + [("a", "text", "ok", 200, 0, now - 30 * i) for i in range(1, 5)]
        + [("b", "text", "ok", 200, 0, now - 100)],
    )
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)

    did: Any = failure_report(str(config), db)

    assert did["disabled"] == [{"provider": "a", "reason": REASON}]
    outcome, reason, until = _state(db, "a")
    assert (outcome, reason) == ("unhealthy", REASON)
    assert float(str(until)) > now + HEALTH_BLOCK_S - 60
    assert _state(db, "b") == (None, None, 0)

    # Every worker now skips it, saying why, without a call.
    fake.route("POST", shapes.chat_path("b"), default=shapes.chat_ok("from b"))
    run = run_cli("--db", db, "run", "text", "hi", "--json", env=clean_env(**KEYS))
    assert run.code == 0, run.stderr
    assert run.json()["provider"] == "b"
    attempts: Any = run.json()["attempts"]
    skipped = attempts[0]
    assert skipped["provider"] == "a" and skipped["outcome"] == "skipped"
    assert f"disabled: {REASON}" in skipped["error"]
    assert fake.count(shapes.chat_path("a")) == 0

    # A failing probe: one call (no retries), and the provider stays disabled.
    fake.route("POST", shapes.chat_path("a"), default=shapes.server_error())
    did = probe_disabled(str(config), db)
    [probe] = did["probed"]
    assert (probe["provider"], probe["outcome"], probe["re_enabled"]) == ("a", "transient", False)
    assert fake.count(shapes.chat_path("a")) == 1
    outcome, reason, until = _state(db, "a")
    assert outcome == "unhealthy" and str(reason).startswith(f"{REASON}; last probe ")
    assert float(str(until)) > time.time() + HEALTH_BLOCK_S - 60
    # A second failing probe does not pile its result onto the reason.
    did = probe_disabled(str(config), db)
    assert str(_state(db, "a")[1]).count("last probe") == 1

    # A passing probe re-enables it for everyone.
    fake.route("POST", shapes.chat_path("a"), default=shapes.chat_ok("OK"))
    did = probe_disabled(str(config), db)
    assert did["re_enabled"] == ["a"]
    assert _state(db, "a")[:2] == (None, None)
    run = run_cli("--db", db, "run", "text", "hi", "--json", env=clean_env(**KEYS))
    assert run.json()["provider"] == "a"

    # The failures that got it disabled are still in the last hour; they do not count again.
    assert failure_report(str(config), db)["disabled"] == []
    assert query(db, "SELECT job, ok FROM job_runs ORDER BY id") == [
        ("failure-report", 1),
        ("probe-disabled", 1),
        ("probe-disabled", 1),
        ("probe-disabled", 1),
        ("failure-report", 1),
    ]


@pytest.mark.parametrize(
    ("outcome", "failing", "disabled"),
    [
        ("rejected_input", 10, False),  # the caller's input, not the provider's health
        ("quota_exhausted", 10, False),  # working as documented; the ledger skips it anyway
        ("rate_limited", 10, False),
        ("transient", 5, False),  # 50% is not above 0.5
        ("transient", 6, True),
        ("auth_failed", 6, True),  # a key the provider stopped accepting is its side too
    ],
)
def test_which_failures_count_against_health(
    tmp_path: Path, fake: FakeServer, outcome: str, failing: int, disabled: bool, db_target: str
) -> None:
    config = _two_providers(tmp_path, fake)
    db = db_target
    now = time.time()
    seed_calls(
        db,
        [("a", "text", outcome, 100, 0, now - 10 * i) for i in range(failing)]
        + [("a", "text", "ok", 100, 0, now - 5 * i) for i in range(10 - failing)],
    )
    did: Any = failure_report(str(config), db)
    assert bool(did["disabled"]) is disabled
    assert (_state(db, "a")[0] == "unhealthy") is disabled


def test_too_few_calls_or_old_failures_do_not_disable(
    tmp_path: Path, fake: FakeServer, db_target: str
) -> None:
    config = _two_providers(tmp_path, fake)
    db = db_target
    now = time.time()
    seed_calls(
        db,
        [("a", "text", "transient", 100, 0, now - 10 * i) for i in range(9)]  # 9 < min_calls
        + [("b", "text", "transient", 100, 0, now - 3700 - i) for i in range(20)],  # > 1 h ago
    )
    assert failure_report(str(config), db)["disabled"] == []


def test_a_probe_reservation_passes_only_the_health_block(tmp_path: Path, db_target: str) -> None:
    target = db_target
    ledger = Ledger.open(target)
    disable_unhealthy(ledger, "a", "sick")
    disable_unhealthy(ledger, "b", "sick")
    other = Ledger.open(target)  # another process sharing the ledger

    def reserve(on: Ledger, provider: str, probe: bool = False) -> Hold | Refusal:
        return on.reserve(provider, [], {"requests": 1}, task="text", model="m", probe=probe)

    assert isinstance(reserve(ledger, "a", probe=True), Hold)
    assert isinstance(reserve(other, "a"), Refusal)  # every other caller still skips it
    assert isinstance(reserve(ledger, "a"), Refusal)  # even on the same connection
    with ledger.transaction() as conn:  # a rejected key is not lifted by a health probe
        conn.execute("UPDATE provider_state SET disabled = 1, disabled_reason = 'bad key'")
    assert isinstance(reserve(ledger, "a", probe=True), Refusal)
    other.close()
    ledger.close()


# -- quota check -----------------------------------------------------------------------------


def test_quota_check_reports_allowances_balances_and_warnings_without_keys(
    tmp_path: Path,
    fake: FakeServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    db_target: str,
) -> None:
    secrets = {
        "GROQ_KEY": "gsk_groq_secret_000000000001",
        "ELEVEN_KEY": "eleven_secret_000000000002",
        "OR_KEY": "sk-or-v1-secret000000000003",
        "STAB_KEY": "sk-stab-secret-000000000004",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    config = write_config(
        tmp_path / "providers.yaml",
        {
            "groq": openai_provider(
                fake.base_url("groq"),
                "GROQ_KEY",
                quotas="{metric: requests, limit: 10, per: day, free: true}\n"
                "{metric: tokens, limit: 1000, per: day, free: true}",
            )
            + "\npricing: {usd_per_request: 0.001}",
            "elevenlabs": f"adapter: elevenlabs\nbase_url: {fake.url}/el\napi_key_env: ELEVEN_KEY",
            "openrouter": openai_provider(f"{fake.url}/or/api/v1", "OR_KEY"),
            "stability": f"adapter: stability\nbase_url: {fake.url}/st\napi_key_env: STAB_KEY",
        },
        {"text": ["groq", "openrouter"]},
        settings="cron: {quota_warning_below: 0.2}",
    )
    db = db_target
    ledger = Ledger.open(db)
    rule = QuotaRule.model_validate({"metric": "requests", "limit": 10, "per": "day", "free": True})
    for _ in range(9):
        hold = ledger.reserve("groq", [rule], {"requests": 1}, task="text", model="m")
        assert isinstance(hold, Hold)
        ledger.commit(hold, CallRecord("text", "groq", "m", "ok", 10.0, usage={"requests": 1}))
    fake.route(
        "GET",
        "/el/v1/user/subscription",
        Reply(json={"character_count": 9500, "character_limit": 10000, "tier": "free"}),
    )
    fake.route(
        "GET", "/or/api/v1/key", Reply(json={"data": {"limit": 10.0, "limit_remaining": 7.5}})
    )
    fake.route("GET", "/st/v1/user/balance", Reply(500, json={"message": "oops"}))

    did: Any = quota_check(str(config), db)

    allowances = {(a["provider"], a["metric"]): a for a in did["allowances"]}
    assert allowances["groq", "requests"]["remaining"] == 1.0
    assert allowances["groq", "tokens"]["remaining"] == 1000.0
    balances = {b["provider"]: b for b in did["balances"]}
    assert (balances["elevenlabs"]["remaining"], balances["elevenlabs"]["limit"]) == (
        500.0,
        10000.0,
    )
    assert balances["openrouter"]["remaining"] == 7.5
    assert balances["stability"]["error"] == "HTTP 500 from /st/v1/user/balance"
    assert did["warnings"] == [
        "groq: 1 of 10 free requests per day left (10%), resets "
        + allowances["groq", "requests"]["resets"],
        "elevenlabs: 500 of 10000 characters left on the account (5%)",
    ]
    [el] = fake.requests("/el/v1/user/subscription")
    assert el.headers["xi-api-key"] == secrets["ELEVEN_KEY"]
    [openrouter] = fake.requests("/or/api/v1/key")
    assert openrouter.headers["authorization"] == f"Bearer {secrets['OR_KEY']}"
    [st] = fake.requests("/st/v1/user/balance")
    assert st.headers["authorization"] == f"Bearer {secrets['STAB_KEY']}"
    recorded = query(db, "SELECT detail FROM job_runs")
    for secret in secrets.values():
        assert secret not in json.dumps(did)
        assert secret not in caplog.text
        assert secret not in str(recorded)


def test_a_failing_job_is_recorded_and_raises(tmp_path: Path, db_target: str) -> None:
    (tmp_path / "reports").write_text("a file where the reports directory should be")
    config = write_config(tmp_path / "p.yaml", {"a": openai_provider("http://x/v1", "A")}, TEXT_A)
    with pytest.raises(JobFailed) as failed:
        failure_report(str(config), db_target)
    assert failed.value.recorded
    [(ok, detail)] = query(db_target, "SELECT ok, detail FROM job_runs")
    assert ok == 0 and "reports" in json.loads(str(detail))["error"]
