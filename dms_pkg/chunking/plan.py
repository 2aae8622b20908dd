"""Combine parsing, safety, boundaries and predicates into a chunk plan.

``plan_query`` is pure: the database-facing planner first calls
``analyze_query`` to learn the driving table and key, runs the statistics
SQL from ``stats_sql``, and passes the results in ``BoundsInput``.

Strategies (``STRATEGIES``):

* ``key_range`` — equal-width ranges from min/max (int, numeric, date,
  timestamp keys), plus a NULL chunk.
* ``quantile`` — ranges cut at sample quantiles, hot values isolated (and
  split by ``secondary_key`` when cuts for it are given), plus a NULL chunk.
  Works for every key type, composite keys included.
* ``ctid`` — PostgreSQL TID page ranges from the table's page count.
* ``rowid`` — Oracle ROWID ranges, one per row of ``rowid_ranges_sql``.
* ``hash`` — ``n`` hash buckets of the key; no statistics needed, but every
  chunk scans the whole table.
* ``offset`` — ``ORDER BY key OFFSET/LIMIT`` windows; the last resort, only
  correct when the key is unique and NOT NULL, which the caller asserts.
* ``single`` — one chunk, the query unchanged.
* ``auto`` — quantile if a sample is given, else key_range if min/max of an
  orderable key are, else hash; with no key, ctid/rowid when their input is
  given (SQLite: its rowid as a key range); otherwise one chunk with a reason.

Choices worth knowing:

* ``n_chunks`` counts the split chunks; key-range plans add one NULL chunk,
  and isolating a hot value adds up to two.  It is capped at ``MAX_CHUNKS``.
  ``None`` derives it from ``row_count / rows_per_chunk`` (or
  ``DEFAULT_N_CHUNKS`` without a count).
* A query refused by ``safety`` is planned as one chunk carrying the reason;
  bad input (unknown strategy, bad count, unknown key column) raises DmsError.
* ``ChunkSpec.query_sql`` is the full rewritten query; ``predicate_sql`` is
  the injected filter alone (for the first driving path of a UNION ALL), for
  display and the chunk table.  Both are in the same bind style as ``params``;
  for ``ParamStyle.NUMERIC`` pass ``list(params.values())``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from dms_pkg.chunking import boundaries as bnd
from dms_pkg.chunking import safety
from dms_pkg.chunking.analyze import DrivingPath, QueryAnalysis, analyze_query, with_row_key
from dms_pkg.chunking.dialects import ChunkDialect, ParamStyle, get_dialect
from dms_pkg.chunking.predicates import (
    Predicate,
    apply_offset,
    hash_predicate,
    inject,
    key_predicate,
    rowid_predicate,
    tid_predicate,
)
from dms_pkg.chunking.render import render
from dms_pkg.errors import FEATURE_NOT_SUPPORTED, INVALID_PARAMETER_VALUE, DmsError

MAX_CHUNKS = 10000
DEFAULT_N_CHUNKS = 8
DEFAULT_ROWS_PER_CHUNK = 100_000
STRATEGIES: tuple[str, ...] = (
    "auto",
    "key_range",
    "quantile",
    "ctid",
    "rowid",
    "hash",
    "offset",
    "single",
)
_KEYED = frozenset({"key_range", "quantile", "hash", "offset"})
_PHYSICAL = frozenset({"ctid", "rowid"})

NO_KEY = (
    "no chunk key was given and no physical row ranges are available for {dialect}; "
    "name a key to split the query"
)
NO_STATISTICS = (
    "no statistics were given for chunk key {key} and {dialect} has no hash function, "
    "so chunk bounds cannot be computed"
)


@dataclass(frozen=True)
class BoundsInput:
    """Statistics the database-facing planner measured (see ``stats_sql``)."""

    key_kind: str | None = None  # one of boundaries.KEY_KINDS
    min_value: Any = None
    max_value: Any = None
    row_count: int | None = None
    null_count: int | None = None
    sample: Sequence[Any] = ()  # key values or evenly spaced quantiles (tuples if composite)
    relpages: int | None = None  # PostgreSQL pages (prefer the current size)
    rowid_ranges: Sequence[tuple[str, str]] = ()  # Oracle (lo_rid, hi_rid), inclusive
    hot_value_cuts: Mapping[Any, Sequence[Any]] = field(default_factory=dict)
    # hot key value -> cut points of ``secondary_key`` among that value's rows
    # The source's point in time the statistics hold at, when they hold only
    # there (Oracle: the SCN the extent list was read after): the plan's
    # chunks must then be read as of it.
    point: str | None = None


@dataclass(frozen=True)
class ChunkSpec:
    """One chunk: its filter, the values it binds, and the full query to run."""

    chunk_no: int
    predicate_sql: str
    params: dict[str, Any]
    lo: Any
    hi: Any
    estimated_rows: int | None
    strategy: str
    query_sql: str
    kind: str  # range | null | point | tid | rowid | bucket | offset | all


@dataclass(frozen=True)
class ChunkPlan:
    """The chunks of one source query and how they were chosen."""

    chunks: tuple[ChunkSpec, ...]
    strategy: str
    key: str | None
    driving_table: str | None
    refused_reason: str | None
    dialect: str
    param_style: ParamStyle
    notes: tuple[str, ...] = ()
    hot_values: tuple[bnd.HotValue, ...] = ()
    # The point in time every chunk must be read as of, when the plan is exact
    # only there (``BoundsInput.point``: ROWID ranges of the extents at an SCN);
    # None when any consistent moment will do.
    point: str | None = None


def validate_strategy(strategy: str, dialect: ChunkDialect | None = None) -> str:
    """The strategy name, or DmsError 22023 listing the allowed ones (0A000 when
    ``dialect`` cannot render it)."""
    if strategy not in STRATEGIES:
        raise DmsError(
            f'unknown chunk strategy "{strategy}"; allowed strategies: ' + ", ".join(STRATEGIES),
            sqlstate=INVALID_PARAMETER_VALUE,
        )
    if dialect is not None and strategy in dialect.UNSUPPORTED_STRATEGIES:
        raise DmsError(
            f'chunk strategy "{strategy}" is not available for {dialect.NAME}: '
            + dialect.UNSUPPORTED_STRATEGIES[strategy],
            sqlstate=FEATURE_NOT_SUPPORTED,
        )
    return strategy


def validate_n_chunks(n_chunks: int | None) -> int | None:
    """``n_chunks`` must be an integer in ``1..MAX_CHUNKS`` (or None: derive it)."""
    if n_chunks is None:
        return None
    if (
        isinstance(n_chunks, bool)
        or not isinstance(n_chunks, int)
        or not (1 <= n_chunks <= MAX_CHUNKS)
    ):
        raise DmsError(
            f"n_chunks must be between 1 and {MAX_CHUNKS}, got {n_chunks!r}",
            sqlstate=INVALID_PARAMETER_VALUE,
            hint=f"use a chunk count from 1 to {MAX_CHUNKS}, or leave it unset to derive it "
            "from the row count",
        )
    return n_chunks


def plan_query(
    sql: str,
    dialect: str,
    key: str | Sequence[str] | None = None,
    n_chunks: int | None = None,
    strategy: str = "auto",
    bounds_input: BoundsInput | None = None,
    *,
    columns: Sequence[str] | None = None,
    secondary_key: str | None = None,
    rows_per_chunk: int = DEFAULT_ROWS_PER_CHUNK,
    param_style: ParamStyle | None = None,
) -> ChunkPlan:
    """Plan the chunks of ``sql``; see the module docstring for the rules."""
    chunk_dialect = get_dialect(dialect)
    validate_strategy(strategy, chunk_dialect)
    validate_n_chunks(n_chunks)
    style = param_style or chunk_dialect.PARAM_STYLE
    stats = bounds_input or BoundsInput()
    wants_row_key = strategy in ("key_range", "quantile") or (
        strategy == "auto" and (stats.min_value is not None or bool(stats.sample))
    )
    row_key = key is None and chunk_dialect.IMPLICIT_ROW_KEY is not None and wants_row_key
    physical = strategy in _PHYSICAL or key is None
    analysis = analyze_query(sql, chunk_dialect, None if physical else key, columns=columns)
    if row_key and analysis.refused_reason is None:  # SQLite: split on the table's rowid
        keyed = with_row_key(analysis)
        if keyed is None:
            return _Planner(analysis, chunk_dialect, style, stats).single(
                safety.PHYSICAL_DERIVED.format(name=analysis.driving_table))
        analysis = keyed
    return plan_analysis(analysis, n_chunks, strategy, stats, secondary_key=secondary_key,
                         rows_per_chunk=rows_per_chunk, param_style=style)


def plan_analysis(
    analysis: QueryAnalysis,
    n_chunks: int | None,
    strategy: str,
    bounds_input: BoundsInput | None = None,
    *,
    secondary_key: str | None = None,
    rows_per_chunk: int = DEFAULT_ROWS_PER_CHUNK,
    param_style: ParamStyle | None = None,
    notes: Sequence[str] = (),
) -> ChunkPlan:
    """Plan an analysed query (``analysis.key`` None: a physical split).

    A query whose shape ``analysis`` refused is one chunk carrying the
    reason, whatever ``strategy`` asks for: a forced strategy cannot make an
    unsafe split exact.  ``notes`` are put before the planner's own.
    """
    dialect = analysis.dialect
    validate_strategy(strategy, dialect)
    style = param_style or dialect.PARAM_STYLE
    stats = bounds_input or BoundsInput()
    planner = _Planner(analysis, dialect, style, stats)
    planner.notes.extend(notes)
    if analysis.refused_reason is not None:
        return planner.single(analysis.refused_reason)
    if strategy in _KEYED and analysis.key is None:
        raise DmsError(
            f'chunk strategy "{strategy}" needs a chunk key',
            sqlstate=INVALID_PARAMETER_VALUE,
            hint="name the key column, for example key => 'id'",
        )
    if strategy == "auto":
        strategy = planner.choose(analysis.key is not None)
        if strategy == "single":
            return planner.single(planner.auto_reason)
    if strategy == "single":
        return planner.single(None)
    count = n_chunks or _derived_count(stats.row_count, rows_per_chunk)
    return planner.build(strategy, count, secondary_key)


def _derived_count(row_count: int | None, rows_per_chunk: int) -> int:
    if rows_per_chunk < 1:
        raise DmsError(
            f"rows_per_chunk must be at least 1, got {rows_per_chunk}",
            sqlstate=INVALID_PARAMETER_VALUE,
        )
    if row_count is None:
        return DEFAULT_N_CHUNKS
    return max(1, min(MAX_CHUNKS, math.ceil(row_count / rows_per_chunk)))


class _Planner:
    def __init__(
        self,
        analysis: QueryAnalysis,
        dialect: ChunkDialect,
        style: ParamStyle,
        stats: BoundsInput,
    ) -> None:
        self.analysis = analysis
        self.dialect = dialect
        self.style = style
        self.stats = stats
        self.auto_reason: str | None = None
        self.notes: list[str] = []
        self.hot: tuple[bnd.HotValue, ...] = ()
        self._cache: dict[tuple[str, ...], str] = {}

    # -- shared ------------------------------------------------------------

    @property
    def key_text(self) -> str | None:
        key = self.analysis.key
        return safety.key_sql(key, self.dialect) if key else None

    def _plan(self, strategy: str, chunks: list[ChunkSpec], refused: str | None) -> ChunkPlan:
        return ChunkPlan(
            chunks=tuple(chunks),
            strategy=strategy,
            key=self.key_text,
            driving_table=self.analysis.driving_table,
            refused_reason=refused,
            dialect=self.dialect.NAME,
            param_style=self.style,
            notes=tuple(self.notes),
            hot_values=self.hot,
            point=self.stats.point,
        )

    def single(self, reason: str | None) -> ChunkPlan:
        sql = render(self.analysis.tree, self.dialect, [], self.style)
        chunk = ChunkSpec(1, "", {}, None, None, self.stats.row_count, "single", sql, "all")
        return self._plan("single", [chunk], reason)

    def _chunk(
        self,
        number: int,
        strategy: str,
        kind: str,
        predicates: list[Predicate],
        lo: Any,
        hi: Any,
        estimate: int | None,
    ) -> ChunkSpec:
        params = predicates[0].params
        names = list(params)
        texts = tuple(render(p.expression, self.dialect, names, self.style) for p in predicates)
        query = self._cache.get(texts)
        if query is None:
            tree = self.analysis.tree.copy()
            for index, predicate in enumerate(predicates):
                inject(tree, index, predicate.expression)
            query = render(tree, self.dialect, names, self.style)
            self._cache[texts] = query
        return ChunkSpec(number, texts[0], dict(params), lo, hi, estimate, strategy, query, kind)

    # -- choosing ------------------------------------------------------------

    def choose(self, has_key: bool) -> str:
        stats, dialect = self.stats, self.dialect
        if has_key:
            if stats.sample:
                return "quantile"
            if stats.key_kind in bnd.WIDTH_KINDS and (
                stats.min_value is not None or stats.row_count is not None
            ):
                return "key_range"
            if "hash" not in dialect.UNSUPPORTED_STRATEGIES:
                return "hash"
            self.auto_reason = NO_STATISTICS.format(key=self.key_text, dialect=dialect.NAME)
            return "single"
        if dialect.ROW_LOCATOR == "ctid" and stats.relpages is not None:
            return "ctid"
        if dialect.ROW_LOCATOR == "ROWID" and stats.rowid_ranges:
            return "rowid"
        self.auto_reason = NO_KEY.format(dialect=dialect.NAME)
        return "single"

    # -- building ------------------------------------------------------------

    def build(self, strategy: str, n: int, secondary_key: str | None) -> ChunkPlan:
        if strategy in _PHYSICAL:
            paths = self.analysis.paths
            if self.analysis.is_set_operation:
                return self.single(safety.PHYSICAL_SET_OPERATION)
            if paths[0].table is None:
                return self.single(safety.PHYSICAL_DERIVED.format(name=paths[0].relation_name))
            if strategy == "ctid":
                return self._plan("ctid", self._ctid(n), None)
            return self._plan("rowid", self._rowid(), None)
        if strategy == "hash":
            return self._plan("hash", self._hash(n), None)
        if strategy == "offset":
            if self.analysis.is_set_operation:
                return self.single(safety.OFFSET_SET_OPERATION)
            if any(level.select.args.get("joins") for level in self.analysis.paths[0].levels):
                return self.single(safety.OFFSET_JOIN)
            return self._plan("offset", self._offset(n), None)
        chunks = self._ranges(strategy, n, secondary_key)
        return self._plan(strategy, chunks, None)

    def _key_columns(self) -> list[list[exp.Column]]:
        columns = []
        for path in self.analysis.paths:
            key = path.target.key
            assert key is not None
            columns.append(key)
        return columns

    def _ranges(self, strategy: str, n: int, secondary_key: str | None) -> list[ChunkSpec]:
        stats = self.stats
        keys = self._key_columns()
        composite = len(keys[0]) > 1
        sample = bnd.sorted_non_null(stats.sample)
        bounds: list[bnd.ChunkBounds]
        if strategy == "key_range":
            kind = stats.key_kind
            if composite:
                raise DmsError(
                    "equal-width key ranges need a one-column key; "
                    "use strategy quantile for a composite key",
                    sqlstate=INVALID_PARAMETER_VALUE,
                )
            if kind is None or kind not in bnd.WIDTH_KINDS:
                raise DmsError(
                    "strategy key_range needs bounds_input.key_kind of int, numeric, date or "
                    f"timestamp, got {kind!r}",
                    sqlstate=INVALID_PARAMETER_VALUE,
                    hint="text and uuid keys have no width; use strategy quantile",
                )
            if stats.min_value is None and stats.row_count is None:
                raise DmsError(
                    "strategy key_range needs bounds_input.min_value and max_value "
                    "(or row_count for an empty or all-NULL key)",
                    sqlstate=INVALID_PARAMETER_VALUE,
                    hint="fetch them with stats_sql.min_max_count_sql",
                )
            if stats.min_value is not None and not (
                bnd.is_finite(stats.min_value) and bnd.is_finite(stats.max_value)
            ):
                raise DmsError(
                    "strategy key_range needs a finite bounds_input.min_value and max_value, "
                    f"got {stats.min_value!r} and {stats.max_value!r}",
                    sqlstate=INVALID_PARAMETER_VALUE,
                    hint="pass the smallest and largest finite keys: NaN and infinite keys "
                    "land in the open-ended outer ranges",
                )
            cuts = bnd.equal_width_cuts(stats.min_value, stats.max_value, n, kind)
            bounds = list(bnd.ranges_from_cuts(cuts))
        else:
            if not stats.sample and stats.row_count is None:
                raise DmsError(
                    "strategy quantile needs bounds_input.sample (key values or quantiles)",
                    sqlstate=INVALID_PARAMETER_VALUE,
                    hint="fetch them with stats_sql.quantiles_sql or sample_sql",
                )
            if not sample and stats.row_count:
                self.notes.append("the key sample is empty, so the rows are read as one range")
            if composite:
                bounds = list(bnd.ranges_from_cuts(bnd.quantile_cuts(sample, n)))
            else:
                isolated, hot = bnd.skew_aware_ranges(sample, n)
                self.hot = tuple(bnd.HotValue(bnd.raw(h.value), h.fraction) for h in hot)
                bounds = self._split_hot(isolated, secondary_key)

        non_null = (
            max(0, stats.row_count - (stats.null_count or 0))
            if stats.row_count is not None
            else len(sample) or None
        )
        estimates: list[int | None]
        if sample and non_null is not None:
            estimates = list(bnd.estimate_rows(bounds, sample, non_null))
        elif non_null is not None:
            estimates = [round(non_null / len(bounds)) for _ in bounds]
        else:
            estimates = [None for _ in bounds]
        known = [e for e in estimates if e is not None]
        if known and len(known) > 1:
            unsplit = [
                h for h in self.hot if h.value not in stats.hot_value_cuts or not secondary_key
            ]
            message = bnd.balance(known, unsplit).message(self.key_text or "key")
            if message:
                self.notes.append(message)

        secondary = self._secondary_columns(secondary_key)
        chunks: list[ChunkSpec] = []
        for number, (b, estimate) in enumerate(zip(bounds, estimates, strict=True), start=1):
            predicates = [
                key_predicate(cols, b, self.dialect, secondary=sec)
                for cols, sec in zip(keys, secondary, strict=True)
            ]
            lo, hi, kind = _describe(b)
            chunks.append(self._chunk(number, strategy, kind, predicates, lo, hi, estimate))
        null_predicates = [key_predicate(cols, bnd.NullBounds(), self.dialect) for cols in keys]
        chunks.append(
            self._chunk(
                len(chunks) + 1, strategy, "null", null_predicates, None, None, stats.null_count
            )
        )
        return chunks

    def _split_hot(
        self, bounds: list[bnd.RangeBounds | bnd.PointBounds], secondary_key: str | None
    ) -> list[bnd.ChunkBounds]:
        out: list[bnd.ChunkBounds] = []
        cuts = self.stats.hot_value_cuts
        for b in bounds:
            if isinstance(b, bnd.PointBounds) and secondary_key and bnd.raw(b.value) in cuts:
                out.extend(bnd.split_hot_value(b.value, list(cuts[bnd.raw(b.value)])))
            else:
                out.append(b)
        if cuts and not secondary_key:
            self.notes.append("hot_value_cuts were given without secondary_key and were ignored")
        return out

    def _secondary_columns(self, secondary_key: str | None) -> list[exp.Column | None]:
        if secondary_key is None:
            return [None for _ in self.analysis.paths]
        from dms_pkg.chunking.parse import parse_key

        (column,) = parse_key(secondary_key, self.dialect)
        columns: list[exp.Column | None] = []
        for path in self.analysis.paths:
            qualifier = column.args.get("table") or path.target.qualifier
            columns.append(exp.Column(this=column.this.copy(), table=qualifier.copy()))
        return columns

    def _locator(self, path: DrivingPath) -> exp.Column:
        assert self.dialect.ROW_LOCATOR is not None
        return exp.Column(
            this=exp.to_identifier(self.dialect.ROW_LOCATOR),
            table=path.target.qualifier.copy(),
        )

    def _ctid(self, n: int) -> list[ChunkSpec]:
        pages = self.stats.relpages
        if pages is None or pages < 0:
            raise DmsError(
                "strategy ctid needs bounds_input.relpages (the table's page count)",
                sqlstate=INVALID_PARAMETER_VALUE,
                hint="fetch it with stats_sql.relpages_sql",
            )
        cuts = bnd.equal_width_cuts(0, pages - 1, n, "int") if pages > 0 else []
        locator = self._locator(self.analysis.paths[0])
        row_count = self.stats.row_count
        chunks = []
        for number, r in enumerate(bnd.ranges_from_cuts(cuts), start=1):
            predicate = tid_predicate(locator, r.lo, r.hi)
            estimate = round(row_count / (len(cuts) + 1)) if row_count is not None else None
            chunks.append(
                self._chunk(
                    number,
                    "ctid",
                    "tid",
                    [predicate],
                    predicate.params.get("dms_lo"),
                    predicate.params.get("dms_hi"),
                    estimate,
                )
            )
        return chunks

    def _rowid(self) -> list[ChunkSpec]:
        ranges = list(self.stats.rowid_ranges)
        if not ranges:
            self.notes.append(
                f"{self.analysis.driving_table} has no table extents of its own (a view, a "
                "synonym, an index-organized or clustered table, or a table never written), "
                "so it is read as one chunk")
            return list(self.single(None).chunks)
        locator = self._locator(self.analysis.paths[0])
        row_count = self.stats.row_count
        chunks = []
        for number, (lo, hi) in enumerate(ranges, start=1):
            estimate = round(row_count / len(ranges)) if row_count is not None else None
            predicate = rowid_predicate(locator, lo, hi)
            chunks.append(self._chunk(number, "rowid", "rowid", [predicate], lo, hi, estimate))
        return chunks

    def _hash(self, n: int) -> list[ChunkSpec]:
        keys = self._key_columns()
        row_count = self.stats.row_count
        chunks = []
        for bucket in range(n):
            predicates = [hash_predicate(cols, bucket, n, self.dialect) for cols in keys]
            estimate = round(row_count / n) if row_count is not None else None
            chunks.append(
                self._chunk(bucket + 1, "hash", "bucket", predicates, bucket, bucket, estimate)
            )
        return chunks

    def _offset(self, n: int) -> list[ChunkSpec]:
        row_count = self.stats.row_count
        if row_count is None:
            raise DmsError(
                "strategy offset needs bounds_input.row_count",
                sqlstate=INVALID_PARAMETER_VALUE,
            )
        top = self.analysis.paths[0].levels[0]
        assert top.key is not None
        size = max(1, math.ceil(row_count / n))
        windows = max(1, math.ceil(row_count / size))
        chunks = []
        for index in range(windows):
            last = index == windows - 1
            tree = self.analysis.tree.copy()
            assert isinstance(tree, exp.Select)
            params = apply_offset(tree, top.key, index * size, None if last else size, self.dialect)
            names = list(params)
            query = render(tree, self.dialect, names, self.style)
            # The ORDER BY and the window are the query's last clauses; show them.
            order = render(tree.args["order"], self.dialect, names, self.style)
            predicate = query[query.rfind(order) :]
            estimate = min(size, row_count - index * size) if not last else row_count - index * size
            chunks.append(
                ChunkSpec(
                    index + 1,
                    predicate,
                    params,
                    index * size,
                    None if last else (index + 1) * size,
                    estimate,
                    "offset",
                    query,
                    "offset",
                )
            )
        return chunks


def _describe(bounds: bnd.ChunkBounds) -> tuple[Any, Any, str]:
    if isinstance(bounds, bnd.RangeBounds):
        return bnd.raw(bounds.lo), bnd.raw(bounds.hi), "range"
    if isinstance(bounds, bnd.PointBounds):
        return bnd.raw(bounds.value), bnd.raw(bounds.value), "point"
    return None, None, "null"
