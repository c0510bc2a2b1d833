"""Cost awareness: list prices, free allowances, budgets, --max-cost/--free-only, strategies."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from scheduler import RunOptions, Scheduler
from scheduler.config import Pricing, parse_config
from scheduler.config.schema import QuotaRule
from scheduler.cost import FreeShare, list_price, paid_share
from scheduler.ledger import BudgetLimit, CallRecord, Hold, Ledger, Refusal, SpendPolicy
from scheduler.tasks import TextTask
from tests.cli_inprocess import sched
from tests.conftest import CliResult, write_config
from tests.fakes import openai_shapes as shapes
from tests.fakes.server import FakeServer


@pytest.mark.parametrize(
    ("pricing", "usage", "expected"),
    [
        (
            {"usd_per_mtok_input": 0.5, "usd_per_mtok_output": 1.5},
            {"input_tokens": 2000, "output_tokens": 1000},
            0.0025,
        ),
        ({"usd_per_mtok_input": 2.0}, {"tokens": 500_000}, 1.0),  # unsplit totals at the input rate
        ({"usd_per_image": 0.04}, {"images": 3}, 0.12),
        ({"usd_per_audio_minute": 0.006}, {"audio_seconds": 90}, 0.009),
        ({"usd_per_kchar": 0.05}, {"characters": 2500}, 0.125),
        ({"usd_per_request": 0.005}, {"requests": 4}, 0.02),
        ({"usd_per_credit": 0.01}, {"credits": 6.5}, 0.065),
        ({}, {"input_tokens": 10**6, "images": 5}, 0.0),  # no prices: never bills
    ],
    ids=[
        "tokens-split",
        "tokens-total",
        "images",
        "audio-minutes",
        "characters",
        "requests",
        "credits",
        "free",
    ],
)
def test_list_price_per_metric(
    pricing: dict[str, float], usage: dict[str, float], expected: float
) -> None:
    assert list_price(usage, Pricing(**pricing)) == pytest.approx(expected)


Cli = Callable[..., CliResult]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """`sched ARGS...` through its real entry point, in this process."""
    return functools.partial(sched, capsys)


def test_paid_share() -> None:
    assert paid_share({"tokens": 300}, [FreeShare("tokens", 1000)], billable=True) == 0.0
    assert paid_share({"tokens": 300}, [FreeShare("tokens", 100)], billable=True) == pytest.approx(
        2 / 3
    )
    assert paid_share({"tokens": 300}, [FreeShare("tokens", -5)], billable=True) == 1.0
    assert paid_share({"requests": 1}, [], billable=True) == 1.0  # no allowance at all
    assert paid_share({"requests": 1}, [FreeShare("requests", 0)], billable=False) == 0.0
    # the largest overflow among several allowances decides
    free = [FreeShare("requests", 10), FreeShare("tokens", 150)]
    assert paid_share({"requests": 1, "tokens": 200}, free, billable=True) == pytest.approx(0.25)


PRICED = Pricing(usd_per_mtok_input=1.0, usd_per_mtok_output=1.0)  # $1 per million tokens


def _reserve(
    ledger: Ledger, spend: SpendPolicy, tokens: float, rules: list[QuotaRule]
) -> Hold | Refusal:
    return ledger.reserve(
        "p", rules, {"requests": 1, "tokens": tokens}, task="text", model="m", spend=spend
    )


def _commit(ledger: Ledger, hold: Hold, tokens: float) -> float:
    usage = {"requests": 1, "tokens": tokens, "input_tokens": tokens, "usd": tokens / 1e6}
    return ledger.commit(hold, CallRecord("text", "p", "m", "ok", 1.0, usage=usage))


def test_a_call_that_starts_inside_a_free_allowance_and_ends_past_it(db_target: str) -> None:
    ledger = Ledger.open(db_target)
    rules = [QuotaRule(metric="tokens", limit=1000, per="day", free=True)]
    spend = SpendPolicy(PRICED, allow_paid=True)
    first = _reserve(ledger, spend, 900, rules)
    assert isinstance(first, Hold) and first.estimated_cost == 0.0
    assert _commit(ledger, first, 900) == 0.0  # inside the allowance: free
    second = _reserve(ledger, spend, 300, rules)
    assert isinstance(second, Hold)
    assert second.estimated_cost == pytest.approx(200 / 1e6)  # 100 free, 200 paid
    assert _commit(ledger, second, 300) == pytest.approx(200 / 1e6)
    third = _reserve(ledger, spend, 50, rules)
    assert isinstance(third, Hold) and third.estimated_cost == pytest.approx(50 / 1e6)
    rows = ledger.read("SELECT cost_usd, list_usd FROM calls ORDER BY id")
    assert rows == [
        (0.0, pytest.approx(900 / 1e6)),
        (pytest.approx(200 / 1e6), pytest.approx(300 / 1e6)),
    ]


@pytest.mark.parametrize(
    ("spend", "reason"),
    [
        (
            SpendPolicy(PRICED, allow_paid=False),
            "paid provider: would cost about $0.0010 and allow_paid is off",
        ),
        (
            SpendPolicy(PRICED, allow_paid=True, free_only=True),
            "would cost about $0.0010; --free-only refuses paid calls",
        ),
        (
            SpendPolicy(PRICED, allow_paid=True, max_cost=0.0005),
            "would cost about $0.0010, more than --max-cost leaves ($0.0005)",
        ),
        (
            SpendPolicy(PRICED, allow_paid=True, budgets=(BudgetLimit("day", 0.0009),)),
            "daily budget $0.00 would be exceeded (call about $0.0010), resets ",
        ),
        (
            SpendPolicy(PRICED, allow_paid=True, budgets=(BudgetLimit("month", 0.0009, "p"),)),
            "monthly p budget $0.00 would be exceeded (call about $0.0010), resets ",
        ),
    ],
    ids=["allow-paid-off", "free-only", "max-cost", "daily-budget", "provider-budget"],
)
def test_paid_calls_are_refused_with_the_reason(
    db_target: str, spend: SpendPolicy, reason: str
) -> None:
    ledger = Ledger.open(db_target)
    refused = _reserve(ledger, spend, 1000, [QuotaRule(metric="requests", limit=5, per="day")])
    assert isinstance(refused, Refusal)
    assert refused.reason.startswith(reason)
    assert ledger.read("SELECT used, reserved FROM usage_windows") == []  # all rolled back


def test_free_allowance_without_allow_paid_is_a_hard_stop(db_target: str) -> None:
    ledger = Ledger.open(db_target)
    rules = [QuotaRule(metric="tokens", limit=1000, per="day", free=True)]
    hold = _reserve(ledger, SpendPolicy(PRICED), 900, rules)
    assert isinstance(hold, Hold)
    refused = _reserve(ledger, SpendPolicy(PRICED), 300, rules)
    assert isinstance(refused, Refusal)
    assert refused.reason.startswith("quota full: 1000 tokens per day, resets ")
    assert refused.reason.endswith(" (free allowance; allow_paid is off)")


STRATEGY_CONFIG = """
settings: {allow_paid: true}
providers:
  pricey: {adapter: openai, base_url: "http://pricey.test/v1", models: {text: m},
           pricing: {usd_per_request: 0.05}}
  mid: {adapter: openai, base_url: "http://mid.test/v1", models: {text: m},
        pricing: {usd_per_request: 0.01}}
  free: {adapter: openai, base_url: "http://free.test/v1", models: {text: m}}
  gratis: {adapter: openai, base_url: "http://gratis.test/v1", models: {text: m}}
tasks:
  text: [pricey, mid, free, gratis]
"""


def test_cheapest_and_fastest_orders_differ_from_priority(db_target: str) -> None:
    config = parse_config(STRATEGY_CONFIG)
    ledger = Ledger.open(db_target)
    for provider, latency in (("pricey", 40.0), ("pricey", 60.0), ("gratis", 900.0), ("mid", 5.0)):
        ledger.record_call(CallRecord("text", provider, "m", "ok", latency))
    ledger.record_call(CallRecord("text", "free", "m", "transient", 1.0))  # failures don't count
    ledger.record_call(CallRecord("image", "free", "m", "ok", 1.0))  # other kinds don't count
    task = TextTask(prompt="hi")

    ledger.close()

    async def candidates(strategy: str) -> tuple[str, ...]:
        async with Scheduler(config, db=db_target, keys={}) as s:
            return await s.candidates(task, RunOptions(strategy=strategy))  # type: ignore[arg-type]

    def order(strategy: str) -> tuple[str, ...]:
        return asyncio.run(candidates(strategy))

    assert order("priority") == ("pricey", "mid", "free", "gratis")
    assert order("cheapest") == ("free", "gratis", "mid", "pricey")  # ties keep table order
    assert order("fastest") == ("mid", "pricey", "gratis", "free")  # untried last, in table order


def test_strategy_flag_changes_the_order_through_the_cli(
    tmp_path: Path, fake: FakeServer, cli: Cli
) -> None:
    providers = {
        name: f"adapter: openai\nbase_url: {fake.base_url(name)}\nmodels: {{text: m}}\n{price}"
        for name, price in (
            ("pricey", "pricing: {usd_per_request: 0.05}"),
            ("cheap", "pricing: {usd_per_request: 0.01}"),
        )
    }
    write_config(
        tmp_path / "providers.yaml",
        providers,
        {"text": ["pricey", "cheap"]},
        settings="allow_paid: true",
    )
    for name in ("pricey", "cheap"):
        fake.route("POST", shapes.chat_path(name), default=shapes.chat_ok(f"from {name}"))
    by_priority = cli("run", "text", "hi", "--json").json()
    cheapest = cli("run", "text", "hi", "--json", "--strategy", "cheapest").json()
    assert (by_priority["provider"], cheapest["provider"]) == ("pricey", "cheap")
    assert by_priority["cost_usd"] == pytest.approx(0.05) and cheapest["cost_usd"] == pytest.approx(
        0.01
    )
    bad = cli("run", "text", "hi", "--strategy", "random")
    assert (bad.code, bad.stderr.strip()) == (
        2,
        "sched: error: --strategy 'random': expected priority, cheapest or fastest",
    )
    capped = cli("run", "text", "hi", "--json", "--max-cost", "0.02")
    assert capped.json()["provider"] == "cheap"
    assert (
        capped.json()["attempts"][0]["error"]
        == "would cost about $0.0500, more than --max-cost leaves ($0.0200)"
    )  # type: ignore[index]
    free_only = cli("run", "text", "hi", "--free-only")
    assert free_only.code == 3


def test_cost_report_equals_the_sums_of_the_calls_table(
    tmp_path: Path, fake: FakeServer, cli: Cli
) -> None:
    providers = {
        "paid": (
            f"adapter: openai\nbase_url: {fake.base_url('paid')}\nmodels: {{text: m}}\n"
            "pricing: {usd_per_mtok_input: 1000, usd_per_mtok_output: 2000}"
        ),
        "tier": (
            f"adapter: openai\nbase_url: {fake.base_url('tier')}\nmodels: {{text: m}}\n"
            "quotas:\n  - {metric: requests, limit: 2, per: day, free: true}\n"
            "pricing: {usd_per_request: 0.25}"
        ),
        "gratis": f"adapter: openai\nbase_url: {fake.base_url('gratis')}\nmodels: {{text: m}}",
    }
    write_config(
        tmp_path / "providers.yaml", providers, {"text": ["tier", "paid", "gratis"]},
        settings="allow_paid: true\nbudget: {daily_usd: 5.0, monthly_usd: 50.0}",
    )  # fmt: skip
    for name in providers:
        fake.route("POST", shapes.chat_path(name), default=shapes.chat_ok("ok"))
    for _ in range(3):  # two free on tier, the third paid on tier at $0.25
        assert cli("run", "text", "hi").code == 0
    assert cli("run", "text", "hi", "-p", "paid").code == 0  # 5 in, 7 out: $0.019
    assert cli("run", "text", "hi", "-p", "gratis").code == 0

    report = cli("cost", "report", "--json")
    assert report.code == 0
    data = report.json()
    conn = sqlite3.connect(tmp_path / "quota.db")
    cost, listed = conn.execute("SELECT SUM(cost_usd), SUM(list_usd) FROM calls").fetchone()
    assert data["cost_usd"] == pytest.approx(cost) == pytest.approx(0.25 + 0.019)
    assert data["list_usd"] == pytest.approx(listed) == pytest.approx(0.75 + 0.019)
    assert data["saved_usd"] == pytest.approx(0.5)
    lines = {(row["provider"], row["task"]): row for row in data["by_provider"]}  # type: ignore[union-attr]
    for provider, calls, paid in conn.execute(
        "SELECT provider, COUNT(*), SUM(cost_usd) FROM calls GROUP BY provider"
    ):
        assert lines[(provider, "text")]["calls"] == calls
        assert lines[(provider, "text")]["cost_usd"] == pytest.approx(paid)
    (budget,) = data["budgets"]  # type: ignore[misc]
    assert (budget["scope"], budget["limit_usd"]) == ("all providers", 5.0)
    assert budget["used_usd"] == pytest.approx(0.269) and budget["left_usd"] == pytest.approx(
        5.0 - 0.269
    )
    month = cli("cost", "report", "--period", "month", "--json").json()
    assert month["cost_usd"] == pytest.approx(0.269) and month["budgets"][0]["limit_usd"] == 50.0  # type: ignore[index]
    quota = cli("quota", "report", "--json").json()
    assert quota["spend"]["day"]["cost_usd"] == pytest.approx(0.269)  # type: ignore[index]
    table = cli("cost", "report").stdout
    assert "$0.2690" in table and "saved" in table
