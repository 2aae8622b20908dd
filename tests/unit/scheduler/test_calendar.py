"""Oracle calendaring strings: parsing, refusals with their positions, and the
next run date for each frequency, BYDAY, month ends, leap years, INTERVAL and DST."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dms_pkg.errors import DmsError
from dms_pkg.scheduler.calendar import (
    Calendar,
    DayRule,
    first_date,
    next_date,
    occurrences,
    parse,
)

ZONE = "Europe/Amsterdam"
TZ = ZoneInfo(ZONE)


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
       second: int = 0) -> datetime:
    """A wall-clock time in Amsterdam."""
    return datetime(year, month, day, hour, minute, second, tzinfo=TZ)


def runs(spec: str, start: datetime, count: int = 5, after: datetime | None = None,
         zone: str = ZONE) -> list[str]:
    found = occurrences(spec, start, after or start - timedelta(seconds=1), zone, count)
    return [d.strftime("%a %Y-%m-%d %H:%M:%S %z") for d in found]


# -- parsing -------------------------------------------------------------------------

def test_parse_is_case_insensitive_allows_spaces_names_and_a_trailing_semicolon() -> None:
    assert parse(" freq = Weekly ; interval=2; byday = mon, fri"
                 ";bymonth=jan,12;byhour=6,2;byminute=0;bysecond=30;") == Calendar(
        freq="WEEKLY", interval=2, bymonth=(1, 12), byday=(DayRule(0), DayRule(4)),
        byhour=(2, 6), byminute=(0,), bysecond=(30,))


def test_parse_week_numbers_and_negative_month_days() -> None:
    assert parse("FREQ=MONTHLY;BYDAY=-1FRI,2MON;BYMONTHDAY=-1,15") == Calendar(
        freq="MONTHLY", bymonthday=(-1, 15), byday=(DayRule(4, -1), DayRule(0, 2)))
    assert parse("FREQ=YEARLY;BYDAY=53SUN").byday == (DayRule(6, 53),)


@pytest.mark.parametrize(("text", "message"), [
    ("FREQ=FORTNIGHTLY", 'unknown frequency "FORTNIGHTLY" at position 6'),
    ("freq = fortnightly", 'unknown frequency "FORTNIGHTLY" at position 8'),
    ("", "the calendar string is empty at position 1"),
    ("   ", "the calendar string is empty at position 1"),
    ("INTERVAL=2", "FREQ is required at position 1"),
    ("FREQ=SECONDLY", "FREQ=SECONDLY is not supported (pg_cron starts jobs at most once a "
                      "minute) at position 6"),
    ("FREQ=", "FREQ needs a value at position 6"),
    ("FREQ=DAILY,WEEKLY", "FREQ takes one value at position 12"),
    ("FREQ=DAILY;INTERVAL=0", 'INTERVAL must be an integer from 1 to 999, got "0" at position 21'),
    ("FREQ=DAILY;INTERVAL=1000",
     'INTERVAL must be an integer from 1 to 999, got "1000" at position 21'),
    ("FREQ=DAILY;INTERVAL=1.5",
     'INTERVAL must be an integer from 1 to 999, got "1.5" at position 21'),
    ("FREQ=DAILY;INTERVAL=2,3", "INTERVAL takes one value at position 23"),
    ("FREQ=DAILY;;BYHOUR=1", "empty clause at position 12"),
    ("FREQ=DAILY;BYHOUR=1,,2", "BYHOUR needs a value at position 21"),
    ("FREQ=DAILY;BYHOUR", 'expected "=" after BYHOUR at position 18'),
    ("FREQ=DAILY;BYHOUR=2;BYHOUR=3", "clause BYHOUR is given twice at position 21"),
    ("FREQ=DAILY;BYSETPOS=1", "clause BYSETPOS is not supported at position 12"),
    ("FREQ=DAILY;BYWEEKNO=3", "clause BYWEEKNO is not supported at position 12"),
    ("FREQ=DAILY;FOO=1", 'unknown clause "FOO" at position 12'),
    ("FREQ=DAILY;BYHOUR=24", 'BYHOUR must be 0..23, got "24" at position 19'),
    ("FREQ=DAILY;BYHOUR=-1", 'BYHOUR must be 0..23, got "-1" at position 19'),
    ("FREQ=DAILY;BYMINUTE=60", 'BYMINUTE must be 0..59, got "60" at position 21'),
    ("FREQ=DAILY;BYSECOND=5,x", 'BYSECOND must be 0..59, got "X" at position 23'),
    ("FREQ=DAILY;BYMONTH=13", 'BYMONTH must be 1..12 or JAN..DEC, got "13" at position 20'),
    ("FREQ=DAILY;BYMONTH=JANUARY",
     'BYMONTH must be 1..12 or JAN..DEC, got "JANUARY" at position 20'),
    ("FREQ=MONTHLY;BYMONTHDAY=0", 'BYMONTHDAY must be 1..31 or -31..-1, got "0" at position 25'),
    ("FREQ=MONTHLY;BYMONTHDAY=-32",
     'BYMONTHDAY must be 1..31 or -31..-1, got "-32" at position 25'),
    ("FREQ=WEEKLY;BYDAY=MON,XYZ", 'BYDAY must be MON..SUN, optionally with a week number like '
                                  '2MON or -1FRI, got "XYZ" at position 23'),
    ("FREQ=WEEKLY;BYDAY=MONDAY", 'BYDAY must be MON..SUN, optionally with a week number like '
                                 '2MON or -1FRI, got "MONDAY" at position 19'),
    ("FREQ=WEEKLY;BYDAY=2MON", 'BYDAY "2MON" has a week number, which needs FREQ=MONTHLY or '
                               "FREQ=YEARLY at position 19"),
    ("FREQ=DAILY;BYDAY=-1FRI", 'BYDAY "-1FRI" has a week number, which needs FREQ=MONTHLY or '
                               "FREQ=YEARLY at position 18"),
    ("FREQ=MONTHLY;BYDAY=6MON", 'BYDAY week number must be 1..5 or -5..-1 for FREQ=MONTHLY, '
                                'got "6MON" at position 20'),
    ("FREQ=YEARLY;BYDAY=0MON", 'BYDAY week number must be 1..53 or -53..-1 for FREQ=YEARLY, '
                               'got "0MON" at position 19'),
    ("FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30,31",
     "BYMONTHDAY never falls in BYMONTH=2 at position 35"),
    ("FREQ=YEARLY;BYMONTH=4,6;BYMONTHDAY=31",
     "BYMONTHDAY never falls in BYMONTH=4,6 at position 36"),
])
def test_bad_strings_are_refused_with_the_position_of_the_error(text: str, message: str) -> None:
    with pytest.raises(DmsError) as err:
        parse(text)
    assert err.value.message == f"repeat_interval: {message}"
    assert err.value.sqlstate == "22023"
    assert err.value.hint == ("for example FREQ=DAILY;BYHOUR=2;BYMINUTE=0 or "
                              "FREQ=WEEKLY;BYDAY=MON,FRI;BYHOUR=6")


def test_none_is_refused_like_an_empty_string() -> None:
    with pytest.raises(DmsError, match="empty at position 1"):
        parse(None)


# -- each frequency --------------------------------------------------------------------

def test_yearly_defaults_to_the_start_dates_month_and_day() -> None:
    assert runs("FREQ=YEARLY", at(2026, 3, 15, 8, 30), 3) == [
        "Sun 2026-03-15 08:30:00 +0100", "Mon 2027-03-15 08:30:00 +0100",
        "Wed 2028-03-15 08:30:00 +0100"]


def test_yearly_with_bymonth_expands_months_and_bymonthday_expands_every_month() -> None:
    assert runs("FREQ=YEARLY;BYMONTH=JAN,JUL;BYMONTHDAY=1;BYHOUR=0;BYMINUTE=0;BYSECOND=0",
                at(2026, 3, 15, 8, 30), 3) == [
        "Wed 2026-07-01 00:00:00 +0200", "Fri 2027-01-01 00:00:00 +0100",
        "Thu 2027-07-01 00:00:00 +0200"]
    assert runs("FREQ=YEARLY;BYMONTHDAY=1", at(2026, 11, 15, 8, 0), 3) == [
        "Tue 2026-12-01 08:00:00 +0100", "Fri 2027-01-01 08:00:00 +0100",
        "Mon 2027-02-01 08:00:00 +0100"]


def test_monthly_defaults_to_the_start_dates_day() -> None:
    assert runs("FREQ=MONTHLY;BYHOUR=23;BYMINUTE=0", at(2026, 1, 10, 9, 0), 3) == [
        "Sat 2026-01-10 23:00:00 +0100", "Tue 2026-02-10 23:00:00 +0100",
        "Tue 2026-03-10 23:00:00 +0100"]


def test_weekly_defaults_to_the_start_dates_weekday() -> None:
    assert runs("FREQ=WEEKLY", at(2026, 12, 2, 7, 15), 3) == [  # a Wednesday
        "Wed 2026-12-02 07:15:00 +0100", "Wed 2026-12-09 07:15:00 +0100",
        "Wed 2026-12-16 07:15:00 +0100"]


def test_daily_at_two_keeps_the_start_dates_minute_and_second() -> None:
    assert runs("FREQ=DAILY;BYHOUR=2", at(2026, 12, 2, 13, 5, 37), 2) == [
        "Thu 2026-12-03 02:05:37 +0100", "Fri 2026-12-04 02:05:37 +0100"]
    assert runs("FREQ=DAILY;BYHOUR=2;BYMINUTE=0;BYSECOND=0", at(2026, 12, 2, 1, 0), 2) == [
        "Wed 2026-12-02 02:00:00 +0100", "Thu 2026-12-03 02:00:00 +0100"]


def test_daily_with_several_hours_and_minutes_expands_each_day() -> None:
    assert runs("FREQ=DAILY;BYHOUR=8,17;BYMINUTE=0,30;BYSECOND=0", at(2026, 12, 2, 9, 0),
                5) == ["Wed 2026-12-02 17:00:00 +0100", "Wed 2026-12-02 17:30:00 +0100",
                       "Thu 2026-12-03 08:00:00 +0100", "Thu 2026-12-03 08:30:00 +0100",
                       "Thu 2026-12-03 17:00:00 +0100"]


def test_hourly_at_given_minutes() -> None:
    assert runs("FREQ=HOURLY;BYMINUTE=0,30", at(2026, 12, 2, 9, 10), 3) == [
        "Wed 2026-12-02 09:30:00 +0100", "Wed 2026-12-02 10:00:00 +0100",
        "Wed 2026-12-02 10:30:00 +0100"]


def test_hourly_with_byhour_filters_hours() -> None:
    assert runs("FREQ=HOURLY;BYHOUR=9,12;BYMINUTE=0;BYSECOND=0", at(2026, 12, 2, 10, 0), 3) == [
        "Wed 2026-12-02 12:00:00 +0100", "Thu 2026-12-03 09:00:00 +0100",
        "Thu 2026-12-03 12:00:00 +0100"]


def test_minutely_every_minute_from_the_start() -> None:
    assert runs("FREQ=MINUTELY;INTERVAL=1", at(2026, 12, 2, 13, 5, 37), 3) == [
        "Wed 2026-12-02 13:05:37 +0100", "Wed 2026-12-02 13:06:37 +0100",
        "Wed 2026-12-02 13:07:37 +0100"]


def test_minutely_with_byminute_and_byhour_filters() -> None:
    assert runs("FREQ=MINUTELY;INTERVAL=15;BYHOUR=6;BYSECOND=0", at(2026, 12, 2, 6, 50), 4) == [
        "Wed 2026-12-02 06:50:00 +0100", "Thu 2026-12-03 06:05:00 +0100",
        "Thu 2026-12-03 06:20:00 +0100", "Thu 2026-12-03 06:35:00 +0100"]
    assert runs("FREQ=MINUTELY;BYMINUTE=0,59;BYSECOND=0", at(2026, 12, 2, 6, 50), 3) == [
        "Wed 2026-12-02 06:59:00 +0100", "Wed 2026-12-02 07:00:00 +0100",
        "Wed 2026-12-02 07:59:00 +0100"]


# -- INTERVAL > 1 -----------------------------------------------------------------------

def test_interval_counts_periods_from_the_start_not_from_now() -> None:
    start = at(2026, 1, 5, 6, 0)  # a Monday
    spec = "FREQ=WEEKLY;INTERVAL=2;BYDAY=MON,THU"
    assert runs(spec, start, 4) == [
        "Mon 2026-01-05 06:00:00 +0100", "Thu 2026-01-08 06:00:00 +0100",
        "Mon 2026-01-19 06:00:00 +0100", "Thu 2026-01-22 06:00:00 +0100"]
    # Asked in an off week, the next run is still on the start's two-week grid.
    assert next_date(spec, start, at(2026, 1, 12, 0, 0), ZONE) == at(2026, 1, 19, 6, 0)


def test_interval_for_days_months_years_hours_and_minutes() -> None:
    start = at(2026, 1, 31, 9, 0)
    assert runs("FREQ=DAILY;INTERVAL=3", start, 3) == [
        "Sat 2026-01-31 09:00:00 +0100", "Tue 2026-02-03 09:00:00 +0100",
        "Fri 2026-02-06 09:00:00 +0100"]
    assert runs("FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=1", start, 3) == [
        "Wed 2026-04-01 09:00:00 +0200", "Wed 2026-07-01 09:00:00 +0200",
        "Thu 2026-10-01 09:00:00 +0200"]
    assert runs("FREQ=YEARLY;INTERVAL=2", start, 2) == [
        "Sat 2026-01-31 09:00:00 +0100", "Mon 2028-01-31 09:00:00 +0100"]
    assert runs("FREQ=HOURLY;INTERVAL=5;BYMINUTE=15", start, 3) == [
        "Sat 2026-01-31 09:15:00 +0100", "Sat 2026-01-31 14:15:00 +0100",
        "Sat 2026-01-31 19:15:00 +0100"]
    assert next_date("FREQ=MINUTELY;INTERVAL=7", start, at(2026, 1, 31, 10, 0), ZONE) == at(
        2026, 1, 31, 10, 3)


# -- BYDAY ------------------------------------------------------------------------------

def test_byday_weekdays_of_a_week() -> None:
    assert runs("FREQ=WEEKLY;BYDAY=MON,FRI;BYHOUR=6;BYMINUTE=0;BYSECOND=0",
                at(2026, 12, 2, 12, 0), 4) == [
        "Fri 2026-12-04 06:00:00 +0100", "Mon 2026-12-07 06:00:00 +0100",
        "Fri 2026-12-11 06:00:00 +0100", "Mon 2026-12-14 06:00:00 +0100"]


def test_byday_filters_a_daily_frequency() -> None:
    assert runs("FREQ=DAILY;BYDAY=SAT,SUN", at(2026, 12, 2, 12, 0), 3) == [
        "Sat 2026-12-05 12:00:00 +0100", "Sun 2026-12-06 12:00:00 +0100",
        "Sat 2026-12-12 12:00:00 +0100"]


def test_byday_last_friday_and_second_monday_of_the_month() -> None:
    assert runs("FREQ=MONTHLY;BYDAY=-1FRI", at(2026, 1, 1, 9, 0), 3) == [
        "Fri 2026-01-30 09:00:00 +0100", "Fri 2026-02-27 09:00:00 +0100",
        "Fri 2026-03-27 09:00:00 +0100"]
    assert runs("FREQ=MONTHLY;BYDAY=2MON", at(2026, 1, 1, 9, 0), 3) == [
        "Mon 2026-01-12 09:00:00 +0100", "Mon 2026-02-09 09:00:00 +0100",
        "Mon 2026-03-09 09:00:00 +0100"]


def test_byday_fifth_monday_skips_months_without_one() -> None:
    assert runs("FREQ=MONTHLY;BYDAY=5MON", at(2026, 1, 1, 9, 0), 3) == [
        "Mon 2026-03-30 09:00:00 +0200", "Mon 2026-06-29 09:00:00 +0200",
        "Mon 2026-08-31 09:00:00 +0200"]


def test_byday_every_monday_of_a_month_and_week_numbers_of_the_year() -> None:
    assert runs("FREQ=MONTHLY;BYDAY=MON", at(2026, 2, 1, 9, 0), 5) == [
        "Mon 2026-02-02 09:00:00 +0100", "Mon 2026-02-09 09:00:00 +0100",
        "Mon 2026-02-16 09:00:00 +0100", "Mon 2026-02-23 09:00:00 +0100",
        "Mon 2026-03-02 09:00:00 +0100"]
    # Without BYMONTH a yearly week number counts in the year ...
    assert runs("FREQ=YEARLY;BYDAY=1MON,-1SUN", at(2026, 1, 1, 9, 0), 3) == [
        "Mon 2026-01-05 09:00:00 +0100", "Sun 2026-12-27 09:00:00 +0100",
        "Mon 2027-01-04 09:00:00 +0100"]
    # ... with it, in each month given.
    assert runs("FREQ=YEARLY;BYMONTH=NOV;BYDAY=4THU", at(2026, 1, 1, 9, 0), 2) == [
        "Thu 2026-11-26 09:00:00 +0100", "Thu 2027-11-25 09:00:00 +0100"]


def test_byday_together_with_bymonthday_is_their_intersection() -> None:
    # Friday the 13th.
    assert runs("FREQ=MONTHLY;BYMONTHDAY=13;BYDAY=FRI", at(2026, 1, 1, 9, 0), 3) == [
        "Fri 2026-02-13 09:00:00 +0100", "Fri 2026-03-13 09:00:00 +0100",
        "Fri 2026-11-13 09:00:00 +0100"]


# -- month ends and leap years -----------------------------------------------------------

def test_bymonthday_31_skips_months_without_a_31st() -> None:
    assert runs("FREQ=MONTHLY;BYMONTHDAY=31", at(2026, 1, 1, 9, 0), 4) == [
        "Sat 2026-01-31 09:00:00 +0100", "Tue 2026-03-31 09:00:00 +0200",
        "Sun 2026-05-31 09:00:00 +0200", "Fri 2026-07-31 09:00:00 +0200"]


def test_monthly_from_the_31st_skips_short_months_too() -> None:
    assert runs("FREQ=MONTHLY", at(2026, 1, 31, 9, 0), 3) == [
        "Sat 2026-01-31 09:00:00 +0100", "Tue 2026-03-31 09:00:00 +0200",
        "Sun 2026-05-31 09:00:00 +0200"]


def test_bymonthday_minus_one_is_the_last_day_of_each_month() -> None:
    assert runs("FREQ=MONTHLY;BYMONTHDAY=-1", at(2027, 12, 1, 9, 0), 4) == [
        "Fri 2027-12-31 09:00:00 +0100", "Mon 2028-01-31 09:00:00 +0100",
        "Tue 2028-02-29 09:00:00 +0100", "Fri 2028-03-31 09:00:00 +0200"]
    assert runs("FREQ=MONTHLY;BYMONTHDAY=-2", at(2026, 2, 1, 9, 0), 2) == [
        "Fri 2026-02-27 09:00:00 +0100", "Mon 2026-03-30 09:00:00 +0200"]


def test_leap_day_runs_only_in_leap_years() -> None:
    assert runs("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", at(2026, 1, 1, 9, 0), 3) == [
        "Tue 2028-02-29 09:00:00 +0100", "Sun 2032-02-29 09:00:00 +0100",
        "Fri 2036-02-29 09:00:00 +0100"]
    assert runs("FREQ=YEARLY;BYMONTH=FEB;BYMONTHDAY=-1", at(2027, 1, 1, 9, 0), 3) == [
        "Sun 2027-02-28 09:00:00 +0100", "Tue 2028-02-29 09:00:00 +0100",
        "Wed 2029-02-28 09:00:00 +0100"]
    # 2100 is not a leap year.
    assert next_date("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", at(2096, 1, 1, 9, 0),
                     at(2096, 3, 1, 0, 0), ZONE) == at(2104, 2, 29, 9, 0)


# -- time zones and DST ------------------------------------------------------------------

def test_daily_keeps_the_wall_clock_across_dst() -> None:
    # Amsterdam moves to summer time on 2026-03-29 and back on 2026-10-25.
    assert runs("FREQ=DAILY;BYHOUR=6;BYMINUTE=0;BYSECOND=0", at(2026, 3, 28, 0, 0), 2) == [
        "Sat 2026-03-28 06:00:00 +0100", "Sun 2026-03-29 06:00:00 +0200"]
    assert runs("FREQ=DAILY;BYHOUR=6;BYMINUTE=0;BYSECOND=0", at(2026, 10, 24, 0, 0), 2) == [
        "Sat 2026-10-24 06:00:00 +0200", "Sun 2026-10-25 06:00:00 +0100"]


def test_a_time_the_spring_change_skips_runs_an_hour_later_once() -> None:
    assert runs("FREQ=DAILY;BYHOUR=2;BYMINUTE=30;BYSECOND=0", at(2026, 3, 28, 0, 0), 3) == [
        "Sat 2026-03-28 02:30:00 +0100", "Sun 2026-03-29 03:30:00 +0200",
        "Mon 2026-03-30 02:30:00 +0200"]


def test_a_time_the_autumn_change_repeats_runs_once() -> None:
    assert runs("FREQ=DAILY;BYHOUR=2;BYMINUTE=30;BYSECOND=0", at(2026, 10, 24, 0, 0), 3) == [
        "Sat 2026-10-24 02:30:00 +0200", "Sun 2026-10-25 02:30:00 +0200",
        "Mon 2026-10-26 02:30:00 +0100"]


def test_hourly_counts_real_hours_across_dst() -> None:
    assert runs("FREQ=HOURLY;BYMINUTE=0;BYSECOND=0", at(2026, 10, 25, 1, 0), 4) == [
        "Sun 2026-10-25 01:00:00 +0200", "Sun 2026-10-25 02:00:00 +0200",
        "Sun 2026-10-25 02:00:00 +0100", "Sun 2026-10-25 03:00:00 +0100"]
    assert runs("FREQ=HOURLY;BYMINUTE=0;BYSECOND=0", at(2026, 3, 29, 1, 0), 3) == [
        "Sun 2026-03-29 01:00:00 +0100", "Sun 2026-03-29 03:00:00 +0200",
        "Sun 2026-03-29 04:00:00 +0200"]


def test_the_zone_decides_the_wall_clock() -> None:
    start = datetime(2026, 12, 2, 0, 0, tzinfo=UTC)
    found = next_date("FREQ=DAILY;BYHOUR=2;BYMINUTE=0;BYSECOND=0", start, start,
                      "America/New_York")
    assert found is not None and found.isoformat() == "2026-12-02T02:00:00-05:00"
    assert found.astimezone(UTC).hour == 7


# -- bounds ------------------------------------------------------------------------------

def test_nothing_before_the_start_and_nothing_after_the_end() -> None:
    start = at(2026, 12, 2, 12, 0)
    spec = "FREQ=DAILY;BYHOUR=6;BYMINUTE=0;BYSECOND=0"
    assert next_date(spec, start, at(2026, 1, 1, 0, 0), ZONE) == at(2026, 12, 3, 6, 0)
    end = at(2026, 12, 4, 12, 0)
    assert next_date(spec, start, at(2026, 12, 3, 6, 0), ZONE, end) == at(2026, 12, 4, 6, 0)
    assert next_date(spec, start, at(2026, 12, 4, 6, 0), ZONE, end) is None


def test_result_is_strictly_after() -> None:
    start = at(2026, 12, 2, 12, 0)
    assert next_date("FREQ=MINUTELY", start, start, ZONE) == at(2026, 12, 2, 12, 1)


def test_first_date_is_the_start_or_the_first_match_from_now() -> None:
    now = at(2026, 12, 2, 13, 5, 37) + timedelta(microseconds=250_000)
    assert first_date("FREQ=MINUTELY;INTERVAL=1", now, now, ZONE) == at(2026, 12, 2, 13, 5, 37)
    assert first_date("FREQ=DAILY;BYHOUR=2", now, now, ZONE) == at(2026, 12, 3, 2, 5, 37)
    past = at(2026, 1, 1, 2, 0)
    assert first_date("FREQ=DAILY", past, now, ZONE) == at(2026, 12, 3, 2, 0)
    # Re-enabled in the second of an occurrence already passed: the next one.
    assert first_date("FREQ=MINUTELY", at(2026, 12, 2, 13, 0, 37), now, ZONE) == at(
        2026, 12, 2, 13, 6, 37)
    assert first_date(None, past, now, ZONE) == at(2026, 12, 2, 13, 5, 37)
    future = at(2027, 1, 1, 0, 0)
    assert first_date(None, future, now, ZONE) == future
    assert first_date(None, past, now, ZONE, end_date=at(2026, 6, 1, 0, 0)) is None


def test_a_calendar_object_or_its_text_give_the_same_dates() -> None:
    start = at(2026, 12, 2, 12, 0)
    spec = "FREQ=MONTHLY;BYDAY=-1FRI"
    assert next_date(parse(spec), start, start, ZONE) == next_date(spec, start, start, ZONE)


def test_a_calendar_that_never_matches_gives_no_date_and_ends() -> None:
    started = time.monotonic()
    # The sixth Monday of a February never comes.
    assert next_date("FREQ=YEARLY;BYMONTH=2;BYDAY=6MON", at(2026, 1, 1), at(2026, 1, 1),
                     ZONE) is None
    assert time.monotonic() - started < 5
