"""MariaDB/MySQL sources: DBTYP MYSQL and MARIADB behind the runtime's protocol.

* **connect** (``mysql_connect``): rows by parts, secrets from PWDSRC ENV
  only, logins with SUPER refused, the client's password through a pipe;
* **types** (``mysql_types``): declared types parsed by sqlglot and mapped to
  PostgreSQL types, each column printed as COPY text by the server;
* **reading** (``mysql_reader``): one ``mariadb`` client per worker, in one
  read-only consistent-snapshot transaction, streaming chunks with no
  per-row Python;
* **consistency** (``consistent_point``): mydumper's way -- a brief
  ``FLUSH TABLES WITH READ LOCK`` (or ``LOCK TABLES ... READ`` of the
  driving table where the login may not flush) while every worker starts
  its transaction, released as soon as they have (``ConsistentPoint.started``);
  ``mysql_consistency => 'none'`` for logins that may lock nothing;
* **errors** (``mysql_errors``): MariaDB error numbers as SQLSTATEs with a
  retry verdict; **cancel**: ``KILL QUERY`` of the reader's thread.

User docs: docs/source-mysql.md.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

import sqlglot
from sqlglot import exp

from dms_pkg.backends.base import ConsistentPoint, SourceBackend
from dms_pkg.backends.endpoint import Endpoint
from dms_pkg.backends.mysql_connect import (
    URL_SCHEMES,
    check_login,
    connect,
    describe,
    params_from_row,
    params_from_url,
    redact,
)
from dms_pkg.backends.mysql_errors import MySQLError, from_pymysql
from dms_pkg.backends.mysql_reader import Session, ZeroDateCheck, bind, open_session
from dms_pkg.backends.mysql_types import (
    MySQLColumn,
    column,
    field_type,
    quote_name,
    render_select,
)
from dms_pkg.db.binds import ParamStyle
from dms_pkg.db.faults import Fault
from dms_pkg.db.sources import PyMySQLSource
from dms_pkg.engine.columns import SourceColumn
from dms_pkg.errors import INSUFFICIENT_PRIVILEGE, INVALID_PARAMETER_VALUE, DmsError

LOCK_WAIT_TIMEOUT = 30  # seconds FLUSH TABLES WITH READ LOCK waits for running statements
CONSISTENCY = ("lock", "none")
ZERO_DATES = ("error", "null")
READERS = ("auto", "client", "pymysql")


def _password(endpoint: Endpoint) -> str | None:
    return endpoint.secret()


def _connect(endpoint: Endpoint) -> Any:
    params = dict(endpoint.params["connect"])
    conn = connect(params, _password(endpoint), where=endpoint.describe())
    if endpoint.params.get("check_login"):
        try:
            check_login(conn, endpoint.describe())
        except BaseException:
            conn.close()
            raise
    return conn


# ------------------------------------------------------------------ describing

def describe_query(conn: Any, query: str) -> list[MySQLColumn]:
    """The columns ``query`` returns, each with its PostgreSQL type (no row read)."""
    try:
        tree = sqlglot.parse_one(query, dialect="mysql")
    except sqlglot.errors.ParseError:
        tree = None
    limited = tree is None or not isinstance(tree, exp.Select) or (
        tree.args.get("limit") is not None)
    probe = f"SELECT * FROM ({query}) AS dms_q LIMIT 0" if limited else f"{query} LIMIT 0"
    with conn.cursor() as cur:
        cur.execute(probe)
        fields = list(cur._result.fields) if cur._result is not None else []
        cur.execute("SELECT DATABASE()")
        current = (cur.fetchone() or (None,))[0]
    # The database of a table the query names without one is the session's.
    sources = {t.name: t.db or None for t in tree.find_all(exp.Table)} if tree else {}

    def origin(f: Any) -> tuple[str, str, str]:
        db = f.db.decode() if isinstance(f.db, bytes) else str(f.db or "")
        table = f.org_table or ""
        return (db or sources.get(table) or current or "", table, f.org_name or "")

    origins: dict[tuple[str, str], set[str]] = {}
    for f in fields:
        if f.org_table and f.org_name:
            schema, table, name = origin(f)
            origins.setdefault((schema, table), set()).add(name)
    declared = _declared(conn, origins)
    out: list[MySQLColumn] = []
    for f in fields:
        found = declared.get(origin(f))
        if found is not None:
            mysql_type, is_json = found
            out.append(column(f.name, mysql_type, is_json=is_json))
        else:
            out.append(column(f.name, field_type(f.type_code, f.length, f.scale, f.flags,
                                                 f.charsetnr)))
    return out


def _declared(conn: Any, origins: Mapping[tuple[str, str], set[str]]
              ) -> dict[tuple[str, str, str], tuple[str, bool]]:
    """(schema, table, column) -> (COLUMN_TYPE, is JSON) for the columns named."""
    if not origins:
        return {}
    pairs = list(origins)
    where = " OR ".join(["(TABLE_SCHEMA = %s AND TABLE_NAME = %s)"] * len(pairs))
    args = [v for pair in pairs for v in pair]
    with conn.cursor() as cur:
        cur.execute("SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, DATA_TYPE"
                    f" FROM information_schema.COLUMNS WHERE {where}", args)
        columns = cur.fetchall()
        json_checks: set[tuple[str, str, str]] = set()
        try:
            cur.execute("SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CHECK_CLAUSE"
                        " FROM information_schema.CHECK_CONSTRAINTS"
                        f" WHERE {where.replace('TABLE_SCHEMA', 'CONSTRAINT_SCHEMA')}", args)
            for schema, table, clause in cur.fetchall():
                text = str(clause).strip().lower()
                if text.startswith("json_valid(`") and text.endswith("`)"):
                    json_checks.add((schema, table, str(clause).strip()[12:-2]))
        except Exception:  # MySQL before 8.0.16 has no such view
            conn.rollback()
    return {(s, t, c): (str(ctype), str(dtype).lower() == "json" or (s, t, c) in json_checks)
            for s, t, c, ctype, dtype in columns}


def _source_columns(columns: list[MySQLColumn]) -> list[SourceColumn]:
    return [SourceColumn(c.name, 0, c.pg_type) for c in columns]


# ------------------------------------------------------------------ planning

class _Planning:
    """A MariaDB source as the planner sees it: one connection, in UTC."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self._planner = PyMySQLSource(conn)

    @property
    def planner(self) -> PyMySQLSource:
        return self._planner

    def describe(self, query: str) -> list[SourceColumn]:
        return _source_columns(_guarded(lambda: describe_query(self.conn, query)))

    def estimate(self, query: str) -> int | None:
        try:
            with self.conn.cursor() as cur:
                cur.execute(f"EXPLAIN {query}")
                names = [d[0].lower() for d in cur.description or ()]
                row = cur.fetchone()
        except Exception:  # an estimate is a nicety: never fail a run for it
            with suppress(Exception):
                self.conn.rollback()
            return None
        if not row or "rows" not in names:
            return None
        rows = float(row[names.index("rows")] or 0)
        if "filtered" in names and row[names.index("filtered")] is not None:
            rows *= float(row[names.index("filtered")]) / 100.0
        return int(rows)

    def notes(self, tree: exp.Query) -> list[str]:
        return []

    def probe(self, sql: str) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = _guarded(lambda: self._planner.fetch(sql))
        return rows


def _guarded(call: Any) -> Any:
    """``call()`` with pymysql's errors as MySQLError (classified by the backend)."""
    try:
        return call()
    except MySQLError:
        raise
    except Exception as exc:
        error = from_pymysql(exc)
        if error is None:
            raise
        raise error from None


# ------------------------------------------------------------------ reading

class _Reader:
    """A worker's reader of a MariaDB source (base.ChunkReader)."""

    def __init__(self, endpoint: Endpoint, options: Mapping[str, Any]) -> None:
        self.endpoint = endpoint
        self.reader = _choice(options, "mysql_reader", READERS)
        self.zero_dates_null = _choice(options, "mysql_zero_dates", ZERO_DATES) == "null"
        self.snapshot = options.get("snapshot", True) is not False
        self._session: Session | None = None
        self._columns: list[MySQLColumn] | None = None
        self._lost = False  # a connection of this reader failed: the server may have restarted

    def _open(self) -> Session:
        if self._session is None:
            self._session = open_session(
                self.endpoint.params["connect"], _password(self.endpoint), reader=self.reader,
                snapshot=self.snapshot, where=self.endpoint.describe())
        return self._session

    def _describe(self, query: str) -> list[MySQLColumn]:
        if self._columns is None:  # every chunk has the run's select list
            conn = _connect(self.endpoint)
            try:
                self._columns = _guarded(lambda: describe_query(conn, query))
            finally:
                conn.close()
        return self._columns

    @contextmanager
    def copy(self, chunk: Any, copy_format: str = "text") -> Iterator[Iterator[bytes]]:
        if copy_format != "text":
            raise DmsError("a MariaDB/MySQL source is read as COPY text", sqlstate="0A000")
        query = bind(chunk.query_sql, chunk.params)
        try:
            columns = self._describe(query)
            statement = render_select(columns, query, zero_dates_null=self.zero_dates_null)
            session = self._open()
            check = None if self.zero_dates_null else ZeroDateCheck(columns)

            def blocks() -> Iterator[bytes]:
                for block in session.copy(statement):
                    if check is not None:
                        check.check(block)
                    yield block

            yield blocks()
        except (MySQLError, DmsError) as exc:
            # A connection that failed on any of this reader's links (the
            # describe's pymysql login, the client session) may mean the server
            # restarted: a session opened before it is gone too, even if it has
            # not said so yet (it waits idle on its stdin).  Reusing it would
            # fail the chunk's next try once more, on "Lost connection".
            if _connection_lost(exc):
                self._lost = True
            raise

    @contextmanager
    def rows(self, chunk: Any, batch_size: int) -> Iterator[Iterator[list[dict[str, Any]]]]:
        # A transformation needs Python values: pymysql's own, on a session of
        # its own (it reads as of its own moment: docs/source-mysql.md).
        import pymysql.cursors

        conn = _connect(self.endpoint)
        try:
            with conn.cursor(pymysql.cursors.SSDictCursor) as cur:
                cur.execute(bind(chunk.query_sql, chunk.params))

                def batches() -> Iterator[list[dict[str, Any]]]:
                    while rows := cur.fetchmany(batch_size):
                        yield list(rows)

                yield batches()
        finally:
            conn.close()

    @property
    def handle(self) -> int | None:
        # Opened here: the chunk's start records the thread id, which is how
        # the coordinator sees that this worker's transaction has begun.
        return self._open().thread_id

    def usable(self) -> bool:
        return not self._lost and (self._session is None or not self._session.broken)

    def reset(self) -> None:
        if self._lost or (self._session is not None and self._session.broken):
            self.close()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
        self._lost = False


def _connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says a connection to the source failed or the server is
    shutting down (SQLSTATE classes 08 and 57P0x), not that the query was wrong."""
    sqlstate = exc.pg_sqlstate if isinstance(exc, MySQLError) else getattr(exc, "sqlstate", "")
    return str(sqlstate or "").startswith(("08", "57P0"))


def _choice(options: Mapping[str, Any], name: str, allowed: tuple[str, ...]) -> str:
    value = options.get(name) or allowed[0]
    if value not in allowed:
        raise DmsError(f"{name} must be one of {', '.join(allowed)}, got {value!r}",
                       sqlstate=INVALID_PARAMETER_VALUE)
    return str(value)


# ------------------------------------------------------------------ consistency

def _lock(conn: Any, tables: list[str], where: str) -> str:
    """Hold the source still: FLUSH TABLES WITH READ LOCK, or LOCK TABLES ... READ
    of ``tables`` where the login may not flush.  Returns what it took."""
    import pymysql

    with conn.cursor() as cur:
        cur.execute(f"SET SESSION lock_wait_timeout = {LOCK_WAIT_TIMEOUT}")
        try:
            cur.execute("FLUSH TABLES WITH READ LOCK")
            return "FLUSH TABLES WITH READ LOCK"
        except pymysql.err.OperationalError as exc:
            if exc.args[0] not in (1227, 1045, 1044):  # not a refusal: say what it is
                raise
        if not tables:
            raise DmsError(
                f"{where}: the login may not run FLUSH TABLES WITH READ LOCK (it lacks RELOAD), "
                "and the query names no table to LOCK TABLES ... READ instead",
                sqlstate=INSUFFICIENT_PRIVILEGE, hint=_LOCK_HINT)
        names = ", ".join(_table_name(t) for t in tables)
        try:
            cur.execute(f"LOCK TABLES {', '.join(_table_name(t) + ' READ' for t in tables)}")
        except pymysql.err.OperationalError as exc:
            if exc.args[0] not in (1227, 1044, 1142, 1045):
                raise
            raise DmsError(
                f"{where}: the login may neither run FLUSH TABLES WITH READ LOCK (RELOAD) nor "
                f"LOCK TABLES {names} READ (LOCK TABLES), which several workers need to read "
                "one moment of the source", sqlstate=INSUFFICIENT_PRIVILEGE,
                hint=_LOCK_HINT) from None
        return f"LOCK TABLES {names} READ"


_LOCK_HINT = ("GRANT RELOAD ON *.* (or LOCK TABLES ON the database) to the login; or run "
              "with p_params => '{\"mysql_consistency\": \"none\"}', where each worker reads "
              "its own moment, or with max_workers 1; nothing was written")


def _table_name(name: str) -> str:
    return ".".join(quote_name(part.strip("`")) for part in name.split("."))


class MySQLSourceBackend(SourceBackend):
    """DBTYP MYSQL and MARIADB behind the runtime's protocol."""

    NAME = "mysql"
    LABEL = "MariaDB/MySQL"
    DBTYPS = ("MYSQL", "MARIADB")
    DIALECT = "mysql"
    PARAM_STYLE = ParamStyle.PYFORMAT
    URL_SCHEMES = URL_SCHEMES
    DRIVER_MODULES = ("pymysql",)

    def endpoint(self, row: Mapping[str, Any], caller: str | None) -> Endpoint:
        params = params_from_row(row, caller)
        pwdsrc = str(row.get("pwdsrc") or "NONE").upper()
        return Endpoint(int(row["conid"]), str(row["connm"]), str(row["dbtyp"]),
                        params={"connect": params, "check_login": True},
                        password_env=str(row["pwdref"]) if pwdsrc == "ENV" else None,
                        shown=describe(params))

    def redact(self, text: str) -> str:
        return redact(text)

    def endpoint_from_url(self, url: str) -> Endpoint:
        params = params_from_url(url)
        password = params.pop("password", None)
        shown = describe(params)
        return Endpoint(None, f"MariaDB/MySQL source {shown}", "MYSQL",
                        params={"connect": params}, password=password, shown=shown)

    def endpoint_from_connection(self, conn: Any) -> Endpoint:
        params: dict[str, Any] = {"user": _text(conn.user)}
        if getattr(conn, "unix_socket", None):
            params["unix_socket"] = conn.unix_socket
        else:
            params["host"], params["port"] = conn.host, conn.port
        if getattr(conn, "db", None):
            params["database"] = _text(conn.db)
        password = _text(getattr(conn, "password", None)) or None
        shown = describe(params)
        return Endpoint(None, f"MariaDB/MySQL source {shown}", "MYSQL",
                        params={"connect": params}, password=password, shown=shown)

    @contextmanager
    def planning(self, endpoint: Endpoint) -> Iterator[_Planning]:
        conn = _connect(endpoint)
        try:
            yield _Planning(conn)
        finally:
            with suppress(Exception):
                conn.close()

    def reader(self, endpoint: Endpoint, *, application_name: str | None,
               search_path: str | None, options: Mapping[str, Any]) -> _Reader:
        return _Reader(endpoint, options)

    def consistency_note(self, options: Mapping[str, Any], workers: int) -> str | None:
        mode = _choice(options, "mysql_consistency", CONSISTENCY)
        if workers > 1 and mode == "none":
            return ("consistency: mysql_consistency is none, so each worker reads the source "
                    "as of the moment its own transaction began; rows written meanwhile may "
                    "be seen by some chunks and not others")
        return None

    def consistent_point(self, endpoint: Endpoint, *, tables: list[str], readers: int,
                         application_name: str | None, search_path: str | None,
                         options: Mapping[str, Any] | None = None) -> ConsistentPoint:
        options = options or {}
        mode = _choice(options, "mysql_consistency", CONSISTENCY)
        if mode == "none" or readers <= 1:
            why = ("one worker: its transaction is the run's moment" if readers <= 1 else
                   "mysql_consistency none: each worker reads as of its own transaction's start")
            return ConsistentPoint(None, why)
        where = endpoint.describe()
        token = "dms_point_" + secrets.token_hex(8)
        holder = _connect(endpoint)
        try:
            how = _lock(holder, tables, where)
            # A session of the coordinator's own in the same moment (a checkpoint's max).
            session = _connect(endpoint)
            with session.cursor() as cur:
                cur.execute("START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT")
        except BaseException:
            holder.close()
            raise

        def release() -> None:
            with suppress(Exception), holder.cursor() as cur:
                cur.execute("UNLOCK TABLES")
            with suppress(Exception):
                holder.close()

        def close() -> None:
            with suppress(Exception):
                session.close()

        return ConsistentPoint(token, f"every worker began its transaction while {how} held "
                               "the source still: all read one moment", on_started=release,
                               on_close=close, session=session)

    def checkpoint_value(self, point: ConsistentPoint, query: str, column: str) -> str | None:
        sql = f"SELECT MAX(dms_q.{quote_name(column)}) FROM ({bind(query, {})}) AS dms_q"
        conn = point.session
        if conn is None:
            raise DmsError("a checkpoint column on a MariaDB source needs the run's snapshot",
                           sqlstate=INVALID_PARAMETER_VALUE, hint="leave snapshot on")
        with conn.cursor() as cur:
            cur.execute(sql)
            row = cur.fetchone()
        value = row[0] if row else None
        if value is None:
            return None
        if isinstance(value, dt.datetime):
            return value.isoformat(sep=" ")
        return value.isoformat() if isinstance(value, dt.date) else str(value)

    def classify(self, exc: BaseException) -> Fault | None:
        error = exc if isinstance(exc, MySQLError) else from_pymysql(exc)
        if error is None:
            return None
        return Fault(error.pg_sqlstate, f"{error.message} (MariaDB error {error.errno})",
                     transient=error.transient)

    def cancel(self, endpoint: Endpoint, handle: int) -> bool:
        try:
            conn = _connect(endpoint)
        except Exception:
            return False
        try:
            with conn.cursor() as cur:
                cur.execute(f"KILL QUERY {int(handle)}")
            return True
        except Exception:
            return False
        finally:
            with suppress(Exception):
                conn.close()


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)
