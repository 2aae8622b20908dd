"""Decide whether adding a chunk predicate keeps a query's result exact.

Chunking runs the query once per chunk with an extra filter on the driving
table and concatenates the results.  That equals the original result only when
the query treats rows with different chunk keys independently.  Each rule
below names one construct that breaks that, with the reason a user sees; a
refused query is not an error — it is planned as a single chunk carrying the
reason (DESIGN §3).

Functions return ``None`` when safe and a reason string when not, so the
planner can collect the first reason without exception plumbing.

``key=None`` means "physical split" (ctid / ROWID ranges): rows are cut by
their address, which no GROUP BY or DISTINCT ever contains.

Deliberate choices:

* ORDER BY alone is allowed: each chunk is ordered, the row set is exact;
  only the order across chunks is lost, which a load into a table ignores.
* A subquery off the driving path (scalar subquery, joined derived table,
  another CTE) is evaluated whole in every chunk, which is exact as long as
  it is deterministic; LIMIT/FETCH without ORDER BY or ROWNUM there is refused.
  LIMIT with ORDER BY is accepted on the assumption that the order is total.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sqlglot import exp

from dms_pkg.chunking.dialects import ChunkDialect

LIMIT = "LIMIT makes the result depend on row order across the whole query; it cannot be split"
FETCH_FIRST = (
    "FETCH FIRST makes the result depend on row order across the whole query; it cannot be split"
)
ROWNUM = (
    "ROWNUM numbers rows in the order the database reads them across the whole query; "
    "it cannot be split"
)
OFFSET = "OFFSET skips rows counted across the whole ordered result; it cannot be split"
DISTINCT = (
    "DISTINCT can merge equal rows from different chunks unless the chunk key {key} "
    "is among the selected columns; it cannot be split on this key"
)
DISTINCT_ON = (
    "DISTINCT ON ({on}) keeps one row per group across the whole result unless the "
    "chunk key {key} is part of it; it cannot be split on this key"
)
GROUP_BY = (
    "GROUP BY {group} does not contain the chunk key {key}; a group would be split "
    "across chunks and aggregated once per chunk"
)
GROUPING_SETS = (
    "ROLLUP, CUBE and GROUPING SETS add total rows that span every chunk; it cannot be split"
)
AGGREGATE = (
    "the aggregate {func} without GROUP BY summarises the whole result into one row; "
    "it cannot be split"
)
WINDOW = "the window function {func} reads rows across chunk boundaries; it cannot be split"
UNION = "UNION removes duplicates across the whole result; only UNION ALL can be split"
INTERSECT = "INTERSECT compares rows across the whole result; only UNION ALL can be split"
EXCEPT = "EXCEPT compares rows across the whole result; only UNION ALL can be split"
UNNAMED_SOURCE = (
    "the driving relation {relation} has no name or alias for the chunk filter to refer to; "
    "give it an alias"
)
NO_TABLE = "the query reads no table, so there is nothing to split"
SUBQUERY_LIMIT = (
    "a subquery uses {what} without ORDER BY, so it may pick different rows in each chunk; "
    "it cannot be split"
)
SUBQUERY_ROWNUM = (
    "a subquery uses ROWNUM, which may number rows differently in each chunk; it cannot be split"
)
PHYSICAL_DISTINCT = (
    "DISTINCT merges equal rows that physical row ranges would put in different chunks; "
    "name a selected chunk key to split it"
)
PHYSICAL_GROUP_BY = (
    "GROUP BY merges rows that physical row ranges would put in different chunks; "
    "name a chunk key that is in the GROUP BY to split it"
)
PHYSICAL_SET_OPERATION = (
    "a UNION ALL reads several tables and physical row ranges cover only one; "
    "name a chunk key selected by every branch to split it"
)
PHYSICAL_DERIVED = (
    "the driving relation {name} is not a base table, so it has no physical row address; "
    "name a chunk key to split it"
)
OFFSET_SET_OPERATION = "OFFSET windows need one ordered SELECT; a UNION ALL has several"
OFFSET_JOIN = (
    "OFFSET windows need the key to be unique in the result, and a join can repeat a key; "
    "use strategy key_range, quantile or hash"
)
OFFSET_NOT_UNIQUE = (
    "strategy offset needs a unique NOT NULL key, and {key} is neither the primary key nor "
    "a unique index of {table}: rows that tie in ORDER BY could land in two windows or none"
)
UNION_BRANCH_KEY = (
    "UNION ALL branch {branch} does not select the chunk key {key} as a plain column, "
    "so the branch cannot be filtered on it"
)


def own_nodes(select: exp.Expr) -> Iterator[exp.Expr]:
    """Nodes of ``select`` itself, not of queries nested inside it."""
    for node in select.walk(prune=lambda n: n is not select and isinstance(n, exp.Query)):
        if node is select or not isinstance(node, exp.Query):
            yield node


def key_sql(key: Sequence[exp.Column], dialect: ChunkDialect) -> str:
    """The key as the user would write it, for messages."""
    return ", ".join(c.sql(dialect.sqlglot) for c in key)


def select_refusal(
    select: exp.Select, key: Sequence[exp.Column] | None, dialect: ChunkDialect
) -> str | None:
    """Why filtering ``select`` by ``key`` changes its result, or ``None``."""
    limit = select.args.get("limit")
    if isinstance(limit, exp.Fetch):
        return FETCH_FIRST
    if limit is not None:
        return LIMIT
    if select.args.get("offset") is not None:
        return OFFSET
    if _uses_row_order_pseudocolumn(select, dialect):
        return ROWNUM
    for node in own_nodes(select):
        if isinstance(node, exp.Window):
            return WINDOW.format(func=_func_name(node.this, dialect))

    distinct = select.args.get("distinct")
    if isinstance(distinct, exp.Distinct):
        on = distinct.args.get("on")
        if key is None:
            return PHYSICAL_DISTINCT
        if on is not None:
            on_exprs = on.expressions if isinstance(on, exp.Tuple) else [on]
            if not _all_keys_in(key, on_exprs, select, dialect):
                return DISTINCT_ON.format(
                    on=", ".join(e.sql(dialect.sqlglot) for e in on_exprs),
                    key=key_sql(key, dialect),
                )
        elif not _all_keys_projected(key, select, dialect):
            return DISTINCT.format(key=key_sql(key, dialect))

    group = select.args.get("group")
    if isinstance(group, exp.Group):
        if any(
            isinstance(n, (exp.Rollup, exp.Cube, exp.GroupingSets)) for n in group.walk()
        ) or any(group.args.get(a) for a in ("rollup", "cube", "grouping_sets")):
            return GROUPING_SETS
        if key is None:
            return PHYSICAL_GROUP_BY
        if not _all_keys_in(key, group.expressions, select, dialect):
            return GROUP_BY.format(
                group=", ".join(e.sql(dialect.sqlglot) for e in group.expressions),
                key=key_sql(key, dialect),
            )
    else:
        aggregate = _first_aggregate(select)
        if aggregate is not None:
            return AGGREGATE.format(func=_func_name(aggregate, dialect))
    return None


def subquery_refusal(query: exp.Query, dialect: ChunkDialect) -> str | None:
    """Why a query evaluated whole in every chunk may differ between chunks."""
    limit = query.args.get("limit")
    if limit is not None and query.args.get("order") is None:
        what = "FETCH FIRST" if isinstance(limit, exp.Fetch) else "LIMIT"
        return SUBQUERY_LIMIT.format(what=what)
    if isinstance(query, exp.Select) and _uses_row_order_pseudocolumn(query, dialect):
        return SUBQUERY_ROWNUM
    return None


def set_operation_refusal(node: exp.SetOperation) -> str | None:
    """UNION ALL splits branch by branch; the other set operations do not."""
    if isinstance(node, exp.Union):
        return UNION if node.args.get("distinct") else None
    if isinstance(node, exp.Intersect):
        return INTERSECT
    return EXCEPT


def _uses_row_order_pseudocolumn(select: exp.Select, dialect: ChunkDialect) -> bool:
    if not dialect.ROW_ORDER_PSEUDOCOLUMNS:
        return False
    for node in own_nodes(select):
        if (
            isinstance(node, exp.Column)
            and not node.table
            and not node.this.quoted
            and node.name.upper() in dialect.ROW_ORDER_PSEUDOCOLUMNS
        ):
            return True
    return False


def _first_aggregate(select: exp.Select) -> exp.AggFunc | None:
    for node in own_nodes(select):
        if isinstance(node, exp.AggFunc) and node.find_ancestor(exp.Window) is None:
            return node
    return None


def _func_name(node: exp.Expr, dialect: ChunkDialect) -> str:
    if isinstance(node, exp.Func):
        return node.sql_name().upper() if not isinstance(node, exp.Anonymous) else node.name
    return node.sql(dialect.sqlglot)


def same_column(key: exp.Column, other: exp.Expr, dialect: ChunkDialect) -> bool:
    """``other`` denotes the key column; a missing qualifier on either side matches."""
    if isinstance(other, exp.Alias):
        other = other.this
    if not isinstance(other, exp.Column) or not isinstance(other.this, exp.Identifier):
        return False
    if dialect.normalize(other.this) != dialect.normalize(key.this):
        return False
    key_table, other_table = key.args.get("table"), other.args.get("table")
    if key_table is None or other_table is None:
        return True
    return dialect.normalize(key_table) == dialect.normalize(other_table)


def _all_keys_in(
    key: Sequence[exp.Column],
    exprs: Sequence[exp.Expr],
    select: exp.Select,
    dialect: ChunkDialect,
) -> bool:
    def resolved(expr: exp.Expr) -> exp.Expr:
        if isinstance(expr, exp.Literal) and expr.is_int:  # GROUP BY 1
            position = int(expr.name) - 1
            projections: list[exp.Expr] = list(select.expressions)
            if 0 <= position < len(projections):
                return projections[position]
        return expr

    return all(any(same_column(k, resolved(e), dialect) for e in exprs) for k in key)


def _all_keys_projected(
    key: Sequence[exp.Column], select: exp.Select, dialect: ChunkDialect
) -> bool:
    def projected(k: exp.Column) -> bool:
        for proj in select.expressions:
            if isinstance(proj, exp.Star):
                return True
            if isinstance(proj, exp.Column) and isinstance(proj.this, exp.Star):
                qualifier = k.args.get("table")
                if qualifier is None or (
                    proj.args.get("table") is not None
                    and dialect.normalize(proj.args["table"]) == dialect.normalize(qualifier)
                ):
                    return True
            if same_column(k, proj, dialect):
                return True
        return False

    return all(projected(k) for k in key)
