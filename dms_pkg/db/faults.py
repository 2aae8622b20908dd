"""A database error as the user should read it: SQLSTATE, message, DETAIL, HINT.

Errors reach the engine in three shapes -- ``plpy.SPIError`` (the local
database, inside a backend), ``psycopg.Error`` (any other connection) and
the text of a remote session's error (``dblink_error_message``: ``ERROR:``,
``DETAIL:``, ``HINT:`` and ``CONTEXT:`` lines).  Users must see the
database's own words in each case, never the driver's class name
(``spiexceptions.UndefinedColumn``), a Python traceback, or psycopg's
``LINE 1: ...`` excerpt with its caret.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from dms_pkg.errors import DmsError


@dataclass(frozen=True)
class Fault:
    sqlstate: str | None
    message: str
    detail: str | None = None
    hint: str | None = None
    # Whether a retry may cure it, when the source knows better than the
    # SQLSTATE's class (a missing SQLite file is 58P01 but will stay missing).
    transient: bool | None = None

    def one_line(self, *, with_sqlstate: bool = True) -> str:
        """``[42703] column "x" does not exist (HINT: ...)``: one line for a run's
        message or a chunk's last error, DETAIL and HINT kept."""
        text = f"[{self.sqlstate}] {self.message}" if with_sqlstate and self.sqlstate \
            else self.message
        if self.detail:
            text += f" (DETAIL: {_flat(self.detail)})"
        if self.hint:
            text += f" (HINT: {_flat(self.hint)})"
        return text


def _flat(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def fault_of(exc: BaseException) -> Fault | None:
    """The database's own report in ``exc``, or None when it is no database error."""
    # psycopg is looked up, not imported: an exception of it exists only once
    # it was imported, and a PL/Python session that never uses it (a
    # DBMS_PARALLEL_EXECUTE worker) saves the quarter second its import costs.
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(exc, psycopg.Error):
        diag = exc.diag
        # An error class raised by psycopg rather than the server has no diag.
        message = diag.message_primary or _flat(str(exc).split("\nLINE ")[0]) \
            or type(exc).__name__
        return Fault(diag.sqlstate or exc.sqlstate, message, diag.message_detail,
                     diag.message_hint)
    sqlstate = getattr(exc, "sqlstate", None)
    spidata = getattr(exc, "spidata", None)
    if sqlstate is None and isinstance(spidata, tuple) and spidata \
            and isinstance(spidata[0], int):
        # plpy.SPIError of a SQLSTATE PL/Python has no class for (our own PE490
        # ...): the code is only in spidata, packed as PostgreSQL packs it.
        sqlstate = unpack_sqlstate(spidata[0])
    if sqlstate is None:
        return None
    # plpy.SPIError: the message is its first argument; DETAIL and HINT are in
    # its spidata tuple (sqlerrcode, detail, hint, query, position, ...).
    message = str(exc.args[0]) if exc.args else str(exc)
    detail = hint = None
    if isinstance(spidata, tuple) and len(spidata) >= 3:
        detail, hint = spidata[1], spidata[2]
    detail = detail or getattr(exc, "detail", None)
    hint = hint or getattr(exc, "hint", None)
    return Fault(str(sqlstate), message, detail or None, hint or None)


def unpack_sqlstate(code: int) -> str:
    """The five characters of a packed SQLSTATE (PostgreSQL's MAKE_SQLSTATE)."""
    chars = []
    for _ in range(5):
        chars.append(chr((code & 0x3F) + ord("0")))
        code >>= 6
    return "".join(chars)


_FIELD = re.compile(r"^(ERROR|FATAL|PANIC|DETAIL|HINT|CONTEXT|QUERY|LINE \d+|STATEMENT)"
                    r"(?:\s+[0-9A-Z]{5})?:\s*(.*)$")


def from_server_text(text: str) -> Fault:
    """A libpq error text (``ERROR:  msg`` / ``DETAIL:`` / ``HINT:`` / ``CONTEXT:``
    lines, as dblink hands it over) as a Fault; CONTEXT (a PL/Python traceback
    for errors raised in our bodies) and the query excerpt are dropped."""
    fields: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        match = _FIELD.match(line.strip())
        if match:
            current = "LINE" if match.group(1).startswith("LINE") else match.group(1)
            fields.setdefault(current, []).append(match.group(2))
        elif current is not None and line.strip():
            fields[current].append(line.strip())
        elif current is None and line.strip():
            current = "ERROR"
            fields.setdefault(current, []).append(line.strip())
    primary = next((fields[k] for k in ("ERROR", "FATAL", "PANIC") if k in fields), None)
    message = " ".join(primary) if primary else _flat(text)
    detail = " ".join(fields["DETAIL"]) if "DETAIL" in fields else None
    hint = " ".join(fields["HINT"]) if "HINT" in fields else None
    return Fault(None, message, detail, hint)


def describe(exc: BaseException) -> str:
    """One line for any exception: the database's report, a DmsError's message,
    or, for a bug, ``internal error: <class>: <text>``."""
    if isinstance(exc, DmsError):
        return Fault(None, exc.message, exc.detail, exc.hint).one_line()
    fault = fault_of(exc)
    if fault is not None:
        return fault.one_line()
    return f"internal error: {type(exc).__name__}: {_flat(str(exc))}"
