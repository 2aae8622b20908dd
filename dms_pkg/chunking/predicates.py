"""Build chunk predicates as sqlglot expressions with bind parameters.

Every bound is an ``exp.Placeholder`` (rendered per driver by ``render``), so
no key value is ever pasted into SQL text.  The chunk count ``n`` of a hash
split is the only number written literally: it is a validated integer of our
own, not data.

NULL handling is part of each predicate's contract, checked against
``boundaries.contains`` in the tests:

* ranges never match NULL; a separate ``key IS NULL`` chunk does;
* composite ranges add ``IS NOT NULL`` for the trailing key columns, because
  a row-value or lexicographic comparison decided by its first column is TRUE
  even when a later column is NULL — such a row belongs to the NULL chunk
  (``a IS NULL OR b IS NULL``) and must not also match a range;
* hash buckets map a NULL hash to bucket 0 with COALESCE.

Predicates are injected with ``Select.where(..., append=True)`` into the
SELECT that ``analyze`` marked for each driving path, in a copy of the tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from dms_pkg.chunking.analyze import PATH_MARK
from dms_pkg.chunking.boundaries import ChunkBounds, NullBounds, PointBounds, RangeBounds, raw
from dms_pkg.chunking.dialects import ChunkDialect


@dataclass
class Predicate:
    """A boolean expression with placeholders and the values they bind."""

    expression: exp.Expr
    params: dict[str, Any] = field(default_factory=dict)


def _bind(params: dict[str, Any], name: str, value: Any) -> exp.Placeholder:
    params[name] = raw(value)  # a sampled value binds as itself, not its rank
    return exp.Placeholder(this=name)


def _not_null(column: exp.Expr) -> exp.Expr:
    return exp.not_(exp.Is(this=column.copy(), expression=exp.Null()))


def _is_null(column: exp.Expr) -> exp.Expr:
    return exp.Is(this=column.copy(), expression=exp.Null())


def key_predicate(
    columns: Sequence[exp.Column],
    bounds: ChunkBounds,
    dialect: ChunkDialect,
    *,
    secondary: exp.Expr | None = None,
) -> Predicate:
    """The predicate selecting ``bounds`` of a (possibly composite) key.

    ``secondary`` is the column a ``PointBounds.secondary`` range applies to.
    """
    params: dict[str, Any] = {}
    if isinstance(bounds, NullBounds):
        return Predicate(exp.or_(*(_is_null(c) for c in columns)), params)
    if isinstance(bounds, PointBounds):
        if len(columns) != 1:
            raise ValueError("a point chunk needs a single-column key")
        parts: list[exp.Expr] = [
            exp.EQ(this=columns[0].copy(), expression=_bind(params, "dms_value", bounds.value))
        ]
        if bounds.secondary is not None:
            if secondary is None:
                raise ValueError("a point chunk with secondary bounds needs the secondary column")
            inner = _range([secondary], bounds.secondary, dialect, params, prefix="dms_sec_")
            parts.append(inner)
        return Predicate(exp.and_(*parts), params)
    return Predicate(_range(list(columns), bounds, dialect, params, prefix="dms_"), params)


def _range(
    columns: Sequence[exp.Expr],
    bounds: RangeBounds | NullBounds,
    dialect: ChunkDialect,
    params: dict[str, Any],
    *,
    prefix: str,
) -> exp.Expr:
    if isinstance(bounds, NullBounds):
        return exp.or_(*(_is_null(c) for c in columns))
    single = len(columns) == 1
    parts: list[exp.Expr] = []
    if bounds.lo is not None:
        lo = _binds(params, prefix + "lo", bounds.lo, single)
        op = "ge" if bounds.lo_inclusive else "gt"
        parts.append(_compare(columns, lo, op, dialect))
    if bounds.hi is not None:
        hi = _binds(params, prefix + "hi", bounds.hi, single)
        parts.append(_compare(columns, hi, "lt", dialect))
    if not parts:
        return exp.and_(*(_not_null(c) for c in columns))
    parts.extend(_not_null(c) for c in columns[1:])
    return exp.and_(*parts)


def _binds(params: dict[str, Any], name: str, value: Any, single: bool) -> list[exp.Expr]:
    value = raw(value)
    if single:
        return [_bind(params, name, value)]
    if not isinstance(value, tuple):
        raise ValueError(f"a composite key needs tuple bounds, got {value!r}")
    return [_bind(params, f"{name}_{i}", v) for i, v in enumerate(value, start=1)]


_OPS: dict[str, type[exp.Binary]] = {"ge": exp.GTE, "gt": exp.GT, "lt": exp.LT}
_STRICT: dict[str, type[exp.Binary]] = {"ge": exp.GT, "gt": exp.GT, "lt": exp.LT}


def _compare(
    columns: Sequence[exp.Expr], values: list[exp.Expr], op: str, dialect: ChunkDialect
) -> exp.Expr:
    if len(columns) == 1:
        return _OPS[op](this=columns[0].copy(), expression=values[0])
    if dialect.ROW_VALUE_COMPARISON:
        return _OPS[op](
            this=exp.Tuple(expressions=[c.copy() for c in columns]),
            expression=exp.Tuple(expressions=values),
        )
    return _lexicographic(columns, values, op)


def _lexicographic(columns: Sequence[exp.Expr], values: list[exp.Expr], op: str) -> exp.Expr:
    """``(a, b) >= (x, y)`` as ``a > x OR (a = x AND b >= y)``, recursively."""
    if len(columns) == 1:
        return _OPS[op](this=columns[0].copy(), expression=values[0].copy())
    head, value = columns[0], values[0]
    strict = _STRICT[op](this=head.copy(), expression=value.copy())
    tie = exp.EQ(this=head.copy(), expression=value.copy())
    return exp.or_(strict, exp.and_(tie, _lexicographic(columns[1:], values[1:], op)))


def tid_predicate(locator: exp.Column, lo_page: int | None, hi_page: int | None) -> Predicate:
    """PostgreSQL ``ctid`` range ``[(lo,0), (hi,0))``, open-ended at the edges.

    The outer chunks are open so pages added after ``relpages`` was read
    (it is an estimate) are still covered.  Binds are TID text cast to tid.
    """
    params: dict[str, Any] = {}
    tid = exp.DataType.build("tid", udt=True)
    parts: list[exp.Expr] = []
    if lo_page is not None:
        lo = exp.Cast(this=_bind(params, "dms_lo", f"({lo_page},0)"), to=tid.copy())
        parts.append(exp.GTE(this=locator.copy(), expression=lo))
    if hi_page is not None:
        hi = exp.Cast(this=_bind(params, "dms_hi", f"({hi_page},0)"), to=tid.copy())
        parts.append(exp.LT(this=locator.copy(), expression=hi))
    if not parts:
        parts.append(_not_null(locator))
    return Predicate(exp.and_(*parts), params)


def rowid_predicate(locator: exp.Column, lo: str, hi: str) -> Predicate:
    """Oracle ``ROWID BETWEEN :lo AND :hi`` for one extent range (inclusive)."""
    params: dict[str, Any] = {}
    between = exp.Between(
        this=locator.copy(),
        low=_bind(params, "dms_lo", lo),
        high=_bind(params, "dms_hi", hi),
    )
    return Predicate(between, params)


def hash_predicate(
    columns: Sequence[exp.Column], bucket: int, n: int, dialect: ChunkDialect
) -> Predicate:
    """``COALESCE(MOD(hash(key), n), 0) = :bucket`` in the dialect's hash."""
    params: dict[str, Any] = {}
    expression = exp.EQ(
        this=dialect.hash_bucket([c.copy() for c in columns], n),
        expression=_bind(params, "dms_bucket", bucket),
    )
    return Predicate(expression, params)


def inject(tree: exp.Query, path_index: int, predicate: exp.Expr) -> None:
    """AND ``predicate`` into the WHERE of the SELECT marked for ``path_index``.

    ``tree`` must be a copy of an analysed tree (copies keep the marks).  The
    deepest marked SELECT of the path is the one ``analyze`` chose.
    """
    marked = [node for node in tree.find_all(exp.Select) if node.meta.get(PATH_MARK) == path_index]
    if not marked:
        raise ValueError(f"no SELECT is marked for driving path {path_index}")
    target = max(marked, key=lambda node: node.depth)
    target.where(predicate.copy(), append=True, copy=False)


def apply_offset(
    tree: exp.Select,
    order_columns: Sequence[exp.Column],
    offset: int,
    limit: int | None,
    dialect: ChunkDialect,
) -> dict[str, Any]:
    """Order the top SELECT by the key and take rows ``[offset, offset+limit)``.

    The last chunk has no limit so rows beyond the counted ones still land in
    it; dialects that refuse OFFSET alone get their "no limit" value.  The
    key must be unique and NOT NULL — the caller asserts it.
    """
    params: dict[str, Any] = {}
    tree.set("order", None)
    tree.order_by(*(dialect.ordered(c) for c in order_columns), copy=False)
    tree.offset(_bind(params, "dms_offset", offset), copy=False)
    if limit is not None:
        tree.limit(_bind(params, "dms_limit", limit), copy=False)
    elif dialect.OFFSET_WITHOUT_LIMIT is not None:
        tree.limit(_bind(params, "dms_limit", dialect.OFFSET_WITHOUT_LIMIT), copy=False)
    return params
