"""Property tests: chunk bounds partition every key, NULLs and skew included."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dms_pkg.chunking import boundaries as b

ints_with_nulls = st.lists(st.one_of(st.none(), st.integers(-1000, 1000)), max_size=300)


@st.composite
def key_lists(draw: st.DrawFn) -> list[int | None]:
    """Ints with NULLs, duplicates, gaps, one hot value, empty and one-row lists."""
    shape = draw(st.sampled_from(["any", "hot", "gaps", "one", "empty", "dups"]))
    if shape == "empty":
        return []
    if shape == "one":
        return [draw(st.one_of(st.none(), st.integers()))]
    if shape == "hot":
        hot = draw(st.integers(-100, 100))
        rest = draw(st.lists(st.integers(-(10**6), 10**6), min_size=1, max_size=30))
        return [hot] * (9 * len(rest)) + rest + draw(st.lists(st.none(), max_size=3))
    if shape == "gaps":
        return draw(st.lists(st.sampled_from([-(10**9), 0, 1, 2, 10**9, None]), max_size=200))
    if shape == "dups":
        return draw(st.lists(st.sampled_from([5, 5, 5, 6, None]), max_size=100))
    return draw(ints_with_nulls)


def plans(keys: Sequence[int | None], n: int) -> list[list[b.ChunkBounds]]:
    """Equal-width and quantile(+hot isolation) plans, each with the NULL chunk."""
    values = b.sorted_non_null(keys)
    lo, hi = (values[0], values[-1]) if values else (None, None)
    width = list(b.ranges_from_cuts(b.equal_width_cuts(lo, hi, n, "int")))
    quantile, _ = b.skew_aware_ranges(keys, n)
    return [[*width, b.NullBounds()], [*quantile, b.NullBounds()]]


def chunk_sizes(keys: Sequence[Any], bounds: Sequence[b.ChunkBounds]) -> list[int]:
    return [sum(1 for k in keys if b.contains(c, k)) for c in bounds]


@settings(max_examples=300)
@given(keys=key_lists(), n=st.integers(1, 40))
def test_every_key_lands_in_exactly_one_chunk(keys: list[int | None], n: int) -> None:
    for plan in plans(keys, n):
        for key in keys:
            assert sum(1 for c in plan if b.contains(c, key)) == 1, (key, plan)
        assert sum(chunk_sizes(keys, plan)) == len(keys)
        # with the whole key list as the "sample", estimates are exact counts
        non_null = len(b.sorted_non_null(keys))
        assert b.estimate_rows(plan[:-1], keys, non_null) == chunk_sizes(keys, plan[:-1])
        # values never seen by the statistics are covered too (open outer ranges)
        for outside in (-(10**12), 10**12):
            assert sum(1 for c in plan if b.contains(c, outside)) == 1


@settings(max_examples=200)
@given(
    keys=st.lists(
        st.tuples(st.one_of(st.none(), st.integers(0, 5)), st.one_of(st.none(), st.integers(0, 5))),
        max_size=80,
    ),
    n=st.integers(1, 10),
)
def test_composite_keys_partition_with_partial_nulls(
    keys: list[tuple[int | None, int | None]], n: int
) -> None:
    plan: list[b.ChunkBounds] = [*b.ranges_from_cuts(b.quantile_cuts(keys, n)), b.NullBounds()]
    for key in keys:
        assert sum(1 for c in plan if b.contains(c, key)) == 1


@settings(max_examples=200)
@given(
    hot=st.integers(-50, 50),
    rest=st.lists(st.integers(-(10**4), 10**4), min_size=1, max_size=40),
)
def test_ninety_percent_hot_value_is_reported_and_beats_equal_width(
    hot: int, rest: list[int]
) -> None:
    keys = [hot] * (9 * len(rest)) + rest  # at least 90% on one value
    n = 8
    width_plan, quantile_plan = plans(keys, n)
    quantile_sizes = chunk_sizes(keys, quantile_plan[:-1])
    width_sizes = chunk_sizes(keys, width_plan[:-1])
    hot_values = b.find_hot_values(keys, n)
    report = b.balance(quantile_sizes, hot_values)
    # either balanced, or the plan names the hot value and its share
    assert report.within_twice_mean or (
        report.hot_values
        and report.hot_values[0].value == hot
        and report.hot_values[0].fraction >= 0.9
    )
    message = report.message("id")
    assert message is None or message.startswith(
        f"the largest chunk cannot be kept under 2x the mean because id value {hot} holds"
    )
    # the hot value is alone in its chunk, so no quantile chunk is larger than
    # the equal-width chunk that holds it
    assert max(quantile_sizes) == Counter(keys)[hot]
    assert max(quantile_sizes) <= max(width_sizes)


def test_equal_width_is_strictly_worse_on_a_skewed_example() -> None:
    keys = [5] * 900 + list(range(10, 109)) + [10**6]  # 90% hot, one far outlier
    width_plan, quantile_plan = plans(keys, 8)
    width_sizes = chunk_sizes(keys, width_plan)
    quantile_sizes = chunk_sizes(keys, quantile_plan)
    assert max(width_sizes) == 999  # all but the outlier in one chunk
    assert max(quantile_sizes) == 900  # only the hot value
    others = [size for size in quantile_sizes if size != 900 and size > 0]
    assert len(others) == 7  # the other 100 keys spread over the remaining chunks
    assert max(others) <= 2 * 100 / len(others)
    report = b.balance(chunk_sizes(keys, quantile_plan[:-1]), b.find_hot_values(keys, 8))
    assert report.message("id") == (
        "the largest chunk cannot be kept under 2x the mean because id value 5 holds 90% of rows"
    )


def test_uniform_keys_stay_within_twice_the_mean() -> None:
    keys = list(range(10_000))
    _, quantile_plan = plans(keys, 16)
    report = b.balance(chunk_sizes(keys, quantile_plan[:-1]))
    assert report.within_twice_mean
    assert report.message() is None


def test_equal_width_cuts_for_each_kind() -> None:
    assert b.equal_width_cuts(1, 10, 5, "int") == [3, 5, 7, 9]
    assert b.equal_width_cuts(1, 3, 8, "int") == [2, 3]  # narrower than n
    assert b.equal_width_cuts(0.0, 1.0, 4, "numeric") == [0.25, 0.5, 0.75]
    assert b.equal_width_cuts(dt.date(2024, 1, 1), dt.date(2024, 1, 10), 2, "date") == [
        dt.date(2024, 1, 6)
    ]
    start = dt.datetime(2024, 1, 1)
    assert b.equal_width_cuts(start, start + dt.timedelta(hours=4), 4, "timestamp") == [
        start + dt.timedelta(hours=h) for h in (1, 2, 3)
    ]
    assert b.equal_width_cuts(None, None, 4, "int") == []
    with pytest.raises(ValueError, match="text"):
        b.equal_width_cuts("a", "z", 4, "text")


def test_quantile_cuts_for_text_keys_are_deduplicated() -> None:
    keys = ["a", "b", "b", "b", "b", "b", "c", "d"]
    assert b.quantile_cuts(keys, 4) == ["b", "c"]
    assert b.find_hot_values(keys, 4) == [b.HotValue("b", 5 / 8)]


def test_split_hot_value_partitions_the_hot_rows_by_secondary_key() -> None:
    pieces = b.split_hot_value(7, [10, 20])
    rows = [(7, s) for s in (None, 0, 10, 19, 20, 99)]
    for key, secondary in rows:
        assert sum(1 for p in pieces if b.contains(p, key, secondary)) == 1
    assert not any(b.contains(p, 8, 10) for p in pieces)
