"""daily-reset: close finished days and windows, clear blocks that have run out, record the run.

Nothing here is needed for correctness: a quota window's key comes from the clock, so a provider
exhausted at 23:59 is usable at 00:00 whether or not this job ran, and a block whose
`blocked_until` has passed is ignored by every reader. The job keeps the ledger small and its
reports fast: call days become daily summaries, ended window rows and stale blocks go.
"""

from __future__ import annotations

import time

from jobs import Detail, JobContext, run_recorded


def daily_reset(config_path: str | None = None, db_target: str | None = None) -> Detail:
    return run_recorded("daily-reset", config_path, db_target, reset)


def reset(ctx: JobContext, *, now: float | None = None) -> Detail:
    from scheduler.ledger.maintenance import (
        DAY_S,
        clear_expired_blocks,
        prune_calls,
        prune_windows,
        roll_up_days,
        utc_day,
    )

    now = time.time() if now is None else now
    rolled = roll_up_days(ctx.ledger, now=now)
    today = now - now % DAY_S
    # Call rows are kept `retention_days` after their day was summarised; summaries stay.
    keep_s = ctx.config.settings.cron.retention_days * DAY_S
    pruned_calls = prune_calls(ctx.ledger, before=today - keep_s)
    pruned_windows = prune_windows(ctx.ledger, now=now)
    cleared = clear_expired_blocks(ctx.ledger, now=now)
    return {
        "day": utc_day(now),
        "rolled_up_days": list(rolled.days),
        "summary_rows": rolled.rows,
        "pruned_calls": pruned_calls,
        "pruned_windows": pruned_windows,
        "cleared_blocks": cleared,
    }


__all__ = ["daily_reset", "reset"]
