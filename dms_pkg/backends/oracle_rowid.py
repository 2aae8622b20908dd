"""ROWID-range chunks: a table cut by its extents, about chunk_size rows each.

The steps, in the order planning takes them (``OracleSource.row_ranges``,
which the chunk planner calls for a query with no chunk key):

1. read the SCN (``oracle_scn.current_scn``) -- first, because the extent
   list cannot be read AS OF an SCN, and every row visible at the SCN lives
   in an extent that existed before it;
2. find whose table it is (``SCHEMA_SQL``: an unqualified name is the
   session's CURRENT_SCHEMA, whose extents are in USER_EXTENTS only when
   that schema is the login's own; otherwise the DBA_ views, with the owner
   bound), then estimate its rows (``table_stats_sql``: optimizer
   statistics scaled by the segment's growth, or a COUNT(*) AS OF the SCN
   when never analyzed) and turn that into a number of groups,
   ``chunk_count(rows, chunk_size)``;
3. list the extents grouped into that many block-balanced groups with a
   ``[lo, hi]`` ROWID pair each (``chunking.stats_sql.rowid_ranges_sql``:
   DBA_EXTENTS/DBA_OBJECTS with an owner, USER_* without, and
   ``DBMS_ROWID.ROWID_CREATE``; one range per partition a group spans);
4. hand the pairs and the SCN to the chunk planner (``bounds_input``,
   ``BoundsInput.point``), which writes each chunk's predicate as
   ``<alias>.ROWID BETWEEN :dms_lo AND :dms_hi``
   (``chunking.predicates.rowid_predicate``) and records the SCN as the
   plan's point: the run's consistent point is that SCN, not a later one, and
   every chunk reads AS OF it.  Extents allocated after the SCN are not in
   the list, and none of their rows is visible at the SCN: none is missed.

One SQL text for the extents and one predicate: this module adds the sizing
and the order, not a second rendering.  Ranges are inclusive and disjoint;
together they cover every block of every extent of the table's segments, so
the chunks partition the table.  A table without a segment (deferred
segment creation, never written) has no extents and is read as one chunk;
so is an index-organized table (its rows live in an index segment), a
table in a cluster, a view and a synonym (no table segment of that name).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from dms_pkg.chunking.plan import MAX_CHUNKS, BoundsInput
from dms_pkg.chunking.stats_sql import StatsQuery, rowid_ranges_sql
from dms_pkg.errors import INVALID_PARAMETER_VALUE, DmsError

# Who is logged in, and whose schema unqualified names are read in.
SCHEMA_SQL = ("SELECT SYS_CONTEXT('USERENV', 'SESSION_USER'), "
              "SYS_CONTEXT('USERENV', 'CURRENT_SCHEMA') FROM DUAL")
# What reading another schema's extents needs (SELECT_CATALOG_ROLE has it all).
DBA_VIEWS = ("DBA_TABLES", "DBA_SEGMENTS", "DBA_EXTENTS", "DBA_OBJECTS")


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
                      owner: str | None = None, n_chunks: int | None = None) -> StatsQuery:
    """The grouped extent query for ``table`` (its dictionary name, e.g.
    ``ORDERS``) sized for ``chunk_size`` rows per group, or cut in ``n_chunks``
    groups when the run asks for that many chunks."""
    groups = chunk_count(rows, chunk_size) if n_chunks is None else max(
        1, min(MAX_CHUNKS, n_chunks))
    return rowid_ranges_sql(table, groups, owner=owner)


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


def bounds_input(rows: Iterable[Sequence[Any]], row_count: int | None,
                 scn: int | None = None) -> BoundsInput:
    """The planner's input for strategy ``rowid`` (``chunking.plan_query``); with
    ``scn`` (the one read before the extents) as the plan's point."""
    return BoundsInput(rowid_ranges=tuple(ranges_from_rows(rows)), row_count=row_count,
                       point=None if scn is None else str(scn))
