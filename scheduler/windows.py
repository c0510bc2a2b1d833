"""Calendar arithmetic for quota windows.

Providers reset quotas on calendar boundaries in their own time zone (Gemini's free tier at midnight
Pacific, Groq at midnight UTC), not a rolling interval from the first request, so a window is
computed from local wall-clock time. Getting DST wrong here means either refusing calls the provider
would accept or spending past a limit, so every period is defined so that windows tile the time
line: each instant lies in exactly one window and consecutive windows touch.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import date, datetime, time
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Period = Literal["minute", "hour", "day", "month", "total"]
PERIODS: tuple[Period, ...] = get_args(Period)

_HOUR = 3600


def _zone(tz: str | ZoneInfo) -> ZoneInfo:
    """Turn a zone name into a ZoneInfo, folding zoneinfo's assorted exceptions into one ValueError.

    zoneinfo raises ZoneInfoNotFoundError (a KeyError) for unknown names, ValueError for malformed
    keys and IsADirectoryError for names like "America"; callers validating config want one type.
    """
    if isinstance(tz, ZoneInfo):
        return tz
    if not isinstance(tz, str):
        raise ValueError(f"tz must be an IANA time zone name or a ZoneInfo, got {tz!r}")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {tz!r}") from None


def _offset(ts: int, tz: ZoneInfo) -> int:
    offset = datetime.fromtimestamp(ts, tz).utcoffset()
    assert offset is not None
    return int(offset.total_seconds())


def _transition(lo: int, hi: int, tz: ZoneInfo) -> int:
    """The first second in (lo, hi] with hi's UTC offset; zoneinfo exposes no transition list."""
    target = _offset(hi, tz)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset(mid, tz) == target:
            hi = mid
        else:
            lo = mid
    return hi


def _hour_floor(ts: int, tz: ZoneInfo) -> int:
    """The last instant <= ts at which the local clock reads HH:00:00.

    Defined on instants rather than local hours so that a repeated hour (fall back) is two windows
    and a half-hour DST shift (Australia/Lord_Howe) just makes one window shorter or longer.
    """
    while True:
        offset = _offset(ts, tz)
        candidate = (ts + offset) // _HOUR * _HOUR - offset
        if _offset(candidate, tz) == offset:
            return candidate
        # The offset changed in (candidate, ts]; no boundary lies after the change: look before it.
        ts = _transition(candidate, ts, tz) - 1


def _hour_ceil(ts: int, tz: ZoneInfo) -> int:
    """The first instant >= ts at which the local clock reads HH:00:00 (mirror of _hour_floor)."""
    while True:
        offset = _offset(ts, tz)
        candidate = -(-(ts + offset) // _HOUR) * _HOUR - offset
        if _offset(candidate, tz) == offset:
            return candidate
        ts = _transition(ts, candidate, tz)


def _timespec(value: time) -> str:
    return "seconds" if value.second else "minutes"


def _month_date(index: int, day: int) -> date:
    """The reset date of month `index` (year * 12 + month - 1), clamping day 31 to short months."""
    year, month0 = divmod(index, 12)
    return date(year, month0 + 1, min(day, calendar.monthrange(year, month0 + 1)[1]))


def _calendar(ts: int, index: int, boundary: Callable[[int], int]) -> tuple[int, int]:
    """Find the last boundary <= ts by stepping local dates (or months), never by adding hours.

    The local date of `ts` is only a first guess: the reset may not have happened yet today, and a
    boundary equal to the next one (a skipped local day) must be stepped over so that no window is
    empty.
    """
    while boundary(index) > ts:
        index -= 1
    while boundary(index + 1) <= ts:
        index += 1
    return (boundary(index), boundary(index + 1))


class WindowSpec:
    """per, reset (datetime.time, default 00:00), tz (ZoneInfo, default UTC), day (int, default 1).

    `reset` matters for day and month windows, `day` only for month windows; they are kept as given
    so that equal rules compare equal. Instances cache the last bounds because the ledger asks for
    them on every reservation and almost always inside the same window.
    """

    __slots__ = ("per", "reset", "tz", "day", "_cache")

    def __init__(
        self, per: Period, reset: time = time(0, 0), tz: str | ZoneInfo = "UTC", day: int = 1
    ) -> None:
        if per not in PERIODS:
            raise ValueError(f"unknown period {per!r}; expected one of {', '.join(PERIODS)}")
        if not isinstance(reset, time) or reset.tzinfo is not None or reset.microsecond:
            raise ValueError(
                f"reset must be a naive datetime.time with whole seconds (e.g. time(0, 0)), "
                f"got {reset!r}"
            )
        if isinstance(day, bool) or not isinstance(day, int) or not 1 <= day <= 31:
            raise ValueError(f"day must be an integer from 1 to 31, got {day!r}")
        self.per: Period = per
        # A reset time that occurs twice (a fall-back night) means its first occurrence;
        # `fold` on the caller's time must not pick the second.
        self.reset: time = reset.replace(fold=0)
        self.tz: ZoneInfo = _zone(tz)
        self.day: int = day
        self._cache: tuple[int, int] = (0, 0)

    def bounds(self, now: float) -> tuple[int, int | None]:
        """The window holding `now` as (start inclusive, end exclusive) POSIX seconds.

        The cache check comes first and does no zoneinfo work; a clock moved backwards simply
        misses it. "total" never resets, so it is one window from the epoch with no end.
        """
        cache = self._cache
        if cache[0] <= now < cache[1]:
            return cache
        if self.per == "total":
            return (0, None)
        ts = int(now // 1)  # boundaries are whole seconds, so flooring loses nothing
        if self.per == "minute":
            start = ts // 60 * 60
            result = (start, start + 60)
        elif self.per == "hour":
            result = (_hour_floor(ts, self.tz), _hour_ceil(ts + 1, self.tz))
        elif self.per == "day":
            local = datetime.fromtimestamp(ts, self.tz).date().toordinal()
            result = _calendar(ts, local, self._day_at)
        else:
            local_dt = datetime.fromtimestamp(ts, self.tz)
            result = _calendar(ts, local_dt.year * 12 + local_dt.month - 1, self._month_at)
        self._cache = result
        return result

    def next_reset(self, now: float) -> int | None:
        return self.bounds(now)[1]

    def _at(self, day: date) -> int:
        # fold=0: a reset inside a spring-forward gap lands just after the gap, a repeated one on
        # its first occurrence; either way one boundary per date, which keeps windows tiling.
        return int(datetime.combine(day, self.reset, tzinfo=self.tz).timestamp())

    def _day_at(self, ordinal: int) -> int:
        return self._at(date.fromordinal(ordinal))

    def _month_at(self, index: int) -> int:
        return self._at(_month_date(index, self.day))

    def _key(self) -> tuple[str, time, str | None, int]:
        return (self.per, self.reset, self.tz.key, self.day)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WindowSpec):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"WindowSpec(per={self.per!r}, reset={self.reset.isoformat(_timespec(self.reset))!r}, "
            f"tz={self.tz.key!r}, day={self.day})"
        )


def format_instant(ts: float, tz: str | ZoneInfo) -> str:
    """Render a reset instant the way the provider's documentation states it, e.g. "00:00 PST".

    Total: an instant a provider or an old ledger row made up (past year 9999, NaN) renders as
    what it is instead of crashing the report or the run that shows it."""
    zone = _zone(tz)
    try:
        local = datetime.fromtimestamp(int(ts), zone)
    except (OverflowError, OSError, ValueError):
        return "a time out of range" if ts == ts else "an unknown time"  # NaN != NaN
    text = local.strftime("%Y-%m-%d %H:%M:%S" if local.second else "%Y-%m-%d %H:%M")
    return f"{text} {local.tzname()}"


__all__ = ["PERIODS", "Period", "WindowSpec", "format_instant"]
