"""The status page: one self-contained HTML document rendered from a status snapshot.

Server-rendered, inline CSS and SVG, nothing fetched from anywhere: it renders the same from
`sched serve` and from a file opened with the network off. The only script is small and
optional: it shows times in the viewer's zone and filters the call list; without it the page
shows UTC and every call. Each chart has a text alternative (a title and a table of its figures),
and colours are paired with words, never alone.
"""

from __future__ import annotations

from html import escape
from typing import Any

PALETTE = ("#1f6feb", "#d4a72c", "#8250df", "#1a7f37", "#cf222e", "#0a7ea4", "#bf3989", "#6e7781")
_STATE_CLASS = {
    "ok": "ok",
    "exhausted": "bad",
    "cooling_down": "warn",
    "disabled": "bad",
    "not_configured": "off",
    "off": "off",
    "retired": "bad",
}

CSS = """
:root{color-scheme:light;--ink:#1f2328;--muted:#57606a;--line:#d0d7de;--ok:#1a7f37;
--warn:#9a6700;--bad:#cf222e;--off:#57606a}
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,sans-serif;color:var(--ink);
background:#fff}main{max-width:1200px;margin:0 auto;padding:16px}
h1{font-size:1.4em;margin:0 0 4px}h2{font-size:1.15em;margin:28px 0 8px;border-bottom:1px solid
var(--line);padding-bottom:4px}.muted{color:var(--muted)}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{flex:1 1 260px;border:1px solid var(--line);
border-radius:8px;padding:10px 12px;min-width:0}.card h3{margin:0 0 4px;font-size:1.05em}
.state{display:inline-block;padding:1px 8px;border-radius:10px;font-size:.85em;font-weight:600;
border:1px solid currentColor}.ok{color:var(--ok)}.warn{color:var(--warn)}.bad{color:var(--bad)}
.off{color:var(--off)}.gauge{margin:6px 0}.gauge svg{width:100%;height:14px;display:block}
.table{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.chart svg{width:100%;height:auto;max-height:260px}.legend span{margin-right:12px;
white-space:nowrap}.swatch{display:inline-block;width:10px;height:10px;margin-right:4px}
.figures{display:flex;flex-wrap:wrap;gap:24px}.figure b{display:block;font-size:1.4em}
label{margin-right:12px}select{font:inherit}#calls td:first-child{white-space:nowrap}
@media (max-width:600px){#calls th:nth-child(2),#calls td:nth-child(2),#calls th:nth-child(4),
#calls td:nth-child(4),#calls th:nth-child(7),#calls td:nth-child(7){display:none}
main{padding:10px}}
"""

SCRIPT = """
for (const t of document.querySelectorAll('time[data-ts]')) {
  const d = new Date(Number(t.dataset.ts) * 1000);
  t.textContent = d.toLocaleString([], {dateStyle: 'medium', timeStyle: 'short'});
  t.title = t.getAttribute('datetime');
}
const rows = document.querySelectorAll('#calls tbody tr');
function filterCalls() {
  const p = document.getElementById('f-provider').value;
  const o = document.getElementById('f-outcome').value;
  let shown = 0;
  for (const r of rows) {
    const keep = (!p || r.dataset.provider === p) && (!o || r.dataset.outcome === o);
    r.hidden = !keep; shown += keep;
  }
  document.getElementById('calls-shown').textContent = shown;
}
for (const id of ['f-provider', 'f-outcome']) {
  document.getElementById(id).addEventListener('change', filterCalls);
}
document.getElementById('filters').hidden = false;
"""


def _local_time(ts: float | int | None, utc_text: str | None) -> str:
    """A UTC time that the script rewrites in the viewer's zone (UTC when it does not run)."""
    if ts is None or utc_text is None:
        return "-"
    return f'<time data-ts="{int(ts)}" datetime="{escape(utc_text)}">{escape(utc_text)}</time>'


def _money(value: float) -> str:
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _gauge(used: float, reserved: float, limit: float, label: str) -> str:
    """A used / reserved / remaining bar with its figures as the accessible name."""
    limit = max(limit, 1e-12)
    u = min(used / limit, 1.0) * 100
    r = min(reserved / limit, 1.0 - u / 100) * 100
    color = "#cf222e" if u + r >= 99.9 else "#d4a72c" if u + r >= 80 else "#1a7f37"
    return (
        f'<svg viewBox="0 0 100 6" preserveAspectRatio="none" role="img" aria-label="{escape(label)}">'
        f"<title>{escape(label)}</title>"
        '<rect width="100" height="6" fill="#eaeef2"/>'
        f'<rect width="{u:.2f}" height="6" fill="{color}"/>'
        f'<rect x="{u:.2f}" width="{r:.2f}" height="6" fill="#8c959f"/></svg>'
    )


def _providers(quota: dict[str, Any]) -> str:
    cards = []
    for p in quota["providers"]:
        state = str(p["status"])
        css = _STATE_CLASS.get(state, "off")
        label = state.replace("_", " ")
        until = f" until {escape(str(p['until']))}" if p.get("until") else ""
        detail = (
            f'<div class="muted">{escape(str(p["detail"]))}{until}</div>'
            if p.get("detail") or until
            else ""
        )
        windows = []
        for w in p["windows"]:
            text = (
                f"{w['metric']} per {w['period']}: {_number(w['used'])} used,"
                f" {_number(w['reserved'])} reserved of {_number(w['limit'])}"
                f" ({_number(w['remaining'])} left)"
            )
            resets = (
                f'resets {_local_time(w["resets_at"], w["resets"])} <span class="muted">'
                f"({escape(str(w['resets']))})</span>"
                if w.get("resets_at")
                else "never resets"
            )
            windows.append(
                f'<div class="gauge">{_gauge(w["used"], w["reserved"], w["limit"], text)}'
                f"<div>{escape(text)}{' · free' if w.get('free') else ''}</div>"
                f'<div class="muted">{resets}</div></div>'
            )
        rate = p.get("failure_rate_24h")
        calls = f"{p['calls_24h']} calls in 24 h" + (
            f", {rate:.0%} failed" if rate is not None else ""
        )
        cards.append(
            f'<section class="card" data-provider="{escape(p["provider"])}" data-state="{escape(state)}">'
            f'<h3>{escape(p["provider"])} <span class="state {css}">{escape(label)}</span></h3>'
            f"{detail}{''.join(windows) or '<div class=muted>no quota rules</div>'}"
            f'<div class="muted">{escape(calls)}</div></section>'
        )
    return f'<div class="cards">{"".join(cards)}</div>'


def _spend(quota: dict[str, Any]) -> str:
    month, day = quota["spend"]["month"], quota["spend"]["day"]
    figures = (
        f'<div class="figures"><div class="figure">month to date<b id="month-cost">{_money(month["cost_usd"])}</b></div>'
        f'<div class="figure">today<b id="day-cost">{_money(day["cost_usd"])}</b></div>'
        f'<div class="figure">free tiers saved this month<b id="month-saved">{_money(month["saved_usd"])}</b>'
        f'<span class="muted">at list price {_money(month["list_usd"])}</span></div></div>'
    )
    budgets = []
    for period, spend in (("month", month), ("day", day)):
        for b in spend["budgets"]:
            share = b["used_usd"] / b["limit_usd"] if b["limit_usd"] else 0.0
            text = (
                f"{b['scope']} {period}ly budget: {_money(b['used_usd'])} of {_money(b['limit_usd'])}"
                f" ({share:.0%} used, {_money(b['left_usd'])} left)"
            )
            budgets.append(
                f'<div class="gauge budget" data-share="{share:.4f}">'
                f"{_gauge(b['used_usd'], b['reserved_usd'], b['limit_usd'], text)}<div>{escape(text)}</div></div>"
            )
    return figures + "".join(budgets)


def _daily_chart(days: list[dict[str, Any]]) -> str:
    if not days:
        return '<p class="muted">no calls in the last 30 days</p>'
    dates = sorted({d["day"] for d in days})
    providers = sorted({d["provider"] for d in days})
    color = {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(providers)}
    totals = {day: sum(d["cost_usd"] for d in days if d["day"] == day) for day in dates}
    top = max(totals.values()) or 1.0
    width, height, bar = 600, 200, 600 / max(len(dates), 1)
    rects = []
    for i, day in enumerate(dates):
        y = height
        for d in (d for d in days if d["day"] == day):
            h = d["cost_usd"] / top * (height - 10)
            y -= h
            rects.append(
                f'<rect x="{i * bar + 1:.1f}" y="{y:.1f}" width="{max(bar - 2, 1):.1f}" height="{h:.1f}"'
                f' fill="{color[d["provider"]]}"><title>{escape(day)} {escape(d["provider"])}:'
                f" {_money(d['cost_usd'])}</title></rect>"
            )
    legend = "".join(
        f'<span><i class="swatch" style="background:{color[p]}"></i>{escape(p)}</span>'
        for p in providers
    )
    rows = "".join(
        f"<tr><td>{escape(d['day'])}</td><td>{escape(d['provider'])}</td>"
        f'<td class="num">{d["calls"]}</td><td class="num">{_money(d["cost_usd"])}</td></tr>'
        for d in days
    )
    summary = f"Spend per day for {len(dates)} days, highest {_money(top)}, stacked by provider"
    return (
        f'<div class="chart"><svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(summary)}">'
        f"<title>{escape(summary)}</title>{''.join(rects)}</svg></div>"
        f'<div class="legend">{legend}</div>'
        '<details><summary>the figures</summary><div class="table"><table><thead><tr><th>day</th>'
        '<th>provider</th><th class="num">calls</th><th class="num">paid</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></div></details>"
    )


def _health(health: dict[str, list[dict[str, Any]]]) -> str:
    parts = []
    for period, label in (("24h", "last 24 hours"), ("7d", "last 7 days")):
        rows = []
        for h in health[period]:
            rate = h["failure_rate"]
            outcomes = ", ".join(f"{k} {v}" for k, v in h["outcomes"].items())
            median = h["median_latency_ms"]
            rows.append(
                f'<tr data-provider="{escape(h["provider"])}"><td>{escape(h["provider"])}</td>'
                f'<td class="num">{h["calls"]}</td>'
                f'<td class="num">{"-" if rate is None else f"{rate:.1%}"}</td>'
                f'<td class="num">{"-" if median is None else f"{median:,.0f} ms"}</td>'
                f"<td>{escape(outcomes)}</td></tr>"
            )
        parts.append(
            f'<h3>{label}</h3><div class="table"><table id="health-{period}"><thead><tr><th>provider</th>'
            '<th class="num">calls</th><th class="num">failure rate</th><th class="num">median latency</th>'
            f"<th>outcomes</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )
    return "".join(parts)


def _calls(calls: list[dict[str, Any]]) -> str:
    providers = sorted({str(c["provider"]) for c in calls})
    outcomes = sorted({str(c["outcome"]) for c in calls})

    def options(values: list[str]) -> str:
        return '<option value="">all</option>' + "".join(
            f'<option value="{escape(v)}">{escape(v)}</option>' for v in values
        )

    rows = []
    for c in calls:
        usage = c["usage"]
        units = ", ".join(f"{k} {_number(v)}" for k, v in usage.items() if k not in ("usd",))
        rows.append(
            f'<tr data-provider="{escape(str(c["provider"]))}" data-outcome="{escape(str(c["outcome"]))}">'
            f"<td>{_local_time(c['ts'], c['time'])}</td><td>{escape(str(c['task']))}</td>"
            f"<td>{escape(str(c['provider']))}</td><td>{escape(str(c['model']))}</td>"
            f"<td>{escape(str(c['outcome']))}</td><td class=num>{c['latency_ms']:,.0f} ms</td>"
            f"<td>{escape(units)}</td><td class=num>{_money(c['cost_usd'])}</td></tr>"
        )
    return (
        f'<div id="filters" hidden><label>provider <select id="f-provider">{options(providers)}</select></label>'
        f'<label>outcome <select id="f-outcome">{options(outcomes)}</select></label>'
        f'<span class="muted"><span id="calls-shown">{len(calls)}</span> shown</span></div>'
        '<div class="table"><table id="calls"><thead><tr><th>time</th><th>task</th><th>provider</th>'
        '<th>model</th><th>outcome</th><th class="num">latency</th><th>usage</th><th class="num">cost</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _jobs(jobs: list[dict[str, Any]]) -> str:
    if not jobs:
        return '<p class="muted">the cron service has not run yet (sched cron)</p>'
    rows = "".join(
        f"<tr><td>{escape(str(j['job']))}</td><td>{escape(str(j['started']))}</td>"
        f'<td class="{"ok" if j["ok"] else "bad"}">{"ok" if j["ok"] else "failed"}</td>'
        f"<td>{escape(str(j['detail']))}</td></tr>"
        for j in jobs
    )
    return (
        '<div class="table"><table id="jobs"><thead><tr><th>job</th><th>started (UTC)</th><th>result</th>'
        f"<th>detail</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )


def render(snapshot: dict[str, Any], *, refresh_s: int | None = 30) -> str:
    """The whole page. `refresh_s` None for a file written once (`sched report --html`)."""
    quota = snapshot["quota"]
    refresh = f'<meta http-equiv="refresh" content="{refresh_s}">' if refresh_s else ""
    generated = _local_time(snapshot["generated_ts"], snapshot["generated_at"])
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{refresh}<title>api-scheduler status</title><style>{CSS}</style></head><body><main>"
        f'<h1>api-scheduler status</h1><p class="muted">generated {generated}'
        f"{f' · refreshes every {refresh_s} s' if refresh_s else ''} · data: "
        '<a href="/v1/sched/status">/v1/sched/status</a> (JSON)</p>'
        f'<h2 id="providers">Quota and state</h2>{_providers(quota)}'
        f'<h2 id="spend">Spend</h2>{_spend(quota)}<h3>Spend per day, last 30 days</h3>'
        f"{_daily_chart(snapshot['daily_spend'])}"
        f'<h2 id="health">Failures and latency</h2>{_health(snapshot["health"])}'
        f'<h2 id="recent">Last {len(snapshot["recent_calls"])} calls</h2>{_calls(snapshot["recent_calls"])}'
        f'<h2 id="cron">Cron service</h2>{_jobs(snapshot["jobs"])}'
        f"</main><script>{SCRIPT}</script></body></html>"
    )


__all__ = ["render"]
