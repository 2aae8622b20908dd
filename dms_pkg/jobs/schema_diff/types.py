"""Column types in one spelling, whatever database declared them.

A type is written as the PostgreSQL type a load into PostgreSQL would give
the column -- the mappings the backends use (MariaDB ``int(11)`` is
``integer``, ``tinyint(1)`` is ``boolean``, ``datetime`` is ``timestamp``;
SQLite's declared type read by sqlglot, else by SQLite's affinity rules) --
and then normalised by sqlglot (``int4``, ``integer`` and ``int`` are
``INT``; ``character varying(20)`` is ``VARCHAR(20)``).  So equal means "the
same values fit", not "the same words".
"""

from __future__ import annotations

import decimal

import sqlglot
from sqlglot import exp

from dms_pkg.backends import mysql_types, sqlite_types
from dms_pkg.errors import DmsError


def to_postgres(type_text: str, dialect: str, *, is_json: bool = False) -> str:
    """The PostgreSQL type (as format_type spells it) of a column declared ``type_text``."""
    if dialect == "postgres":
        return type_text
    if dialect == "mysql":
        try:
            return mysql_types.column("c", type_text, is_json=is_json).pg_type
        except DmsError:  # a type we do not load (spatial, ...): compare it as declared
            return type_text.lower()
    if dialect == "sqlite":
        declared = (type_text or "").strip()
        if not declared:
            return "text"
        try:
            parsed = exp.DataType.build(declared, dialect="sqlite")
        except (sqlglot.errors.ParseError, ValueError):
            return sqlite_types.pg_type(declared)
        if parsed.this == exp.DataType.Type.USERDEFINED:
            return sqlite_types.pg_type(declared)
        return parsed.sql("postgres")
    if dialect in ("bigquery", "snowflake", "redshift"):
        try:
            return exp.DataType.build(type_text, dialect=dialect).sql("postgres")
        except (sqlglot.errors.ParseError, ValueError):
            return type_text.lower()
    raise ValueError(f"unknown dialect {dialect}")


def canonical(type_text: str, dialect: str, *, is_json: bool = False) -> str:
    """One spelling per type: the PostgreSQL type, normalised by sqlglot."""
    pg = to_postgres(type_text, dialect, is_json=is_json)
    try:
        return exp.DataType.build(pg, dialect="postgres").sql("postgres")
    except (sqlglot.errors.ParseError, ValueError):
        return pg.upper()


def canonical_default(default: str | None, dialect: str) -> str | None:
    """A column default in one spelling: NULL is no default, casts on a literal go,
    a sequence or auto-increment is ``AUTOINCREMENT``."""
    if default is None:
        return None
    text = default.strip()
    if not text or text.upper() == "NULL":
        return None
    if text.lower().startswith("nextval("):  # a sequence, identity, auto_increment, rowid
        return "AUTOINCREMENT"
    read = "mysql" if dialect == "mysql" else dialect
    try:
        tree = sqlglot.parse_one(text, read=read)
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError):
        # MariaDB's information_schema shows a string default bare (abc, not 'abc').
        return text
    while isinstance(tree, exp.Cast):  # 'abc'::text, 0::numeric
        tree = tree.this
    if isinstance(tree, exp.Paren):
        tree = tree.this
    if isinstance(tree, exp.Column) and dialect == "mysql":
        return tree.name  # a bare word in information_schema: a string default
    number = tree.this if isinstance(tree, exp.Neg) else tree
    if isinstance(number, exp.Literal) and not number.is_string:
        # 0, 0.00 and 0.0 are one default: a numeric column shows its scale.
        try:
            value = decimal.Decimal(number.this)
        except decimal.InvalidOperation:
            return tree.sql("postgres")
        value = -value if isinstance(tree, exp.Neg) else value
        return format(value.normalize(), "f")
    return tree.sql("postgres")
