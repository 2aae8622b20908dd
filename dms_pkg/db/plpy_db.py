"""Database handle over the ``plpy`` module of a PL/Python function body.

DESIGN §2 forbids importing ``plpy`` in the core: the function body passes
the module in, and this class only calls the methods it is given.
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from dms_pkg.db.base import Row
from dms_pkg.db.faults import fault_of
from dms_pkg.errors import DmsError

# plpy.prepare needs a type per parameter; infer it from the Python value.
# bool is listed before int on purpose (bool is a subclass of int), and
# datetime before date for the same reason.
_PG_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),
    (int, "bigint"),
    (float, "double precision"),
    (decimal.Decimal, "numeric"),
    (datetime.datetime, "timestamp"),
    (datetime.date, "date"),
    (datetime.time, "time"),
    (uuid.UUID, "uuid"),
    (bytes, "bytea"),
    (dict, "jsonb"),
)


def _pg_type(value: Any) -> str:
    if isinstance(value, list | tuple):
        # A Python list binds as a PostgreSQL array of its elements' type.
        first = next((v for v in value if v is not None), "")
        return _pg_type(first) + "[]"
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return "timestamptz"
    for py_type, pg_type in _PG_TYPES:
        if isinstance(value, py_type):
            return pg_type
    return "text"


def _adapt(value: Any) -> Any:
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, tuple):
        return list(value)
    return value


class PlpyDatabase:
    """Adapts the ``plpy`` module to :class:`~dms_pkg.db.base.Database`."""

    def __init__(self, plpy: Any) -> None:
        self._plpy = plpy

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return [dict(r) for r in self.result(sql, params)]

    def result(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The PL/Python result object itself (it knows its column types)."""
        if not params:
            return self._plpy.execute(sql)
        plan = self._plpy.prepare(sql, [_pg_type(p) for p in params])
        return self._plpy.execute(plan, [_adapt(p) for p in params])

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a command; return the number of rows it processed."""
        if not params:
            return int(self._plpy.execute(sql).nrows())
        plan = self._plpy.prepare(sql, [_pg_type(p) for p in params])
        return int(self._plpy.execute(plan, [_adapt(p) for p in params]).nrows())

    def describe(self, sql: str) -> list[tuple[str, int, int]]:
        """(name, type oid, typmod) of each column ``sql`` returns; ``sql`` must
        return no rows (say, end in LIMIT 0)."""
        result = self._plpy.execute(sql)
        return list(zip(result.colnames(), result.coltypes(), result.coltypmods(), strict=True))

    def commit(self) -> None:
        # Only inside a procedure called at top level (CALL), never a function.
        self._plpy.commit()

    def rollback(self) -> None:
        self._plpy.rollback()

    def savepoint(self) -> Any:
        return self._plpy.subtransaction()


_ERROR_CLASSES: dict[int, type[Exception]] = {}


def _error_class(plpy: Any) -> type[Exception]:
    """A subclass of ``plpy.Error`` that PL/Python reports as ``dms: <message>``.

    PL/Python prefixes an uncaught exception's message with its class name,
    which for ``plpy.error()`` reads ``plpy.Error: ...``.  A subclass keeps
    the SQLSTATE/DETAIL/HINT handling of ``plpy.Error`` (PL/Python reads
    those attributes from any instance of it) and names the product instead.
    """
    cls = _ERROR_CLASSES.get(id(plpy))
    if cls is None:
        cls = type("dms", (plpy.Error,), {"__module__": "builtins"})
        _ERROR_CLASSES[id(plpy)] = cls
    return cls


def raise_as_postgres_error(plpy: Any, exc: DmsError) -> None:
    """Raise ``exc`` so that PostgreSQL reports its SQLSTATE, DETAIL and HINT."""
    error = _error_class(plpy)(exc.message)
    error.sqlstate = exc.sqlstate  # type: ignore[attr-defined]
    error.detail = exc.detail  # type: ignore[attr-defined]
    error.hint = exc.hint  # type: ignore[attr-defined]
    raise error from None


INTERNAL_ERROR = "XX000"


def as_dms_error(exc: BaseException) -> DmsError:
    """Any exception as the DmsError a SQL caller should get.

    A database error keeps the database's SQLSTATE, message, DETAIL and HINT
    (without PL/Python's ``spiexceptions.UndefinedColumn:`` or psycopg's class
    name and ``LINE 1:`` excerpt in front); anything else is a bug of ours,
    said as one (XX000; its traceback is in the error's CONTEXT).
    """
    if isinstance(exc, DmsError):
        return exc
    fault = fault_of(exc)
    if fault is not None:
        # Our own SQL functions already say "dms: ..."; it is said once.
        return DmsError(fault.message.removeprefix("dms: "),
                        sqlstate=fault.sqlstate or INTERNAL_ERROR,
                        detail=fault.detail, hint=fault.hint)
    return DmsError(
        f"internal error: {type(exc).__name__}: {exc}", sqlstate=INTERNAL_ERROR,
        hint="this is a bug in dms_pkg: report it with this message and the CONTEXT lines",
    )


@contextmanager
def dms_errors(plpy: Any) -> Iterator[None]:
    """Re-raise every error as a PostgreSQL error with SQLSTATE, DETAIL and HINT.

    Used by every PL/Python body so that a refusal in the core reaches the
    SQL caller as ``ERROR: dms: ... HINT: ...`` with the right SQLSTATE, and a
    database error raised below keeps its own SQLSTATE and words -- never
    ``spiexceptions.X: ...`` or ``38000 TypeError``.
    """
    from dms_pkg.db.interrupts import Interrupted

    try:
        yield
    except Interrupted as exc:  # a cancel or statement timeout: its own SQLSTATE and words
        raise_as_postgres_error(plpy, as_dms_error(exc.error))
    except Exception as exc:
        if isinstance(exc, plpy.Fatal):  # ends the session: leave it as it is
            raise
        raise_as_postgres_error(plpy, as_dms_error(exc))
