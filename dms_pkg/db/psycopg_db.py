"""Database handle over a psycopg 3 connection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from dms_pkg.db.base import Row


class PsycopgDatabase:
    """Adapts a psycopg connection to :class:`~dms_pkg.db.base.Database`.

    The caller owns the connection and its transaction; this class only runs
    statements on it.
    """

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with psycopg.RawCursor(self.conn, row_factory=dict_row) as cur:
            cur.execute(sql.encode(), list(params) if params else None)
            if cur.description is None:
                return []
            return cur.fetchall()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a command; return the number of rows it processed."""
        with psycopg.RawCursor(self.conn) as cur:
            cur.execute(sql.encode(), list(params) if params else None)
            return max(cur.rowcount, 0)

    def describe(self, sql: str) -> list[tuple[str, int, int]]:
        """(name, type oid, typmod) of each column ``sql`` returns."""
        with psycopg.RawCursor(self.conn) as cur:
            cur.execute(sql.encode())
            result = cur.pgresult
            assert result is not None
            return [
                ((result.fname(i) or b"").decode(), result.ftype(i), result.fmod(i))
                for i in range(result.nfields)
            ]

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()

    def savepoint(self) -> Any:
        return self.conn.transaction()
