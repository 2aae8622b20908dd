"""Each row as one text, the same text in every dialect, and its 60-bit hash.

A value is normalised by its column's type (the one spelling of
``schema_diff.types``) so that PostgreSQL, MariaDB and SQLite print equal
values alike: decimals at a fixed scale (the column's, or 6 places for
floating point), timestamps to the millisecond in UTC, booleans as 1/0,
binary as lower-case hex, text as it is.  A row's text is its values joined
by ``|``, NULL as ``n``, each text value written as ``<length>:<text>`` (the
others cannot hold a ``|``), so no two rows share a text.  The hash is the
first 15 hex digits of the text's MD5 (60 bits, so that sums of millions of
them stay exact in every database).

The SQL is written per dialect by hand: the functions differ too much
(to_char, DATE_FORMAT, strftime) for one rendering.  SQLite has no MD5: a
Python function on the connection stands in (``install_sqlite``).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from typing import Any

from dms_pkg.jobs.schema_diff.catalog import Column

FLOAT_SCALE = 6
WAREHOUSES = ("bigquery", "snowflake", "redshift")
_FLOATS = ("REAL", "DOUBLE PRECISION", "FLOAT")
_INTEGERS = ("INT", "SMALLINT", "BIGINT", "TINYINT")


def quote(name: str, dialect: str) -> str:
    """A quoted identifier; a % doubled where the driver formats the SQL (pyformat)."""
    if dialect == "bigquery":
        return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"
    if dialect == "mysql":
        return "`" + name.replace("`", "``").replace("%", "%%") + "`"
    quoted = '"' + name.replace('"', '""') + '"'
    return quoted.replace("%", "%%") if dialect == "postgres" else quoted


def _scale(a: Column, b: Column | None) -> int | None:
    """The decimal scale two columns are compared at (None: not a decimal)."""
    scales = []
    for col in (a, b):
        if col is None:
            continue
        if col.type.startswith("DECIMAL("):
            parts = col.type[len("DECIMAL("):-1].split(",")
            scales.append(int(parts[1]) if len(parts) > 1 else 0)
        elif col.type in _FLOATS or col.type == "DECIMAL":
            scales.append(FLOAT_SCALE)
    return max(scales) if scales else None


def value_sql(col: Column, other: Column | None, dialect: str) -> str:
    """The normalised text of one value (NULL stays NULL)."""
    if dialect in WAREHOUSES:
        return _warehouse_value(col, other, dialect)
    c = quote(col.name, dialect)
    scale = _scale(col, other)
    kind = col.type.split("(")[0]
    other_kind = other.type.split("(")[0] if other is not None else kind
    if scale is not None and (kind in _INTEGERS + _FLOATS + ("DECIMAL",)):
        if dialect == "postgres":
            return f"(round({c}::numeric, {scale}))::numeric(65,{scale})::text"
        if dialect == "mysql":
            return f"CAST(CAST({c} AS DECIMAL(65,{scale})) AS CHAR)"
        return f"printf('%.{scale}f', {c})"
    if kind in _INTEGERS:
        return {"postgres": f"{c}::text", "mysql": f"CAST({c} AS CHAR)"}.get(
            dialect, f"CAST({c} AS TEXT)")
    if kind == "BOOLEAN" or other_kind == "BOOLEAN":
        if dialect == "postgres":
            return f"CASE WHEN {c} THEN '1' ELSE '0' END"
        return (f"CAST(({c} <> 0) AS CHAR)" if dialect == "mysql"
                else f"CAST(({c} <> 0) AS TEXT)")
    if kind == "DATE":
        return {"postgres": f"to_char({c}, 'YYYY-MM-DD')",
                "mysql": f"DATE_FORMAT({c}, '%%Y-%%m-%%d')"}.get(
            dialect, f"strftime('%Y-%m-%d', {c})")
    if kind in ("TIMESTAMP", "TIMESTAMPTZ"):
        if dialect == "postgres":
            at = f"({c} AT TIME ZONE 'UTC')" if kind == "TIMESTAMPTZ" else c
            return f"to_char({at}, 'YYYY-MM-DD HH24:MI:SS.MS')"
        if dialect == "mysql":  # the session's time zone is UTC (open)
            return f"LEFT(DATE_FORMAT({c}, '%%Y-%%m-%%d %%H:%%i:%%s.%%f'), 23)"
        return f"strftime('%Y-%m-%d %H:%M:%f', {c})"
    if kind == "BYTEA":
        return {"postgres": f"encode({c}, 'hex')", "mysql": f"LOWER(HEX({c}))"}.get(
            dialect, f"lower(hex({c}))")
    if dialect == "postgres":
        return f"{c}::text"
    return f"CAST({c} AS CHAR)" if dialect == "mysql" else f"CAST({c} AS TEXT)"


# Kinds whose normalised text never holds the separator "|" nor reads "n": digits,
# signs, points, dashes, colons, spaces and hex digits only.
_SELF_DELIMITING = (*_INTEGERS, *_FLOATS, "DECIMAL", "BOOLEAN", "DATE", "TIMESTAMP",
                    "TIMESTAMPTZ", "BYTEA")


def _self_delimiting(col: Column | None) -> bool:
    return col is None or col.type.split("(")[0] in _SELF_DELIMITING


def row_text_sql(columns: Sequence[tuple[Column, Column | None]], dialect: str) -> str:
    """The row's text: values joined by "|", NULL as n; a text value written as
    <length>:<text> so that no value can forge a separator.  Values that cannot
    hold one (numbers, dates, times, booleans, hex) go as they are: the database
    then works out each of them once, not twice."""
    pieces = []
    length = {"postgres": "length", "mysql": "CHAR_LENGTH"}.get(dialect, "LENGTH")
    for col, other in columns:
        v = value_sql(col, other, dialect)
        if _self_delimiting(col) and _self_delimiting(other):
            pieces.append(f"COALESCE({v}, 'n')")
            continue
        if dialect in ("mysql", "bigquery"):  # no || for strings in MariaDB's default mode
            if dialect == "bigquery":
                pieces.append(f"COALESCE(CONCAT(CAST({length}({v}) AS STRING), ':', {v}), 'n')")
                continue
            pieces.append(f"COALESCE(CONCAT({length}({v}), ':', {v}), 'n')")
        else:
            pieces.append(f"COALESCE({length}({v}) || ':' || {v}, 'n')")
    if dialect in ("mysql", "bigquery"):
        return "CONCAT(" + ", '|', ".join(pieces) + ")"
    return " || '|' || ".join(pieces)


LOW60 = (1 << 60) - 1


def hash_sql(row_text: str, dialect: str) -> str:
    """The row's hash: the low 60 bits of its MD5 (the last 15 hex digits), as an
    integer -- what Snowflake's MD5_NUMBER_LOWER64 gives, masked."""
    if dialect == "postgres":
        return f"('x' || substr(md5({row_text}), 18, 15))::bit(60)::bigint"
    if dialect == "mysql":
        return f"CAST(CONV(SUBSTRING(MD5({row_text}), 18, 15), 16, 10) AS UNSIGNED)"
    if dialect == "redshift":
        return f"STRTOL(SUBSTRING(MD5({row_text}), 18, 15), 16)"
    if dialect == "snowflake":
        return f"BITAND(MD5_NUMBER_LOWER64({row_text}), {LOW60})"
    if dialect == "bigquery":
        return f"CAST(CONCAT('0x', SUBSTR(TO_HEX(MD5({row_text})), 18, 15)) AS INT64)"
    return f"dms_hash60({row_text})"


def sum_sql(hash_expr: str, dialect: str) -> str:
    """The exact sum of hashes, as text (a 64-bit SUM would overflow)."""
    if dialect == "sqlite":
        return f"dms_exact_sum({hash_expr})"
    if dialect == "mysql":
        return f"CAST(COALESCE(SUM({hash_expr}), 0) AS CHAR)"
    if dialect == "bigquery":
        return f"CAST(COALESCE(SUM(CAST({hash_expr} AS BIGNUMERIC)), 0) AS STRING)"
    if dialect == "snowflake":
        return f"TO_VARCHAR(COALESCE(SUM({hash_expr}), 0))"
    if dialect == "redshift":
        return f"COALESCE(SUM(({hash_expr})::numeric(38,0)), 0)::varchar"
    return f"COALESCE(SUM({hash_expr}), 0)::text"


def hash60(text: str | None) -> int | None:
    if text is None:
        return None
    return int(hashlib.md5(text.encode("utf-8")).hexdigest()[17:], 16)  # noqa: S324 -- a checksum, not security


class _ExactSum:
    def __init__(self) -> None:
        self.total = 0

    def step(self, value: Any) -> None:
        if value is not None:
            self.total += int(value)

    def finalize(self) -> str:
        return str(self.total)


def install_sqlite(conn: sqlite3.Connection) -> None:
    """MD5 and an exact sum for SQLite, which has neither."""
    conn.create_function("dms_hash60", 1, hash60, deterministic=True)
    conn.create_aggregate("dms_exact_sum", 1, _ExactSum)  # type: ignore[arg-type]


def _warehouse_value(col: Column, other: Column | None, dialect: str) -> str:
    """value_sql for BigQuery, Snowflake and Redshift: the same texts, their functions."""
    c = quote(col.name, dialect)
    scale = _scale(col, other)
    kind = col.type.split("(")[0]
    other_kind = other.type.split("(")[0] if other is not None else kind
    numeric = kind in _INTEGERS + _FLOATS + ("DECIMAL",)
    if dialect == "bigquery":
        if scale is not None and numeric:
            return f"FORMAT('%.{scale}f', CAST({c} AS BIGNUMERIC))"
        if kind == "BOOLEAN" or other_kind == "BOOLEAN":
            return f"IF(CAST({c} AS BOOL), '1', '0')"
        if kind == "DATE":
            return f"FORMAT_DATE('%Y-%m-%d', {c})"
        if kind == "TIMESTAMPTZ":
            return f"FORMAT_TIMESTAMP('%Y-%m-%d %H:%M:%E3S', {c}, 'UTC')"
        if kind == "TIMESTAMP":
            return f"FORMAT_DATETIME('%Y-%m-%d %H:%M:%E3S', {c})"
        if kind == "BYTEA":
            return f"TO_HEX({c})"
        return f"CAST({c} AS STRING)"
    if dialect == "snowflake":
        if scale is not None and numeric:
            return f"TO_VARCHAR(ROUND({c}, {scale})::NUMBER(38,{scale}))"
        if kind == "BOOLEAN" or other_kind == "BOOLEAN":
            return f"IFF({c}::BOOLEAN, '1', '0')"
        if kind == "DATE":
            return f"TO_VARCHAR({c}, 'YYYY-MM-DD')"
        if kind == "TIMESTAMPTZ":
            return f"TO_VARCHAR(CONVERT_TIMEZONE('UTC', {c}), 'YYYY-MM-DD HH24:MI:SS.FF3')"
        if kind == "TIMESTAMP":
            return f"TO_VARCHAR({c}, 'YYYY-MM-DD HH24:MI:SS.FF3')"
        if kind == "BYTEA":
            return f"LOWER(HEX_ENCODE({c}))"
        return f"TO_VARCHAR({c})"
    # Redshift: PostgreSQL's functions, where it kept them
    if scale is not None and numeric:
        return f"(round({c}::numeric(38,{scale}), {scale}))::varchar"
    if kind == "BOOLEAN" or other_kind == "BOOLEAN":
        return f"CASE WHEN {c} THEN '1' ELSE '0' END"
    if kind == "DATE":
        return f"to_char({c}, 'YYYY-MM-DD')"
    if kind in ("TIMESTAMP", "TIMESTAMPTZ"):
        at = f"convert_timezone('UTC', {c})" if kind == "TIMESTAMPTZ" else c
        return f"to_char({at}, 'YYYY-MM-DD HH24:MI:SS.MS')"
    if kind == "BYTEA":
        return f"lower(to_hex({c}))"
    return f"{c}::varchar"
