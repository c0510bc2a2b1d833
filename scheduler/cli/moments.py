"""Moments typed on the command line: `12h`, `30d`, `2w` from now (or ago), or a date."""

from __future__ import annotations

import re
import time

_DURATION = re.compile(r"^(\d+)([mhdw])$")
_UNIT_S = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_moment(value: str, option: str, *, ago: bool, now: float | None = None) -> float:
    """POSIX time of `value`: a duration after now (`ago=False`) or before it, or a date/time
    (ISO 8601, UTC unless it says otherwise). A bad value is an InputError naming `option`."""
    from datetime import UTC, datetime

    from scheduler.errors import InputError

    now = time.time() if now is None else now
    match = _DURATION.match(value.strip())
    if match:
        seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
        return now - seconds if ago else now + seconds
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(
            f"{option} {value[:40]!r}: expected a duration (30m, 12h, 30d, 2w) or a date "
            "(2027-01-31)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


__all__ = ["parse_moment"]
