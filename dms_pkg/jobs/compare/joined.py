"""Compare two tables of one PostgreSQL database with a join, in parallel.

When both tables live in the same database there is nothing to hash: one
``FULL JOIN`` on the key finds the rows only in A, only in B and different
(``IS DISTINCT FROM``: PostgreSQL's own equality, so ``0.0`` equals ``-0.0``
and ``NULL`` equals ``NULL``), the way data-diff's joindiff does.  Unlike
joindiff, the key range is cut into pieces that run side by side on their
own connections (an integer key: even ranges between the smallest and the
largest key of both tables), so the join uses every core.  Each piece is one
query returning one row: both row counts and the keys that differ as JSON
arrays, so only differences travel.

Columns whose type has no equality operator (json, xml, point, ...) are
compared by their text.
"""

from __future__ import annotations

import decimal
import json
from typing import Any

from dms_pkg.db.binds import ParamStyle
from dms_pkg.jobs.compare import normalize
from dms_pkg.jobs.schema_diff.catalog import Column

PIECES_PER_WORKER = 2
_INTEGERS = ("INT", "SMALLINT", "BIGINT")
# Canonical types (schema_diff.types) PostgreSQL compares with its own "=";
# any other column is compared by its text.
_COMPARABLE = frozenset({
    "INT", "SMALLINT", "BIGINT", "DECIMAL", "REAL", "DOUBLE PRECISION", "TEXT", "VARCHAR",
    "CHAR", "DATE", "TIME", "TIMESTAMP", "TIMESTAMPTZ", "BOOLEAN", "BYTEA", "UUID", "JSONB",
    "INTERVAL"})


def _q(name: str) -> str:
    return normalize.quote(name, "postgres")


def _value(col: Column) -> str:
    c = _q(col.name)
    return c if col.type.split("(")[0] in _COMPARABLE else f"{c}::text"


class JoinQuery:
    """The SQL of one piece: the two tables' rows of a key range, joined."""

    def __init__(self, a_table: str, b_table: str, key: list[tuple[Column, Column]],
                 columns: list[tuple[Column, Column]]) -> None:
        self.key = key
        keys = [(f"k{i}", ca, cb) for i, (ca, cb) in enumerate(key)]
        cols = [(f"c{i}", ca, cb) for i, (ca, cb) in enumerate(columns)]

        def side(table: str, pick: int) -> str:
            items = [f"{_q((ca, cb)[pick].name)} AS {alias}" for alias, ca, cb in keys]
            items += [f"{_value((ca, cb)[pick])} AS {alias}" for alias, ca, cb in cols]
            return f"SELECT true AS dms_here, {', '.join(items)} FROM {table}"

        self.a_select, self.b_select = side(a_table, 0), side(b_table, 1)
        on = " AND ".join(f"a.{alias} = b.{alias}" for alias, _, _ in keys)
        a_keys = ", ".join(f"a.{alias}" for alias, _, _ in keys)
        b_keys = ", ".join(f"b.{alias}" for alias, _, _ in keys)
        a_row = ", ".join(f"a.{alias}" for alias, _, _ in cols)
        b_row = ", ".join(f"b.{alias}" for alias, _, _ in cols)
        differs = (f"ROW({a_row}) IS DISTINCT FROM ROW({b_row})" if cols else "false")
        # The keys as JSON text: psycopg would read json numbers as floats.
        self.head = (
            "SELECT count(a.dms_here), count(b.dms_here),"
            f" (json_agg(json_build_array({a_keys})) FILTER (WHERE b.dms_here IS NULL))::text,"
            f" (json_agg(json_build_array({b_keys})) FILTER (WHERE a.dms_here IS NULL))::text,"
            f" (json_agg(json_build_array({a_keys})) FILTER (WHERE a.dms_here AND b.dms_here"
            f" AND {differs}))::text FROM (")
        self.join = ") a FULL JOIN ("
        self.tail = ") b ON " + on
        self.key_name = _q(key[0][0].name), _q(key[0][1].name)

    def sql(self, lo: int | None, hi: int | None, style: ParamStyle = ParamStyle.PYFORMAT
            ) -> tuple[str, dict[str, Any]]:
        """The piece of keys in [lo, hi) (an integer key), or the whole tables; binds
        in the connection's ``style`` (``$1``, ``$2`` in params order for NUMERIC)."""
        if lo is None or hi is None:
            return self.head + self.a_select + self.join + self.b_select + self.tail, {}
        low, high = (("$1", "$2") if style is ParamStyle.NUMERIC
                     else (":lo", ":hi") if style is ParamStyle.NAMED
                     else ("%(lo)s", "%(hi)s"))
        a_where, b_where = (f" WHERE {name} >= {low} AND {name} < {high}"
                            for name in self.key_name)
        return (self.head + self.a_select + a_where + self.join + self.b_select + b_where
                + self.tail), {"lo": lo, "hi": hi}


def integer_key(key: list[tuple[Column, Column]]) -> bool:
    return len(key) == 1 and all(c.type in _INTEGERS for c in key[0])


def pieces(bounds: tuple[int | None, int | None], count: int) -> list[tuple[int | None,
                                                                           int | None]]:
    """``count`` even ranges covering [lowest, highest] key, or one open piece."""
    lowest, highest = bounds
    if lowest is None or highest is None:
        return [(None, None)]  # both tables empty (or no integer key): one query
    width = highest - lowest + 1
    count = max(1, min(count, width))
    step = -(-width // count)
    return [(lowest + i * step, min(lowest + (i + 1) * step, highest + 1))
            for i in range(count)]


def bounds_sql(a_table: str, b_table: str, key: tuple[Column, Column]) -> str:
    ka, kb = _q(key[0].name), _q(key[1].name)
    return (f"SELECT least((SELECT min({ka}) FROM {a_table}), (SELECT min({kb}) FROM {b_table})),"
            f" greatest((SELECT max({ka}) FROM {a_table}), (SELECT max({kb}) FROM {b_table}))")


def keys_of(text: str | None) -> list[list[Any]]:
    """A piece's JSON array of keys, decimals kept exact."""
    if text is None:
        return []
    return [list(k) for k in json.loads(text, parse_float=decimal.Decimal)]
