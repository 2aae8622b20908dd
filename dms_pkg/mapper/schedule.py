"""When a scheduled job runs next (DMS_JOBSCH), as pure functions over wall-clock times.

A schedule names a frequency (FRQCD) and a time of day in the database's
time zone (the TimeZone sessions start with: ALTER DATABASE ... SET
TimeZone; a SET in one session does not move schedules): ``FRQDD`` the day
(weekday ``MON``..``SUN`` or ``1``..``7`` for WK and FN, day of month
``1``..``31`` or ``L`` for the last day for MN/HY/YR, ``H`` for an hourly ID
schedule), ``FRQHH``/``FRQMI`` the hour and minute.
Occurrences never fall before STRTDT nor after ENDDT.

* ID  every FRQMI minutes counted from STRTDT; with FRQDD ``H``, hourly at minute FRQMI
* DL  daily at FRQHH:FRQMI
* WK  weekly on FRQDD at FRQHH:FRQMI
* FN  every second week: on FRQDD (STRTDT's weekday when not given), 14 days apart
* MN  monthly on day FRQDD (the month's last day when it is shorter)
* HY  every six months, counted from STRTDT's month
* YR  yearly, in STRTDT's month
* NA  never by itself: on demand, or after its parent job (a dependency)

The arithmetic is done on naive local times and the result is placed in the
zone at the end, so "daily at 02:00" stays at 02:00 across a DST change.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dms_pkg.errors import INVALID_PARAMETER_VALUE, DmsError

WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
DAY_NAMES = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
MONTH_STEP = {"MN": 1, "HY": 6, "YR": 12}
NEEDS_TIME = ("DL", "WK", "FN", "MN", "HY", "YR")


@dataclass(frozen=True)
class Schedule:
    frqcd: str
    frqdd: str | None = None
    frqhh: int | None = None
    frqmi: int | None = None
    strtdt: datetime | None = None  # aware
    enddt: datetime | None = None  # aware


def _bad(message: str, hint: str) -> DmsError:
    return DmsError(message, sqlstate=INVALID_PARAMETER_VALUE, hint=hint)


def weekday(frqdd: str | None, what: str = "FRQDD") -> int | None:
    """ISO weekday index 0 (Monday) .. 6 (Sunday) of a FRQDD value, None when empty."""
    if frqdd is None or not str(frqdd).strip():
        return None
    text = str(frqdd).strip().upper()
    if text in WEEKDAYS or text in DAY_NAMES:
        return WEEKDAYS.index(text[:3])
    if text.isdigit() and 1 <= int(text) <= 7:
        return int(text) - 1
    raise _bad(f"{what} {frqdd!r} is not a weekday",
               "give MON, TUE, WED, THU, FRI, SAT or SUN (or 1..7, Monday = 1)")


def month_day(frqdd: str | None) -> int | None:
    """Day of month 1..31, 0 for the last day (``L``), None when empty."""
    if frqdd is None or not str(frqdd).strip():
        return None
    text = str(frqdd).strip().upper()
    if text in ("L", "LAST"):
        return 0
    if text.isdigit() and 1 <= int(text) <= 31:
        return int(text)
    raise _bad(f"FRQDD {frqdd!r} is not a day of the month",
               "give a day 1..31, or L for the last day of the month")


def check(s: Schedule) -> None:
    """Refuse a schedule that cannot be computed, naming the field to fix."""
    if s.frqcd not in ("NA", "ID", *NEEDS_TIME):
        raise _bad(f"frequency (FRQCD) must be one of NA, ID, DL, WK, FN, MN, HY, YR, got "
                   f"{s.frqcd!r}", "see docs/mapper.md, Scheduling")
    if s.frqhh is not None and not 0 <= s.frqhh <= 23:
        raise _bad(f"hour (FRQHH) must be 0..23, got {s.frqhh}", "give the hour of the day")
    if s.frqmi is not None and not 0 <= s.frqmi <= 59:
        raise _bad(f"minute (FRQMI) must be 0..59, got {s.frqmi}", "give the minute of the hour")
    if s.strtdt is not None and s.enddt is not None and s.enddt < s.strtdt:
        raise _bad("the end date (ENDDT) is before the start date (STRTDT)",
                   "give an end date after the start, or none")
    if s.frqcd == "ID":
        if str(s.frqdd or "").strip().upper() == "H":
            if s.frqmi is None:
                raise _bad("an hourly ID schedule needs the minute (FRQMI)",
                           "for example p_frqdd => 'H', p_frqmi => 15 runs at every hh:15")
        elif not s.frqmi:
            raise _bad("an ID schedule needs its interval in minutes (FRQMI, 1..59)",
                       "p_frqmi => 15 runs every 15 minutes; p_frqdd => 'H' runs hourly")
    if s.frqcd in NEEDS_TIME and (s.frqhh is None or s.frqmi is None):
        raise _bad(f"a {s.frqcd} schedule needs the time of day (FRQHH and FRQMI)",
                   "for example p_frqhh => 2, p_frqmi => 30 for 02:30")
    if s.frqcd == "WK" and weekday(s.frqdd) is None:
        raise _bad("a WK schedule needs the weekday (FRQDD)", "for example p_frqdd => 'MON'")
    if s.frqcd == "FN":
        weekday(s.frqdd)
    if s.frqcd in MONTH_STEP:
        month_day(s.frqdd)


def next_run(s: Schedule, after: datetime, zone: str) -> datetime | None:
    """The first occurrence strictly after ``after`` (aware), or None when there is none."""
    check(s)
    if s.frqcd == "NA":
        return None
    tz = ZoneInfo(zone)
    local_after = after.astimezone(tz).replace(tzinfo=None)
    start = (s.strtdt or after).astimezone(tz).replace(tzinfo=None)
    found = _next_local(s, start, max(local_after, start - timedelta(microseconds=1)))
    result = found.replace(tzinfo=tz)
    if s.enddt is not None and result > s.enddt:
        return None
    return result


def _next_local(s: Schedule, start: datetime, after: datetime) -> datetime:
    """First occurrence > after (naive local times; start is the anchor)."""
    hh, mi = s.frqhh or 0, s.frqmi or 0
    at = time(hh, mi)
    if s.frqcd == "ID":
        if str(s.frqdd or "").strip().upper() == "H":
            candidate = after.replace(minute=mi, second=0, microsecond=0)
            return candidate if candidate > after else candidate + timedelta(hours=1)
        step = timedelta(minutes=int(s.frqmi or 1))
        anchor = start.replace(second=0, microsecond=0)
        if anchor > after:
            return anchor
        return anchor + step * ((after - anchor) // step + 1)
    if s.frqcd == "DL":
        candidate = datetime.combine(after.date(), at)
        return candidate if candidate > after else candidate + timedelta(days=1)
    if s.frqcd in ("WK", "FN"):
        day = weekday(s.frqdd)
        first_day = start.date()
        if day is not None:
            first_day += timedelta(days=(day - first_day.weekday()) % 7)
        first = datetime.combine(first_day, at)
        if first < start:
            first += timedelta(days=7)
        step = timedelta(days=7 if s.frqcd == "WK" else 14)
        if first > after:
            return first
        return first + step * ((after - first) // step + 1)
    step_months = MONTH_STEP[s.frqcd]
    wanted = month_day(s.frqdd)
    if wanted is None:
        wanted = start.day
    # Months are stepped from the anchor's month (not from the last run), so a
    # day clamped to a short month does not drift; start a step before ``after``.
    n = max(0, _months_between(start.date(), after.date()) // step_months - 1)
    while True:
        year, month = divmod(start.month - 1 + n * step_months, 12)
        candidate = datetime.combine(_day_in_month(start.year + year, month + 1, wanted), at)
        if candidate >= start and candidate > after:
            return candidate
        n += 1


def _day_in_month(year: int, month: int, wanted: int) -> date:
    last = calendar.monthrange(year, month)[1]
    return date(year, month, last if wanted == 0 else min(wanted, last))


def _months_between(a: date, b: date) -> int:
    return (b.year - a.year) * 12 + b.month - a.month


def occurrences(s: Schedule, after: datetime, zone: str, count: int) -> list[datetime]:
    """The next ``count`` occurrences after ``after`` (for previews and tests)."""
    found: list[datetime] = []
    current = after
    while len(found) < count:
        nxt = next_run(s, current, zone)
        if nxt is None:
            break
        found.append(nxt)
        current = nxt
    return found
