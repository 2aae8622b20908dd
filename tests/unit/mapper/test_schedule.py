"""Next-run dates of schedules (FRQCD), as wall-clock times in the database's zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from dms_pkg.errors import DmsError
from dms_pkg.mapper.schedule import Schedule, next_run, occurrences

ZONE = "Europe/Amsterdam"
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)  # a Thursday, 11:00 in Amsterdam


def local(dates: list[datetime]) -> list[str]:
    return [d.strftime("%a %Y-%m-%d %H:%M") for d in dates]


def test_fortnightly_runs_every_second_week_not_every_week() -> None:
    dates = occurrences(Schedule("FN", "FRI", 2, 30, NOW), NOW, ZONE, 4)
    assert local(dates) == ["Fri 2026-11-27 02:30", "Fri 2026-12-11 02:30",
                            "Fri 2026-12-25 02:30", "Fri 2027-01-08 02:30"]
    assert {(b - a) for a, b in pairwise(dates)} == {timedelta(days=14)}


def test_fortnightly_without_weekday_keeps_the_start_date_weekday() -> None:
    start = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)  # a Tuesday, 08:00 in Amsterdam
    dates = occurrences(Schedule("FN", None, 6, 0, start), NOW, ZONE, 3)
    # 06:00 on the start day is before the start: the first run is a week on.
    assert local(dates) == ["Tue 2026-12-08 06:00", "Tue 2026-12-22 06:00",
                            "Tue 2027-01-05 06:00"]


def test_fortnightly_counts_from_the_start_not_from_the_last_run() -> None:
    # Asked a week later, the next date is still on the same two-week grid.
    schedule = Schedule("FN", "FRI", 2, 30, NOW)
    later = NOW + timedelta(days=8)
    nxt = next_run(schedule, later, ZONE)
    assert nxt is not None and local([nxt]) == ["Fri 2026-12-11 02:30"]


@pytest.mark.parametrize(("schedule", "expected"), [
    (Schedule("DL", None, 2, 30), ["Fri 2026-11-27 02:30", "Sat 2026-11-28 02:30",
                                   "Sun 2026-11-29 02:30"]),
    (Schedule("DL", None, 23, 15), ["Thu 2026-11-26 23:15", "Fri 2026-11-27 23:15",
                                    "Sat 2026-11-28 23:15"]),
    (Schedule("ID", None, None, 15), ["Thu 2026-11-26 11:15", "Thu 2026-11-26 11:30",
                                      "Thu 2026-11-26 11:45"]),
    (Schedule("ID", "H", None, 5), ["Thu 2026-11-26 11:05", "Thu 2026-11-26 12:05",
                                    "Thu 2026-11-26 13:05"]),
    (Schedule("WK", "SUN", 23, 0), ["Sun 2026-11-29 23:00", "Sun 2026-12-06 23:00",
                                    "Sun 2026-12-13 23:00"]),
    (Schedule("WK", "4", 12, 0), ["Thu 2026-11-26 12:00", "Thu 2026-12-03 12:00",
                                  "Thu 2026-12-10 12:00"]),
    (Schedule("MN", "31", 1, 0), ["Mon 2026-11-30 01:00", "Thu 2026-12-31 01:00",
                                  "Sun 2027-01-31 01:00"]),
    (Schedule("MN", "L", 1, 0), ["Mon 2026-11-30 01:00", "Thu 2026-12-31 01:00",
                                 "Sun 2027-01-31 01:00"]),
    (Schedule("HY", "1", 6, 0), ["Sat 2027-05-01 06:00", "Mon 2027-11-01 06:00",
                                 "Mon 2028-05-01 06:00"]),
    (Schedule("YR", "29", 0, 0, datetime(2024, 2, 1, tzinfo=UTC)),
     ["Sun 2027-02-28 00:00", "Tue 2028-02-29 00:00", "Wed 2029-02-28 00:00"]),
], ids=["DL", "DL-late", "ID-15min", "ID-hourly", "WK-SUN", "WK-4", "MN-31", "MN-last",
        "HY", "YR-leap"])
def test_frequencies(schedule: Schedule, expected: list[str]) -> None:
    start = schedule.strtdt or NOW
    plan = Schedule(schedule.frqcd, schedule.frqdd, schedule.frqhh, schedule.frqmi, start)
    assert local(occurrences(plan, NOW, ZONE, 3)) == expected


def test_monthly_day_clamped_in_a_short_month_does_not_drift() -> None:
    dates = occurrences(Schedule("MN", "31", 1, 0, NOW), datetime(2027, 1, 31, 12, tzinfo=UTC),
                        ZONE, 3)
    assert local(dates) == ["Sun 2027-02-28 01:00", "Wed 2027-03-31 01:00",
                            "Fri 2027-04-30 01:00"]


def test_daily_time_stays_on_the_wall_clock_across_daylight_saving() -> None:
    before = datetime(2027, 3, 27, 12, tzinfo=UTC)
    dates = occurrences(Schedule("DL", None, 2, 30, before), before, ZONE, 2)
    assert local(dates) == ["Sun 2027-03-28 02:30", "Mon 2027-03-29 02:30"]
    assert [d.utcoffset() for d in dates] == [timedelta(hours=1), timedelta(hours=2)]


def test_no_run_before_the_start_or_after_the_end() -> None:
    start = datetime(2027, 1, 10, 0, tzinfo=UTC)
    end = datetime(2027, 1, 12, 12, tzinfo=UTC)
    dates = occurrences(Schedule("DL", None, 2, 30, start, end), NOW, ZONE, 5)
    assert local(dates) == ["Sun 2027-01-10 02:30", "Mon 2027-01-11 02:30",
                            "Tue 2027-01-12 02:30"]


def test_na_never_runs_by_itself() -> None:
    assert next_run(Schedule("NA"), NOW, ZONE) is None


@pytest.mark.parametrize(("schedule", "message"), [
    (Schedule("XX"), "frequency (FRQCD) must be one of NA, ID, DL, WK, FN, MN, HY, YR, got 'XX'"),
    (Schedule("DL", None, 24, 0), "hour (FRQHH) must be 0..23, got 24"),
    (Schedule("DL", None, 2, 60), "minute (FRQMI) must be 0..59, got 60"),
    (Schedule("DL", None, None, 0), "a DL schedule needs the time of day (FRQHH and FRQMI)"),
    (Schedule("WK", None, 1, 0), "a WK schedule needs the weekday (FRQDD)"),
    (Schedule("WK", "MONKEY", 1, 0), "FRQDD 'MONKEY' is not a weekday"),
    (Schedule("MN", "32", 1, 0), "FRQDD '32' is not a day of the month"),
    (Schedule("ID"), "an ID schedule needs its interval in minutes (FRQMI, 1..59)"),
    (Schedule("ID", "H"), "an hourly ID schedule needs the minute (FRQMI)"),
    (Schedule("DL", None, 1, 0, NOW, NOW - timedelta(days=1)),
     "the end date (ENDDT) is before the start date (STRTDT)"),
], ids=["frqcd", "hour", "minute", "no-time", "no-weekday", "bad-weekday", "bad-day",
        "no-interval", "hourly-no-minute", "end-before-start"])
def test_bad_schedules_are_refused_with_what_to_fix(schedule: Schedule, message: str) -> None:
    with pytest.raises(DmsError) as err:
        next_run(schedule, NOW, ZONE)
    assert err.value.message == message
    assert err.value.sqlstate == "22023" and err.value.hint
