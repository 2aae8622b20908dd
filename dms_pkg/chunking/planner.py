"""The database-facing planner: measure the source, then plan its chunks.

``plan_chunks(source, sql, ...)`` is what the engine, ``dms.plan_chunks()``
and ``dms plan`` call.  It asks the source's catalog for the driving table's
columns and primary key, runs the statistics SQL of ``stats_sql`` that the
chosen strategy needs, and hands everything to the pure ``plan_analysis``.

The order of the steps is what keeps the promises of docs/chunking.md:

1. locate the driving table (``analyze_query(locate=True)``) without
   judging the query's shape -- the shape is judged for a key, and the key
   may be the table's primary key, which only the catalog knows;
2. the default key is the primary key *as the outermost query names it*
   (``key_above``): a CTE that renames ``id`` to ``order_id`` is keyed on
   ``order_id``; a primary key no level passes on leaves a physical split;
3. judge the shape for that key.  A query that must not be split is one
   chunk with its reason whatever strategy was asked for;
4. measure what the strategy needs and plan.

Strategy ``auto`` on a one-column key measures min/max/count and a sample,
then prefers equal-width ranges (exact bounds, index range scans) unless the
sample shows they would be unbalanced -- largest chunk above
``SKEW_TOLERANCE`` times the mean -- in which case it cuts at sample
quantiles and isolates hot values.

Values are the database's: a sample comes back with each value's rank in the
key's own order (``boundaries.Ranked``), so quantile cuts of a collated or
mixed-type key ascend as its predicates compare.  Equal widths need numbers,
dates or timestamps whose Python order is the database's: NaN and infinite
keys (PostgreSQL orders NaN above every number, -infinity below every
timestamp) are left out of the width and land in the open-ended outer ranges.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

from sqlglot import exp

from dms_pkg.chunking import boundaries as bnd
from dms_pkg.chunking import safety, stats_sql
from dms_pkg.chunking.analyze import QueryAnalysis, analyze_query, key_above, with_row_key
from dms_pkg.chunking.catalog import catalog_for
from dms_pkg.chunking.dialects import ParamStyle, get_dialect
from dms_pkg.chunking.plan import (
    BoundsInput,
    ChunkPlan,
    plan_analysis,
    validate_n_chunks,
    validate_strategy,
)
from dms_pkg.db.sources import SourceConnection
from dms_pkg.errors import INSUFFICIENT_PRIVILEGE, INVALID_PARAMETER_VALUE, DmsError

DEFAULT_CHUNK_SIZE = 100_000
MAX_CHUNK_SIZE = 1_000_000_000
SAMPLE_ROWS = 20_000
SKEW_TOLERANCE = 1.5

_NEEDS_KEY = frozenset({"key_range", "quantile", "hash", "offset"})
# Relation kinds (pg_class.relkind) whose rows have a ctid and take TABLESAMPLE.
_HAS_CTID = frozenset({"r", "m", "p"})

PK_NOT_PASSED_ON = (
    "the primary key ({key}) of {table} is not passed on as a plain column by every "
    "level of the query above it, so it cannot be the chunk key"
)
NOT_A_TABLE = (
    "{table} is a {kind}, which has no physical row address ({locator}); "
    "name a chunk key to split it"
)
KEY_RANGE_NO_WIDTH = (
    "strategy key_range needs an integer, numeric, date or timestamp key, and {key} "
    "holds none (its smallest value is {lo!r})"
)
PARTITIONED_CTID = (
    "ctid ranges on the partitioned table {table} cut every partition at the same page "
    "numbers (the largest partition has {pages} pages), so each chunk reads a slice of each "
    "partition"
)
NON_FINITE = (
    "{key} holds values with no place on its number or time line (NaN, infinity, or values "
    "of another type): the equal-width ranges span the others and the open outer ranges "
    "hold them, in the order the database sorts them"
)
# Key kinds whose order no collation changes: range cuts of one UNION ALL
# branch hold for every branch.
_ORDER_FREE = frozenset({"int", "numeric", "date", "timestamp", "uuid"})
UNION_TEXT_ORDER = (
    "quantile ranges cannot cut the text or composite key {key} of a UNION ALL: they are "
    "measured on the first branch, and another branch may order text in another collation"
)
UNION_TEXT_HASH = (
    "hash buckets split this UNION ALL: its key is text (or composite), which another "
    "branch may order in another collation than the first, where range bounds are measured"
)
_RELKINDS = {"v": "view", "f": "foreign table", "c": "composite type", "S": "sequence",
             "i": "index", "I": "partitioned index", "t": "TOAST table"}


@runtime_checkable
class RowRangeSource(Protocol):
    """A source that measures its own physical row ranges (Oracle: ROWID ranges
    from a table's extents), which no statistics query of ``stats_sql`` alone
    can give: the ranges hold only as of the point in time the source read
    them after, which it returns in ``BoundsInput.point``."""

    def row_ranges(self, table: exp.Table, *, rows_per_chunk: int,
                   n_chunks: int | None) -> BoundsInput:
        """``rowid_ranges`` (inclusive, disjoint, covering every row of ``table``
        as of ``point``), the table's ``row_count`` and that ``point``.  Raises
        DmsError 42501 when the login may not read what they come from."""
        ...


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
    validate_strategy(strategy, dialect)
    validate_n_chunks(n_chunks)
    rows_per_chunk = validate_chunk_size(chunk_size)
    style = render_style or source.style
    notes: list[str] = []

    def planned(analysis: QueryAnalysis, chosen: str, stats: BoundsInput | None = None
                ) -> ChunkPlan:
        return plan_analysis(analysis, n_chunks, chosen, stats, rows_per_chunk=rows_per_chunk,
                             param_style=style, notes=notes)

    located = analyze_query(sql, dialect, key, locate=True)
    if not located.paths:  # nothing to split: no table, or an unnamed one
        return planned(analyze_query(sql, dialect, key), "single")
    table = located.paths[0].table
    catalog = catalog_for(source)
    columns = catalog.columns(table) if table is not None else None

    if key is None and table is not None and strategy not in ("ctid", "rowid", "single"):
        primary = catalog.primary_key(table)
        if primary:
            key = key_above(located, primary)
            if key is None:
                notes.append(PK_NOT_PASSED_ON.format(key=", ".join(primary),
                                                     table=located.driving_table))

    physical = strategy in ("ctid", "rowid") or key is None
    analysis = analyze_query(sql, dialect, None if physical else key, columns=columns)
    if analysis.refused_reason is not None or strategy == "single":
        return planned(analysis, "single")
    if key is None and strategy in _NEEDS_KEY:
        if notes:  # a primary key exists, but the query hides it
            raise DmsError(
                f'chunk strategy "{strategy}" needs a chunk key: {notes[0]}',
                sqlstate=INVALID_PARAMETER_VALUE,
                hint="name the key as the query's outermost level sees it, for example "
                "key => 'order_id'",
            )
        raise DmsError(
            f'chunk strategy "{strategy}" needs a chunk key and '
            f"{analysis.driving_table} has no primary key",
            sqlstate=INVALID_PARAMETER_VALUE,
            hint="name the key column, for example key => 'id'",
        )
    # The relation the analysis filters (a physical split may drive another
    # table than the key the user named).
    driving = analysis.paths[0].table if analysis.paths else None
    relkind = catalog.relation_kind(driving) if driving is not None else None

    if physical:
        return _plan_physical(source, analysis, strategy, relkind, n_chunks, rows_per_chunk,
                              sample_rows, planned, notes)

    unique = False
    if table is not None and strategy in ("offset", "auto"):
        unique = _covers_unique_key(catalog.unique_keys(table), analysis)
        if strategy == "offset" and not unique:
            raise _not_unique(analysis)
    measure = _Measure(source, analysis, n_chunks, rows_per_chunk, sample_rows,
                       table_sample=relkind is None or relkind in _HAS_CTID, notes=notes)
    stats, chosen = measure.keyed(strategy, unique=unique)
    if chosen == "quantile" and len(analysis.paths) > 1 and stats.key_kind not in _ORDER_FREE:
        # Measured on the first branch, cut in its order: another branch may
        # compare its text key in another collation, where those cuts need not
        # ascend.  A hash bucket is a function of each row alone.
        if strategy == "quantile":
            raise DmsError(UNION_TEXT_ORDER.format(key=safety.key_sql(
                analysis.key or [], dialect)), sqlstate=INVALID_PARAMETER_VALUE,
                hint="use strategy hash (or auto), or a numeric, date or timestamp key")
        if "hash" in dialect.UNSUPPORTED_STRATEGIES:
            return planned(_refused(analysis, UNION_TEXT_ORDER.format(
                key=safety.key_sql(analysis.key or [], dialect))), "single")
        notes.append(UNION_TEXT_HASH)
        stats, chosen = replace(stats, sample=()), "hash"
    plan = planned(analysis, chosen, stats)
    if strategy == "auto" and plan.strategy == "quantile" and stats.key_kind in bnd.WIDTH_KINDS:
        note = "auto chose quantile ranges: equal-width ranges would be unbalanced on this key"
        return replace(plan, notes=(note, *plan.notes))
    return plan


def _plan_physical(
    source: SourceConnection,
    analysis: QueryAnalysis,
    strategy: str,
    relkind: str | None,
    n_chunks: int | None,
    rows_per_chunk: int,
    sample_rows: int,
    planned: Callable[..., ChunkPlan],
    notes: list[str],
) -> ChunkPlan:
    """A split by row address: ctid pages, Oracle ROWID extents, SQLite's rowid."""
    dialect = analysis.dialect
    path = analysis.paths[0]
    if dialect.ROW_LOCATOR == "ctid" and strategy in ("auto", "ctid"):
        if path.table is None or analysis.is_set_operation:
            return planned(_refused(analysis, _physical_refusal(analysis)), "single")
        if relkind is not None and relkind not in _HAS_CTID:
            kind = _RELKINDS.get(relkind, "relation")
            return planned(_refused(analysis, NOT_A_TABLE.format(
                table=analysis.driving_table, kind=kind, locator="ctid")), "single")
        query = stats_sql.relpages_sql(analysis, style=source.style)
        row = source.fetch(query.sql, query.params)[0]
        pages, tuples = int(row[2]), float(row[1])
        if tuples < 0 or (tuples == 0 and pages > 0):
            # Never analyzed (or analyzed when empty): the estimate says
            # nothing, and chunk count and parallelism follow from it.
            tuples = _count(source, analysis)
        if row[3] == "p":
            notes.append(PARTITIONED_CTID.format(table=analysis.driving_table, pages=pages))
        return planned(analysis, "ctid", BoundsInput(relpages=pages, row_count=max(0, int(tuples))))
    if (dialect.ROW_LOCATOR == "ROWID" and strategy in ("auto", "rowid")
            and isinstance(source, RowRangeSource)):
        if path.table is None or analysis.is_set_operation:
            return planned(_refused(analysis, _physical_refusal(analysis)), "single")
        try:
            ranges = source.row_ranges(path.table, rows_per_chunk=rows_per_chunk,
                                       n_chunks=n_chunks)
        except DmsError as exc:
            if strategy != "auto" or exc.sqlstate != INSUFFICIENT_PRIVILEGE:
                raise
            # Not granted: one chunk, which needs no such grant, and the reason.
            reason = exc.message + (f" ({exc.hint})" if exc.hint else "")
            return planned(_refused(analysis, reason), "single")
        return planned(analysis, "rowid", ranges)
    if dialect.IMPLICIT_ROW_KEY is not None and strategy == "auto":
        keyed = with_row_key(analysis)
        if keyed is None:
            return planned(_refused(analysis, _physical_refusal(analysis)), "single")
        if relkind == "v":
            return planned(_refused(analysis, NOT_A_TABLE.format(
                table=analysis.driving_table, kind="view", locator=dialect.IMPLICIT_ROW_KEY)),
                "single")
        measure = _Measure(source, keyed, n_chunks, rows_per_chunk, sample_rows, notes=notes)
        stats, chosen = measure.keyed("auto", unique=True)  # a rowid is unique
        return planned(keyed, chosen, stats)
    return planned(analysis, strategy)


def _refused(analysis: QueryAnalysis, reason: str) -> QueryAnalysis:
    return replace(analysis, refused_reason=reason)


def _physical_refusal(analysis: QueryAnalysis) -> str:
    if analysis.is_set_operation:
        return safety.PHYSICAL_SET_OPERATION
    return safety.PHYSICAL_DERIVED.format(name=analysis.driving_table)


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


def _count(source: SourceConnection, analysis: QueryAnalysis) -> int:
    """Rows of the driving relation (with its own filters)."""
    from dms_pkg.chunking.render import render

    select = stats_sql.from_driving(analysis, analysis.paths[0],
                                    exp.select(exp.Count(this=exp.Star())))
    return int(source.fetch(render(select, analysis.dialect, [], source.style))[0][0])


DENSE_FILL = 0.9


def _dense(lo: Any, hi: Any, rows: int) -> bool:
    """At least DENSE_FILL of the integers from lo to hi are present (with a unique key)."""
    if lo is None or hi is None or rows <= 0:
        return False
    span = int(hi) - int(lo) + 1
    return span > 0 and DENSE_FILL * span <= rows <= span


def _common_kind(*values: Any) -> str | None:
    """The key kind the non-NULL ``values`` share (integers and decimals are both
    numeric), or None when they differ (SQLite columns of mixed types)."""
    kinds = {key_kind(v) for v in values if v is not None}
    if kinds == {"int", "numeric"}:
        return "numeric"
    return kinds.pop() if len(kinds) == 1 else None


class _Measure:
    """The statistics of one keyed analysis, as the strategy needs them."""

    def __init__(
        self,
        source: SourceConnection,
        analysis: QueryAnalysis,
        n_chunks: int | None,
        rows_per_chunk: int,
        sample_rows: int,
        *,
        table_sample: bool = True,
        notes: list[str] | None = None,
    ) -> None:
        self.source = source
        self.analysis = analysis
        self.n_chunks = n_chunks
        self.rows_per_chunk = rows_per_chunk
        self.sample_rows = sample_rows
        self.table_sample = table_sample
        self.notes = notes if notes is not None else []

    def _n(self, count: int) -> int:
        return self.n_chunks or max(1, min(10_000, -(-count // self.rows_per_chunk)))

    def keyed(self, strategy: str, *, unique: bool = False) -> tuple[BoundsInput, str]:
        """Run the statistics ``strategy`` needs; return them and the strategy to plan."""
        key = self.analysis.key
        assert key is not None
        if len(key) > 1:
            return self._composite(strategy)
        return self._one_column(strategy, unique)

    def _composite(self, strategy: str) -> tuple[BoundsInput, str]:
        count = _count(self.source, self.analysis)
        stats = BoundsInput(row_count=count)
        if strategy in ("auto", "quantile"):
            query = stats_sql.quantiles_sql(self.analysis, max(4 * self._n(count), 8),
                                            style=self.source.style)
            rows = self.source.fetch(query.sql, query.params)
            sample = [bnd.Ranked(int(r[-1]), tuple(r[:-1])) for r in rows]
            return replace(stats, sample=sample), "quantile"
        return stats, strategy

    def _one_column(self, strategy: str, unique: bool) -> tuple[BoundsInput, str]:
        query = stats_sql.min_max_count_sql(self.analysis, style=self.source.style)
        lo, hi, count, nulls = self.source.fetch(query.sql, query.params)[0]
        count, nulls = int(count), int(nulls or 0)
        # No non-NULL key at all: any range plan is one open range plus the
        # NULL chunk, whatever the key's type, so the kind does not matter.
        kind = _common_kind(lo, hi) if lo is not None else "int"
        stats = BoundsInput(
            key_kind=kind, min_value=lo, max_value=hi, row_count=count, null_count=nulls
        )
        finite = lo is None or (bnd.is_finite(lo) and bnd.is_finite(hi))
        if strategy in ("hash", "offset"):
            return stats, strategy
        if count == nulls and strategy != "quantile":
            return stats, "key_range"
        if strategy == "key_range" and kind in bnd.WIDTH_KINDS and finite:
            return stats, "key_range"
        if (strategy == "auto" and unique and kind == "int" and finite
                and _dense(lo, hi, count - nulls)):
            # A unique integer key that (nearly) fills its range -- a sequence-fed
            # primary key -- cannot be skewed: equal widths hold equal row counts,
            # and a sample (a scan of the table) would only confirm it.
            return stats, "key_range"
        sample = self._sample(count)
        stats = replace(stats, sample=sample)
        if strategy == "quantile":
            return stats, "quantile"
        width = self._width(stats) if kind in bnd.WIDTH_KINDS and finite else (
            self._finite_width(sample))
        if width is None and kind in bnd.WIDTH_KINDS:
            width = (kind, None, None)  # only NaN or infinities: one open range
        if strategy == "key_range":
            if width is None:
                raise DmsError(
                    KEY_RANGE_NO_WIDTH.format(key=safety.key_sql(self.analysis.key or [],
                                                                 self.analysis.dialect),
                                              lo=bnd.raw(lo)),
                    sqlstate=INVALID_PARAMETER_VALUE,
                    hint="use strategy quantile (or auto), which cuts any key in its own order",
                )
            return self._as_width(stats, width), "key_range"
        # auto: equal-width unless the sample says it would be unbalanced.
        if width is not None and self._balanced(width, sample, count - nulls):
            return self._as_width(stats, width), "key_range"
        return stats, "quantile"

    @staticmethod
    def _width(stats: BoundsInput) -> tuple[str, Any, Any]:
        assert stats.key_kind is not None
        return stats.key_kind, stats.min_value, stats.max_value

    @staticmethod
    def _finite_width(sample: Sequence[Any]) -> tuple[str, Any, Any] | None:
        """Kind, smallest and largest of the sample's finite numbers, dates or
        timestamps, when the sample has any: NaN and ±infinity (and a mixed
        column's text and blobs) then land in the open outer ranges."""
        values = [bnd.raw(v) for v in sample]
        finite = [v for v in values if bnd.is_finite(v)]
        kind = _common_kind(*finite) if finite else None
        if kind not in bnd.WIDTH_KINDS:
            return None
        return kind, min(finite), max(finite)

    def _as_width(self, stats: BoundsInput, width: tuple[str, Any, Any]) -> BoundsInput:
        kind, lo, hi = width
        if (lo, hi) != (stats.min_value, stats.max_value):
            self.notes.append(NON_FINITE.format(
                key=safety.key_sql(self.analysis.key or [], self.analysis.dialect)))
        return replace(stats, key_kind=kind, min_value=lo, max_value=hi, sample=())

    def _balanced(self, width: tuple[str, Any, Any], sample: Sequence[Any], rows: int) -> bool:
        """Whether equal widths keep every chunk within SKEW_TOLERANCE of the mean.

        Sample values outside the width's finite span (NaN, infinities, a
        mixed column's text) count in the outer range their rank puts them in.
        """
        kind, lo, hi = width
        ranges = bnd.ranges_from_cuts(bnd.equal_width_cuts(lo, hi, self._n(rows), kind))
        finite = [v for v in sample if bnd.is_finite(bnd.raw(v))]
        estimates = bnd.estimate_rows(ranges, [bnd.raw(v) for v in finite], rows)
        if finite and len(finite) < len(sample):
            first = min(finite)
            below = sum(1 for v in sample if not bnd.is_finite(bnd.raw(v)) and v < first)
            above = len(sample) - len(finite) - below
            estimates[0] += round(rows * below / len(sample))
            estimates[-1] += round(rows * above / len(sample))
        mean = rows / max(1, len(ranges))
        return not estimates or max(estimates) <= SKEW_TOLERANCE * max(mean, 1.0)

    def _sample(self, count: int) -> list[bnd.Ranked]:
        """About ``sample_rows`` key values, each ranked in the database's order."""
        if count == 0:
            return []
        percent = min(100.0, 100.0 * self.sample_rows / count)
        style = self.source.style
        query = stats_sql.sample_sql(self.analysis, percent, style=style,
                                     table_sample=self.table_sample)
        rows = self.source.fetch(query.sql, query.params)
        if not rows:
            # A tiny table can come back empty from a random sample; read it all.
            query = stats_sql.sample_sql(self.analysis, 100.0, style=style,
                                         table_sample=self.table_sample)
            rows = self.source.fetch(query.sql, query.params)
        return [bnd.Ranked(int(r[-1]), r[0] if len(r) == 2 else tuple(r[:-1])) for r in rows]
