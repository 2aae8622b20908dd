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
