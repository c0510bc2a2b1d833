"""The status numbers read finished days from their summaries and the rest from call rows: the
same figures either way, on both databases."""

from __future__ import annotations

import random
import time

from scheduler.config import KeyStore, parse_config
from scheduler.ledger import CallRecord, Ledger
from scheduler.ledger.maintenance import prune_calls, roll_up_days
from scheduler.status.data import snapshot

DAY = 86400
CONFIG = """
settings: {allow_paid: true, budget: {monthly_usd: 100}}
providers:
  a: {adapter: openai, base_url: "http://a/v1", models: {text: m}, pricing: {usd_per_request: 0.01}}
  b: {adapter: openai, base_url: "http://b/v1", models: {text: m}}
tasks: {text: [a, b]}
"""


def test_summaries_and_rows_give_the_same_status_and_pruning_changes_nothing(
    db_target: str,
) -> None:
    config = parse_config(CONFIG)
    keys = KeyStore(environ={})
    now = (int(time.time()) // DAY) * DAY + 12 * 3600  # midday: today has rows on both sides
    rng = random.Random(3)
    ledger = Ledger.open(db_target)
    for _ in range(600):
        ts = now - rng.random() * 20 * DAY
        provider = rng.choice("ab")
        outcome = rng.choice(("ok", "ok", "ok", "transient", "rate_limited"))
        cost = 0.01 if provider == "a" and outcome == "ok" else 0.0
        record = CallRecord(
            "text",
            provider,
            "m",
            outcome,
            rng.uniform(20, 800),
            usage={"usd": cost},
            cost_usd=cost,
        )
        ledger.record_call(record, now=ts)
    from_rows = snapshot(config, ledger, keys, now=now)
    rolled = roll_up_days(ledger, now=now)
    assert len(rolled.days) >= 19
    from_summaries = snapshot(config, ledger, keys, now=now)
    assert prune_calls(ledger, before=now - 2 * DAY) > 0  # old rows gone, their days summarised
    after_pruning = snapshot(config, ledger, keys, now=now)
    ledger.close()
    for key in ("quota", "daily_spend", "health"):
        assert from_summaries[key] == from_rows[key], key
        assert after_pruning[key] == from_rows[key], key
    assert from_rows["quota"]["spend"]["month"]["cost_usd"] > 0
    assert from_rows["health"]["7d"][0]["median_latency_ms"] is not None
