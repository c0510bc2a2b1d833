"""probe-disabled: one small real call per provider disabled for bad health; a pass re-enables it.

How the probe gets past the block. The dispatcher refuses a blocked provider, and that refusal
happens inside the ledger's reservation transaction. Lifting the block for the probe would open
the provider to every worker sharing the ledger while its health is unknown. Instead the probe
runs on its own ledger connection whose state check lets *this one provider* through its health
block (and nothing else: a bad key, quota and budget limits still apply). Every other process keeps
seeing the block during the probe. Afterwards, in the same function:

- the probe passed: the health block is lifted (`reenable`), and the provider takes calls again;
- it failed, or could not be made (no key, quota full): the health block is put back as it was,
  with the probe's result added to the reason. Putting it back matters: the dispatcher records the
  failed probe like any failure, and for a transient one that overwrites `block_outcome` with a
  30-second cool-down's outcome.

The probe is one call of the provider's own task kind (`scheduler.probes`): an image provider is
probed with an image, a speech provider with a second of audio. Retries are off for it.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from jobs import Detail, JobContext, run_recorded
from scheduler.ledger.db import Database
from scheduler.ledger.store import Ledger, Refusal

if TYPE_CHECKING:
    import httpx

    from scheduler.config import Config, KeyStore
    from scheduler.dispatcher import RunResult
    from scheduler.tasks import Task

log = logging.getLogger("sched.jobs.probe_disabled")
_LAST_PROBE = "; last probe "


class ProbeLedger(Ledger):
    """The ledger, except that `probing`'s own health block does not refuse its probe."""

    def __init__(self, db: Database, *, probing: str, lease_s: float) -> None:
        super().__init__(db, lease_s=lease_s, name=db.name)
        self.probing = probing

    def _state_refusal(
        self, db: Database, provider: str, key_fp: str | None, now: float
    ) -> Refusal | None:
        from scheduler.ledger.maintenance import UNHEALTHY

        refusal = super()._state_refusal(db, provider, key_fp, now)
        if refusal is None or provider != self.probing:
            return refusal
        row = db.execute(
            "SELECT block_outcome, disabled, disabled_key FROM provider_state WHERE provider = ?",
            (provider,),
        ).fetchone()
        outcome, disabled, disabled_key = row
        if disabled and (key_fp is None or key_fp == disabled_key):
            return refusal  # a key the provider rejected: only a new key re-enables it
        return None if outcome == UNHEALTHY else refusal


def probe_disabled(config_path: str | None = None, db_target: str | None = None) -> Detail:
    return run_recorded("probe-disabled", config_path, db_target, probe_all)


def probe_all(ctx: JobContext, *, transport: httpx.AsyncBaseTransport | None = None) -> Detail:
    from scheduler.ledger.db import connect
    from scheduler.ledger.maintenance import disable_unhealthy, reenable, unhealthy
    from scheduler.probes import probe_kind, probe_task
    from scheduler.windows import format_instant

    results: list[dict[str, object]] = []
    re_enabled: list[str] = []
    for name, reason in unhealthy(ctx.ledger).items():
        base_reason = reason.split(_LAST_PROBE, 1)[0]
        if name not in ctx.config.providers:
            results.append({"provider": name, "outcome": "skipped", "detail": "not in the table"})
            continue
        kind = probe_kind(ctx.config, name)
        if kind is None:
            results.append({"provider": name, "outcome": "skipped", "detail": "serves no task"})
            continue
        ledger = ProbeLedger(connect(ctx.db_target), probing=name, lease_s=ctx.ledger.lease_s)
        try:
            with tempfile.TemporaryDirectory(prefix="sched-probe-") as tmp:
                task = probe_task(kind, Path(tmp))
                run = asyncio.run(_probe(ctx.config, ledger, ctx.keys, task, name, transport))
        finally:
            ledger.close()
        attempt = run.attempts[-1] if run.attempts else None
        outcome = attempt.outcome if attempt else "skipped"
        if run.ok:
            reenable(ctx.ledger, name)
            re_enabled.append(name)
            log.warning("re-enabled %s: its %s probe passed", name, kind)
            results.append({"provider": name, "kind": kind, "outcome": "ok", "re_enabled": True})
            continue
        error = attempt.error if attempt and attempt.error else outcome
        when = format_instant(int(time.time()), "UTC")
        disable_unhealthy(ctx.ledger, name, f"{base_reason}{_LAST_PROBE}{when}: {error}"[:300])
        log.warning("%s stays disabled: its %s probe %s (%s)", name, kind, outcome, error)
        results.append(
            {
                "provider": name,
                "kind": kind,
                "outcome": outcome,
                "error": error,
                "re_enabled": False,
            }
        )
    return {"probed": results, "re_enabled": re_enabled}


async def _probe(
    config: Config,
    ledger: Ledger,
    keys: KeyStore,
    task: Task,
    name: str,
    transport: httpx.AsyncBaseTransport | None,
) -> RunResult:
    from scheduler.dispatcher import Dispatcher
    from scheduler.providers.http import make_client

    # One real call: the dispatcher's transient retries would turn a probe into three.
    settings = config.settings.model_copy(update={"retries": 0})
    one_try = config.model_copy(update={"settings": settings})
    async with make_client(
        settings.timeout_s, transport=transport, max_response_mb=settings.max_response_mb
    ) as http:
        return await Dispatcher(one_try, ledger, keys, http).run(task, only=name)


__all__ = ["ProbeLedger", "probe_all", "probe_disabled"]
