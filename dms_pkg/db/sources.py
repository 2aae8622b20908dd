"""Source connections: run a dialect's SQL with its own bind style.

The chunk planner renders SQL per dialect (``chunking.render``) with named
binds in the style the dialect's driver understands; a source connection
runs that SQL and returns plain tuples.  One small class per driver: psycopg
(PostgreSQL, ``%(name)s``), pymysql (MySQL/MariaDB, ``%(name)s``), sqlite3
(``:name``) and plpy (the local PostgreSQL inside a backend, ``$n``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any, Protocol

import psycopg

from dms_pkg.chunking.dialects import ParamStyle


class SourceConnection(Protocol):
    """What the planner needs from a source database."""

    dialect: str
    style: ParamStyle

    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run ``sql`` (written in ``style``) and return every row."""
        ...


class PsycopgSource:
    dialect = "postgres"
    style = ParamStyle.PYFORMAT

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            # Always pass a mapping: rendered SQL doubles a literal % for the
            # pyformat style, and psycopg un-doubles it only when given params.
            cur.execute(sql.encode(), dict(params or {}))
            return list(cur.fetchall()) if cur.description is not None else []


class PyMySQLSource:
    dialect = "mysql"
    style = ParamStyle.PYFORMAT

    def __init__(self, conn: Any) -> None:  # a pymysql connection
        self.conn = conn

    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            # pymysql applies %-formatting only when args are given; the
            # renderer doubles literal % for PYFORMAT, so always pass a dict.
            cur.execute(sql, dict(params or {}))
            return list(cur.fetchall())


class SQLiteSource:
    dialect = "sqlite"
    style = ParamStyle.NAMED

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return list(self.conn.execute(sql, dict(params or {})).fetchall())


class PlpySource:
    """The local database seen from PL/Python; binds are ``$1..$n`` in params order."""

    dialect = "postgres"
    style = ParamStyle.NUMERIC

    def __init__(self, plpy: Any) -> None:
        from dms_pkg.db.plpy_db import PlpyDatabase

        self._db = PlpyDatabase(plpy)

    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        rows = self._db.query(sql, list((params or {}).values()))
        return [tuple(r.values()) for r in rows]
