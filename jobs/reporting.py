"""Where the cron jobs' reports go: a JSON file for the owner only, and a chat webhook.

Shared by the failure report and the models check, so both write files and post messages the
same way: `<reports_dir>/<name>-<UTC time>.json` (directory 0700, file 0600, since a report names
providers, models and spend), and `{"text": ...}` to the webhook in `SCHED_REPORT_WEBHOOK`, which
Slack, Mattermost, Rocket.Chat and Discord-compatible endpoints show as a message.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

WEBHOOK_ENV = "SCHED_REPORT_WEBHOOK"
WEBHOOK_TIMEOUT_S = 10.0

log = logging.getLogger("sched.jobs.reporting")


def iso(ts: float) -> str:
    """A UTC instant as reports write it: 2026-01-15T12:00:00Z."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_report(
    directory: Path, doc: Mapping[str, object], now: float, *, name: str = "failure-report"
) -> Path:
    """Write the report as JSON, readable by the owner only (it names providers and spend)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{name}-{stamp}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT's mode only applies to a new file
    with os.fdopen(fd, "w", encoding="utf-8") as sink:
        json.dump(doc, sink, indent=2)
        sink.write("\n")
    return path


def post_webhook(
    url: str,
    text: str,
    *,
    transport: httpx.BaseTransport | None = None,
    what: str = "failure report",
) -> str:
    """POST `{"text": text}`; return what happened. Never raises, never shows the URL (a chat
    webhook URL is itself a secret); `what` names the report in the log lines."""
    import httpx

    try:
        with httpx.Client(timeout=WEBHOOK_TIMEOUT_S, transport=transport) as client:
            response = client.post(url, json={"text": text})
    except httpx.HTTPError as exc:
        log.warning("%s webhook: %s", what, type(exc).__name__)
        return f"failed: {type(exc).__name__}"
    except ValueError:  # not a URL at all
        log.warning("%s webhook: %s is not a valid URL", what, WEBHOOK_ENV)
        return f"failed: {WEBHOOK_ENV} is not a valid URL"
    if response.is_success:
        return f"posted (HTTP {response.status_code})"
    log.warning("%s webhook: HTTP %s", what, response.status_code)
    return f"failed: HTTP {response.status_code}"


__all__ = ["WEBHOOK_ENV", "WEBHOOK_TIMEOUT_S", "iso", "post_webhook", "write_report"]
