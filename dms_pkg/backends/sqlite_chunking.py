"""SQLite as the chunk planner sees it: its dialect, its catalog, its connection.

This is all the planner needs to split a query on a SQLite file; the
classes register themselves under the name ``sqlite`` when this module is
imported (``dms_pkg.backends`` imports every backend module), so the
planner's own modules (``chunking.dialects``, ``chunking.catalog``,
``db.sources``) name no SQLite anywhere.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any, ClassVar

from sqlglot import exp

from dms_pkg.chunking.catalog import Catalog
from dms_pkg.chunking.dialects import ChunkDialect, ParamStyle

__all__ = ["SQLite", "SQLiteCatalog", "SQLiteSource"]


class SQLite(ChunkDialect):
    """SQLite's chunking: ``:name`` binds, its hidden rowid as the key when none
    is named, and ``LIMIT -1`` for an offset without a limit."""


    NAME = "sqlite"
    SQLGLOT_DIALECT = "sqlite"
    PARAM_STYLE = ParamStyle.NAMED
    IMPLICIT_ROW_KEY = "rowid"
    OFFSET_WITHOUT_LIMIT = -1
    UNSUPPORTED_STRATEGIES: ClassVar[dict[str, str]] = {
        **ChunkDialect.UNSUPPORTED_STRATEGIES,
        "hash": "SQLite has no built-in hash function; use key_range or quantile",
    }

    def sample(self, select: exp.Select, percent: float, params: dict[str, object], *,
               table_sample: bool = True) -> exp.Select:
        # random() is a signed 64-bit integer; keep rows whose value modulo a
        # million falls under the wanted share.
        params["dms_per_million"] = round(percent * 10_000)
        draw = exp.Anonymous(
            this="ABS",
            expressions=[
                exp.Mod(this=exp.Anonymous(this="RANDOM"), expression=exp.Literal.number(1_000_000))
            ],
        )
        condition = exp.LT(this=draw, expression=exp.Placeholder(this="dms_per_million"))
        return select.where(condition, append=True, copy=False)


class SQLiteCatalog(Catalog):
    DIALECT = "sqlite"
    # A view's rowid is not a row address (SQLite leaves it unspecified): say 'v'.
    RELATION_KIND_SQL = (
        "SELECT CASE type WHEN 'view' THEN 'v' ELSE 'r' END FROM sqlite_master"
        " WHERE name = {dms_table} AND {dms_schema} IS NULL"
    )
    # pragma_table_info takes the schema ('main' by default) as its second argument.
    COLUMNS_SQL = "SELECT name FROM pragma_table_info({dms_table}, COALESCE({dms_schema}, 'main'))"
    PRIMARY_KEY_SQL = (
        "SELECT name FROM pragma_table_info({dms_table}, COALESCE({dms_schema}, 'main'))"
        " WHERE pk > 0 ORDER BY pk"
    )
    # pragma_index_info names NULL for an expression column.  The primary key
    # of a rowid table is not an index here; primary_key() covers it.
    UNIQUE_KEYS_SQL = (
        "SELECT il.name, ii.name, COALESCE(ti.\"notnull\", 0)"
        " FROM pragma_index_list({dms_table}, COALESCE({dms_schema}, 'main')) AS il"
        " JOIN pragma_index_info(il.name, COALESCE({dms_schema}, 'main')) AS ii"
        " LEFT JOIN pragma_table_info({dms_table}, COALESCE({dms_schema}, 'main')) AS ti"
        " ON ti.name = ii.name"
        " WHERE il.\"unique\" = 1 AND il.partial = 0 ORDER BY il.name, ii.seqno"
    )


class SQLiteSource:
    dialect = "sqlite"
    style = ParamStyle.NAMED

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return list(self.conn.execute(sql, dict(params or {})).fetchall())
