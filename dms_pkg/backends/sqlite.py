"""SQLite files as a source: open read-only, describe, estimate, read as COPY text.

A SQLite source is a file on the file system of the process that reads it.
Inside the database server that is the server's own OS user (``postgres``):
the file must be readable by that user, and every message about access names
the user that tried.  The file is opened with ``mode=ro`` (never
``immutable``: another program may be writing to it while we read).

What the engine needs from this module:

* **Where**: ``path_from_row`` (a DMS_DBCONDTLS row: DBSRVNM is the path, or
  CONSTR ``file=/path`` / ``sqlite:///path``; PWDSRC must be NONE) and
  ``path_from_url`` (the CLI and the Python API).  ``require_server_file_access``
  is the check the server side must make before it reads a file for a
  caller: the caller needs the privileges of ``pg_read_server_files``, as
  for ``COPY FROM`` a file or file_fdw.
* **Types**: ``describe(conn, query)`` gives each result column a PostgreSQL
  type from its *declared* type (``sqlite_types.pg_type``, which also
  renders values: ``formatters``, ``copy_lines``); ``estimate`` a row count.
* **Rows**: ``SQLiteReader(path)`` holds one connection and one read
  transaction for all its chunks, so that every chunk it streams sees the
  same state of the file; ``stream(sql, params)`` yields blocks of
  PostgreSQL COPY text, formatted in bounded batches.
* **Limits and errors**: ``MAX_READERS`` (one reader per file), the
  DMS_PARAMS setting that would override it (``worker_cap``), and
  ``classify(exc)`` (busy or locked files are transient).

The connection refuses, through SQLite's authorizer, everything a SELECT
does not need: ATTACH (which would open *other* files as the server's OS
user), writes, pragmas other than the catalog ones, transaction control in a
query, and ``load_extension``.  ``trusted_schema`` is off, as SQLite advises
for files whose schema we did not write.  User docs: docs/source-sqlite.md.
"""

from __future__ import annotations

import os
import pwd
import re
import sqlite3
import stat
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import sqlglot
from sqlglot import exp

from dms_pkg.backends.base import ConsistentPoint, SourceBackend
from dms_pkg.backends.endpoint import Endpoint
from dms_pkg.backends.sqlite_chunking import SQLiteSource
from dms_pkg.backends.sqlite_types import (
    OUT_OF_RANGE,
    Formatter,
    copy_lines,
    float_text,
    formatters,
    pg_type,
)
from dms_pkg.db.base import Database
from dms_pkg.db.faults import Fault
from dms_pkg.engine.columns import SourceColumn
from dms_pkg.errors import (
    INSUFFICIENT_PRIVILEGE,
    INVALID_PARAMETER_VALUE,
    OBJECT_NOT_IN_PREREQUISITE_STATE,
    DmsError,
)

__all__ = [
    "DBTYP", "DIALECT", "MAX_READERS", "SQLiteConnection", "SQLiteReader", "SQLiteSourceError",
    "as_error", "check_file", "classify", "connect", "copy_lines", "describe", "estimate",
    "float_text", "formatters", "path_from_row", "path_from_url", "path_of", "pg_type",
    "require_server_file_access", "worker_cap",
]

DBTYP = "SQLITE"
DIALECT = "sqlite"
# One reader per file: its one read transaction is what keeps every chunk of
# a run on one state of the file, and SQLite cannot share a read snapshot
# between connections.  See worker_cap() for the DMS_PARAMS override.
MAX_READERS = 1
WORKER_CAP_TYPE = "PARALLEL"  # DMS_PARAMS.PRTYP
WORKER_CAP_CODE = "MAPPER_MAX_WORKERS_SQLITE"  # DMS_PARAMS.PRCD (and environment name)

BUSY_TIMEOUT = 5.0  # seconds a statement waits for a writer's lock before SQLITE_BUSY
BATCH_ROWS = 2000  # most rows fetched and formatted at once
BLOCK_BYTES = 1 << 20  # wide rows: fewer rows per batch, so a block stays near this size
FIRST_BATCH_ROWS = 16

UNDEFINED_FILE = "58P01"
UNABLE_TO_CONNECT = "08001"
LOCK_NOT_AVAILABLE = "55P03"

SERVER_FILES_ROLE = "pg_read_server_files"


class SQLiteSourceError(DmsError):
    """A DmsError from the SQLite backend that also says whether a retry may cure it.

    The SQLSTATE alone does not: a missing file is 58P01 and an unreadable
    one 08001, classes that ``engine.retry`` counts as transient for a
    server, while for a file they will fail the same way every time.
    """

    def __init__(self, message: str, *, sqlstate: str, transient: bool = False,
                 detail: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, sqlstate=sqlstate, detail=detail, hint=hint)
        self.transient = transient


# --------------------------------------------------------------- where the file is

def _row_name(row: Mapping[str, Any]) -> str:
    return f"connection {row.get('conid')} ({row.get('connm')})"


def path_from_row(row: Mapping[str, Any]) -> Path:
    """The file a DMS_DBCONDTLS row of DBTYP SQLITE names.

    DBSRVNM holds the path, or CONSTR does as ``file=/path`` or
    ``sqlite:///path`` (both may be given if they agree).  A SQLite file has
    no host, port, login or password: those columns must be empty and
    PWDSRC NONE.  The path must be absolute: a relative one would be read
    from the server's data directory.
    """
    name = _row_name(row)
    dbtyp = str(row.get("dbtyp") or DBTYP).upper()
    if dbtyp != DBTYP:
        raise DmsError(f"{name} is a {dbtyp} connection, not a SQLite file",
                       sqlstate=INVALID_PARAMETER_VALUE)
    pwdsrc = str(row.get("pwdsrc") or "NONE").upper()
    if pwdsrc != "NONE":
        raise DmsError(
            f"{name} is a SQLite file and has PWDSRC {pwdsrc}; a SQLite file has no password",
            sqlstate=INVALID_PARAMETER_VALUE,
            hint="set PWDSRC to NONE and PWDREF to NULL: who may read the file is decided by "
            "its file permissions")
    for column, what in (("dbhost", "host"), ("dbport", "port"), ("usrnm", "login"),
                         ("pwdref", "password reference")):
        if row.get(column) not in (None, ""):
            raise DmsError(
                f"{name} is a SQLite file, which has no {what}: {column.upper()} must be empty",
                sqlstate=INVALID_PARAMETER_VALUE,
                hint="a SQLite file is read on the database server's own file system; put its "
                "absolute path in DBSRVNM")
    from_srvnm = str(row["dbsrvnm"]).strip() if row.get("dbsrvnm") else None
    from_constr = _path_from_constr(str(row["constr"]), name) if row.get("constr") else None
    if from_srvnm and from_constr and Path(from_srvnm) != from_constr:
        raise DmsError(
            f"{name} names two SQLite files: {from_srvnm} in DBSRVNM and {from_constr} in CONSTR",
            sqlstate=INVALID_PARAMETER_VALUE, hint="keep the path in one of them")
    chosen = from_constr or (Path(from_srvnm) if from_srvnm else None)
    if chosen is None:
        raise DmsError(f"{name} names no SQLite file", sqlstate=INVALID_PARAMETER_VALUE,
                       hint="put the file's absolute path in DBSRVNM")
    if not chosen.is_absolute():
        raise DmsError(
            f"{name} names the SQLite file {chosen}, which is not an absolute path",
            sqlstate=INVALID_PARAMETER_VALUE,
            hint="a relative path would be read from the server's data directory; give the "
            "whole path, for example /srv/data/shop.sqlite")
    return chosen


def _path_from_constr(constr: str, name: str) -> Path:
    text = constr.strip()
    if text.lower().startswith("sqlite:"):
        return path_from_url(text)
    if text.lower().startswith("file="):
        value = text[len("file="):].strip()
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        if value:
            return Path(value)
    raise DmsError(
        f"CONSTR of {name} does not name a SQLite file",
        sqlstate=INVALID_PARAMETER_VALUE,
        hint="use 'file=/path/to/shop.sqlite' or 'sqlite:///path/to/shop.sqlite', or put the "
        "path in DBSRVNM and leave CONSTR empty")


def path_from_url(url: str) -> Path:
    """The file of a ``sqlite:///path`` URL (``sqlite:////path`` too, as SQLAlchemy
    writes an absolute path).  A host, a query string or a relative path is refused."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() != "sqlite":
        raise DmsError(f"{url!r} is not a sqlite:/// URL", sqlstate=INVALID_PARAMETER_VALUE,
                       hint="write sqlite:///path/to/shop.sqlite")
    if parts.netloc or parts.query or parts.fragment:
        raise DmsError(
            f"the SQLite URL {url!r} has a host, a query or a fragment; a SQLite URL is only "
            "sqlite:/// and a path", sqlstate=INVALID_PARAMETER_VALUE,
            hint="write sqlite:///path/to/shop.sqlite (three slashes, then the absolute path); "
            "the file is always opened read-only")
    path = unquote(parts.path)
    if not path.startswith("/") or path == "/":
        raise DmsError(f"the SQLite URL {url!r} names no absolute path",
                       sqlstate=INVALID_PARAMETER_VALUE,
                       hint="write sqlite:///path/to/shop.sqlite")
    return Path("/" + path.lstrip("/"))


def os_user() -> str:
    """The OS user this process reads files as (inside the server: its own user)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def _access_hint(user: str) -> str:
    return (f"give the OS user {user} read permission on the file and search (x) permission on "
            "every directory above it, for example through a group it is in; inside the "
            "database server that user is the server's own")


def check_file(path: Path) -> None:
    """Refuse a path that is not a readable file for this process, naming the
    path and the OS user that tried."""
    user = os_user()
    try:
        st = path.stat()
    except FileNotFoundError:
        raise SQLiteSourceError(
            f"SQLite file {path} does not exist", sqlstate=UNDEFINED_FILE,
            hint="check the path (it is read on the file system of the process that reads it: "
            "inside the database server, the server's)") from None
    except NotADirectoryError:
        raise SQLiteSourceError(
            f"SQLite file {path} does not exist: a part of its path is a file, not a directory",
            sqlstate=UNDEFINED_FILE, hint="check the path") from None
    except PermissionError:
        raise SQLiteSourceError(
            f"SQLite file {path} cannot be reached by the OS user {user}: a directory above it "
            "does not let that user in", sqlstate=UNABLE_TO_CONNECT,
            hint=_access_hint(user)) from None
    if stat.S_ISDIR(st.st_mode):
        raise SQLiteSourceError(f"SQLite file {path} is a directory, not a file",
                                sqlstate=UNABLE_TO_CONNECT, hint="name the database file itself")
    if not os.access(path, os.R_OK):
        raise SQLiteSourceError(
            f"SQLite file {path} is not readable by the OS user {user}, which reads it",
            sqlstate=UNABLE_TO_CONNECT, hint=_access_hint(user))


def require_server_file_access(home: Database, path: Path) -> None:
    """Refuse to read ``path`` inside the server for a caller who may not read server files.

    Inside the server the file is read as the server's OS user, who can read
    far more than the caller should (other applications' databases, for a
    start).  PostgreSQL guards the same power -- ``COPY FROM`` a file,
    file_fdw's ``filename`` -- with the role ``pg_read_server_files``; a load
    from a SQLite file needs it too.  ``home`` is the caller's own session
    (``session_user`` is the caller even inside SECURITY DEFINER code).
    """
    rows = home.query(
        "SELECT session_user::text AS login, (r.rolsuper OR pg_catalog.pg_has_role("
        "session_user, $1, 'USAGE')) AS allowed FROM pg_catalog.pg_roles r"
        " WHERE r.rolname = session_user", [SERVER_FILES_ROLE])
    login = str(rows[0]["login"]) if rows else "this login"
    if not rows or not rows[0]["allowed"]:
        raise DmsError(
            f"reading the SQLite file {path} inside the server needs the privileges of "
            f"{SERVER_FILES_ROLE}, which {login} does not have",
            sqlstate=INSUFFICIENT_PRIVILEGE,
            hint=f"the file is read as the server's OS user; a superuser may GRANT "
            f"{SERVER_FILES_ROLE} TO {login} (as for COPY FROM a file), or load the file from "
            "outside the server with the dms command or the Python API")


# --------------------------------------------------------------- connecting

# Pragmas the catalog (and the chunk planner's catalog) reads; no other runs.
_CATALOG_PRAGMAS = frozenset({"table_info", "table_xinfo", "index_list", "index_info",
                              "index_xinfo", "foreign_key_list", "table_list"})
_READING = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE})
# What describe() does in the temp schema: create and drop its own view.
_DESCRIBING = frozenset({sqlite3.SQLITE_CREATE_TEMP_VIEW, sqlite3.SQLITE_DROP_TEMP_VIEW,
                         sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE})
_DENIED_FUNCTIONS = frozenset({"load_extension"})


class _Authorizer:
    """SQLite's authorizer for a source connection: SELECTs, catalog pragmas, and
    what this module runs itself (its transaction, describe()'s temp view)."""

    def __init__(self) -> None:
        self.describing = False
        self.own_transaction = False

    def __call__(self, action: int, arg1: str | None, arg2: str | None, db: str | None,
                 _trigger: str | None) -> int:
        if action in _READING:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION:
            denied = (arg2 or "").lower() in _DENIED_FUNCTIONS
            return sqlite3.SQLITE_DENY if denied else sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in _CATALOG_PRAGMAS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_UPDATE and arg1 == "sqlite_master":
            # Asked (column by column) whenever a table-valued pragma such as
            # pragma_table_info() is prepared; the file is read-only anyway.
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_TRANSACTION and self.own_transaction:
            return sqlite3.SQLITE_OK
        if self.describing and db == "temp" and action in _DESCRIBING:
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY


class SQLiteConnection(sqlite3.Connection):
    """A sqlite3 connection opened by ``connect``: read-only, with its authorizer."""

    dms_path: Path
    dms_authorizer: _Authorizer


def connect(path: Path | str, *, busy_timeout: float = BUSY_TIMEOUT) -> SQLiteConnection:
    """Open ``path`` read-only (``mode=ro``), checked to be a SQLite database.

    Autocommit mode (``isolation_level=None``): the module never opens a
    transaction behind our back; ``SQLiteReader`` opens its own.  The
    connection may be used from another thread than the one that opened it,
    but by one thread at a time.
    """
    path = Path(path).absolute()
    check_file(path)
    uri = f"file:{quote(str(path))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout, isolation_level=None,
                               check_same_thread=False, factory=SQLiteConnection)
    except sqlite3.Error as exc:
        raise as_error(exc, path) from None
    assert isinstance(conn, SQLiteConnection)
    conn.dms_path = path
    try:
        conn.execute("PRAGMA trusted_schema = OFF")
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        conn.dms_authorizer = _Authorizer()
        conn.set_authorizer(conn.dms_authorizer)
        # The first read: a file that is no database (or whose WAL index
        # cannot be opened) fails here rather than in the first chunk.
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        conn.close()
        raise as_error(exc, path) from None
    return conn


def path_of(conn: sqlite3.Connection) -> Path:
    """The file behind a caller's own sqlite3 connection (the Python API's
    ``source_conn``), so that a reader can open it read-only itself."""
    rows = conn.execute("SELECT file FROM pragma_database_list WHERE name = 'main'").fetchall()
    if not rows or not rows[0][0]:
        raise DmsError(
            "the SQLite connection is an in-memory or temporary database, which no other "
            "connection can read", sqlstate=INVALID_PARAMETER_VALUE,
            hint="write the data to a file (sqlite3.connect('/path/db.sqlite')) and pass that "
            "connection or a sqlite:///path URL")
    return Path(rows[0][0])


# --------------------------------------------------------------- describing

@contextmanager
def _describing(conn: sqlite3.Connection) -> Iterator[None]:
    guard = getattr(conn, "dms_authorizer", None)
    if guard is None:
        yield
        return
    guard.describing = True
    try:
        yield
    finally:
        guard.describing = False


def _statement(query: str) -> str:
    text = query.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text


def _without_binds(query: str) -> str:
    """The query with each bind parameter replaced by NULL (a view takes none);
    the types of the result columns do not depend on them."""
    tree = sqlglot.parse_one(query, read=DIALECT)
    return tree.transform(
        lambda node: exp.Null() if isinstance(node, exp.Placeholder) else node).sql(DIALECT)


def describe(conn: sqlite3.Connection, query: str) -> list[SourceColumn]:
    """The result columns of ``query`` with the PostgreSQL type of each (``pg_type``).

    SQLite itself resolves which declared type a column carries (through
    CTEs, subqueries, joins and views): the query becomes a temporary view,
    and ``pragma_table_xinfo`` reads the view's column types.  A column that
    is an expression has none and is ``text``.  Types come from declarations
    only, never from the values: a chunk must not change a column's type.
    Bind parameters (a chunk query's) are replaced by NULL for this.
    """
    view = exp.to_identifier(f"dms_describe_{uuid.uuid4().hex}", quoted=True).sql(DIALECT)
    name = view.strip('"')
    body = _statement(query)
    with _describing(conn):
        try:
            _run(conn, f"CREATE TEMP VIEW {view} AS {body}")
        except SQLiteSourceError as error:
            if "parameters are not allowed in views" not in error.message:
                raise
            _run(conn, f"CREATE TEMP VIEW {view} AS {_without_binds(body)}")
        try:
            rows = _run(conn, "SELECT name, type FROM pragma_table_xinfo(?, 'temp') ORDER BY cid",
                        (name,))
        finally:
            _run(conn, f"DROP VIEW temp.{view}")
    return [SourceColumn(str(column), 0, pg_type(declared)) for column, declared in rows]


def _run(conn: sqlite3.Connection, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
         ) -> list[tuple[Any, ...]]:
    try:
        return list(conn.execute(sql, params).fetchall())
    except (sqlite3.Error, OverflowError) as exc:
        raise as_error(exc, getattr(conn, "dms_path", None)) from None


def estimate(conn: sqlite3.Connection, query: str) -> int | None:
    """Rows of the query's driving table: from ``sqlite_stat1`` (ANALYZE) when it
    has them, else ``count(*)`` of the table; None for a view or a query with no
    driving table.  It counts the table, not the query (a WHERE may keep fewer).
    """
    from dms_pkg.chunking.analyze import analyze_query

    located = analyze_query(query, DIALECT, locate=True)
    table = located.paths[0].table if located.paths else None
    if table is None:
        return None
    schema = exp.to_identifier(table.db or "main", quoted=True)
    master = exp.table_("sqlite_master", db=schema.copy()).sql(DIALECT)
    kinds = _run(conn, f"SELECT type, name FROM {master} WHERE name = ? COLLATE NOCASE"
                 " AND type IN ('table', 'view')", (table.name,))
    if not kinds or kinds[0][0] != "table":
        return None
    stored_name = str(kinds[0][1])
    has_stats = _run(conn, f"SELECT 1 FROM {master} WHERE name = 'sqlite_stat1'")
    if has_stats:
        stat1 = exp.table_("sqlite_stat1", db=schema.copy()).sql(DIALECT)
        stats = _run(conn, f"SELECT stat FROM {stat1} WHERE tbl = ? COLLATE NOCASE",
                     (stored_name,))
        counts = [int(s[0].split()[0]) for s in stats if s[0] and s[0].split()[0].isdigit()]
        if counts:
            return max(counts)
    counted = exp.select(exp.Count(this=exp.Star())).from_(
        exp.table_(exp.to_identifier(stored_name, quoted=True), db=schema.copy()))
    return int(_run(conn, counted.sql(DIALECT))[0][0])


# --------------------------------------------------------------- the reader

class SQLiteReader:
    """One read-only connection and one read transaction for all of a run's chunks.

    The transaction starts when the reader opens (a first read pins it), so
    every chunk streamed through this reader sees the file as it was then:
    in WAL mode a writer's later commits are not seen; in rollback-journal
    mode a writer cannot commit at all while the reader is open (it gets
    SQLITE_BUSY), so close the reader as soon as the run is done.
    """

    def __init__(self, path: Path | str, *, busy_timeout: float = BUSY_TIMEOUT,
                 batch_rows: int = BATCH_ROWS, block_bytes: int = BLOCK_BYTES) -> None:
        self.path = Path(path)
        self.batch_rows = max(1, batch_rows)
        self.block_bytes = max(1, block_bytes)
        self.rows = 0  # rows of the last stream() that were read
        self._conn: SQLiteConnection | None = connect(self.path, busy_timeout=busy_timeout)
        try:
            self._transaction("BEGIN")
            _run(self._conn, "SELECT count(*) FROM sqlite_master")
        except BaseException:
            self._conn.close()
            self._conn = None
            raise

    @property
    def connection(self) -> SQLiteConnection:
        if self._conn is None:
            raise DmsError(f"the reader of SQLite file {self.path} is closed",
                           sqlstate="08003")
        return self._conn

    def source(self) -> SQLiteSource:
        """The reader's connection as the chunk planner's source: plan in the same
        state of the file that the chunks will be read from."""
        return SQLiteSource(self.connection)

    def describe(self, query: str) -> list[SourceColumn]:
        return describe(self.connection, query)

    def estimate(self, query: str) -> int | None:
        return estimate(self.connection, query)

    @contextmanager
    def stream(self, query_sql: str, params: Mapping[str, Any] | Sequence[Any] | None = None,
               columns: Sequence[SourceColumn] | None = None) -> Iterator[Iterator[bytes]]:
        """Run one chunk query; yield an iterator of COPY text blocks (UTF-8 bytes).

        ``columns`` are the query's columns as ``describe`` gave them (pass
        the base query's once; without them each chunk is described). Memory
        is one batch of rows and its block; a batch of wide rows is cut down
        so that its block stays near ``block_bytes``.
        """
        conn = self.connection
        described = list(columns) if columns is not None else describe(conn, query_sql)
        cursor = _cursor(conn, query_sql, params)
        self.rows = 0
        try:
            returned = len(cursor.description or ())
            if returned != len(described):
                raise DmsError(
                    f"the SQLite query returns {returned} columns but {len(described)} were "
                    "described", sqlstate="42804",
                    hint="describe the query the chunks are cut from, with the same select list")
            yield self._blocks(cursor, formatters(described))
        finally:
            cursor.close()

    def _blocks(self, cursor: sqlite3.Cursor, fmts: list[Formatter]) -> Iterator[bytes]:
        # A first small batch measures how wide the rows are; the next ones
        # hold as many rows as fit in block_bytes (at most batch_rows).
        size = min(self.batch_rows, FIRST_BATCH_ROWS)
        while True:
            try:
                rows = cursor.fetchmany(size)
            except (sqlite3.Error, OverflowError) as exc:
                raise as_error(exc, self.path) from None
            if not rows:
                return
            block = copy_lines(rows, fmts).encode()
            self.rows += len(rows)
            del rows
            size = max(1, min(self.batch_rows, size * self.block_bytes // max(len(block), 1)))
            yield block

    def cancel(self) -> None:
        """Interrupt the statement running now (from any thread); it fails with
        SQLITE_INTERRUPT, classified as a stop, not a transient failure."""
        if self._conn is not None:
            self._conn.interrupt()

    def close(self) -> None:
        """End the read transaction and close the file (again is harmless)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if conn.in_transaction:
                conn.dms_authorizer.own_transaction = True
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # closing releases the locks anyway
        finally:
            conn.close()

    def _transaction(self, statement: str) -> None:
        conn = self.connection
        conn.dms_authorizer.own_transaction = True
        try:
            _run(conn, statement)
        finally:
            conn.dms_authorizer.own_transaction = False

    def __enter__(self) -> SQLiteReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _cursor(conn: sqlite3.Connection, sql: str,
            params: Mapping[str, Any] | Sequence[Any] | None) -> sqlite3.Cursor:
    bound: Mapping[str, Any] | Sequence[Any] = (
        dict(params) if isinstance(params, Mapping) else tuple(params or ()))
    try:
        cursor = conn.execute(sql, bound)
    except (sqlite3.Error, OverflowError) as exc:
        raise as_error(exc, getattr(conn, "dms_path", None)) from None
    if cursor.description is None:
        cursor.close()
        raise DmsError("the SQLite source query returns no rows: it is not a query",
                       sqlstate="42601", hint="a source query is a SELECT (or WITH ... SELECT)")
    return cursor


# --------------------------------------------------------------- errors and limits

# SQLite primary result code -> (SQLSTATE, transient).
_BY_CODE: dict[int, tuple[str, bool]] = {
    sqlite3.SQLITE_BUSY: (LOCK_NOT_AVAILABLE, True),  # a writer holds the lock
    sqlite3.SQLITE_LOCKED: (LOCK_NOT_AVAILABLE, True),
    sqlite3.SQLITE_PROTOCOL: (LOCK_NOT_AVAILABLE, True),  # WAL lock race
    sqlite3.SQLITE_SCHEMA: ("40001", True),  # schema changed under a statement
    sqlite3.SQLITE_NOMEM: ("53200", True),
    sqlite3.SQLITE_FULL: ("53100", True),
    sqlite3.SQLITE_IOERR: ("58030", True),
    sqlite3.SQLITE_INTERRUPT: ("57014", False),  # our own cancel(): a stop
    sqlite3.SQLITE_CANTOPEN: (UNABLE_TO_CONNECT, False),
    sqlite3.SQLITE_NOTADB: (UNABLE_TO_CONNECT, False),
    sqlite3.SQLITE_CORRUPT: ("XX001", False),
    sqlite3.SQLITE_READONLY: ("25006", False),
    sqlite3.SQLITE_AUTH: (INSUFFICIENT_PRIVILEGE, False),
    sqlite3.SQLITE_PERM: (INSUFFICIENT_PRIVILEGE, False),
    sqlite3.SQLITE_TOOBIG: ("54000", False),
    sqlite3.SQLITE_MISMATCH: ("42804", False),
    sqlite3.SQLITE_RANGE: ("42P02", False),  # a bind parameter index out of range
    sqlite3.SQLITE_CONSTRAINT: ("23000", False),
}
# SQLITE_ERROR covers every SQL error; its message is all there is to go by.
_BY_MESSAGE: tuple[tuple[str, str], ...] = (
    ("no such table", "42P01"),
    ("no such column", "42703"),
    ("no such function", "42883"),
    ("not authorized", INSUFFICIENT_PRIVILEGE),  # a function the authorizer denied
    ("ambiguous column name", "42702"),
    ("syntax error", "42601"),
    ("incomplete input", "42601"),
    ("could not decode to utf-8", "22021"),
    ("you did not supply a value for binding parameter", "42P02"),
    ("incorrect number of bindings", "42P02"),
    ("you can only execute one statement at a time", "42601"),
    ("cannot operate on a closed database", "08003"),
)


# Extended result codes that say more than their primary code.
_BY_EXTENDED_CODE: dict[int, tuple[str, bool]] = {
    # WAL mode: the -shm file is missing and this user may not create it.
    sqlite3.SQLITE_READONLY_DIRECTORY: (UNABLE_TO_CONNECT, False),
    sqlite3.SQLITE_READONLY_CANTINIT: (UNABLE_TO_CONNECT, False),
    # A hot journal left by a writer that crashed; the next writer rolls it back.
    sqlite3.SQLITE_READONLY_ROLLBACK: (OBJECT_NOT_IN_PREREQUISITE_STATE, True),
}


def _primary_code(exc: BaseException) -> int | None:
    """SQLite's primary result code of ``exc`` (its extended code's low byte)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def classify(exc: BaseException) -> tuple[str, str, bool]:
    """(SQLSTATE, message, transient) of an error raised while reading SQLite.

    The message is SQLite's own (``database is locked``); only a busy or
    locked database, a WAL lock race, a changed schema and lack of memory,
    disk or I/O are worth a retry.
    """
    if isinstance(exc, SQLiteSourceError):
        return exc.sqlstate, exc.message, exc.transient
    if isinstance(exc, DmsError):
        return exc.sqlstate, exc.message, False
    message = str(exc)
    if isinstance(exc, OverflowError):
        return OUT_OF_RANGE, message, False
    if not isinstance(exc, sqlite3.Error):
        return "XX000", message, False
    extended = getattr(exc, "sqlite_errorcode", None)
    if extended in _BY_EXTENDED_CODE:
        sqlstate, transient = _BY_EXTENDED_CODE[extended]
        return sqlstate, message, transient
    code = _primary_code(exc)
    if code is not None and code in _BY_CODE:
        sqlstate, transient = _BY_CODE[code]
        return sqlstate, message, transient
    lowered = message.lower()
    for fragment, sqlstate in _BY_MESSAGE:
        if fragment in lowered:
            return sqlstate, message, False
    if isinstance(exc, sqlite3.InterfaceError):
        return "42804", message, False  # a bind value of a type sqlite3 cannot store
    if isinstance(exc, sqlite3.DataError):
        return "22000", message, False
    return "42000", message, False


def as_error(exc: BaseException, path: Path | None = None) -> SQLiteSourceError:
    """``exc`` as a SQLiteSourceError: SQLite's message, a SQLSTATE, and a hint where
    there is something to do about it."""
    sqlstate, message, transient = classify(exc)
    where = f"SQLite file {path}" if path is not None else "the SQLite file"
    hint = None
    if sqlstate == LOCK_NOT_AVAILABLE:
        message = f"{where} is locked by another connection ({message})"
        hint = ("a writer holds the file; the chunk is retried. In rollback-journal mode "
                "writers and readers exclude each other: WAL mode (PRAGMA journal_mode=WAL) "
                "lets them run side by side")
    elif sqlstate == INSUFFICIENT_PRIVILEGE and message == "not authorized":
        message = "the SQLite source runs queries only: that statement is not authorized"
        hint = ("a source query is a SELECT; writes, ATTACH, transaction control and pragmas "
                "other than the catalog ones (table_info, index_list, ...) are refused")
    elif getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_READONLY_DIRECTORY,
                                                    sqlite3.SQLITE_READONLY_CANTINIT):
        user = os_user()
        message = (f"{where} is in WAL mode, and the OS user {user} can neither open its -shm "
                   f"file nor create it ({message})")
        hint = (f"give {user} write permission on the file's directory, or keep the -wal and "
                "-shm files in place (they are while a program has the database open), or "
                "switch the file to rollback-journal mode: PRAGMA journal_mode=DELETE")
    elif getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_READONLY_ROLLBACK:
        message = f"{where} has a hot journal left by a writer that stopped mid-write ({message})"
        hint = ("a read-only connection cannot roll it back; the next program that opens the "
                "file read-write does (for example: sqlite3 FILE 'PRAGMA integrity_check')")
    elif _primary_code(exc) == sqlite3.SQLITE_NOTADB:
        message = f"{where} is not a SQLite database ({message})"
        hint = "check the path: a SQLite 3 database file starts with 'SQLite format 3'"
    elif sqlstate == UNABLE_TO_CONNECT:
        user = os_user()
        message = f"{where} cannot be opened by the OS user {user} ({message})"
        hint = (f"{_access_hint(user)}. A file in WAL mode also needs its -wal and -shm files "
                f"present, or write permission for {user} on its directory to create them")
    return SQLiteSourceError(message, sqlstate=sqlstate, transient=transient, hint=hint)


def worker_cap(value: object = None) -> int:
    """The worker cap for SQLite sources, with its DMS_PARAMS override checked.

    Proposed home of the override: DMS_PARAMS PRTYP 'PARALLEL', PRCD
    'MAPPER_MAX_WORKERS_SQLITE' (the environment variable of the same name
    above it), beside MAPPER_MAX_WORKERS, as issue 13's ``warehouse_limits``
    has one cap per dialect.  For SQLite the only value is 1: several readers
    could not share one state of the file.
    """
    if value is None or value == "":
        return MAX_READERS
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"[+-]?\d+", text) or int(text) != MAX_READERS:
        raise DmsError(
            f"{WORKER_CAP_CODE} must be {MAX_READERS} (from {MAX_READERS} to {MAX_READERS}), "
            f"got {value!r}", sqlstate=INVALID_PARAMETER_VALUE,
            hint="a SQLite file is read by one reader, whose one read transaction keeps every "
            "chunk on the same state of the file; more readers could not share it")
    return MAX_READERS


# --------------------------------------------------------------- the backend
#
# What the runtime calls (dms_pkg.backends.base): everything above, behind the
# one protocol every source database implements.


class _Planning:
    """A SQLite file as the planner sees it: one read transaction (a reader)."""

    def __init__(self, reader: SQLiteReader) -> None:
        self.reader = reader

    @property
    def planner(self) -> SQLiteSource:
        return self.reader.source()

    def describe(self, query: str) -> list[SourceColumn]:
        return self.reader.describe(query)

    def estimate(self, query: str) -> int | None:
        return self.reader.estimate(query)

    def notes(self, tree: exp.Query) -> list[str]:
        return []

    def probe(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in _run(self.reader.connection, sql)]


class _ChunkReader:
    """A worker's reader of a SQLite file (base.ChunkReader): one read transaction
    for every chunk, COPY text made in bounded batches."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._reader: SQLiteReader | None = None
        self._columns: list[SourceColumn] | None = None

    def _open(self) -> SQLiteReader:
        if self._reader is None:
            self._reader = SQLiteReader(self.path)
        return self._reader

    @contextmanager
    def copy(self, chunk: Any, copy_format: str = "text") -> Iterator[Iterator[bytes]]:
        if copy_format != "text":
            raise DmsError("a SQLite source is read as COPY text", sqlstate="0A000")
        reader = self._open()
        if self._columns is None:  # every chunk has the run's select list
            self._columns = reader.describe(chunk.query_sql)
        with reader.stream(chunk.query_sql, chunk.params, self._columns) as blocks:
            yield blocks

    @contextmanager
    def rows(self, chunk: Any, batch_size: int) -> Iterator[Iterator[list[dict[str, Any]]]]:
        cursor = _cursor(self._open().connection, chunk.query_sql, chunk.params)
        names = [d[0] for d in cursor.description or ()]

        def batches() -> Iterator[list[dict[str, Any]]]:
            while True:
                try:
                    rows = cursor.fetchmany(batch_size)
                except (sqlite3.Error, OverflowError) as exc:
                    raise as_error(exc, self.path) from None
                if not rows:
                    return
                yield [dict(zip(names, row, strict=True)) for row in rows]

        try:
            yield batches()
        finally:
            cursor.close()

    @property
    def handle(self) -> int | None:
        return None  # a stop waits for the chunk (a local file reads fast)

    def usable(self) -> bool:
        return True

    def reset(self) -> None:
        pass  # the read transaction goes on: a failed chunk does not end it

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def _endpoint(path: Path, conid: int | None = None, name: str | None = None) -> Endpoint:
    return Endpoint(conid, name or f"SQLite file {path}", DBTYP, params={"path": str(path)},
                    shown=str(path))


def _path(endpoint: Any) -> Path:
    return Path(str(endpoint.params["path"]))


class SQLiteBackend(SourceBackend):
    NAME = "sqlite"
    LABEL = "SQLite"
    DBTYPS = (DBTYP,)
    DIALECT = DIALECT
    MAX_READERS = MAX_READERS
    URL_SCHEMES = ("sqlite",)
    DRIVER_MODULES = ("sqlite3",)

    def endpoint(self, row: Mapping[str, Any], caller: str | None) -> Any:
        return _endpoint(path_from_row(row), int(row["conid"]), str(row["connm"]))

    def redact(self, text: str) -> str:
        return text  # a path holds no secret

    def authorize(self, home: Any, endpoint: Any) -> None:
        require_server_file_access(home, _path(endpoint))

    def endpoint_from_url(self, url: str) -> Any:
        return _endpoint(path_from_url(url))

    def endpoint_from_connection(self, conn: Any) -> Any:
        return _endpoint(path_of(conn))

    @contextmanager
    def planning(self, endpoint: Any) -> Iterator[_Planning]:
        with SQLiteReader(_path(endpoint)) as reader:
            yield _Planning(reader)

    def reader(self, endpoint: Any, *, application_name: str | None,
               search_path: str | None, options: Mapping[str, Any]) -> _ChunkReader:
        return _ChunkReader(_path(endpoint))

    def consistent_point(self, endpoint: Any, *, tables: list[str], readers: int,
                         application_name: str | None, search_path: str | None,
                         options: Mapping[str, Any] | None = None
                         ) -> ConsistentPoint:
        return ConsistentPoint(None, "one reader: its read transaction is the run's "
                               "moment (SQLite files are read by one worker)")

    def classify(self, exc: BaseException) -> Fault | None:
        if not isinstance(exc, sqlite3.Error | SQLiteSourceError | OverflowError):
            return None
        error = exc if isinstance(exc, SQLiteSourceError) else as_error(exc)
        return Fault(error.sqlstate, error.message, error.detail, error.hint,
                     transient=error.transient)
