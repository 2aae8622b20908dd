"""Three real databases behind one small test interface, for partition tests.

Each backend creates the same two tables -- ``t(rid, k1, k2, v)`` with the
key under test in ``k1`` (and ``k2`` for composite keys), and a small
dimension ``d(id, grp)`` for joins -- in its own types, loads rows, and runs
SQL.  The planner under test talks to the database only through its
SourceConnection; the backend's own cursor runs the unsplit query.
"""

from __future__ import annotations

import datetime as dt
import decimal
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import pymysql

from dms_pkg.backends.sqlite_chunking import SQLiteSource
from dms_pkg.db.pg_values import keep_out_of_range_as_text
from dms_pkg.db.sources import PsycopgSource, PyMySQLSource, SourceConnection

KEY_TYPES = ("int", "bigint", "numeric", "text", "uuid", "date", "timestamp")

# Column type of k1 per backend and key type.
_DDL: dict[str, dict[str, str]] = {
    "postgres": {
        "int": "integer", "bigint": "bigint", "numeric": "numeric(14,3)", "text": "text",
        "uuid": "uuid", "date": "date", "timestamp": "timestamp",
    },
    "mysql": {
        "int": "INT", "bigint": "BIGINT", "numeric": "DECIMAL(14,3)", "text": "VARCHAR(40)",
        "uuid": "CHAR(36)", "date": "DATE", "timestamp": "DATETIME(6)",
    },
    "sqlite": {
        "int": "INTEGER", "bigint": "INTEGER", "numeric": "REAL", "text": "TEXT",
        "uuid": "TEXT", "date": "TEXT", "timestamp": "TEXT",
    },
}


def to_db(backend: str, key_type: str, value: Any) -> Any:
    """A generated Python value in the form the backend's driver binds."""
    if value is None:
        return None
    if backend == "sqlite" and key_type in ("uuid", "date", "timestamp"):
        return str(value) if key_type == "uuid" else value.isoformat(sep=" ") if isinstance(
            value, dt.datetime) else value.isoformat()
    if backend == "sqlite" and key_type == "numeric":
        return float(value)
    if backend == "mysql" and key_type == "uuid":
        return str(value)
    return value


@dataclass
class Backend:
    name: str
    conn: Any

    def source(self) -> SourceConnection:
        if self.name == "postgres":
            return PsycopgSource(self.conn)
        if self.name == "mysql":
            return PyMySQLSource(self.conn)
        return SQLiteSource(self.conn)

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        if self.name == "sqlite":
            cur = self.conn.execute(sql, params or ())
            rows = cur.fetchall()
            self.conn.commit()
            return list(rows)
        with self.conn.cursor() as cur:
            if self.name == "postgres":  # '-infinity' as text, as the planner reads it
                keep_out_of_range_as_text(cur.adapters)
            cur.execute(sql, params)
            rows = list(cur.fetchall()) if cur.description else []
        self.conn.commit()
        return rows

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if self.name == "sqlite":
            self.conn.executemany(sql, rows)
        else:
            with self.conn.cursor() as cur:
                cur.executemany(sql, rows)
        self.conn.commit()

    @property
    def mark(self) -> str:
        return "?" if self.name == "sqlite" else "%s"

    def load(self, key_type: str, rows: Sequence[tuple[int, Any, Any, str | None]],
             k2_type: str = "text", *, k1_ddl: str | None = None) -> None:
        """(Re)create t and d and insert ``rows`` = (rid, k1, k2, v).

        ``k1_ddl`` replaces the column type of k1 (a collation, an untyped
        SQLite column); its values are then bound as they are.
        """
        ddl = _DDL[self.name]
        for table in ("t", "d"):
            self.execute(f"DROP TABLE IF EXISTS {table}")
        k1 = ddl[key_type] if k1_ddl is None else k1_ddl
        self.execute(
            f"CREATE TABLE t (rid INTEGER NOT NULL PRIMARY KEY, k1 {k1} NULL, "
            f"k2 {ddl[k2_type]} NULL, v {ddl['text']} NULL)"
        )
        self.execute(f"CREATE TABLE d (id INTEGER NOT NULL PRIMARY KEY, grp {ddl['text']})")
        m = self.mark
        self.executemany(f"INSERT INTO d (id, grp) VALUES ({m}, {m})",
                         [(0, "g0"), (1, "g1"), (2, "g2")])
        self.executemany(
            f"INSERT INTO t (rid, k1, k2, v) VALUES ({m}, {m}, {m}, {m})",
            [(rid, k1 if k1_ddl is not None else to_db(self.name, key_type, k1),
              to_db(self.name, k2_type, k2), v)
             for rid, k1, k2, v in rows],
        )
        if self.name == "postgres":
            self.execute("ANALYZE t")


# Text key types with a collation other than the database default, per
# backend: ICU, case-insensitive and nondeterministic ones, whose order is not
# Python's code-point order (the test database's default is C.UTF-8).
COLLATED_TEXT: dict[str, tuple[str, ...]] = {
    "postgres": ('text COLLATE "en-US-x-icu"', "text COLLATE dms_ci",
                 'varchar(20) COLLATE "de-DE-x-icu"', 'text COLLATE "sv-SE-x-icu"'),
    "mysql": tuple(f"VARCHAR(40) CHARACTER SET utf8mb4 COLLATE {c}" for c in
                   ("utf8mb4_general_ci", "utf8mb4_unicode_ci", "utf8mb4_bin")),
    "sqlite": ("TEXT COLLATE NOCASE", "TEXT COLLATE RTRIM", "TEXT"),
}


def connect_postgres(dsn: str) -> Backend:
    # Tables are re-created with other column types between examples: no
    # server-side prepared statements, whose cached plans would go stale.
    backend = Backend("postgres", psycopg.connect(dsn, autocommit=True, prepare_threshold=None))
    # Case- (not accent-) insensitive and nondeterministic: 'a' = 'A'.
    backend.execute("CREATE COLLATION IF NOT EXISTS dms_ci "
                    "(provider = icu, locale = 'und-u-ks-level2', deterministic = false)")
    return backend


def connect_mysql(args: dict[str, Any]) -> Backend:
    return Backend("mysql", pymysql.connect(**args))


def connect_sqlite(path: str) -> Backend:
    return Backend("sqlite", sqlite3.connect(path))


__all__ = ["COLLATED_TEXT", "KEY_TYPES", "Backend", "connect_mysql", "connect_postgres",
           "connect_sqlite", "decimal", "uuid"]
