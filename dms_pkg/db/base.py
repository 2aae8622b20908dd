"""The protocol every database handle implements."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

Row = dict[str, Any]


class Database(Protocol):
    """Runs SQL with PostgreSQL-native ``$1, $2, ...`` placeholders.

    Native placeholders are the one style both PL/Python (``plpy.prepare``) and
    psycopg (``RawCursor``) understand without rewriting the query text, so a
    statement written once runs unchanged through either implementation.
    """

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run ``sql`` and return its rows as dicts (empty for commands)."""
        ...


class Session(Database, Protocol):
    """A database handle the engine can also commit on and ask about columns."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a command; return the number of rows it processed."""
        ...

    def describe(self, sql: str) -> list[tuple[str, int, int]]:
        """(name, type oid, typmod) of each column a query returns (run it LIMIT 0)."""
        ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def savepoint(self) -> AbstractContextManager[Any]:
        """A block whose writes are undone if it raises (the transaction goes on)."""
        ...
