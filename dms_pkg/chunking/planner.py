"""The database-facing planner: measure the source, then plan its chunks.

``plan_chunks(source, sql, ...)`` is what the engine, ``dms.plan_chunks()``
and ``dms plan`` call.  It asks the source's catalog for the driving table's
columns and primary key, runs the statistics SQL of ``stats_sql`` that the
chosen strategy needs, and hands everything to the pure ``plan_query``.

Strategy ``auto`` on a one-column key measures min/max/count and a sample,
then prefers equal-width ranges (exact bounds, index range scans) unless the
sample shows they would be unbalanced -- largest chunk above
``SKEW_TOLERANCE`` times the mean -- in which case it cuts at sample
quantiles and isolates hot values.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlglot import exp

from dms_pkg.chunking import boundaries as bnd
from dms_pkg.chunking import safety, stats_sql
from dms_pkg.chunking.analyze import QueryAnalysis, analyze_query
from dms_pkg.chunking.catalog import catalog_for
from dms_pkg.chunking.dialects import ParamStyle, get_dialect
from dms_pkg.chunking.plan import (
    BoundsInput,
    ChunkPlan,
    plan_query,
    validate_n_chunks,
    validate_strategy,
)
from dms_pkg.db.sources import SourceConnection
from dms_pkg.errors import INVALID_PARAMETER_VALUE, DmsError

DEFAULT_CHUNK_SIZE = 100_000
MAX_CHUNK_SIZE = 1_000_000_000
SAMPLE_ROWS = 20_000
SKEW_TOLERANCE = 1.5

_NEEDS_KEY = frozenset({"key_range", "quantile", "hash", "offset"})


def validate_chunk_size(chunk_size: int | None) -> int:
    if chunk_size is None:
        return DEFAULT_CHUNK_SIZE
    if (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, int)
        or not (1 <= chunk_size <= MAX_CHUNK_SIZE)
    ):
        raise DmsError(
            f"chunk_size must be between 1 and {MAX_CHUNK_SIZE}, got {chunk_size!r}",
            sqlstate=INVALID_PARAMETER_VALUE,
            hint=f"rows per chunk; leave it unset for the default of {DEFAULT_CHUNK_SIZE}",
        )
    return chunk_size


def key_kind(value: Any) -> str | None:
    """The boundaries key kind of a Python value read from the source."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return "int"
    if isinstance(value, decimal.Decimal | float):
        return "numeric"
    if isinstance(value, dt.datetime):
        return "timestamp"
    if isinstance(value, dt.date):
        return "date"
    if isinstance(value, uuid.UUID):
        return "uuid"
    if isinstance(value, str):
        return "text"
    return None


def plan_chunks(
    source: SourceConnection,
    sql: str,
    *,
    key: str | Sequence[str] | None = None,
    n_chunks: int | None = None,
    chunk_size: int | None = None,
    strategy: str = "auto",
    sample_rows: int = SAMPLE_ROWS,
    render_style: ParamStyle | None = None,
) -> ChunkPlan:
    """Plan ``sql`` on ``source``: every source row in exactly one chunk.

    Statistics queries run on ``source`` in its own bind style; the chunk
    queries are rendered in ``render_style`` (default: the source's), for
    the connection that will run them.
    """
    dialect = get_dialect(source.dialect)
    validate_strategy(strategy)
    validate_n_chunks(n_chunks)
    rows_per_chunk = validate_chunk_size(chunk_size)

    shape = analyze_query(sql, dialect, None)
    if shape.refused_reason is not None or not shape.paths:
        return plan_query(
            sql,
            dialect.NAME,
            key,
            n_chunks,
            "single" if strategy == "auto" else strategy,
            param_style=render_style or source.style,
        )
    table = shape.paths[0].table
    catalog = catalog_for(source)
    columns = catalog.columns(table) if table is not None else None

    if key is None and table is not None and strategy not in ("ctid", "rowid", "single"):
        primary = catalog.primary_key(table)
        if primary:
            key = primary if len(primary) > 1 else primary[0]
    if key is None and strategy in _NEEDS_KEY:
        raise DmsError(
            f'chunk strategy "{strategy}" needs a chunk key and '
            f"{shape.driving_table} has no primary key",
            sqlstate=INVALID_PARAMETER_VALUE,
            hint="name the key column, for example key => 'id'",
        )

    physical = key is None and strategy in ("auto", "ctid", "rowid")
    analysis = analyze_query(sql, dialect, None if physical else key, columns=columns)
    unique = False
    if analysis.refused_reason is None and table is not None and (
        strategy == "offset" or (strategy == "auto" and analysis.key is not None)
    ):
        unique = _covers_unique_key(catalog.unique_keys(table), analysis)
        if strategy == "offset" and not unique:
            raise _not_unique(analysis)
    kwargs: dict[str, Any] = {
        "columns": columns,
        "rows_per_chunk": rows_per_chunk,
        "param_style": render_style or source.style,
    }
    if analysis.refused_reason is not None:
        return plan_query(sql, dialect.NAME, key, n_chunks, strategy, **kwargs)

    stats, chosen = _measure(
        source, analysis, strategy, physical, n_chunks, rows_per_chunk, sample_rows, unique
    )
    plan = plan_query(sql, dialect.NAME, key, n_chunks, chosen, stats, **kwargs)
    if strategy == "auto" and plan.strategy == "quantile" and stats.key_kind in bnd.WIDTH_KINDS:
        note = "auto chose quantile ranges: equal-width ranges would be unbalanced on this key"
        return replace(plan, notes=(note, *plan.notes))
    return plan


def _covers_unique_key(unique_keys: list[list[str]], analysis: QueryAnalysis) -> bool:
    """Whether the chunk key contains a primary key or unique NOT NULL index."""
    dialect = analysis.dialect
    key = analysis.paths[0].target.key or []
    wanted = {dialect.normalize(column.this) for column in key}
    return any(
        {dialect.normalize(exp.to_identifier(c, quoted=True)) for c in columns} <= wanted
        for columns in unique_keys
    )


def _not_unique(analysis: QueryAnalysis) -> DmsError:
    """OFFSET windows are exact only when ORDER BY key has no ties."""
    key = analysis.key or analysis.paths[0].target.key or []
    return DmsError(
        safety.OFFSET_NOT_UNIQUE.format(
            key=safety.key_sql(key, analysis.dialect), table=analysis.driving_table
        ),
        sqlstate=INVALID_PARAMETER_VALUE,
        hint="name the primary key as the chunk key, or use strategy key_range, quantile "
        "or hash, which need no unique key",
    )


def _measure(
    source: SourceConnection,
    analysis: QueryAnalysis,
    strategy: str,
    physical: bool,
    n_chunks: int | None,
    rows_per_chunk: int,
    sample_rows: int,
    unique: bool = False,
) -> tuple[BoundsInput, str]:
    """Run the statistics the strategy needs; return them and the strategy to plan."""
    style = source.style
    if physical:
        if analysis.dialect.ROW_LOCATOR == "ctid" and analysis.paths[0].table is not None:
            query = stats_sql.relpages_sql(analysis, style=style)
            row = source.fetch(query.sql, query.params)[0]
            pages, tuples = int(row[2]), float(row[1])
            if tuples < 0 or (tuples == 0 and pages > 0):
                # Never analyzed (or analyzed when empty): the estimate says
                # nothing, and chunk count and parallelism follow from it.
                tuples = _count(source, analysis)
            return BoundsInput(relpages=pages, row_count=max(0, int(tuples))), (
                "ctid" if strategy == "auto" else strategy
            )
        if analysis.dialect.IMPLICIT_ROW_KEY is None:
            return BoundsInput(), strategy
        # SQLite's rowid: measure it as a key below.
    if analysis.key is not None and len(analysis.key) > 1:  # composite key
        count = _count(source, analysis)
        stats = BoundsInput(row_count=count)
        if strategy in ("auto", "quantile"):
            n = n_chunks or max(1, -(-count // rows_per_chunk))
            query = stats_sql.quantiles_sql(analysis, max(4 * n, 8), style=style)
            stats = replace(stats, sample=[tuple(r) for r in source.fetch(query.sql, query.params)])
            return stats, "quantile" if strategy == "auto" else strategy
        return stats, strategy

    if analysis.key is None:  # SQLite without a key: plan_query splits on rowid
        implicit = analyze_query(analysis.sql, analysis.dialect, analysis.dialect.IMPLICIT_ROW_KEY)
        return _measure_one(source, implicit, strategy, n_chunks, rows_per_chunk, sample_rows,
                            unique=True)  # SQLite's rowid is unique
    return _measure_one(source, analysis, strategy, n_chunks, rows_per_chunk, sample_rows,
                        unique=unique)


def _count(source: SourceConnection, analysis: QueryAnalysis) -> int:
    # min_max_count_sql needs one column; count(*) of the relation is what we want.
    from dms_pkg.chunking.render import render

    select = stats_sql.from_driving(analysis, analysis.paths[0],
                                    exp.select(exp.Count(this=exp.Star())))
    return int(source.fetch(render(select, analysis.dialect, [], source.style))[0][0])


def _measure_one(
    source: SourceConnection,
    analysis: QueryAnalysis,
    strategy: str,
    n_chunks: int | None,
    rows_per_chunk: int,
    sample_rows: int,
    *,
    unique: bool = False,
) -> tuple[BoundsInput, str]:
    style = source.style
    query = stats_sql.min_max_count_sql(analysis, style=style)
    lo, hi, count, nulls = source.fetch(query.sql, query.params)[0]
    count, nulls = int(count), int(nulls or 0)
    kind = key_kind(lo if lo is not None else hi)
    if lo is None:
        # No non-NULL key at all: any range plan is one open range plus the
        # NULL chunk, whatever the key's type, so the kind does not matter.
        kind = "int"
    stats = BoundsInput(
        key_kind=kind, min_value=lo, max_value=hi, row_count=count, null_count=nulls
    )
    if strategy in ("hash", "offset", "single"):
        return stats, strategy
    if strategy == "key_range" or (strategy == "auto" and count == nulls):
        return stats, "key_range" if kind in bnd.WIDTH_KINDS or strategy == "key_range" else (
            "quantile"
        )
    if strategy == "auto" and unique and kind == "int" and _dense(lo, hi, count - nulls):
        # A unique integer key that (nearly) fills its range -- a sequence-fed
        # primary key -- cannot be skewed: equal widths hold equal row counts,
        # and a sample (a scan of the table) would only confirm it.
        return stats, "key_range"
    sample = _sample(source, analysis, count, sample_rows)
    stats = replace(stats, sample=sample)
    if strategy == "quantile":
        return stats, "quantile"
    # auto: equal-width unless the sample says it would be unbalanced.
    if kind in bnd.WIDTH_KINDS and lo is not None:
        n = n_chunks or max(1, min(10_000, -(-count // rows_per_chunk)))
        cuts = bnd.equal_width_cuts(lo, hi, n, kind)
        ranges = bnd.ranges_from_cuts(cuts)
        estimates = bnd.estimate_rows(ranges, sample, count - nulls)
        mean = (count - nulls) / max(1, len(ranges))
        if not estimates or max(estimates) <= SKEW_TOLERANCE * max(mean, 1.0):
            return replace(stats, sample=()), "key_range"
    return stats, "quantile"


DENSE_FILL = 0.9


def _dense(lo: Any, hi: Any, rows: int) -> bool:
    """At least DENSE_FILL of the integers from lo to hi are present (with a unique key)."""
    if lo is None or hi is None or rows <= 0:
        return False
    span = int(hi) - int(lo) + 1
    return span > 0 and DENSE_FILL * span <= rows <= span


def _sample(
    source: SourceConnection, analysis: QueryAnalysis, count: int, sample_rows: int
) -> list[Any]:
    if count == 0:
        return []
    percent = min(100.0, 100.0 * sample_rows / count)
    query = stats_sql.sample_sql(analysis, percent, style=source.style)
    rows = source.fetch(query.sql, query.params)
    if not rows and count:
        # A tiny table can come back empty from a random sample; read it all.
        query = stats_sql.sample_sql(analysis, 100.0, style=source.style)
        rows = source.fetch(query.sql, query.params)
    return [r[0] if len(r) == 1 else tuple(r) for r in rows]
