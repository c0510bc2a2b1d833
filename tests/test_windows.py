"""Quota windows must match the providers' calendar resets exactly, DST days included."""

from __future__ import annotations

import calendar
import functools
import time as systime
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.windows import PERIODS, WindowSpec, format_instant

LA = "America/Los_Angeles"
HOUR = 3600
DAY = 24 * HOUR


def utc(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())


# --- day windows ---------------------------------------------------------------------------------


def test_la_day_window_starts_at_0800_utc_in_winter() -> None:
    spec = WindowSpec("day", tz=LA)
    assert spec.bounds(utc(2026, 1, 15, 12, 0)) == (utc(2026, 1, 15, 8), utc(2026, 1, 16, 8))
    # 07:59:59 UTC is still the previous Pacific day
    assert spec.bounds(utc(2026, 1, 15, 7, 59, 59)) == (utc(2026, 1, 14, 8), utc(2026, 1, 15, 8))
    assert spec.next_reset(utc(2026, 1, 15, 7, 59, 59)) == utc(2026, 1, 15, 8)


def test_la_day_window_starts_at_0700_utc_in_summer() -> None:
    spec = WindowSpec("day", tz=LA)
    assert spec.bounds(utc(2026, 7, 15, 3, 0)) == (utc(2026, 7, 14, 7), utc(2026, 7, 15, 7))
    assert spec.next_reset(utc(2026, 7, 15, 7, 0)) == utc(2026, 7, 16, 7)


def test_la_spring_forward_day_is_23_hours() -> None:
    start, end = WindowSpec("day", tz=LA).bounds(utc(2026, 3, 8, 12))
    assert (start, end) == (utc(2026, 3, 8, 8), utc(2026, 3, 9, 7))
    assert end - start == 23 * HOUR


def test_la_fall_back_day_is_25_hours() -> None:
    start, end = WindowSpec("day", tz=LA).bounds(utc(2026, 11, 1, 12))
    assert (start, end) == (utc(2026, 11, 1, 7), utc(2026, 11, 2, 8))
    assert end - start == 25 * HOUR


def test_reset_inside_spring_forward_gap_still_tiles() -> None:
    # 02:30 does not exist on 2026-03-08 in Los Angeles; the reset happens just after the gap.
    spec = WindowSpec("day", time(2, 30), tz=LA)
    assert spec.bounds(utc(2026, 3, 8, 10, 0)) == (utc(2026, 3, 7, 10, 30), utc(2026, 3, 8, 10, 30))
    assert spec.bounds(utc(2026, 3, 8, 12, 0)) == (utc(2026, 3, 8, 10, 30), utc(2026, 3, 9, 9, 30))


def test_reset_in_repeated_hour_uses_first_occurrence() -> None:
    # 01:30 happens twice on 2026-11-01 in Los Angeles (08:30 and 09:30 UTC).
    spec = WindowSpec("day", time(1, 30), tz=LA)
    assert spec.bounds(utc(2026, 11, 1, 9, 0)) == (utc(2026, 11, 1, 8, 30), utc(2026, 11, 2, 9, 30))
    assert spec.bounds(utc(2026, 11, 1, 8, 29)) == (
        utc(2026, 10, 31, 8, 30),
        utc(2026, 11, 1, 8, 30),
    )


def test_reset_repeated_across_midnight_belongs_to_the_next_date() -> None:
    # St John's fell back at 00:01 NDT on 2010-11-07 (02:31 UTC) to 23:01 NST on the 6th, so at
    # 03:00 UTC the local date reads the 6th although the 7th's 00:00 reset already happened.
    spec = WindowSpec("day", tz="America/St_Johns")
    assert spec.bounds(utc(2010, 11, 7, 3, 0)) == (utc(2010, 11, 7, 2, 30), utc(2010, 11, 8, 3, 30))
    assert spec.bounds(utc(2010, 11, 7, 2, 29)) == (
        utc(2010, 11, 6, 2, 30),
        utc(2010, 11, 7, 2, 30),
    )


def test_utc_day_window() -> None:
    spec = WindowSpec("day")
    assert spec.bounds(utc(2026, 5, 3, 23, 59, 59) + 0.999) == (utc(2026, 5, 3), utc(2026, 5, 4))
    assert spec.bounds(utc(2026, 5, 4)) == (utc(2026, 5, 4), utc(2026, 5, 5))


def test_kolkata_day_window_at_0630() -> None:
    # 06:30 IST (+05:30) is 01:00 UTC.
    spec = WindowSpec("day", time(6, 30), tz="Asia/Kolkata")
    assert spec.bounds(utc(2026, 5, 3, 0, 59)) == (utc(2026, 5, 2, 1), utc(2026, 5, 3, 1))
    assert spec.bounds(utc(2026, 5, 3, 1, 0)) == (utc(2026, 5, 3, 1), utc(2026, 5, 4, 1))


# --- hour and minute windows ---------------------------------------------------------------------


def test_kolkata_hour_window_starts_at_half_past_utc() -> None:
    spec = WindowSpec("hour", tz="Asia/Kolkata")
    assert spec.bounds(utc(2026, 3, 10, 12, 10)) == (
        utc(2026, 3, 10, 11, 30),
        utc(2026, 3, 10, 12, 30),
    )


def test_kathmandu_hour_window_starts_at_quarter_past_utc() -> None:
    spec = WindowSpec("hour", tz="Asia/Kathmandu")
    assert spec.bounds(utc(2026, 3, 10, 12, 10)) == (
        utc(2026, 3, 10, 11, 15),
        utc(2026, 3, 10, 12, 15),
    )


def test_utc_hour_window() -> None:
    assert WindowSpec("hour").bounds(utc(2026, 3, 10, 12, 10)) == (
        utc(2026, 3, 10, 12),
        utc(2026, 3, 10, 13),
    )


def test_repeated_hour_is_two_hour_windows() -> None:
    spec = WindowSpec("hour", tz=LA)
    # 01:30 PDT, then 01:30 PST
    assert spec.bounds(utc(2026, 11, 1, 8, 30)) == (utc(2026, 11, 1, 8), utc(2026, 11, 1, 9))
    assert spec.bounds(utc(2026, 11, 1, 9, 30)) == (utc(2026, 11, 1, 9), utc(2026, 11, 1, 10))
    # 01:59 PST on spring-forward day runs into 03:00 PDT
    assert spec.bounds(utc(2026, 3, 8, 9, 59)) == (utc(2026, 3, 8, 9), utc(2026, 3, 8, 10))
    assert spec.bounds(utc(2026, 3, 8, 10, 0)) == (utc(2026, 3, 8, 10), utc(2026, 3, 8, 11))


def test_lord_howe_half_hour_shift_makes_one_90_minute_hour() -> None:
    # 2026-10-04 02:00 +10:30 (15:30 UTC) becomes 02:30 +11: the window from 01:00 runs to 03:00.
    spec = WindowSpec("hour", tz="Australia/Lord_Howe")
    assert spec.bounds(utc(2026, 10, 3, 15, 0)) == (utc(2026, 10, 3, 14, 30), utc(2026, 10, 3, 16))
    assert spec.bounds(utc(2026, 10, 3, 15, 40)) == (utc(2026, 10, 3, 14, 30), utc(2026, 10, 3, 16))
    assert spec.bounds(utc(2026, 10, 3, 16)) == (utc(2026, 10, 3, 16), utc(2026, 10, 3, 17))
    # 2026-04-05 02:00 +11 (15:00 UTC) falls back to 01:30 +10:30: the window from 01:00 ends at
    # 02:00 +10:30.
    assert spec.bounds(utc(2026, 4, 4, 14, 50)) == (utc(2026, 4, 4, 14), utc(2026, 4, 4, 15, 30))
    assert spec.bounds(utc(2026, 4, 4, 15, 10)) == (utc(2026, 4, 4, 14), utc(2026, 4, 4, 15, 30))
    assert spec.bounds(utc(2026, 4, 4, 15, 30)) == (
        utc(2026, 4, 4, 15, 30),
        utc(2026, 4, 4, 16, 30),
    )


def test_minute_window() -> None:
    now = utc(2026, 1, 15, 12, 34, 56) + 0.7
    spec = WindowSpec("minute", tz=LA)  # the zone is irrelevant for minutes
    assert spec.bounds(now) == (utc(2026, 1, 15, 12, 34), utc(2026, 1, 15, 12, 35))
    assert spec.next_reset(now) == utc(2026, 1, 15, 12, 35)


def test_total_never_resets() -> None:
    spec = WindowSpec("total")
    assert spec.bounds(utc(2026, 1, 15)) == (0, None)
    assert spec.bounds(utc(2099, 12, 31)) == (0, None)
    assert spec.next_reset(utc(2026, 1, 15)) is None


# --- month windows -------------------------------------------------------------------------------


def test_month_window_day_1_utc() -> None:
    spec = WindowSpec("month")
    assert spec.bounds(utc(2026, 2, 14)) == (utc(2026, 2, 1), utc(2026, 3, 1))
    assert spec.bounds(utc(2026, 12, 31, 23, 59, 59)) == (utc(2026, 12, 1), utc(2027, 1, 1))
    assert spec.next_reset(utc(2026, 3, 1)) == utc(2026, 4, 1)


def test_month_day_31_clamps_to_short_months() -> None:
    spec = WindowSpec("month", day=31)
    assert spec.bounds(utc(2026, 2, 20)) == (utc(2026, 1, 31), utc(2026, 2, 28))
    assert spec.bounds(utc(2026, 3, 5)) == (utc(2026, 2, 28), utc(2026, 3, 31))
    assert spec.bounds(utc(2026, 4, 15)) == (utc(2026, 3, 31), utc(2026, 4, 30))
    assert spec.bounds(utc(2026, 5, 1)) == (utc(2026, 4, 30), utc(2026, 5, 31))
    assert spec.bounds(utc(2028, 2, 29, 12)) == (utc(2028, 2, 29), utc(2028, 3, 31))


def test_month_window_in_los_angeles() -> None:
    spec = WindowSpec("month", tz=LA)
    # 2026-02-28 23:59 PST is still February; March's start is PST, April's is PDT.
    assert spec.bounds(utc(2026, 3, 1, 7, 59)) == (utc(2026, 2, 1, 8), utc(2026, 3, 1, 8))
    assert spec.bounds(utc(2026, 3, 20)) == (utc(2026, 3, 1, 8), utc(2026, 4, 1, 7))


def test_month_window_with_reset_time_and_day() -> None:
    spec = WindowSpec("month", time(9, 0), tz="Asia/Tokyo", day=15)
    assert spec.bounds(utc(2026, 6, 15, 0, 0)) == (utc(2026, 6, 15), utc(2026, 7, 15))
    assert spec.bounds(utc(2026, 6, 14, 23, 59)) == (utc(2026, 5, 15), utc(2026, 6, 15))


# --- the cache -----------------------------------------------------------------------------------


def test_cache_returns_same_bounds_inside_window() -> None:
    spec = WindowSpec("day", tz=LA)
    first = spec.bounds(utc(2026, 1, 15, 12))
    assert spec.bounds(utc(2026, 1, 15, 13)) is first
    assert spec.bounds(utc(2026, 1, 16, 7, 59, 59)) is first


def test_cache_recomputes_after_end_and_before_start() -> None:
    spec = WindowSpec("day", tz=LA)
    assert spec.bounds(utc(2026, 1, 15, 12)) == (utc(2026, 1, 15, 8), utc(2026, 1, 16, 8))
    assert spec.bounds(utc(2026, 1, 16, 8)) == (utc(2026, 1, 16, 8), utc(2026, 1, 17, 8))
    # the clock moved back
    assert spec.bounds(utc(2026, 1, 16, 7, 59, 59)) == (utc(2026, 1, 15, 8), utc(2026, 1, 16, 8))
    assert spec.bounds(utc(2025, 7, 1, 12)) == (utc(2025, 7, 1, 7), utc(2025, 7, 2, 7))


def test_bounds_under_travelled_clock() -> None:
    spec = WindowSpec("day", tz=LA)
    with time_machine.travel(datetime(2026, 1, 15, 7, 59, 59, tzinfo=UTC), tick=False):
        assert spec.next_reset(systime.time()) == utc(2026, 1, 15, 8)
        assert spec.bounds(systime.time()) == (utc(2026, 1, 14, 8), utc(2026, 1, 15, 8))
    with time_machine.travel(datetime(2026, 1, 15, 8, 0, 0, tzinfo=UTC), tick=False):
        assert spec.bounds(systime.time()) == (utc(2026, 1, 15, 8), utc(2026, 1, 16, 8))


# --- properties ----------------------------------------------------------------------------------

ZONES = [
    "UTC",
    LA,
    "Europe/London",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Pacific/Chatham",
    "America/St_Johns",
]
instants = st.floats(min_value=utc(1971, 1, 1), max_value=utc(2100, 1, 1), allow_nan=False)
# Resets near the usual transition times, so gaps and repeated times are hit often.
resets = st.one_of(
    st.times().map(lambda t: t.replace(microsecond=0)),
    st.sampled_from([time(0, 0), time(0, 30), time(1, 30), time(2, 0), time(2, 30), time(23, 30)]),
)

MAX_LENGTH = {"minute": 60, "hour": 2 * HOUR, "day": 26 * HOUR, "month": 32 * DAY}
MIN_LENGTH = {"minute": 60, "hour": HOUR // 2, "day": 22 * HOUR, "month": 27 * DAY}


def _offset(ts: int, zone: ZoneInfo) -> timedelta | None:
    return datetime.fromtimestamp(ts, zone).utcoffset()


@functools.cache
def transitions() -> list[tuple[str, int]]:
    """(zone, first second of a new UTC offset) for every offset change of ZONES in 1971..2100."""
    found = []
    for name in ZONES:
        zone = ZoneInfo(name)
        for week in range(utc(1971, 1, 1), utc(2100, 1, 1), 7 * DAY):
            lo, hi = week, week + 7 * DAY
            if _offset(lo, zone) != _offset(hi, zone):
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    lo, hi = (lo, mid) if _offset(mid, zone) == _offset(hi, zone) else (mid, hi)
                found.append((name, hi))
    return found


def test_transition_list_covers_the_known_changes() -> None:
    la = [t for zone, t in transitions() if zone == LA]
    assert utc(2026, 3, 8, 10) in la and utc(2026, 11, 1, 9) in la
    assert not [t for zone, t in transitions() if zone == "UTC"]


def fresh(spec: WindowSpec) -> WindowSpec:
    return WindowSpec(spec.per, spec.reset, spec.tz, spec.day)


spec_args = st.tuples(
    st.sampled_from([p for p in PERIODS if p != "total"]),
    resets,
    st.sampled_from(ZONES),
    st.integers(1, 31),
)


@settings(max_examples=400, deadline=None)
@given(args=spec_args, now=instants)
def test_every_instant_is_in_exactly_one_window(
    args: tuple[str, time, str, int], now: float
) -> None:
    check_tiling(WindowSpec(*args), now)  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(
    per=st.sampled_from(["hour", "day", "month"]),
    reset=resets,
    day=st.integers(1, 31),
    transition=st.deferred(lambda: st.sampled_from(transitions())),
    delta=st.one_of(st.integers(-3 * HOUR, 3 * HOUR), st.integers(-2 * DAY, 2 * DAY)),
)
def test_windows_tile_around_dst_transitions(
    per: str, reset: time, day: int, transition: tuple[str, int], delta: int
) -> None:
    zone, instant = transition
    spec = WindowSpec(per, reset, zone, day)  # type: ignore[arg-type]
    check_tiling(spec, instant + delta)
    check_local_boundary(spec, fresh(spec).bounds(instant + delta)[0])


def check_tiling(spec: WindowSpec, now: float) -> None:
    start, end = spec.bounds(now)
    assert end is not None
    assert start <= now < end
    assert MIN_LENGTH[spec.per] <= end - start <= MAX_LENGTH[spec.per]
    # each probe uses a fresh instance so a cached answer cannot hide a wrong computation
    assert fresh(spec).bounds(start) == (start, end)
    assert fresh(spec).bounds(end - 1) == (start, end)
    assert fresh(spec).bounds(end)[0] == end
    assert fresh(spec).bounds(start - 1)[1] == start


@settings(max_examples=300, deadline=None)
@given(args=spec_args, now=instants)
def test_window_starts_at_the_local_boundary(args: tuple[str, time, str, int], now: float) -> None:
    spec = WindowSpec(*args)  # type: ignore[arg-type]
    check_local_boundary(spec, spec.bounds(now)[0])


def check_local_boundary(spec: WindowSpec, start: int) -> None:
    local = datetime.fromtimestamp(start, spec.tz)
    if spec.per == "minute":
        assert start % 60 == 0
    elif spec.per == "hour":
        assert (local.minute, local.second) == (0, 0)
    else:
        naive = datetime.combine(local.date(), spec.reset)
        exists = (
            naive.replace(tzinfo=spec.tz).astimezone(UTC).astimezone(spec.tz).replace(tzinfo=None)
            == naive
        )
        if exists:  # otherwise the reset fell in a DST gap and happens just after it
            assert local.time() == spec.reset
        if spec.per == "month" and exists:
            assert local.day == min(spec.day, calendar.monthrange(local.year, local.month)[1])


@settings(max_examples=300, deadline=None)
@given(args=spec_args, start=instants, steps=st.lists(st.floats(-40 * DAY, 40 * DAY), max_size=8))
def test_reused_instance_agrees_with_fresh_one(
    args: tuple[str, time, str, int], start: float, steps: list[float]
) -> None:
    spec = WindowSpec(*args)  # type: ignore[arg-type]
    now = start
    for step in steps:
        assert spec.bounds(now) == fresh(spec).bounds(now)
        assert spec.next_reset(now) == spec.bounds(now)[1]
        now += step  # steps go both ways: the clock may also move back
    assert spec.bounds(now) == fresh(spec).bounds(now)


# --- validation, equality, formatting ------------------------------------------------------------


def test_unknown_period() -> None:
    with pytest.raises(ValueError, match=r"unknown period 'week'; expected one of minute, hour"):
        WindowSpec("week")  # type: ignore[arg-type]


@pytest.mark.parametrize("day", [0, 32, -1, True, 1.0])
def test_day_outside_range(day: object) -> None:
    with pytest.raises(ValueError, match=r"day must be an integer from 1 to 31"):
        WindowSpec("month", day=day)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "reset", ["00:00", 0, datetime(2026, 1, 1), time(0, 0, 0, 5), time(0, 0, tzinfo=UTC)]
)
def test_reset_not_a_time(reset: object) -> None:
    with pytest.raises(ValueError, match=r"reset must be a naive datetime.time"):
        WindowSpec("day", reset=reset)  # type: ignore[arg-type]


@pytest.mark.parametrize("tz", ["Mars/Olympus", "America", "", "/etc/localtime", "../UTC"])
def test_unknown_time_zone(tz: str) -> None:
    with pytest.raises(ValueError, match=rf"^unknown time zone '{tz}'$"):
        WindowSpec("day", tz=tz)


def test_time_zone_not_a_string() -> None:
    with pytest.raises(ValueError, match="tz must be an IANA time zone name"):
        WindowSpec("day", tz=5)  # type: ignore[arg-type]


def test_equality_hash_and_repr() -> None:
    a = WindowSpec("day", time(0, 0), LA)
    b = WindowSpec("day", tz=ZoneInfo(LA))
    a.bounds(utc(2026, 1, 1))  # the cache is not part of identity
    assert a == b and hash(a) == hash(b)
    assert a != WindowSpec("day", tz="UTC")
    assert a != WindowSpec("day", time(0, 1), LA)
    assert WindowSpec("month", day=1) != WindowSpec("month", day=2)
    assert a != "day"
    assert repr(a) == "WindowSpec(per='day', reset='00:00', tz='America/Los_Angeles', day=1)"
    assert repr(WindowSpec("day", time(6, 30, 15))).startswith(
        "WindowSpec(per='day', reset='06:30:15'"
    )
    assert not hasattr(a, "__dict__")


def test_format_instant() -> None:
    assert format_instant(utc(2026, 11, 22, 8), LA) == "2026-11-22 00:00 PST"
    assert format_instant(utc(2026, 7, 1, 7), ZoneInfo(LA)) == "2026-07-01 00:00 PDT"
    assert format_instant(utc(2026, 11, 22), "UTC") == "2026-11-22 00:00 UTC"
    assert format_instant(utc(2026, 11, 22, 0, 0, 5), "UTC") == "2026-11-22 00:00:05 UTC"
    assert format_instant(utc(2026, 1, 1, 1), "Asia/Kolkata") == "2026-01-01 06:30 IST"
    with pytest.raises(ValueError, match="unknown time zone 'Nowhere'"):
        format_instant(0, "Nowhere")
