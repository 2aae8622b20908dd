"""Bind markers in SQL text, without parsing SQL (so workers need no sqlglot).

Chunk queries are stored once, in pyformat (``%(name)s``, literal ``%``
doubled): psycopg runs them, and binds them client-side for COPY, which has
no server-side parameters.  PL/Python's ``plpy.prepare`` and psycopg's raw
cursor take ``$1..$n`` instead.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence


class ParamStyle(enum.Enum):
    """How a bind parameter is written in the SQL text handed to a driver."""

    PYFORMAT = "pyformat"  # %(name)s — psycopg, pymysql
    NAMED = "named"  # :name — python-oracledb, sqlite3
    NUMERIC = "numeric"  # $1, $2 — plpy.prepare, in params order

PYFORMAT_BIND = re.compile(r"%%|%\((\w+)\)s")


def pyformat_to_numeric(text: str, param_names: Sequence[str]) -> str:
    """The same statement with ``$1..$n`` binds (in ``param_names`` order);
    doubled ``%`` become single again."""
    order = {name: i for i, name in enumerate(param_names, start=1)}

    def swap(match: re.Match[str]) -> str:
        name = match.group(1)
        return "%" if name is None else f"${order[name]}"

    return PYFORMAT_BIND.sub(swap, text)


def escape_pyformat(text: str) -> str:
    """Text to splice into a pyformat statement: a literal ``%`` must be doubled."""
    return text.replace("%", "%%")
