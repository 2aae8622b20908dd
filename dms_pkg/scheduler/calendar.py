"""Oracle's calendaring syntax for ``repeat_interval``, parsed and evaluated.

``FREQ=DAILY;BYHOUR=2`` and friends, as DBMS_SCHEDULER reads them: clauses
separated by ``;``, names and values case-insensitive, spaces allowed around
them.  Supported: ``FREQ`` (YEARLY, MONTHLY, WEEKLY, DAILY, HOURLY, MINUTELY;
required), ``INTERVAL`` (1..999), ``BYMONTH`` (1..12, JAN..DEC), ``BYMONTHDAY``
(1..31, -1..-31 counted from the month's end), ``BYDAY`` (MON..SUN, with a
week number such as ``2MON`` or ``-1FRI`` for MONTHLY and YEARLY),
``BYHOUR`` (0..23), ``BYMINUTE`` (0..59), ``BYSECOND`` (0..59).

A bad string is refused with the clause and the 1-based character position of
what is wrong, so that a long interval can be fixed without guessing.

Evaluation follows Oracle: ``INTERVAL`` counts periods of ``FREQ`` from the
start date's period; the BY clauses expand a period into its occurrences
(finer than FREQ) or filter them (coarser than FREQ); what no clause gives
(month, day, hour, minute, second) is taken from the start date; nothing
before the start date occurs.  Daily and coarser frequencies are wall-clock
times in the given time zone ("02:00 daily" stays 02:00 across a DST change;
a time the change skips runs at the same offset, i.e. an hour later, and a
time it repeats runs once); HOURLY and MINUTELY count real elapsed hours and
minutes, so a DST change neither drops nor doubles a run.
"""

from __future__ import annotations

import calendar as _cal
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dms_pkg.errors import INVALID_PARAMETER_VALUE, DmsError

FREQUENCIES = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY", "MINUTELY")
WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
CLAUSES = ("FREQ", "INTERVAL", "BYMONTH", "BYMONTHDAY", "BYDAY", "BYHOUR", "BYMINUTE",
           "BYSECOND")
# Oracle clauses this subset does not evaluate: refused by name, not as unknown.
UNSUPPORTED = ("BYYEARDAY", "BYWEEKNO", "BYSETPOS", "BYDATE", "BYPERIOD", "INCLUDE",
               "EXCLUDE", "INTERSECT", "PERIODS", "BYTIME")
HINT = "for example FREQ=DAILY;BYHOUR=2;BYMINUTE=0 or FREQ=WEEKLY;BYDAY=MON,FRI;BYHOUR=6"
# The longest an occurrence can be away: a leap day on a given weekday every
# 28 years, times INTERVAL.  The search gives up (no next date) beyond it.
_HORIZON_YEARS = 400


@dataclass(frozen=True)
class DayRule:
    """A BYDAY item: a weekday (0 = Monday) and, optionally, its week number
    in the month or year (1 = first, -1 = last)."""

    weekday: int
    ordinal: int | None = None


@dataclass(frozen=True)
class Calendar:
    """A parsed, validated repeat_interval."""

    freq: str
    interval: int = 1
    bymonth: tuple[int, ...] = ()
    bymonthday: tuple[int, ...] = ()
    byday: tuple[DayRule, ...] = ()
    byhour: tuple[int, ...] = ()
    byminute: tuple[int, ...] = ()
    bysecond: tuple[int, ...] = ()


def _bad(message: str, position: int) -> DmsError:
    return DmsError(f"repeat_interval: {message} at position {position}",
                    sqlstate=INVALID_PARAMETER_VALUE, hint=HINT)


@dataclass(frozen=True)
class _Token:
    text: str  # stripped, upper-case
    position: int  # 1-based position of its first character
    raw: str  # stripped, as written


def _split(text: str, sep: str, offset: int) -> Iterator[_Token]:
    """Pieces of ``text`` between ``sep``, stripped, with their 1-based positions
    (``offset`` is the 0-based index of ``text`` in the whole string)."""
    start = 0
    while True:
        end = text.find(sep, start)
        piece = text[start:] if end < 0 else text[start:end]
        lead = len(piece) - len(piece.lstrip())
        stripped = piece.strip()
        # An empty piece is reported where it would have started.
        yield _Token(stripped.upper(), offset + start + (lead if stripped else 0) + 1, stripped)
        if end < 0:
            return
        start = end + 1


def _integers(name: str, values: list[_Token], low: int, high: int, rule: str,
              names: tuple[str, ...] = (), allow_negative: bool = False) -> tuple[int, ...]:
    found: list[int] = []
    for v in values:
        number: int | None = None
        if v.text in names:
            number = names.index(v.text) + 1
        elif v.text.lstrip("+-").isdigit() and v.text.count("-") + v.text.count("+") <= 1:
            number = int(v.text)
        ok = number is not None and (low <= number <= high
                                     or (allow_negative and -high <= number <= -low))
        if not ok or number is None:
            raise _bad(f'{name} must be {rule}, got "{v.text}"', v.position)
        if number not in found:
            found.append(number)
    return tuple(sorted(found))


def _day_rules(values: list[_Token], freq: str) -> tuple[DayRule, ...]:
    rules: list[DayRule] = []
    for v in values:
        name, prefix = v.text[-3:], v.text[:-3].strip()
        if name not in WEEKDAYS or (prefix and not prefix.lstrip("+-").isdigit()) or (
                prefix.count("-") + prefix.count("+") > 1):
            raise _bad('BYDAY must be MON..SUN, optionally with a week number like 2MON or '
                       f'-1FRI, got "{v.text}"', v.position)
        ordinal = int(prefix) if prefix else None
        if ordinal is not None:
            if freq not in ("MONTHLY", "YEARLY"):
                raise _bad(f'BYDAY "{v.text}" has a week number, which needs FREQ=MONTHLY or '
                           "FREQ=YEARLY", v.position)
            limit = 5 if freq == "MONTHLY" else 53
            if ordinal == 0 or abs(ordinal) > limit:
                raise _bad(f'BYDAY week number must be 1..{limit} or -{limit}..-1 for '
                           f'FREQ={freq}, got "{v.text}"', v.position)
        rule = DayRule(WEEKDAYS.index(name), ordinal)
        if rule not in rules:
            rules.append(rule)
    return tuple(rules)


def parse(text: str | None) -> Calendar:
    """Parse and validate a calendaring string; DmsError (22023) names the clause
    and the 1-based position of the first error."""
    if text is None or not text.strip():
        raise _bad("the calendar string is empty", 1)
    clauses: dict[str, tuple[_Token, list[_Token]]] = {}
    pieces = list(_split(text, ";", 0))
    if len(pieces) > 1 and not pieces[-1].text:  # one trailing ';' is allowed
        pieces.pop()
    for piece in pieces:
        if not piece.text:
            raise _bad("empty clause", piece.position)
        start = piece.position - 1
        raw = piece.raw
        eq = raw.find("=")
        name = (raw if eq < 0 else raw[:eq]).strip().upper()
        if name in UNSUPPORTED:
            raise _bad(f"clause {name} is not supported", piece.position)
        if name not in CLAUSES:
            raise _bad(f'unknown clause "{name}"', piece.position)
        if eq < 0:
            raise _bad(f'expected "=" after {name}', start + len(raw) + 1)
        if name in clauses:
            raise _bad(f"clause {name} is given twice", piece.position)
        values = list(_split(raw[eq + 1:], ",", start + eq + 1))
        for v in values:
            if not v.text:
                raise _bad(f"{name} needs a value", v.position)
        if name in ("FREQ", "INTERVAL") and len(values) > 1:
            raise _bad(f"{name} takes one value", values[1].position)
        clauses[name] = (piece, values)
    if "FREQ" not in clauses:
        raise _bad("FREQ is required", 1)
    freq_token = clauses["FREQ"][1][0]
    freq = freq_token.text
    if freq == "SECONDLY":
        raise _bad("FREQ=SECONDLY is not supported (pg_cron starts jobs at most once a "
                   "minute)", freq_token.position)
    if freq not in FREQUENCIES:
        raise _bad(f'unknown frequency "{freq}"', freq_token.position)

    def values_of(name: str) -> list[_Token]:
        return clauses[name][1] if name in clauses else []

    interval = _integers("INTERVAL", values_of("INTERVAL"), 1, 999, "an integer from 1 to 999")
    result = Calendar(
        freq=freq,
        interval=interval[0] if interval else 1,
        bymonth=_integers("BYMONTH", values_of("BYMONTH"), 1, 12, "1..12 or JAN..DEC", MONTHS),
        bymonthday=_integers("BYMONTHDAY", values_of("BYMONTHDAY"), 1, 31,
                             "1..31 or -31..-1", allow_negative=True),
        byday=_day_rules(values_of("BYDAY"), freq),
        byhour=_integers("BYHOUR", values_of("BYHOUR"), 0, 23, "0..23"),
        byminute=_integers("BYMINUTE", values_of("BYMINUTE"), 0, 59, "0..59"),
        bysecond=_integers("BYSECOND", values_of("BYSECOND"), 0, 59, "0..59"),
    )
    if result.bymonth and result.bymonthday:
        _check_days_exist(result, values_of("BYMONTHDAY"))
    return result


def _check_days_exist(spec: Calendar, tokens: list[_Token]) -> None:
    """BYMONTHDAY=30;BYMONTH=2 would never run: refuse it rather than search forever."""
    longest = max(29 if m == 2 else _cal.monthrange(2001, m)[1] for m in spec.bymonth)
    if all(abs(d) > longest for d in spec.bymonthday):
        months = ",".join(str(m) for m in spec.bymonth)
        raise _bad(f"BYMONTHDAY never falls in BYMONTH={months}", tokens[0].position)


# -- evaluation ---------------------------------------------------------------------


def _last_day(year: int, month: int) -> int:
    return _cal.monthrange(year, month)[1]


def _month_day_ok(spec: Calendar, d: date) -> bool:
    last = _last_day(d.year, d.month)
    return any(d.day == (v if v > 0 else last + v + 1) for v in spec.bymonthday)


def _weekday_ok(spec: Calendar, d: date) -> bool:
    return any(r.weekday == d.weekday() for r in spec.byday)


def _day_filter(spec: Calendar, d: date) -> bool:
    """BY clauses coarser than a day, as filters (DAILY and finer frequencies)."""
    return ((not spec.bymonth or d.month in spec.bymonth)
            and (not spec.bymonthday or _month_day_ok(spec, d))
            and (not spec.byday or _weekday_ok(spec, d)))


def _nth_weekdays(days: list[date], rules: Iterable[DayRule]) -> set[date]:
    """Days of ``days`` (one month or year, in order) matching BYDAY rules, with
    week numbers counted within ``days``."""
    chosen: set[date] = set()
    for rule in rules:
        same = [d for d in days if d.weekday() == rule.weekday]
        if rule.ordinal is None:
            chosen.update(same)
        elif -len(same) <= rule.ordinal <= len(same):
            chosen.add(same[rule.ordinal - 1 if rule.ordinal > 0 else rule.ordinal])
    return chosen


def _days_of_month(spec: Calendar, year: int, month: int, start: datetime) -> list[date]:
    days = [date(year, month, n) for n in range(1, _last_day(year, month) + 1)]
    if not spec.bymonthday and not spec.byday:
        # The start date's day of month; a month without that day is skipped.
        return [d for d in days if d.day == start.day]
    chosen = set(days)
    if spec.bymonthday:
        chosen &= {d for d in days if _month_day_ok(spec, d)}
    if spec.byday:
        chosen &= _nth_weekdays(days, spec.byday)
    return sorted(chosen)


def _days_of_period(spec: Calendar, k: int, start: datetime) -> list[date]:
    """The days of the k-th period (counted from the start's) with occurrences."""
    if spec.freq == "YEARLY":
        year = start.year + k
        if not 1 <= year <= 9999:
            return []
        if spec.byday and not spec.bymonth:
            # Week numbers count within the year (RFC 5545, as Oracle does).
            days = [date(year, 1, 1) + timedelta(days=n)
                    for n in range(366 if _cal.isleap(year) else 365)]
            chosen = _nth_weekdays(days, spec.byday)
            if spec.bymonthday:
                chosen = {d for d in chosen if _month_day_ok(spec, d)}
            return sorted(chosen)
        months = spec.bymonth or (tuple(range(1, 13)) if spec.bymonthday or spec.byday
                                  else (start.month,))
        return [d for m in months for d in _days_of_month(spec, year, m, start)]
    if spec.freq == "MONTHLY":
        y, m = divmod(start.month - 1 + k, 12)
        year, month = start.year + y, m + 1
        if spec.bymonth and month not in spec.bymonth:
            return []
        return _days_of_month(spec, year, month, start)
    if spec.freq == "WEEKLY":
        monday = start.date() - timedelta(days=start.weekday()) + timedelta(weeks=k)
        weekdays = sorted({r.weekday for r in spec.byday}) or [start.weekday()]
        return [d for d in (monday + timedelta(days=w) for w in weekdays)
                if (not spec.bymonth or d.month in spec.bymonth)
                and (not spec.bymonthday or _month_day_ok(spec, d))]
    d = start.date() + timedelta(days=k)
    return [d] if _day_filter(spec, d) else []


def _period_index(spec: Calendar, start: datetime, moment: datetime) -> int:
    """Index of the period of ``moment`` counted from the start's (naive local)."""
    if spec.freq == "YEARLY":
        return moment.year - start.year
    if spec.freq == "MONTHLY":
        return (moment.year - start.year) * 12 + moment.month - start.month
    if spec.freq == "WEEKLY":
        monday = start.date() - timedelta(days=start.weekday())
        return (moment.date() - monday).days // 7
    return (moment.date() - start.date()).days


def _round_up(k: int, interval: int) -> int:
    return max(0, -(-k // interval) * interval)


def _utc(local: datetime, tz: ZoneInfo) -> datetime:
    return local.replace(tzinfo=tz).astimezone(UTC)


def next_date(spec: Calendar | str, start_date: datetime, after: datetime, zone: str,
              end_date: datetime | None = None) -> datetime | None:
    """The first occurrence strictly after ``after``, never before ``start_date``
    nor after ``end_date`` (all aware), in time zone ``zone``; None when there is
    none.  The result is aware, in ``zone``."""
    if isinstance(spec, str):
        spec = parse(spec)
    tz = ZoneInfo(zone)
    start = start_date.astimezone(tz).replace(microsecond=0)
    after_utc = after.astimezone(UTC)
    start_utc = start.astimezone(UTC)
    end_utc = end_date.astimezone(UTC) if end_date is not None else None
    if spec.freq in ("HOURLY", "MINUTELY"):
        found = _next_elapsed(spec, start, after_utc, tz, end_utc)
    else:
        found = _next_wall_clock(spec, start.replace(tzinfo=None), after_utc, start_utc,
                                 tz, end_utc)
    if found is None or (end_utc is not None and found > end_utc):
        return None
    return found.astimezone(tz)


def _next_wall_clock(spec: Calendar, start: datetime, after_utc: datetime,
                     start_utc: datetime, tz: ZoneInfo, end_utc: datetime | None
                     ) -> datetime | None:
    times = sorted(time(h, m, s) for h in (spec.byhour or (start.hour,))
                   for m in (spec.byminute or (start.minute,))
                   for s in (spec.bysecond or (start.second,)))
    after_local = max(after_utc, start_utc).astimezone(tz).replace(tzinfo=None)
    k = _round_up(_period_index(spec, start, after_local) - 1, spec.interval)
    horizon = start.year + _HORIZON_YEARS + (after_local.year - start.year)
    while True:
        days = _days_of_period(spec, k, start)
        for d in days:
            if d.year > horizon:
                return None
            for t in times:
                candidate = _utc(datetime.combine(d, t), tz)
                if candidate >= start_utc and candidate > after_utc:
                    return candidate
                if end_utc is not None and candidate > end_utc:
                    return None
        k += spec.interval
        if not days and _period_start_year(spec, k, start) > horizon:
            return None


def _period_start_year(spec: Calendar, k: int, start: datetime) -> int:
    if spec.freq == "YEARLY":
        return start.year + k
    if spec.freq == "MONTHLY":
        return start.year + (start.month - 1 + k) // 12
    days = k * 7 if spec.freq == "WEEKLY" else k
    return start.year + days // 366


def _next_elapsed(spec: Calendar, start: datetime, after_utc: datetime, tz: ZoneInfo,
                  end_utc: datetime | None) -> datetime | None:
    """HOURLY / MINUTELY: periods are real hours or minutes from the start's."""
    step = timedelta(hours=1) if spec.freq == "HOURLY" else timedelta(minutes=1)
    anchor = (start.replace(minute=0, second=0) if spec.freq == "HOURLY"
              else start.replace(second=0)).astimezone(UTC)
    start_utc = start.astimezone(UTC)
    limit = max(after_utc, start_utc) + timedelta(days=366 * _HORIZON_YEARS)

    def first_k_at(moment: datetime) -> int:
        return _round_up(-(-(moment - anchor) // step), spec.interval)

    k = _round_up((max(after_utc, start_utc) - anchor) // step - 1, spec.interval)
    while True:
        period = anchor + k * step
        if period > limit or (end_utc is not None and period > end_utc):
            return None
        local = period.astimezone(tz)
        if not _day_filter(spec, local.date()):
            midnight = datetime.combine(local.date() + timedelta(days=1), time(0))
            k = max(k + spec.interval, first_k_at(_utc(midnight, tz)))
            continue
        if spec.byhour and local.hour not in spec.byhour:
            k = max(k + spec.interval, first_k_at(period + timedelta(hours=1)
                                                  - timedelta(minutes=local.minute)))
            continue
        if spec.freq == "MINUTELY" and spec.byminute and local.minute not in spec.byminute:
            k += spec.interval
            continue
        minutes = (spec.byminute or (start.minute,)) if spec.freq == "HOURLY" else (
            local.minute,)
        for m in minutes:
            for s in spec.bysecond or (start.second,):
                # replace() keeps the fold astimezone set: the repeated hour of a
                # DST change is told apart from the first.
                candidate = local.replace(minute=m, second=s).astimezone(UTC)
                if candidate >= start_utc and candidate > after_utc:
                    return candidate
        k += spec.interval


def first_date(spec: Calendar | str | None, start_date: datetime, now: datetime, zone: str,
               end_date: datetime | None = None) -> datetime | None:
    """When a job enabled at ``now`` first runs: the first occurrence on or after
    the later of its start date and now (Oracle), to the second.  Without a
    calendar, a job runs once, at its start date (or now when that has passed)."""
    base = max(start_date, now).replace(microsecond=0)
    if spec is None:
        return None if end_date is not None and base > end_date else base
    # A start not yet passed (or set to now by the caller) is itself a candidate;
    # otherwise only what comes after now (the second now falls in has begun).
    after = start_date.replace(microsecond=0) if now <= start_date else now
    return next_date(spec, start_date, after - timedelta(microseconds=1), zone, end_date)


def occurrences(spec: Calendar | str, start_date: datetime, after: datetime, zone: str,
                count: int) -> list[datetime]:
    """The next ``count`` occurrences after ``after`` (previews and tests)."""
    found: list[datetime] = []
    current = after
    while len(found) < count:
        nxt = next_date(spec, start_date, current, zone)
        if nxt is None:
            break
        found.append(nxt)
        current = nxt
    return found
