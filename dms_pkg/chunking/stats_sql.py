"""SQL the database-facing planner runs to get the inputs of ``boundaries``.

Each function returns a ``StatsQuery``: driver-ready SQL in the dialect's bind
style, its params, and the names of the result columns.  Nothing here runs
SQL; the caller executes it and feeds the rows to ``BoundsInput``.

Statistics are read from the driving relation alone, without the user's
filters: ``MIN``/``MAX`` on an indexed key are then index lookups, and
correctness never depends on them (the outer chunks are open-ended), only
the balance does.  A selective filter can be handled by passing a sample
taken from the filtered query instead.

Queries:

* ``min_max_count_sql`` — min, max, row count and NULL count of a one-column key.
* ``sample_sql`` — about ``percent`` % of the non-NULL key values (per-dialect
  sampling), each with its ``DENSE_RANK()`` in the database's ``ORDER BY key``.
* ``quantiles_sql`` — ``n`` evenly spaced key values (the rows at ranks
  ``ceil(k * total / n)``), one sort, works for composite keys, with the same
  dense rank; PostgreSQL gets ``percentile_disc`` with an array of fractions
  for a one-column key instead.
* ``relpages_sql`` — PostgreSQL page counts for ctid ranges (of the largest
  partition, for a partitioned table) and the relation's kind.

The rank is what makes the bounds follow the key's own order: the planner
sorts and compares sampled values by it (``boundaries.Ranked``), never by
Python's ``<``, so a collated, case-insensitive or mixed-type key is cut in
exactly the order its ``key < :bound`` predicates compare in -- both are the
same column compared by the same database.
* ``rowid_ranges_sql`` — Oracle ROWID ranges: extents grouped into ``n``
  block-balanced groups, each turned into a ``[lo, hi]`` ROWID pair with
  ``DBMS_ROWID.ROWID_CREATE`` (per data object, so partitions stay apart).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from dms_pkg.chunking.analyze import DrivingPath, QueryAnalysis
from dms_pkg.chunking.dialects import ChunkDialect, ParamStyle
from dms_pkg.chunking.render import render


@dataclass(frozen=True)
class StatsQuery:
    """One statistics query, ready for the driver."""

    sql: str
    params: dict[str, Any]
    columns: tuple[str, ...]


def _path(analysis: QueryAnalysis, path_index: int) -> DrivingPath:
    if not analysis.paths:
        raise ValueError("the query has no driving table: " + (analysis.refused_reason or ""))
    return analysis.paths[path_index]


def _key(analysis: QueryAnalysis, path: DrivingPath) -> list[exp.Column]:
    if path.target.key is None:
        raise ValueError("the analysis has no chunk key")
    return path.target.key


def driving_filters(analysis: QueryAnalysis, path: DrivingPath) -> list[exp.Expr]:
    """The user's WHERE conditions that read the driving relation alone.

    Statistics are taken with them so a selective filter (``WHERE id <=
    40000`` on a large table) gets bounds -- and balanced chunks -- from the
    rows it keeps, not from the whole table.  Any subset of the conditions
    is safe: it only widens what is measured, and correctness never depends
    on statistics (the outer ranges are open-ended).  Left out: conditions
    with a subquery, an aggregate or a window, and, over a join, any
    condition that names another relation or an unqualified column.
    """
    level = path.target
    where = level.select.args.get("where")
    if not isinstance(where, exp.Where):
        return []
    joined = bool(level.select.args.get("joins"))
    wanted = analysis.dialect.normalize(level.qualifier)
    conditions: list[exp.Expr] = []
    for condition in where.this.flatten() if isinstance(where.this, exp.And) else [where.this]:
        if condition.find(exp.Query, exp.AggFunc, exp.Window) is not None:
            continue
        columns = list(condition.find_all(exp.Column))
        owners = {
            analysis.dialect.normalize(c.args["table"])
            if isinstance(c.args.get("table"), exp.Identifier) else None
            for c in columns
        }
        if joined and (not columns or owners != {wanted}):
            continue
        if not joined and not owners <= {None, wanted}:
            continue
        conditions.append(condition.copy())
    return conditions


def from_driving(analysis: QueryAnalysis, path: DrivingPath, select: exp.Select) -> exp.Select:
    """``select`` reading the driving relation (with the user's own filters on
    it, see ``driving_filters``) and the CTEs it may need."""
    source = path.target.source.copy()
    select.from_(source, copy=False)
    for condition in driving_filters(analysis, path):
        select.where(condition, append=True, copy=False)
    with_ = analysis.tree.args.get("with_")
    if path.table is None and isinstance(with_, exp.With):
        select.set("with_", with_.copy())
    return select


def _finish(
    select: exp.Expr,
    dialect: ChunkDialect,
    params: dict[str, Any],
    columns: Sequence[str],
    style: ParamStyle | None,
) -> StatsQuery:
    return StatsQuery(render(select, dialect, list(params), style), params, tuple(columns))


def min_max_count_sql(
    analysis: QueryAnalysis, path_index: int = 0, style: ParamStyle | None = None
) -> StatsQuery:
    """``min_value, max_value, row_count, null_count`` of a one-column key.

    The bounds come from ``ORDER BY key LIMIT 1`` subqueries rather than
    ``MIN``/``MAX``: every orderable type has an ordering (PostgreSQL has no
    ``min(uuid)``), and both forms are one index probe on an indexed key.
    """
    path = _path(analysis, path_index)
    key = _key(analysis, path)
    if len(key) != 1:
        raise ValueError("min/max statistics need a one-column key; sample composite keys")
    column = key[0]
    dialect = analysis.dialect

    def relation() -> exp.Expr:
        return path.target.source.copy()

    filters = driving_filters(analysis, path)

    def filtered(select: exp.Select) -> exp.Select:
        for condition in filters:
            select.where(condition.copy(), append=True, copy=False)
        return select

    def bound(descending: bool) -> exp.Expr:
        ordered = dialect.ordered(column.copy())
        if descending:
            # Keep the dialect's natural NULL placement for DESC (it flips),
            # so sqlglot writes no CASE emulation; NULLs are filtered anyway.
            ordered.set("desc", True)
            ordered.set("nulls_first", not ordered.args.get("nulls_first"))
        inner = filtered(
            exp.select(column.copy())
            .from_(relation())
            .where(exp.not_(exp.Is(this=column.copy(), expression=exp.Null())))
        )
        return exp.Subquery(this=inner.order_by(ordered).limit(1))

    counts = filtered(exp.select(
        exp.alias_(exp.Count(this=exp.Star()), "row_count"),
        exp.alias_(
            exp.Sub(this=exp.Count(this=exp.Star()), expression=exp.Count(this=column.copy())),
            "null_count",
        ),
    ).from_(relation()))
    select = exp.select(
        exp.alias_(bound(False), "min_value"),
        exp.alias_(bound(True), "max_value"),
        exp.column("row_count", table="dms_c"),
        exp.column("null_count", table="dms_c"),
    ).from_(counts.subquery("dms_c"))
    with_ = analysis.tree.args.get("with_")
    if path.table is None and isinstance(with_, exp.With):
        select.set("with_", with_.copy())
    columns = ("min_value", "max_value", "row_count", "null_count")
    return _finish(select, dialect, {}, columns, style)


RANK_COLUMN = "dms_rank"


def _dense_rank(key: Sequence[exp.Column], dialect: ChunkDialect) -> exp.Expr:
    """``DENSE_RANK() OVER (ORDER BY key...)``: the database's order and equality."""
    order = exp.Order(expressions=[dialect.ordered(c) for c in key])
    return exp.alias_(exp.Window(this=exp.Anonymous(this="DENSE_RANK"), order=order),
                      RANK_COLUMN)


def _not_null(key: Sequence[exp.Column]) -> exp.Expr:
    return exp.and_(*(exp.not_(exp.Is(this=c.copy(), expression=exp.Null())) for c in key))


def sample_sql(
    analysis: QueryAnalysis,
    percent: float,
    path_index: int = 0,
    style: ParamStyle | None = None,
    *,
    table_sample: bool = True,
) -> StatsQuery:
    """About ``percent`` % of the non-NULL key values, sampled the dialect's way,
    each followed by its dense rank (column ``dms_rank``) in the key's order.

    ``table_sample`` false asks for the per-row random filter even on a base
    table (a view or a foreign table takes no TABLESAMPLE); a derived
    relation always gets it.
    """
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    path = _path(analysis, path_index)
    key = _key(analysis, path)
    dialect = analysis.dialect
    select = exp.select(*(c.copy() for c in key), _dense_rank(key, dialect))
    from_driving(analysis, path, select)
    select.where(_not_null(key), append=True, copy=False)
    params: dict[str, Any] = {}
    select = dialect.sample(select, percent, params,
                            table_sample=table_sample and path.table is not None)
    return _finish(select, dialect, params, [*(c.name for c in key), RANK_COLUMN], style)


def quantiles_sql(
    analysis: QueryAnalysis,
    n_quantiles: int,
    path_index: int = 0,
    style: ParamStyle | None = None,
) -> StatsQuery:
    """``n_quantiles`` evenly spaced non-NULL key values, in key order.

    Ask for more quantiles than chunks (``4 * n``) so ``find_hot_values``
    can see a value that repeats across them.  The rank form ends each row
    with the value's dense rank (``dms_rank``); PostgreSQL's one-column form
    returns one array, already in the key's order.
    """
    if n_quantiles < 1:
        raise ValueError(f"n_quantiles must be at least 1, got {n_quantiles}")
    path = _path(analysis, path_index)
    key = _key(analysis, path)
    dialect = analysis.dialect
    params: dict[str, Any] = {"dms_n": n_quantiles}
    if dialect.PERCENTILE_ARRAY and len(key) == 1:
        params = {"dms_fractions": [i / n_quantiles for i in range(1, n_quantiles + 1)]}
        fractions = exp.Cast(
            this=exp.Placeholder(this="dms_fractions"),
            to=exp.DataType.build("DOUBLE PRECISION[]", dialect="postgres"),
        )
        within = exp.WithinGroup(
            this=exp.Anonymous(this="percentile_disc", expressions=[fractions]),
            expression=exp.Order(expressions=[dialect.ordered(key[0])]),
        )
        select = exp.select(exp.alias_(within, "quantiles"))
        from_driving(analysis, path, select)
        return _finish(select, dialect, params, ["quantiles"], style)

    names = [f"dms_k{i}" for i in range(1, len(key) + 1)]
    order = exp.Order(expressions=[dialect.ordered(c) for c in key])
    inner = exp.select(
        *(exp.alias_(c.copy(), n) for c, n in zip(key, names, strict=True)),
        exp.alias_(exp.Window(this=exp.RowNumber(), order=order), "dms_rn"),
        exp.alias_(exp.Window(this=exp.Count(this=exp.Star())), "dms_total"),
        _dense_rank(key, dialect),
    )
    from_driving(analysis, path, inner)
    inner.where(
        exp.and_(*(exp.not_(exp.Is(this=c.copy(), expression=exp.Null())) for c in key)), copy=False
    )
    rank_times_n = exp.Mul(this=exp.column("dms_rn"), expression=exp.Placeholder(this="dms_n"))
    picked = exp.LT(
        this=exp.Mod(this=rank_times_n, expression=exp.column("dms_total")),
        expression=exp.Placeholder(this="dms_n"),
    )
    outer = (
        exp.select(*(exp.column(n) for n in names), exp.column(RANK_COLUMN))
        .from_(inner.subquery("dms_q"))
        .where(picked)
        .order_by(dialect.ordered(exp.column("dms_rn")))
    )
    return _finish(outer, dialect, params, [*names, RANK_COLUMN], style)


def relpages_sql(
    analysis: QueryAnalysis, path_index: int = 0, style: ParamStyle | None = None
) -> StatsQuery:
    """PostgreSQL: ``relpages, reltuples, pages, relkind`` of the driving table.

    ``pages`` is the current size (``pg_relation_size / block_size``);
    ``relpages`` is the planner's estimate, 0 before the first ANALYZE — use
    ``pages``.  A partitioned table (relkind ``p``) has no pages of its own:
    its rows live in the partitions, each with its own TIDs, and a ctid range
    applies to every partition at once; ``pages`` is then the largest
    partition's size, so the ranges cover every partition.  ``relkind`` tells
    the caller whether the relation has a ctid at all (a view has none).
    The table name is bound as text and resolved by ``regclass``.
    """
    path = _path(analysis, path_index)
    if path.table is None:
        raise ValueError(f"{path.relation_name} is not a base table")
    if analysis.dialect.ROW_LOCATOR != "ctid":
        raise ValueError("relpages exist only in PostgreSQL")
    params: dict[str, Any] = {"dms_table": path.relation_name}
    table = _markers(params, style or analysis.dialect.PARAM_STYLE)["dms_table"]
    sql = (
        "SELECT c.relpages, c.reltuples, "
        "CASE WHEN c.relkind = 'p' THEN (SELECT COALESCE(max(pg_catalog.pg_relation_size("
        "p.relid)), 0) FROM pg_catalog.pg_partition_tree(c.oid) AS p WHERE p.isleaf) "
        "ELSE pg_catalog.pg_relation_size(c.oid) END "
        "/ pg_catalog.current_setting('block_size')::bigint AS pages, c.relkind::text AS relkind "
        f"FROM pg_catalog.pg_class AS c WHERE c.oid = CAST({table} AS regclass)"
    )
    return StatsQuery(sql, params, ("relpages", "reltuples", "pages", "relkind"))


# A ROWID holds (data object, file, block, row); ROWID_CREATE builds one from
# those parts.  A bigfile tablespace has one file, shown as RELATIVE_FNO 1024
# in the extent views, whose block numbers use the file bits too (the block
# number is 32 bits wide): its ROWID file part is the block number's top 10
# bits and the block part its low 22 bits.  Both kinds order as (file, block).
# Only table segments count: an index may share its table's name.
_ROWID_RANGES = """\
SELECT grp, data_object_id,
  DBMS_ROWID.ROWID_CREATE(1, data_object_id,
    MIN(lo_file) KEEP (DENSE_RANK FIRST ORDER BY relative_fno, block_id),
    MIN(lo_block) KEEP (DENSE_RANK FIRST ORDER BY relative_fno, block_id), 0) AS lo_rid,
  DBMS_ROWID.ROWID_CREATE(1, data_object_id,
    MAX(hi_file) KEEP (DENSE_RANK LAST ORDER BY relative_fno, block_id),
    MAX(hi_block) KEEP (DENSE_RANK LAST ORDER BY relative_fno, block_id), 32767) AS hi_rid
FROM (
  SELECT o.data_object_id, e.relative_fno, e.block_id,
    CASE WHEN e.relative_fno = 1024 THEN TRUNC(e.block_id / 4194304)
         ELSE e.relative_fno END AS lo_file,
    CASE WHEN e.relative_fno = 1024 THEN MOD(e.block_id, 4194304)
         ELSE e.block_id END AS lo_block,
    CASE WHEN e.relative_fno = 1024 THEN TRUNC((e.block_id + e.blocks - 1) / 4194304)
         ELSE e.relative_fno END AS hi_file,
    CASE WHEN e.relative_fno = 1024 THEN MOD(e.block_id + e.blocks - 1, 4194304)
         ELSE e.block_id + e.blocks - 1 END AS hi_block,
    TRUNC((SUM(e.blocks) OVER (ORDER BY o.data_object_id, e.relative_fno, e.block_id
                               ROWS UNBOUNDED PRECEDING) - e.blocks)
          * {n} / SUM(e.blocks) OVER ()) AS grp
  FROM {extents} e
  JOIN {objects} o
    ON o.object_name = e.segment_name
   AND o.object_type = e.segment_type
   AND NVL(o.subobject_name, '-') = NVL(e.partition_name, '-'){owner_join}
  WHERE e.segment_name = {table}
    AND e.segment_type IN ('TABLE', 'TABLE PARTITION', 'TABLE SUBPARTITION')
    AND o.data_object_id IS NOT NULL{owner_filter}
)
GROUP BY grp, data_object_id
ORDER BY grp, data_object_id"""


def rowid_ranges_sql(
    table_name: str,
    n_chunks: int,
    *,
    owner: str | None = None,
    style: ParamStyle = ParamStyle.NAMED,
) -> StatsQuery:
    """Oracle: ``grp, data_object_id, lo_rid, hi_rid`` rows covering the table's extents.

    With ``owner`` the DBA_ views are used (needs SELECT on them), otherwise
    USER_EXTENTS/USER_OBJECTS for the connected user's own table.  Extents are
    ordered by (data object, file, block) and cut into ``n_chunks`` groups of
    about equal block counts; a group that spans two partitions yields one
    range per partition.  Ranges are inclusive, for ``ROWID BETWEEN``.  Names
    are bound as stored in the dictionary (upper case unless quoted).
    Read the run's SCN *before* this query: every row visible at that SCN
    lives in an extent allocated before it, so the ranges cover them all
    (dictionary views cannot be read AS OF an SCN).
    """
    if n_chunks < 1:
        raise ValueError(f"n_chunks must be at least 1, got {n_chunks}")
    params: dict[str, Any] = {"dms_n": n_chunks, "dms_table": table_name}
    if owner is not None:
        params["dms_owner"] = owner
    markers = _markers(params, style)
    sql = _ROWID_RANGES.format(
        n=markers["dms_n"],
        table=markers["dms_table"],
        extents="dba_extents" if owner is not None else "user_extents",
        objects="dba_objects" if owner is not None else "user_objects",
        owner_join="\n   AND o.owner = e.owner" if owner is not None else "",
        owner_filter=f" AND e.owner = {markers['dms_owner']}" if owner is not None else "",
    )
    return StatsQuery(sql, params, ("grp", "data_object_id", "lo_rid", "hi_rid"))


def _markers(params: dict[str, Any], style: ParamStyle) -> dict[str, str]:
    """Bind markers for a fixed template whose text contains no ``%``."""
    names = list(params)
    if style is ParamStyle.PYFORMAT:
        return {name: f"%({name})s" for name in names}
    if style is ParamStyle.NAMED:
        return {name: f":{name}" for name in names}
    return {name: f"${i}" for i, name in enumerate(names, start=1)}
