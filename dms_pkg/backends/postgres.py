"""PostgreSQL as a source: the engine's own database or any other server.

* **Connecting**: libpq connection strings.  A DMS_DBCONDTLS row names where
  its secret lives (PWDSRC ``NONE``, ``PGSERVICE`` -- ``service=<PWDREF>``,
  ``PGPASS`` -- libpq's password file, ``ENV`` -- the variable ``<PWDREF>``);
  a row that names no login logs in as the caller.  Every connection a row
  makes is checked after login by :class:`Guard` (docs/roles.md).
* **Reading**: ``COPY (<chunk query>) TO STDOUT`` in binary or text, read by
  ``psql`` (C reads the rows: no per-row Python) or by psycopg, in a
  transaction pinned to the run's exported snapshot; or row batches for a
  transformation.
* **Consistency**: the coordinator exports a snapshot and keeps its
  transaction open for the run; every chunk imports it.
* **Errors**: PostgreSQL's own SQLSTATEs; **cancel**: ``pg_cancel_backend``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import IsolationLevel, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from dms_pkg.backends.base import Block, Chunk, ConsistentPoint, SnapshotGone, SourceBackend
from dms_pkg.backends.endpoint import Endpoint
from dms_pkg.backends.postgres_psql import (
    PsqlSession,
    SnapshotImportError,
    SourceSession,
    copy_out,
    find_psql,
    streamable,
)
from dms_pkg.db import faults
from dms_pkg.db.base import Database, Session
from dms_pkg.db.binds import ParamStyle, escape_pyformat, pyformat_to_numeric
from dms_pkg.db.interrupts import InterruptibleConnection
from dms_pkg.db.pg_values import keep_out_of_range_as_text
from dms_pkg.db.psycopg_db import PsycopgDatabase
from dms_pkg.db.sources import PsycopgSource, SourceConnection
from dms_pkg.dsn import redact
from dms_pkg.engine import columns as cols
from dms_pkg.errors import (
    INSUFFICIENT_PRIVILEGE,
    INVALID_PARAMETER_VALUE,
    SQLCLIENT_UNABLE_TO_ESTABLISH,
    DmsError,
)

if TYPE_CHECKING:
    from sqlglot import exp

LOOPBACK_HINT = (
    "the server must let its own OS user log in as each dms login over its Unix socket "
    "without a password (peer authentication with an ident map, or trust on a socket only "
    "that user can reach): see docs/roles.md, \"Trust model\"")


def local(conninfo: str, *, loopback: bool = True) -> Endpoint:
    """This database, reached through ``conninfo`` (the loopback route, unless
    ``loopback`` is false: a DSN a ``dms worker`` process was given)."""
    return Endpoint(None, "this database", "POSTGRESQL", conninfo, loopback=loopback)


# -- connecting ------------------------------------------------------------------


def _names_a_login(parts: Mapping[str, Any]) -> bool:
    """Whether libpq would log in as a user the connection names (or a service might)."""
    return bool(parts.get("user") or parts.get("service"))


def endpoint_from_row(row: Mapping[str, Any], default_user: str | None = None) -> Endpoint:
    """An Endpoint from a DMS_DBCONDTLS row of DBTYP POSTGRESQL.

    A row that names no login (no USRNM, no user or service in CONSTR) logs in
    as ``default_user``: the caller, like a user mapping FOR CURRENT_USER, so
    that a connection to this very server runs with the caller's privileges.
    """
    parts: dict[str, Any] = {}
    if row.get("constr"):
        try:
            parts.update(conninfo_to_dict(row["constr"]))
        except psycopg.ProgrammingError:
            raise DmsError(
                f"connection {row['conid']} ({row['connm']}) has an invalid CONSTR",
                sqlstate=INVALID_PARAMETER_VALUE,
                hint="use key=value pairs such as 'service=dwh' or 'host=db1 dbname=sales'",
            ) from None
    for column, key in (("dbhost", "host"), ("dbport", "port"), ("dbsrvnm", "dbname"),
                        ("usrnm", "user")):
        if row.get(column) is not None:
            parts[key] = str(row[column])
    for secret in ("password", "sslpassword"):  # the table refuses them too; never pass on
        parts.pop(secret, None)
    if default_user and not _names_a_login(parts):
        parts["user"] = default_user
    source = row.get("pwdsrc") or "NONE"
    reference = row.get("pwdref")
    password_env = None
    if source == "PGSERVICE" and reference:
        parts["service"] = reference
    elif source == "PGPASS" and reference:
        parts["passfile"] = reference
    elif source == "ENV":
        if not reference:
            raise DmsError(
                f"connection {row['conid']} ({row['connm']}) has PWDSRC ENV but no PWDREF",
                sqlstate=INVALID_PARAMETER_VALUE,
                hint="put the name of the environment variable that holds the password "
                "in PWDREF",
            )
        password_env = reference
    return Endpoint(
        conid=int(row["conid"]),
        name=str(row["connm"]),
        dbtyp=str(row["dbtyp"]),
        conninfo=make_conninfo("", **{k: str(v) for k, v in parts.items()}),
        password_env=password_env,
    )


@dataclass(frozen=True)
class Guard:
    """Who a DMS_DBCONDTLS connection really logged in as, checked after connecting.

    The engine runs the caller's SQL through the connection, so the login at
    the other end must not hold more than the caller may have:

    * on this very server (found by the probe's application name in this
      server's pg_stat_activity) it must be the caller's own login -- else
      a row pointing back here as ``postgres`` would run the caller's SQL as
      a superuser, or read a database the caller may not connect to;
    * on another server it must not be a superuser, unless the caller is one.
    """

    home: Database
    caller: str
    caller_is_superuser: bool

    @classmethod
    def of(cls, home: Database) -> Guard:
        row = home.query(
            "SELECT session_user::text AS login, (SELECT r.rolsuper FROM pg_catalog.pg_roles r"
            " WHERE r.rolname = session_user) AS su")[0]
        return cls(home, str(row["login"]), bool(row["su"]))

    def check(self, conn: Any, endpoint: Endpoint, probe: str) -> None:
        self.home.query("SELECT pg_catalog.pg_stat_clear_snapshot()")
        here = self.home.query(
            "SELECT a.usename::text AS login FROM pg_catalog.pg_stat_activity a"
            " WHERE a.pid = $1 AND a.application_name = $2",
            [conn.info.backend_pid, probe])
        login = conn.info.user
        if here:
            if here[0]["login"] != self.caller:
                raise DmsError(
                    f"{endpoint.describe()} logs in to this server as {here[0]['login']}, not "
                    f"as you ({self.caller}): the engine would run your SQL with its privileges",
                    sqlstate=INSUFFICIENT_PRIVILEGE,
                    hint="a connection to this server must log in as whoever uses it: leave "
                    "USRNM and the user of CONSTR empty (it then logs in as the caller), or "
                    "pass NULL for this database",
                )
            return
        if conn.info.parameter_status("is_superuser") == "on" and not self.caller_is_superuser:
            raise DmsError(
                f"{endpoint.describe()} logs in as {login}, a superuser of its server: the "
                f"engine would run your SQL there as a superuser, and {self.caller} is not one",
                sqlstate=INSUFFICIENT_PRIVILEGE,
                hint="point the connection at a login without SUPERUSER that has the "
                "privileges the loads need",
            )


def open_connection(endpoint: Endpoint, **kwargs: Any) -> psycopg.Connection[Any]:
    """A psycopg connection to ``endpoint``; errors name it, never a secret.

    A DMS_DBCONDTLS connection first logs in under a one-time application
    name, so that its guard can find it in this server's pg_stat_activity;
    the name asked for is set once the guard agreed.  The connection is
    interruptible: inside a backend its waits let a cancel or terminate in.
    """
    args = endpoint.connect_kwargs()
    wanted = kwargs.pop("application_name", None)
    probe = f"dms probe {uuid.uuid4()}" if endpoint.guard is not None else None
    name = probe or wanted
    if name:
        kwargs["application_name"] = name
    try:
        conn: psycopg.Connection[Any] = InterruptibleConnection.connect(
            args.pop("conninfo"), connect_timeout=10, **args, **kwargs)
    except psycopg.OperationalError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        reason = "; ".join(lines) or type(exc).__name__
        if endpoint.loopback:
            parts = conninfo_to_dict(endpoint.conninfo)
            raise DmsError(
                f"a worker session cannot log in to this server as {parts.get('user')}",
                sqlstate=SQLCLIENT_UNABLE_TO_ESTABLISH,
                detail=f"{reason} (loopback host={parts.get('host')} port={parts.get('port')})",
                hint=LOOPBACK_HINT,
            ) from None
        raise DmsError(
            f"cannot connect to {endpoint.describe()} at {redact(endpoint.conninfo)}: {reason}",
            sqlstate=SQLCLIENT_UNABLE_TO_ESTABLISH,
            hint="check the DMS_DBCONDTLS row and that the server accepts the connection",
        ) from None
    if endpoint.guard is None or probe is None:
        return conn
    try:
        endpoint.guard.check(conn, endpoint, probe)
        conn.execute("SELECT pg_catalog.set_config('application_name', %s, false)",
                     [wanted or ""])
        if not conn.autocommit:
            conn.commit()
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def connect(endpoint: Endpoint, **kwargs: Any) -> Iterator[psycopg.Connection[Any]]:
    conn = open_connection(endpoint, **kwargs)
    try:
        yield conn
    finally:
        conn.close()


def end(conn: psycopg.Connection[Any] | None) -> None:
    """Roll back whatever ``conn`` has open (a dead connection has nothing to end)."""
    if conn is not None and not conn.closed and not conn.broken:
        conn.rollback()


def pin(conn: psycopg.Connection[Any], snapshot: str | None, *, read_only: bool) -> None:
    """Start a transaction that reads as of the run's exported snapshot."""
    end(conn)
    conn.isolation_level = (
        IsolationLevel.REPEATABLE_READ if snapshot else IsolationLevel.READ_COMMITTED
    )
    conn.read_only = read_only
    if snapshot:
        try:
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
        except psycopg.errors.InvalidParameterValue as exc:
            conn.rollback()
            raise SnapshotGone(exc.diag.message_primary or str(exc)) from None


def bindable(statement: str, params: Mapping[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """psycopg reads ``%`` markers only when it is given parameters: a chunk
    without binds (a single chunk, say) is sent as plain SQL, ``%%`` undone."""
    if params:
        return statement, dict(params)
    return pyformat_to_numeric(statement, []), None


def chunk_select(chunk: Chunk) -> str:
    """The chunk's query, with the casts to the target's types when any are needed."""
    if chunk.select_list is None:
        return chunk.query_sql
    return (f"SELECT {escape_pyformat(chunk.select_list)} FROM ({chunk.query_sql})"
            f" AS {cols.QUERY_ALIAS}")


# -- planning ---------------------------------------------------------------------


class Planning:
    """A PostgreSQL source as the planner sees it: a Session and its SourceConnection."""

    def __init__(self, session: Session, planner: SourceConnection) -> None:
        self.session = session
        self._planner = planner
        self.measured: list[str] = []  # what _measure did, said on the run
        self.analysed: set[str] = set()

    @property
    def planner(self) -> SourceConnection:
        return self._planner

    def _recover(self) -> None:
        if isinstance(self.session, PsycopgDatabase):
            self.session.rollback()

    def describe(self, query: str) -> list[cols.SourceColumn]:
        try:
            return cols.describe_query(self.session, query)
        except Exception:
            self._recover()
            raise

    def estimate(self, query: str) -> int | None:
        """The server's estimate of the rows the whole query returns (filters
        included); the chunk planner measures the driving table alone.
        Statistics that cannot be trusted are renewed first (``_measure``)."""
        from dms_pkg.engine import source_query as sq  # the parser: planning only

        factor = self._measure(query)
        rows = self._explain_rows(sq.runnable(query))
        return None if rows is None else round(rows * factor)

    def _explain_rows(self, text: str) -> float | None:
        try:
            rows = self.session.query(f"EXPLAIN (FORMAT JSON) {text}")
        except Exception:  # an estimate is a nicety: never fail a run for it
            self._recover()
            return None
        if not rows:
            return None
        document = next(iter(rows[0].values()))
        plan = json.loads(document) if isinstance(document, str) else document
        return float(plan[0]["Plan"]["Plan Rows"])

    def _measure(self, query: str) -> float:
        """Before the run is sized: a table the query reads whose statistics were
        never gathered, or are stale, is analysed where this session may (its
        owner, outside a read-only transaction); otherwise its rows are counted,
        and the count scales the estimate when it is the driving table.  Each
        measurement is said on the run (``notes``).  Returns the scale factor."""
        from dms_pkg.engine import source_query as sq  # the parser: planning only

        self.measured = []
        try:
            tables = sq.read_tables(sq.parsed(query), "postgres")
            stale = [t for t in sq.table_statistics(self.session, tables) if t.stale]
            if not stale:
                return 1.0
            first = self.session.query(
                "SELECT pg_catalog.to_regclass($1)::text AS name,"
                " pg_catalog.current_setting('transaction_read_only') = 'on' AS read_only",
                [tables[0]])[0]
            factor = 1.0
            for t in stale:
                why = ("were never gathered" if t.never else
                       f"were stale ({t.changed:,} rows changed since its last ANALYZE)")
                if t.owned and not first["read_only"]:
                    # regclass output is the name quoted as SQL needs it.
                    self.session.query(f"ANALYZE {t.name}")
                    self.analysed.add(t.name)
                    self.measured.append(f"statistics of {t.name} {why}: it was analysed "
                                         "(ANALYZE) before the run's chunks and workers were sized")
                    continue
                counted = int(self.session.query(
                    f"SELECT count(*) AS n FROM {t.name}")[0]["n"])
                guess = self._explain_rows(f"SELECT 1 FROM {t.name}")
                if t.name == first["name"] and guess:
                    factor = counted / guess
                self.measured.append(
                    f"statistics of {t.name} {why}, and only its owner may ANALYZE it: its "
                    f"{counted:,} rows were counted and the run was sized on that count")
            return factor
        except Exception:  # a measurement is a nicety: never fail a run for it
            self._recover()
            return 1.0

    def notes(self, tree: exp.Query) -> list[str]:
        from dms_pkg.engine import source_query as sq  # the parser: planning only

        try:
            effect = sq.side_effect_note(sq.side_effect_functions(self.session, tree))
            stale = sq.stale_statistics(self.session, sq.read_tables(tree, "postgres"),
                                        frozenset(self.analysed))
        except Exception:  # a note is a nicety: never fail a run for it
            self._recover()
            return []
        # A table analysed just now has fresh statistics: its note is the measurement.
        return [n for n in (effect, *stale, *self.measured) if n]

    def probe(self, text: str) -> list[tuple[Any, ...]]:
        return [tuple(r.values()) for r in self.session.query(text)]


# -- reading ----------------------------------------------------------------------


class Reader:
    """Reads chunks of a PostgreSQL source: psql for COPY when it is installed
    (``copy_reader`` auto/psql), else psycopg; row batches always through psycopg."""

    def __init__(self, endpoint: Endpoint, *, application_name: str | None,
                 search_path: str | None, copy_reader: str = "auto") -> None:
        self.endpoint = endpoint
        self.application_name = application_name
        self.search_path = search_path
        self.psql = find_psql() if copy_reader in ("auto", "psql") else None
        if copy_reader == "psql" and self.psql is None:
            raise DmsError("copy_reader psql: no psql program found",
                           sqlstate="58P01", hint="install postgresql-client, set DMS_PSQL, "
                           'or use copy_reader "psycopg"')
        self._conn: psycopg.Connection[Any] | None = None
        self._checked = False
        self._session: PsqlSession | None = None  # the worker's one psql, once started

    # The psycopg connection, opened on first use (and again after it broke).
    def connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = open_connection(self.endpoint, application_name=self.application_name)
            self._checked = True
            if self.search_path and self.endpoint.is_local:
                self._conn.execute("SELECT pg_catalog.set_config('search_path', %s, false)",
                                   [self.search_path])
                self._conn.commit()
        return self._conn

    @property
    def handle(self) -> int | None:
        """The source backend that reads the chunks (what a stop cancels)."""
        if self._session is not None and self._session.backend_pid is not None:
            return self._session.backend_pid
        conn = self._conn
        return conn.info.backend_pid if conn is not None and not conn.closed else None

    def usable(self) -> bool:
        return self._conn is None or not (self._conn.closed or self._conn.broken)

    def reset(self) -> None:
        end(self._conn)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._session is not None:
            self._session.close()
            self._session = None

    @contextmanager
    def copy(self, chunk: Chunk, copy_format: str = "text") -> Iterator[Iterator[Block]]:
        out_sql, params = bindable(
            f"COPY ({chunk_select(chunk)}) TO STDOUT (FORMAT {copy_format})", chunk.params)
        if self.psql is not None:
            yield from self._copy_psql(chunk, out_sql, params)
            return
        conn = self.connection()
        pin(conn, chunk.snapshot, read_only=True)
        try:
            with conn.cursor() as cur, cur.copy(out_sql.encode(), params) as feed:
                yield iter(feed)
        finally:
            end(conn)

    def _copy_psql(self, chunk: Chunk, out_sql: str, params: dict[str, Any] | None
                   ) -> Iterator[Iterator[Block]]:
        if not self._checked and self.endpoint.guard is not None:
            # psql cannot be asked whom it logged in as: check the login over
            # psycopg first (once per reader), then psql uses the same conninfo.
            self.connection()
        if params is not None:  # COPY takes no parameters: the bounds go in as literals
            out_sql = _mogrify(out_sql, params)
        assert self.psql is not None
        session = SourceSession(self.endpoint, self.search_path if self.endpoint.is_local
                                else None, self.application_name)
        try:
            if streamable(out_sql):
                if self._session is None:
                    self._session = PsqlSession(self.psql, session)
                with self._session.copy(out_sql, chunk.snapshot) as feed:
                    yield feed
            else:
                with copy_out(self.psql, session, out_sql, chunk.snapshot) as feed:
                    yield feed
        except SnapshotImportError as exc:
            raise SnapshotGone(str(exc)) from None

    @contextmanager
    def rows(self, chunk: Chunk, batch_size: int) -> Iterator[Iterator[list[dict[str, Any]]]]:
        query, params = bindable(chunk_select(chunk), chunk.params)
        conn = self.connection()
        pin(conn, chunk.snapshot, read_only=True)
        try:
            with conn.cursor(name=f"dms_chunk_{uuid.uuid4().hex[:8]}",
                             row_factory=dict_row) as cur:
                # '-infinity' or a year past 9999 has no datetime: such a value
                # travels as its text, which a text COPY writes unchanged.
                keep_out_of_range_as_text(cur.adapters)
                cur.itersize = batch_size
                cur.execute(query.encode(), params)

                def batches() -> Iterator[list[dict[str, Any]]]:
                    while batch := cur.fetchmany(batch_size):
                        yield batch

                yield batches()
        finally:
            end(conn)


def _mogrify(statement: str, params: Mapping[str, Any]) -> str:
    """``statement`` (pyformat, ``%%`` for a literal ``%``) with ``params`` quoted
    in as typed literals by psycopg: COPY takes no bind parameters."""
    return statement % {k: sql.Literal(v).as_string(None) for k, v in params.items()}


# -- the backend ------------------------------------------------------------------


class PostgresBackend(SourceBackend):
    NAME = "postgres"
    LABEL = "PostgreSQL"
    DBTYPS = ("POSTGRESQL",)
    DIALECT = "postgres"
    SHARED_SNAPSHOT = True
    PARAM_STYLE = ParamStyle.PYFORMAT  # psycopg reads the chunks

    def endpoint(self, row: Mapping[str, Any], caller: str | None) -> Endpoint:
        return endpoint_from_row(row, default_user=caller)

    def redact(self, text: str) -> str:
        return redact(text)

    def guard(self, home: Any) -> Guard:
        return Guard.of(home)

    @contextmanager
    def planning(self, endpoint: Endpoint) -> Iterator[Planning]:
        with connect(endpoint, autocommit=False) as conn:
            try:
                yield Planning(PsycopgDatabase(conn), PsycopgSource(conn))
            finally:
                if not conn.closed:
                    conn.rollback()

    def reader(self, endpoint: Endpoint, *, application_name: str | None,
               search_path: str | None, options: Mapping[str, Any]) -> Reader:
        return Reader(endpoint, application_name=application_name, search_path=search_path,
                      copy_reader=str(options.get("copy_reader") or "auto"))

    def consistent_point(self, endpoint: Endpoint, *, tables: list[str], readers: int,
                         application_name: str | None, search_path: str | None,
                         options: Mapping[str, Any] | None = None
                         ) -> ConsistentPoint:
        """Export a snapshot and keep its transaction open until the run ends."""
        conn = open_connection(endpoint, application_name=application_name)
        if search_path:  # the checkpoint's max() resolves names as the caller did
            conn.execute("SELECT pg_catalog.set_config('search_path', %s, false)", [search_path])
            conn.commit()
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        row = conn.execute("SELECT pg_catalog.pg_export_snapshot()").fetchone()
        assert row is not None
        return ConsistentPoint(str(row[0]), "every chunk reads one exported snapshot",
                               on_close=conn.close, session=conn)

    def checkpoint_value(self, point: ConsistentPoint, query: str, column: str) -> str | None:
        # As JSON text: dates and times in ISO 8601 whatever this session's
        # DateStyle, so the next run's filter reads the same value back in any
        # session (a DMY text read as MDY would skip or repeat months of rows).
        conn: psycopg.Connection[Any] = point.session
        row = conn.execute(sql.SQL(
            "SELECT pg_catalog.to_jsonb(max(q.{})) #>> '{{}}' FROM ({}) AS q").format(
            sql.Identifier(column), sql.SQL(query))).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def classify(self, exc: BaseException) -> faults.Fault | None:
        return faults.fault_of(exc)

    def cancel(self, endpoint: Endpoint, handle: int) -> bool:
        try:
            with connect(endpoint, autocommit=True) as conn:
                row = conn.execute("SELECT pg_catalog.pg_cancel_backend(%s)", [handle]).fetchone()
        except DmsError:
            return False  # unreachable server: its workers stop after their statement
        return bool(row and row[0])

