"""ROWID-range chunks: a table cut by its extents, about chunk_size rows each.

The steps, in the order a run must take them:

1. read the run's SCN (``oracle_scn.current_scn``) -- first, because the
   extent list cannot be read AS OF an SCN, and every row visible at the SCN
   lives in an extent that existed before it;
2. estimate the table's rows (``table_stats_sql``: optimizer statistics
   scaled by the segment's growth, or a count when never analyzed) and turn
   that into a number of groups, ``chunk_count(rows, chunk_size)``;
3. list the extents grouped into that many block-balanced groups with a
   ``[lo, hi]`` ROWID pair each (``chunking.stats_sql.rowid_ranges_sql``:
   DBA_EXTENTS/DBA_OBJECTS with an owner, USER_* without, and
   ``DBMS_ROWID.ROWID_CREATE``; one range per partition a group spans);
4. hand the pairs to the chunk planner (``bounds_input``), which writes each
   chunk's predicate as ``<alias>.ROWID BETWEEN :dms_lo AND :dms_hi``
   (``chunking.predicates.rowid_predicate``), and read each chunk AS OF the
   SCN of step 1.

One SQL text for the extents and one predicate: this module adds the sizing
and the order, not a second rendering.  Ranges are inclusive and disjoint;
together they cover every block of every extent of the table's segments, so
the chunks partition the table.  A table without a segment (deferred
segment creation, never written) has no extents and is read as one chunk;
so is an index-organized table (its rows live in an index segment) and a
table in a cluster.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from dms_pkg.chunking.plan import MAX_CHUNKS, BoundsInput
from dms_pkg.chunking.stats_sql import StatsQuery, rowid_ranges_sql
from dms_pkg.errors import INVALID_PARAMETER_VALUE, DmsError


def chunk_count(rows: int | None, chunk_size: int) -> int:
    """How many extent groups give chunks of about ``chunk_size`` rows
    (at least 1, at most the planner's MAX_CHUNKS)."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise DmsError(f"chunk_size must be a positive integer, got {chunk_size!r}",
                       sqlstate=INVALID_PARAMETER_VALUE, hint="rows per chunk, e.g. 100000")
    if not rows or rows <= 0:
        return 1
    return max(1, min(MAX_CHUNKS, math.ceil(rows / chunk_size)))


def extent_ranges_sql(table: str, rows: int | None, chunk_size: int, *,
                      owner: str | None = None) -> StatsQuery:
    """The grouped extent query for ``table`` (its dictionary name, e.g.
    ``ORDERS``) sized for ``chunk_size`` rows per group."""
    return rowid_ranges_sql(table, chunk_count(rows, chunk_size), owner=owner)


def ranges_from_rows(rows: Iterable[Sequence[Any]]) -> list[tuple[str, str]]:
    """``(lo_rid, hi_rid)`` pairs from the rows of the extent query
    (``grp, data_object_id, lo_rid, hi_rid``), in its order."""
    pairs = []
    for row in rows:
        lo, hi = row[2], row[3]
        if lo is None or hi is None:
            continue
        pairs.append((str(lo), str(hi)))
    return pairs


def bounds_input(rows: Iterable[Sequence[Any]], row_count: int | None) -> BoundsInput:
    """The planner's input for strategy ``rowid`` (``chunking.plan_query``)."""
    return BoundsInput(rowid_ranges=tuple(ranges_from_rows(rows)), row_count=row_count)
