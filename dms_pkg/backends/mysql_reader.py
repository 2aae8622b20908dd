"""A worker's session on a MariaDB/MySQL source, streaming chunks as COPY text.

The rows are rendered as PostgreSQL COPY text by the MariaDB server
(``mysql_types.render_select``); what is left is moving bytes.  The fast way
is the ``mariadb`` (or ``mysql``) command-line client in batch, raw mode: it
writes every row of a one-column result as the column's bytes and a newline,
with no per-row work in Python, and this module hands its output on in large
blocks -- the way the PostgreSQL path streams psql's COPY output.

One client process lives as long as its worker's reader: it opened one
session and one transaction (``START TRANSACTION READ ONLY, WITH CONSISTENT
SNAPSHOT``) that every chunk it reads sees, which is what lets all workers
read one moment of the source (``mysql.MySQLSourceBackend.consistent_point``).
Chunks are sent as statements on its standard input; the end of each
chunk's rows is a sentinel row (``SELECT '<random token>'``) that no COPY
line can equal.  The client runs without ``--force``: on an error it prints
it and ends, so an error is never mistaken for the end of a chunk; the
reader is then unusable and the worker opens a new one.

Without a client program on the machine, ``PyMySQLSession`` runs the same
rendered statement through pymysql (a Python loop per row, slower, same
bytes).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from decimal import Decimal
from typing import Any

from dms_pkg.backends.mysql_connect import connect, option_file
from dms_pkg.backends.mysql_errors import MySQLError, from_client, from_pymysql
from dms_pkg.backends.mysql_types import MySQLColumn
from dms_pkg.errors import INVALID_PARAMETER_VALUE, DmsError

READ_BYTES = 1 << 20  # one read of the client's output (a pipe gives less)
BLOCK_BYTES = 1 << 19  # what is handed on to the target at once
PIPE_BYTES = 1 << 20  # the client's stdout pipe: fewer wake-ups than the default 64 KB
FETCH_ROWS = 5000  # pymysql fallback: rows per fetch
ZERO_DATE = b"0000-00-00"
DATETIME_OUT_OF_RANGE = "22008"


def client_program() -> str | None:
    """The MariaDB (or MySQL) command-line client, when installed."""
    return shutil.which("mariadb") or shutil.which("mysql")


# ------------------------------------------------------------------ binds

def literal(value: Any) -> str:
    """A bind value as a MariaDB literal that reads the same under any sql_mode
    (strings as hex with a character-set introducer: no quote or backslash to
    escape)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise DmsError(f"{value} has no MariaDB value", sqlstate=INVALID_PARAMETER_VALUE)
        return format(value, "f")
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "X'" + bytes(value).hex().upper() + "'"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return "'" + value.isoformat(sep=" ") + "'" if isinstance(value, dt.datetime) \
            else "'" + value.isoformat() + "'"
    if isinstance(value, dt.timedelta):  # a TIME value
        total = int(value.total_seconds())
        sign, total = ("-", -total) if total < 0 else ("", total)
        micros = abs(value.microseconds) if value.microseconds else 0
        text = f"{sign}{total // 3600}:{total // 60 % 60:02d}:{total % 60:02d}"
        return "'" + (f"{text}.{micros:06d}" if micros else text) + "'"
    if isinstance(value, str):
        return "_utf8mb4 X'" + value.encode().hex().upper() + "'"
    raise DmsError(f"a chunk bound of type {type(value).__name__} cannot be sent to MariaDB",
                   sqlstate=INVALID_PARAMETER_VALUE)


def bind(sql: str, params: Mapping[str, Any]) -> str:
    """``sql`` (pyformat: ``%(name)s``, literal ``%`` doubled) with its binds as
    literals."""
    return sql % {name: literal(value) for name, value in params.items()} if params \
        else sql.replace("%%", "%")


# ------------------------------------------------------------------ zero dates

class ZeroDateCheck:
    """Refuses a MariaDB zero date (``0000-00-00``) on its way into PostgreSQL,
    naming the column; PostgreSQL has no such date, and loading it as NULL is
    the user's choice (``mysql_zero_dates => 'null'``)."""

    def __init__(self, columns: Sequence[MySQLColumn]) -> None:
        self.columns = columns
        self.dates = {i for i, c in enumerate(columns) if c.is_date}
        self.tail = b""

    def check(self, block: bytes) -> None:
        if not self.dates:
            return
        data = self.tail + block
        start = 0
        while (hit := data.find(ZERO_DATE, start)) >= 0:
            start = hit + 1
            if hit and data[hit - 1] not in (9, 10):  # not at a field's start
                continue
            line_start = data.rfind(b"\n", 0, hit) + 1
            index = data.count(b"\t", line_start, hit)
            if index in self.dates:
                name = self.columns[index].name
                raise DmsError(
                    f"column {name} holds the MariaDB zero date 0000-00-00, which PostgreSQL "
                    "has no value for", sqlstate=DATETIME_OUT_OF_RANGE,
                    hint="fix the rows in the source, or load zero dates as NULL: "
                    "p_params => '{\"mysql_zero_dates\": \"null\"}' (or NULLIF it in the query); "
                    "nothing of the chunk was written")
        # Keep the current line's start: a date may be cut by the block's end.
        last = data.rfind(b"\n")
        self.tail = data[last + 1:] if last >= 0 else data
        if len(self.tail) > 1 << 16:  # one very long line: keep what a date needs
            self.tail = self.tail[-(1 << 16):]


# ------------------------------------------------------------------ the client session

class ClientSession:
    """One ``mariadb`` client process: one source session for every chunk."""

    def __init__(self, program: str, params: Mapping[str, Any], password: str | None, *,
                 snapshot: bool, where: str) -> None:
        self.where = where
        self.sentinel = b"dms-end-" + secrets.token_hex(12).encode()
        read_end, write_end = os.pipe()
        try:
            os.write(write_end, option_file(params, password))
        finally:
            os.close(write_end)
        argv = [program, f"--defaults-file=/dev/fd/{read_end}", "--batch", "--raw",
                "--skip-column-names", "--unbuffered", "--skip-reconnect",
                "--default-character-set=utf8mb4", "--no-auto-rehash", "--quick"]
        if params.get("database"):
            argv.append(f"--database={params['database']}")
        try:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                pass_fds=(read_end,), env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                           "LANG": "C.UTF-8"})
        finally:
            os.close(read_end)
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        self._out = self.proc.stdout.fileno()
        with suppress(OSError, AttributeError):  # Linux only; a smaller pipe works too
            fcntl.fcntl(self._out, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        self._buffer = b""
        self.broken = False
        start = ["SET SESSION time_zone = '+00:00'",
                 "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"]
        if snapshot:
            start.append("START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT")
        rows = b"".join(self._run("; ".join(start) + "; SELECT CONNECTION_ID()"))
        self.thread_id = int(rows.decode().strip())

    def _send(self, statement: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(statement.encode() + b";\nSELECT '" + self.sentinel + b"';\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self._fail()

    def _fail(self) -> None:
        self.broken = True
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        assert self.proc.stderr is not None
        raise from_client(self.proc.stderr.read().decode(errors="replace"),
                          self.proc.returncode)

    def _run(self, statement: str) -> Iterator[bytes]:
        """The output of ``statement`` in blocks, up to (not with) the sentinel row.

        The client writes a few kilobytes at a time; blocks are gathered to
        ``BLOCK_BYTES`` before they are handed on, so that the target's COPY
        gets a few hundred writes per chunk, not tens of thousands."""
        if self.broken:
            raise MySQLError(2006, "the session on the source ended earlier")
        self._send(statement)
        marker = self.sentinel + b"\n"
        after_row = b"\n" + marker  # rows end with a newline
        keep = len(after_row) - 1  # what may be the start of a marker cut by a read
        buf = bytearray(self._buffer)
        self._buffer = b""
        scanned = 0  # buf[:scanned] holds no marker
        at_start = True  # nothing handed on yet: zero rows are the marker alone
        while True:
            if at_start and len(buf) >= len(marker):
                if buf.startswith(marker):
                    self._buffer = bytes(buf[len(marker):])
                    return
                at_start = False
            if not at_start:
                end = buf.find(after_row, max(0, scanned - keep))
                if end >= 0:
                    self._buffer = bytes(buf[end + 1 + len(marker):])
                    yield bytes(memoryview(buf)[:end + 1])
                    return
                scanned = len(buf)
                if len(buf) >= BLOCK_BYTES:
                    cut = len(buf) - keep
                    yield bytes(memoryview(buf)[:cut])
                    del buf[:cut]  # bytearray: dropping its head moves no bytes
                    scanned = len(buf)
            data = os.read(self._out, READ_BYTES)
            if not data:
                self._fail()
            buf += data

    def copy(self, statement: str) -> Iterator[bytes]:
        return self._run(statement)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


class PyMySQLSession:
    """The same session through pymysql, where no client program is installed."""

    def __init__(self, params: Mapping[str, Any], password: str | None, *,
                 snapshot: bool, where: str) -> None:
        self.where = where
        self.conn = connect(params, password, where=where)
        self.broken = False
        with self.conn.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            if snapshot:
                cur.execute("START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT")
            cur.execute("SELECT CONNECTION_ID()")
            row = cur.fetchone()
        self.thread_id = int(row[0])

    def copy(self, statement: str) -> Iterator[bytes]:
        import pymysql.cursors

        try:
            with self.conn.cursor(pymysql.cursors.SSCursor) as cur:
                cur.execute(statement)
                while rows := cur.fetchmany(FETCH_ROWS):
                    yield ("\n".join(row[0] for row in rows) + "\n").encode()
        except Exception as exc:
            error = from_pymysql(exc)
            if error is None:
                raise
            self.broken = error.pg_sqlstate.startswith(("08", "57"))
            raise error from None

    def close(self) -> None:
        with suppress(Exception):  # already gone
            self.conn.close()


Session = ClientSession | PyMySQLSession


def open_session(params: Mapping[str, Any], password: str | None, *, reader: str,
                 snapshot: bool, where: str) -> Session:
    """A source session by the ``mysql_reader`` setting: auto (the client when
    installed), client, pymysql."""
    program = client_program() if reader in ("auto", "client") else None
    if reader == "client" and program is None:
        raise DmsError("mysql_reader client: no mariadb or mysql client program is installed",
                       sqlstate="58P01",
                       hint="apt-get install mariadb-client, or use mysql_reader \"pymysql\"")
    if program is not None:
        return ClientSession(program, params, password, snapshot=snapshot, where=where)
    return PyMySQLSession(params, password, snapshot=snapshot, where=where)
