"""models-check: every configured provider's live model list against the table, weekly.

The same comparison as `sched models` (`scheduler.catalog.fetch_catalog`, which also stores each
listing with its published prices), then the marks follow what the lists say:

- a model the table names that is missing from its provider's list is marked retired
  (`ledger.models.mark_retired`), so the next run skips it with the reason at no cost instead of
  paying a call to learn it is gone; a model already marked keeps its first date;
- a model marked retired that the list serves again is unmarked, so the table uses it again.

A provider skipped (disabled, no key, no list endpoint) or whose list call failed is reported,
never marked: only a successful full listing says that a model is gone. The result goes where
the failure report's goes (`jobs.reporting`): the log, `<reports_dir>/models-check-<UTC>.json`,
and the chat webhook in `SCHED_REPORT_WEBHOOK` when set. Keys only go into request headers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from jobs import Detail, JobContext, run_recorded
from jobs.reporting import WEBHOOK_ENV, iso, post_webhook, write_report

if TYPE_CHECKING:
    import httpx

    from scheduler.catalog import ProviderCatalog

REPORT_NAME = "models-check"

log = logging.getLogger("sched.jobs.models_check")


def models_check(config_path: str | None = None, db_target: str | None = None) -> Detail:
    return run_recorded("models-check", config_path, db_target, check)


def check(
    ctx: JobContext,
    *,
    now: float | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    webhook_transport: httpx.BaseTransport | None = None,
) -> Detail:
    now = time.time() if now is None else now
    catalogs = asyncio.run(_fetch(ctx, transport))
    providers = [_apply(ctx, catalog, now) for catalog in catalogs]
    doc: dict[str, object] = {
        "version": 1,
        "generated_at": iso(now),
        "providers": providers,
    }
    path = write_report(Path(ctx.config.settings.cron.reports_dir), doc, now, name=REPORT_NAME)
    log.info("models check %s", path, extra={"fields": {"report": doc}})
    webhook = ctx.keys.get(WEBHOOK_ENV)
    posted = (
        post_webhook(webhook, render_text(doc), transport=webhook_transport, what="models check")
        if webhook
        else "not set"
    )
    return {
        "path": str(path),
        "listed": [p["provider"] for p in providers if p["status"] == "ok"],
        "retired": [f"{p['provider']}: {m}" for p in providers for m in _names(p, "retired")],
        "served_again": [
            f"{p['provider']}: {m}" for p in providers for m in _names(p, "served_again")
        ],
        "not_listed": {str(p["provider"]): p["reason"] for p in providers if p["status"] != "ok"},
        "webhook": posted,
    }


async def _fetch(
    ctx: JobContext, transport: httpx.AsyncBaseTransport | None
) -> list[ProviderCatalog]:
    from scheduler.catalog import fetch_catalog
    from scheduler.providers.http import make_client

    settings = ctx.config.settings
    client = make_client(
        settings.timeout_s, transport=transport, max_response_mb=settings.max_response_mb
    )
    async with client as http:
        return await fetch_catalog(ctx.config, ctx.keys, http, ctx.ledger)


def _apply(ctx: JobContext, catalog: ProviderCatalog, now: float) -> dict[str, object]:
    """Mark and unmark one provider's models by its listing; what it did, as the report says."""
    from scheduler.ledger.models import mark_retired, unmark_retired

    entry: dict[str, object] = {"provider": catalog.provider, "status": catalog.status}
    if catalog.status != "ok":
        entry["reason"] = catalog.reason
        return entry
    present: list[str] = []
    retired: list[str] = []  # newly marked by this run
    still_retired: list[str] = []
    served_again: list[str] = []
    for configured in catalog.configured:
        model = configured.model
        if configured.state == "present":
            present.append(model)
            if configured.retired is not None:
                unmark_retired(ctx.ledger, catalog.provider, model, now=now)
                served_again.append(model)
                log.warning("%s: model %s is listed again; mark lifted", catalog.provider, model)
        elif configured.retired is not None:
            still_retired.append(model)  # the mark keeps its date and the provider's words
        else:
            reason = f"not in {catalog.provider}'s model list (models-check {iso(now)})"
            mark_retired(ctx.ledger, catalog.provider, model, reason, now=now)
            retired.append(model)
            log.warning(
                "%s: model %s is gone from its list; marked retired, set providers.%s.models.%s",
                catalog.provider,
                model,
                catalog.provider,
                configured.kind,
            )
    entry.update(
        {
            "listed_models": len(catalog.models),
            "present": present,
            "retired": retired,
            "still_retired": still_retired,
            "served_again": served_again,
        }
    )
    return entry


def _names(entry: Mapping[str, object], key: str) -> list[str]:
    value = entry.get(key)
    return [str(item) for item in value] if isinstance(value, list) else []


def render_text(doc: Mapping[str, object]) -> str:
    """The check as a short message a person reads in a chat channel: what changed first."""
    lines = [f"sched models check, {doc['generated_at']}"]
    providers = doc.get("providers")
    entries = (
        [p for p in providers if isinstance(p, Mapping)] if isinstance(providers, list) else []
    )
    for entry in entries:
        name = entry["provider"]
        if entry["status"] != "ok":
            lines.append(f"  {name}: not listed ({entry['status']}: {entry.get('reason')})")
            continue
        parts = [f"{len(_names(entry, 'present'))} of the table's models listed"]
        if gone := _names(entry, "retired"):
            parts.append(f"gone, now marked retired: {', '.join(gone)}")
        if old := _names(entry, "still_retired"):
            parts.append(f"still retired: {', '.join(old)}")
        if back := _names(entry, "served_again"):
            parts.append(f"listed again: {', '.join(back)}")
        lines.append(f"  {name}: {'; '.join(parts)}")
    if len(lines) == 1:
        lines.append("  no providers in the table")
    return "\n".join(lines)


__all__ = ["check", "models_check", "render_text"]
