"""Turn key statistics into chunk bounds — pure functions, no database.

The database-facing code fetches min/max/count, a sample or percentiles of the
key (see ``stats_sql``) and passes the values here.  Everything in this module
can be checked in plain Python, which is how the tests prove the partition
invariant: every key, including NULL, lands in exactly one chunk.

Model:

* Cut points ``c1 < c2 < ... < ck`` give ``k + 1`` half-open ranges:
  ``key < c1``, ``c1 <= key < c2``, ..., ``key >= ck``.  The outer ranges are
  open-ended, so values outside the sampled min/max (rows inserted after the
  stats were read, a stale sample) still land somewhere.
* NULL keys are in no range (``NULL < x`` is not true) and get one extra
  ``key IS NULL`` chunk.  ``n`` counts range chunks; the NULL chunk comes on
  top because it is usually empty and cheap (an index lookup).
* A hot value (more than ``1/n`` of the rows) cannot be split by key ranges at
  all.  ``isolate_hot_values`` gives it its own ``key = v`` chunk (using an
  exclusive lower bound ``key > v`` for the rest of its range) so the other
  chunks stay balanced, and the plan reports it.  ``split_hot_value`` splits
  it further on a secondary key (or ctid) when the caller has one.
* Equal-width cuts suit dense int/numeric/date/timestamp keys; quantile cuts
  from a sorted sample suit skewed keys and are the only option for text and
  uuid keys (their "width" means nothing).

Composite keys are tuples compared lexicographically; a tuple with any NULL
component goes to the NULL chunk.

Order is the database's, not Python's.  A text key compares by its collation
(ICU, case-insensitive, nondeterministic, MariaDB's ``_ci``, SQLite's NOCASE),
SQLite orders a column of mixed types NULL < numbers < text < blob, and
PostgreSQL puts NaN above every number: Python's ``<`` agrees with none of
these.  The chunks partition the rows only when the cut points ascend in the
order the predicates compare in, so a sample read from the database arrives
as ``Ranked`` values -- each with its ``DENSE_RANK()`` in the database's own
``ORDER BY key`` -- and every function here orders, compares and counts them
by that rank (values the database calls equal share one rank).  Predicates
bind the plain ``value``.  Plain Python values still work where their order is
the database's (integers, finite numbers, dates, the unit tests).
"""

from __future__ import annotations

import bisect
import datetime as dt
import decimal
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

KeyKind = Literal["int", "numeric", "date", "timestamp", "text", "uuid"]
WIDTH_KINDS: frozenset[str] = frozenset({"int", "numeric", "date", "timestamp"})
KEY_KINDS: tuple[str, ...] = ("int", "numeric", "date", "timestamp", "text", "uuid")


@dataclass(frozen=True, order=True)
class Ranked:
    """A key value read from the database with its rank in the database's order.

    Equality, order and hash are the rank's alone: two values the key's
    collation calls equal ("e" and "E" under a case-insensitive collation)
    have one rank and are one value here, as they are in ``key = :v``.
    """

    rank: int
    value: Any = field(compare=False)


def raw(value: Any) -> Any:
    """The value to bind for ``value``: a ``Ranked`` unwrapped, anything else as is."""
    return value.value if isinstance(value, Ranked) else value


def is_finite(value: Any) -> bool:
    """Whether Python arithmetic and order hold for ``value`` (no NaN, no infinity,
    no value a driver kept as text because Python cannot represent it)."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, decimal.Decimal):
        return value.is_finite()
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int | dt.date)


@dataclass(frozen=True)
class RangeBounds:
    """``lo <= key < hi`` (``key > lo`` when ``lo_inclusive`` is false); None = unbounded."""

    lo: Any = None
    hi: Any = None
    lo_inclusive: bool = True


@dataclass(frozen=True)
class NullBounds:
    """``key IS NULL`` (for a composite key: any component is NULL)."""


@dataclass(frozen=True)
class PointBounds:
    """``key = value``, optionally narrowed by bounds on a secondary key."""

    value: Any
    secondary: RangeBounds | NullBounds | None = None


ChunkBounds = RangeBounds | NullBounds | PointBounds


@dataclass(frozen=True)
class HotValue:
    """A key value holding more than ``1/n`` of the rows."""

    value: Any
    fraction: float


# -- cut points -----------------------------------------------------------


def equal_width_cuts(min_value: Any, max_value: Any, n: int, kind: str) -> list[Any]:
    """Interior cut points dividing ``[min_value, max_value]`` into ``n`` equal widths.

    Integers and dates divide the count of distinct possible values, so
    ``(1, 10, 5)`` gives ``[3, 5, 7, 9]``.  Fewer than ``n - 1`` cuts come back
    when the span is narrower than ``n``.  An empty or all-NULL key
    (``min_value is None``) gives no cuts: one open range plus the NULL chunk.
    """
    _check_n(n)
    if kind not in WIDTH_KINDS:
        raise ValueError(
            f"equal-width cuts need an int, numeric, date or timestamp key, not {kind}"
        )
    if min_value is None or max_value is None:
        return []
    if max_value < min_value:
        raise ValueError(f"min {min_value!r} is above max {max_value!r}")
    cuts: list[Any]
    if kind == "int":
        lo, hi = int(min_value), int(max_value)
        cuts = [lo + ((hi - lo + 1) * i) // n for i in range(1, n)]
    elif kind == "date":
        lo, hi = min_value.toordinal(), max_value.toordinal()
        cuts = [dt.date.fromordinal(lo + ((hi - lo + 1) * i) // n) for i in range(1, n)]
    elif kind == "timestamp":
        span = max_value - min_value
        cuts = [min_value + (span * i) / n for i in range(1, n)]
    elif isinstance(min_value, decimal.Decimal) or isinstance(max_value, decimal.Decimal):
        lo_d, hi_d = decimal.Decimal(min_value), decimal.Decimal(max_value)
        cuts = [lo_d + (hi_d - lo_d) * i / n for i in range(1, n)]
    else:
        lo_f, hi_f = float(min_value), float(max_value)
        cuts = [lo_f + (hi_f - lo_f) * i / n for i in range(1, n)]
    return _strictly_inside(cuts, min_value, max_value)


def quantile_cuts(sample: Iterable[Any], n: int) -> list[Any]:
    """Cut points at the ``i/n`` quantiles of ``sample`` (NULLs ignored), deduplicated.

    ``sample`` is either a random sample of key values or evenly spaced
    percentiles (``percentile_disc``) — both estimate the distribution.  A
    repeated value yields one cut; a cut equal to the sample minimum is
    dropped (the range below it would be empty), so skew yields fewer chunks
    rather than empty ones.
    """
    _check_n(n)
    values = sorted_non_null(sample)
    if not values:
        return []
    size = len(values)
    cuts = [values[(size * i) // n] for i in range(1, n)]
    return _strictly_inside(cuts, values[0], values[-1])


def sorted_non_null(sample: Iterable[Any]) -> list[Any]:
    """The sample's non-NULL values, sorted (tuples with a NULL part are dropped)."""
    return sorted(v for v in sample if not is_null(v))


def is_null(value: Any) -> bool:
    """SQL NULL-ness: None, or a composite key with a None component."""
    value = raw(value)
    return value is None or (isinstance(value, tuple) and any(v is None for v in value))


def _strictly_inside(cuts: Iterable[Any], low: Any, high: Any) -> list[Any]:
    out: list[Any] = []
    for cut in cuts:
        if low < cut <= high and (not out or cut > out[-1]):
            out.append(cut)
    return out


def _check_n(n: int) -> None:
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")


# -- bounds from cuts -----------------------------------------------------


def ranges_from_cuts(cuts: Sequence[Any]) -> list[RangeBounds]:
    """``[key < c1, c1 <= key < c2, ..., key >= ck]``; no cuts -> one unbounded range."""
    edges: list[Any] = [None, *cuts, None]
    return [RangeBounds(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def find_hot_values(sample: Iterable[Any], n: int) -> list[HotValue]:
    """Values holding more than ``1/n`` of the non-NULL sample, most frequent first.

    Such a value makes the chunk that contains it larger than the mean chunk
    whatever the cut points are.  With percentile input, ask for more
    percentiles than chunks (say ``4 * n``) so the repeats are visible.
    """
    _check_n(n)
    values = sorted_non_null(sample)
    if not values:
        return []
    counts = Counter(values)
    hot = [HotValue(v, c / len(values)) for v, c in counts.items() if c * n > len(values)]
    return sorted(hot, key=lambda h: -h.fraction)


def isolate_hot_values(
    ranges: Sequence[RangeBounds], hot_values: Iterable[Any]
) -> list[RangeBounds | PointBounds]:
    """Give each hot value its own ``key = v`` chunk inside the range that held it.

    ``[lo, hi)`` holding ``v`` becomes ``[lo, v)``, ``{v}``, ``(v, hi)``; the
    first piece is dropped when ``lo == v`` (it would be empty).  Adds at most
    two chunks per hot value.
    """
    out: list[RangeBounds | PointBounds] = list(ranges)
    for value in sorted(set(hot_values)):
        for index, bounds in enumerate(out):
            if isinstance(bounds, RangeBounds) and contains(bounds, value):
                pieces: list[RangeBounds | PointBounds] = []
                if not (bounds.lo is not None and bounds.lo_inclusive and bounds.lo == value):
                    pieces.append(RangeBounds(bounds.lo, value, bounds.lo_inclusive))
                pieces.append(PointBounds(value))
                pieces.append(RangeBounds(value, bounds.hi, lo_inclusive=False))
                out[index : index + 1] = pieces
                break
    return out


def skew_aware_ranges(
    sample: Iterable[Any], n: int
) -> tuple[list[RangeBounds | PointBounds], list[HotValue]]:
    """Quantile ranges with each hot value in its own point chunk.

    Hot values are taken out first and the other values get their own
    quantile cuts over the remaining ``n - len(hot)`` chunks, so one dominant
    value does not collapse the cuts and leave the rest of the keys in one
    chunk.  Returns the bounds (without the NULL chunk) and the hot values.
    """
    _check_n(n)
    values = sorted_non_null(sample)
    hot = find_hot_values(values, n)
    hot_set = {h.value for h in hot}
    rest = [v for v in values if v not in hot_set]
    ranges = ranges_from_cuts(quantile_cuts(rest, max(1, n - len(hot))))
    return isolate_hot_values(ranges, hot_set), hot


def split_hot_value(value: Any, secondary_cuts: Sequence[Any]) -> list[PointBounds]:
    """Split ``key = value`` into pieces by a secondary key (or ctid) range.

    The pieces are ``key = value AND sec < c1``, ..., ``key = value AND sec >=
    ck`` and ``key = value AND sec IS NULL`` — a partition of the hot value's
    rows by the same rules as the primary ranges.  Use a secondary key that is
    (nearly) unique within the hot value, with cuts from its quantiles among
    the hot value's rows; with ctid, cuts are ``'(page,0)'`` TIDs.
    """
    pieces: list[PointBounds] = [PointBounds(value, r) for r in ranges_from_cuts(secondary_cuts)]
    pieces.append(PointBounds(value, NullBounds()))
    return pieces


# -- evaluation (the Python mirror of the rendered SQL) ---------------------


def contains(bounds: ChunkBounds, key: Any, secondary: Any = None) -> bool:
    """Whether the SQL predicate for ``bounds`` is TRUE for a row with ``key``.

    Mirrors SQL three-valued logic: a comparison with NULL is never true, so
    NULL keys match only ``NullBounds``.
    """
    if isinstance(bounds, NullBounds):
        return is_null(key)
    if is_null(key):
        return False
    if isinstance(bounds, PointBounds):
        if key != bounds.value:
            return False
        return bounds.secondary is None or contains(bounds.secondary, secondary)
    if bounds.lo is not None:
        if bounds.lo_inclusive and not key >= bounds.lo:
            return False
        if not bounds.lo_inclusive and not key > bounds.lo:
            return False
    return bounds.hi is None or bool(key < bounds.hi)


def estimate_rows(
    bounds: Sequence[ChunkBounds], sample: Iterable[Any], non_null_rows: int
) -> list[int]:
    """Rows per chunk, scaling each chunk's share of the non-NULL sample.

    ``NullBounds`` chunks get 0 here; the caller knows the NULL count.  The
    sample has no secondary-key values, so a hot value split by a secondary
    key is assumed spread evenly over its range pieces (its NULL piece: 0).
    """
    values = sorted_non_null(sample)
    if not values:
        return [0 for _ in bounds]
    counts = Counter(values)
    pieces = Counter(
        b.value
        for b in bounds
        if isinstance(b, PointBounds) and isinstance(b.secondary, RangeBounds)
    )
    estimates: list[int] = []
    for b in bounds:
        share: float
        if isinstance(b, NullBounds):
            share = 0
        elif isinstance(b, PointBounds) and b.secondary is not None:
            split = isinstance(b.secondary, RangeBounds)
            share = counts[b.value] / pieces[b.value] if split else 0
        else:
            share = _count_in(values, b)
        estimates.append(round(non_null_rows * share / len(values)))
    return estimates


def _count_in(values: list[Any], bounds: RangeBounds | PointBounds) -> int:
    """How many of the sorted non-NULL ``values`` ``bounds`` holds (bisection)."""
    if isinstance(bounds, PointBounds):
        return bisect.bisect_right(values, bounds.value) - bisect.bisect_left(values, bounds.value)
    if bounds.lo is None:
        start = 0
    elif bounds.lo_inclusive:
        start = bisect.bisect_left(values, bounds.lo)
    else:
        start = bisect.bisect_right(values, bounds.lo)
    end = len(values) if bounds.hi is None else bisect.bisect_left(values, bounds.hi)
    return max(0, end - start)


@dataclass(frozen=True)
class Balance:
    """How far the largest chunk is above the mean, and why."""

    largest: int
    mean: float
    hot_values: tuple[HotValue, ...] = ()

    @property
    def ratio(self) -> float:
        return self.largest / self.mean if self.mean else 0.0

    @property
    def within_twice_mean(self) -> bool:
        return self.largest <= 2 * self.mean

    def message(self, key: str = "key") -> str | None:
        """The warning a plan carries when the largest chunk is over 2x the mean."""
        if self.within_twice_mean:
            return None
        if self.hot_values:
            hot = self.hot_values[0]
            return (
                f"the largest chunk cannot be kept under 2x the mean because {key} value "
                f"{hot.value!r} holds {hot.fraction:.0%} of rows"
            )
        return f"the largest chunk is estimated at {self.ratio:.1f}x the mean chunk"


def balance(estimates: Sequence[int], hot_values: Iterable[HotValue] = ()) -> Balance:
    """Summarise chunk sizes; ``hot_values`` explain an imbalance."""
    if not estimates:
        return Balance(0, 0.0, tuple(hot_values))
    return Balance(max(estimates), sum(estimates) / len(estimates), tuple(hot_values))
