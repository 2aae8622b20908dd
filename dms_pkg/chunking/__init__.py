"""Split a source query into parallel chunks — the pure planning part.

Nothing here touches a database.  The flow for the database-facing planner:

1. ``analyze_query(sql, dialect, key)`` — parse, find the driving table and
   check the query is safe to split (``refused_reason`` says why not);
2. run the SQL from ``stats_sql`` (min/max/count, sample or quantiles,
   relpages, ROWID ranges) and put the results in a ``BoundsInput``;
3. ``plan_query(sql, dialect, key, n_chunks, strategy, bounds_input)`` —
   a ``ChunkPlan`` whose chunks partition the result, NULL keys included.

Modules: ``dialects`` (per-dialect overrides), ``parse``, ``analyze``,
``safety``, ``boundaries``, ``predicates``, ``render``, ``stats_sql``,
``plan``.
"""

from dms_pkg.chunking.analyze import DrivingPath, QueryAnalysis, analyze_query
from dms_pkg.chunking.boundaries import HotValue, NullBounds, PointBounds, RangeBounds
from dms_pkg.chunking.dialects import ChunkDialect, ParamStyle, allowed_dialects, get_dialect
from dms_pkg.chunking.plan import (
    MAX_CHUNKS,
    STRATEGIES,
    BoundsInput,
    ChunkPlan,
    ChunkSpec,
    plan_query,
)

__all__ = [
    "MAX_CHUNKS",
    "STRATEGIES",
    "BoundsInput",
    "ChunkDialect",
    "ChunkPlan",
    "ChunkSpec",
    "DrivingPath",
    "HotValue",
    "NullBounds",
    "ParamStyle",
    "PointBounds",
    "QueryAnalysis",
    "RangeBounds",
    "allowed_dialects",
    "analyze_query",
    "get_dialect",
    "plan_query",
]
