"""The status page in a real browser (Debian's chromium, headless) over a seeded ledger.

The ledger holds a month of calls over six providers: one cooling down, one disabled for a bad
key, one out of its daily quota, and a monthly budget 80% used. The page is loaded from `sched
serve` and, written by `sched report --html`, from disk with every network route closed; the
DOM after its script ran is asserted, and screenshots at 1280 and 390 px go to the artifacts
directory ($SCHED_ARTIFACTS, default ./artifacts), never into git.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from scheduler.config import parse_config
from scheduler.errors import AuthFailed, RateLimited
from scheduler.ledger import CallRecord, Ledger
from scheduler.ledger.maintenance import record_job_run
from tests.conftest import run_cli, serving

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
ARTIFACTS = Path(
    os.environ.get("SCHED_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts")
)
DAY = 86400
PROVIDERS = ("groq", "gemini", "mistral", "cohere", "openai", "local")
CONFIG = """
settings:
  allow_paid: true
  budget: {monthly_usd: 10.0}
providers:
  groq: {adapter: openai, base_url: "http://h/v1", api_key_env: G_KEY, models: {text: m},
         quotas: [{metric: requests, limit: 1000, per: day}]}
  gemini: {adapter: openai, base_url: "http://h/v1", api_key_env: G_KEY, models: {text: m}}
  mistral: {adapter: openai, base_url: "http://h/v1", api_key_env: G_KEY, models: {text: m}}
  cohere: {adapter: openai, base_url: "http://h/v1", api_key_env: G_KEY, models: {text: m},
           quotas: [{metric: requests, limit: 10, per: day}]}
  openai: {adapter: openai, base_url: "http://h/v1", api_key_env: G_KEY, models: {text: m},
           pricing: {usd_per_request: 2.0}}
  local: {adapter: local, models: {text: llama3.2}}
tasks:
  text: [groq, gemini, mistral, cohere, openai, local]
"""


def _seed(db: Path, now: float) -> None:
    config = parse_config(CONFIG)
    month_start = time.mktime(time.gmtime(now)[:2] + (1, 0, 0, 0, 0, 0, 0)) - time.timezone
    with Ledger.open(str(db)) as ledger:
        for day in range(30):  # a month of calls: four a day from each provider
            ts = now - day * DAY - 3600
            for i, provider in enumerate(PROVIDERS):
                for k in range(4):
                    outcome = "transient" if provider == "mistral" and k == 0 else "ok"
                    cost = 0.05 if provider == "openai" and ts < month_start else 0.0
                    record = CallRecord(
                        "text",
                        provider,
                        "m",
                        outcome,
                        100.0 + 50 * i + k,
                        usage={"requests": 1},
                        cost_usd=cost,
                    )
                    ledger.record_call(record, now=ts + k)
        for _ in range(4):  # $8 of the $10 monthly budget, today
            ledger.record_call(
                CallRecord("text", "openai", "m", "ok", 300.0, usage={"usd": 2.0}, cost_usd=2.0),
                now=now - 60,
            )
        rule = config.providers["cohere"].quotas
        for _ in range(10):  # cohere's 10 a day used up
            hold = ledger.reserve("cohere", rule, {"requests": 1}, task="text", model="m", now=now)
            assert not hasattr(hold, "reason")
            ledger.commit(
                hold, CallRecord("text", "cohere", "m", "ok", 90.0, usage={"requests": 1}), now=now
            )  # type: ignore[arg-type]
        ledger.record_failure(
            None,
            CallRecord("text", "gemini", "m", "rate_limited", 50.0),
            RateLimited("HTTP 429: slow down", provider="gemini"),
            block_until=now + 1800,
            now=now,
        )
        ledger.record_failure(
            None,
            CallRecord("text", "mistral", "m", "auth_failed", 40.0),
            AuthFailed("HTTP 401: invalid api key", provider="mistral"),
            key_fingerprint="fp",
            now=now,
        )
        record_job_run(
            ledger, "daily-reset", ok=True, detail={"cleared": ["gemini"]}, now=now - 600
        )
        record_job_run(
            ledger, "failure-report", ok=False, detail={"error": "webhook down"}, now=now - 300
        )


def _chromium(*args: str) -> str:
    assert CHROMIUM is not None
    out = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--proxy-server=127.0.0.1:9",
            "--proxy-bypass-list=127.0.0.1;localhost",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


class _Dom(HTMLParser):
    """The elements of a page by attribute, to assert on what the browser built."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _dom(html: str) -> _Dom:
    dom = _Dom()
    dom.feed(html)
    return dom


def _check_page(html: str) -> None:
    dom = _dom(html)
    states = {
        a["data-provider"]: a["data-state"]
        for tag, a in dom.elements
        if tag == "section" and "data-state" in a
    }
    assert states["gemini"] == "cooling_down"
    assert states["mistral"] == "disabled"
    assert states["cohere"] == "exhausted"
    assert states["groq"] == "ok"
    text = " ".join(dom.text)
    assert "80% used" in text and "$8.00 of $10.00" in text
    assert "webhook down" in text and "daily-reset" in text
    calls = [a for tag, a in dom.elements if tag == "tr" and "data-outcome" in a]
    assert len(calls) == 50
    assert not any(
        a.get("hidden") is not None
        for tag, a in dom.elements
        if tag == "div" and a.get("id") == "filters"
    )  # the script ran
    assert any(
        tag == "svg" and a.get("role") == "img" and a.get("aria-label") for tag, a in dom.elements
    )


def test_the_status_page_in_headless_chromium(tmp_path: Path) -> None:
    now = time.time()
    config = tmp_path / "providers.yaml"
    config.write_text(CONFIG)
    db = tmp_path / "quota.db"
    _seed(db, now)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with serving(tmp_path, config, keys={"G_KEY": "sk-g-0000000001"}) as url:
        html = _chromium("--virtual-time-budget=3000", "--dump-dom", f"{url}/")
        for width, height in ((1280, 2400), (390, 4000)):
            shot = ARTIFACTS / f"status-{width}.png"
            _chromium(f"--window-size={width},{height}", f"--screenshot={shot}", f"{url}/")
            assert shot.stat().st_size > 10_000
        status = httpx.get(f"{url}/v1/sched/status", timeout=60).json()
    _check_page(html)

    # The same numbers as the JSON reports: one source.
    base = ["--config", str(config), "--db", str(db)]
    quota = json.loads(run_cli(*base, "quota", "report", "--json", env=_env()).stdout)
    month = json.loads(
        run_cli(*base, "cost", "report", "--period", "month", "--json", env=_env()).stdout
    )
    assert status["quota"]["providers"] == quota["providers"]
    assert status["quota"]["spend"] == quota["spend"]
    assert status["quota"]["spend"]["month"]["cost_usd"] == month["cost_usd"] == pytest.approx(8.0)

    # The file from `sched report --html`, opened from disk with every network route closed.
    page = tmp_path / "status.html"
    written = run_cli(*base, "report", "--html", str(page), env=_env())
    assert written.code == 0, written.stderr
    offline = _chromium(
        "--virtual-time-budget=3000",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--proxy-bypass-list=<-loopback>",
        "--dump-dom",
        page.as_uri(),
    )
    _check_page(offline)
    assert not [a for _, a in _dom(page.read_text()).elements if a.get("src")]  # nothing fetched


def test_the_status_page_needs_an_admin_token_when_the_gateway_has_tokens(tmp_path: Path) -> None:
    config = tmp_path / "providers.yaml"
    config.write_text(CONFIG)
    base = ["--config", str(config), "--db", str(tmp_path / "quota.db"), "tokens", "create"]
    user = json.loads(run_cli(*base, "app", "--json", env=_env()).stdout)["token"]
    admin = json.loads(run_cli(*base, "ops", "--admin", "--json", env=_env()).stdout)["token"]
    with serving(tmp_path, config, keys={"G_KEY": "sk-g-0000000001"}) as url:
        anonymous = httpx.get(f"{url}/", timeout=60)
        as_user = httpx.get(f"{url}/", headers={"authorization": f"Bearer {user}"}, timeout=60)
        as_admin = httpx.get(f"{url}/", auth=("ops", admin), timeout=60)  # a browser's Basic auth
        status = httpx.get(f"{url}/v1/sched/status", headers={"authorization": f"Bearer {admin}"})
    assert anonymous.status_code == as_user.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Basic")
    assert as_admin.status_code == 200 and "api-scheduler status" in as_admin.text
    assert admin not in as_admin.text and user not in as_admin.text  # never shown on the page
    assert status.status_code == 200 and "quota" in status.json()


def _env() -> dict[str, str]:
    from tests.conftest import clean_env

    return {**clean_env(), "G_KEY": "sk-g-0000000001"}
