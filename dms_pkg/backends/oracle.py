"""Oracle as a source database: the backend the runtime registers for DBTYP ORACLE.

Everything the runtime needs from an Oracle source, as class attributes and
overridable methods in the way sqlglot adds a dialect (no ``if dbtyp ==``
at call sites).  The work is done in small modules, each usable on its own:

* ``oracle_connect`` -- DMS_DBCONDTLS row or ``oracle://`` URL -> connect
  keywords (password from PWDSRC ENV at connect time), redaction, connect
  with the login check, cancel;
* ``oracle_types`` -- the zero-row describe probe, Oracle -> PostgreSQL
  types, row estimates (EXPLAIN PLAN, dictionary statistics);
* ``oracle_scn`` -- the run's SCN and the ``AS OF SCN`` rewrite;
* ``oracle_rowid`` -- ROWID-range chunks of about chunk_size rows;
* ``oracle_copy`` -- the chunk query as PostgreSQL COPY text (server-rendered
  where it fits, driver-formatted otherwise) and the reader;
* ``oracle_errors`` -- ``(code, message, transient)`` and the SQLSTATE.

A chunk is read like this (docs/source-oracle.md walks through it)::

    params = OracleBackend.connect_params(row, caller)       # at connect time
    conn = OracleBackend.connect(params, label=..., caller=caller)
    scn = OracleBackend.current_scn(conn)                     # coordinator, once
    columns = OracleBackend.describe(conn.cursor(), source_sql)
    chunk = OracleBackend.as_of_scn(chunk_sql, scn)           # each chunk
    layout = OracleBackend.copy_layout(chunk.sql, columns)
    for block in OracleBackend.read_copy_text(conn.cursor(), layout,
                                              {**chunk_params, **chunk.params}):
        copy.write(block)                                     # COPY ... FROM STDIN
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any, ClassVar

from sqlglot import exp

from dms_pkg.backends import (
    oracle_connect,
    oracle_copy,
    oracle_errors,
    oracle_rowid,
    oracle_scn,
    oracle_types,
)
from dms_pkg.backends.base import ConsistentPoint, SourceBackend
from dms_pkg.backends.endpoint import Endpoint
from dms_pkg.backends.oracle_sql import parse_query, render
from dms_pkg.chunking.dialects import ParamStyle
from dms_pkg.chunking.plan import BoundsInput
from dms_pkg.db.faults import Fault
from dms_pkg.engine.columns import SourceColumn
from dms_pkg.errors import DmsError


class OracleSource:
    """The chunk planner's ``SourceConnection`` over an oracledb connection
    (binds ``:name``, rows as tuples)."""

    dialect = "oracle"
    style = ParamStyle.NAMED

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(sql, dict(params or {}))
            return list(cur.fetchall()) if cur.description is not None else []


class OracleBackend:
    """DBTYP ORACLE: python-oracledb in thin mode."""

    DBTYP: ClassVar[str] = "ORACLE"
    DIALECT: ClassVar[str] = "oracle"  # chunking.dialects name
    PARAM_STYLE: ClassVar[ParamStyle] = ParamStyle.NAMED
    URL_SCHEMES: ClassVar[tuple[str, ...]] = oracle_connect.URL_SCHEMES
    DEFAULT_PORT: ClassVar[int] = oracle_connect.DEFAULT_PORT
    # Physical chunks are ROWID ranges; consistency is one SCN.
    ROW_LOCATOR: ClassVar[str] = "ROWID"
    CONSISTENCY: ClassVar[str] = "scn"
    MAX_STRING_BYTES: ClassVar[int] = oracle_copy.STANDARD_MAX_STRING_BYTES
    ARRAYSIZE: ClassVar[int] = oracle_copy.DEFAULT_ARRAYSIZE

    Caller = oracle_connect.Caller
    Column = oracle_types.OracleColumn
    Source = OracleSource

    # -- connecting ---------------------------------------------------------
    connect_params = staticmethod(oracle_connect.connect_params)
    params_from_url = staticmethod(oracle_connect.params_from_url)
    redact = staticmethod(oracle_connect.redact)
    secret_key = staticmethod(oracle_connect.secret_key)
    describe_params = staticmethod(oracle_connect.describe)
    connect = staticmethod(oracle_connect.connect)
    session_setup = staticmethod(oracle_connect.session_setup)
    login_check_sql: ClassVar[str] = oracle_connect.LoginCheck.SQL
    check_login = staticmethod(oracle_connect.LoginCheck.check)
    cancel = staticmethod(oracle_connect.cancel)

    # -- catalog and types ----------------------------------------------------
    describe_sql = staticmethod(oracle_types.describe_sql)
    describe = staticmethod(oracle_types.describe)
    map_type = staticmethod(oracle_types.map_type)
    pg_data_type = staticmethod(oracle_types.pg_data_type)
    estimate_sql = staticmethod(oracle_types.estimate_sql)
    table_stats_sql = staticmethod(oracle_types.table_stats_sql)
    estimated_rows = staticmethod(oracle_types.estimated_rows)

    # -- one SCN ----------------------------------------------------------------
    current_scn_sql = staticmethod(oracle_scn.current_scn_sql)
    current_scn = staticmethod(oracle_scn.current_scn)
    as_of_scn = staticmethod(oracle_scn.as_of_scn)

    # -- ROWID chunks -------------------------------------------------------------
    chunk_count = staticmethod(oracle_rowid.chunk_count)
    extent_ranges_sql = staticmethod(oracle_rowid.extent_ranges_sql)
    rowid_bounds_input = staticmethod(oracle_rowid.bounds_input)

    # -- COPY text ------------------------------------------------------------------
    copy_layout = staticmethod(oracle_copy.copy_layout)
    copy_text_query = staticmethod(oracle_copy.copy_text_query)
    read_copy_text = staticmethod(oracle_copy.read_copy_text)
    format_value = staticmethod(oracle_copy.format_value)

    # -- errors -------------------------------------------------------------------------
    classify = staticmethod(oracle_errors.classify)
    is_transient = staticmethod(oracle_errors.is_transient)

    @classmethod
    def count_sql(cls, table: str, *, owner: str | None = None, scn: bool = False) -> str:
        """``SELECT COUNT(*) FROM "OWNER"."TABLE"`` (names as stored, quoted by
        sqlglot), read AS OF ``:dms_scn`` with ``scn``: the row count of a
        table that was never analyzed."""
        tree = exp.select(exp.Count(this=exp.Star())).from_(
            exp.Table(this=exp.to_identifier(table, quoted=True),
                      db=exp.to_identifier(owner, quoted=True) if owner else None))
        if scn:
            oracle_scn.as_of_scn_tree(tree, exp.Placeholder(this=oracle_scn.SCN_BIND))
        return render(tree)

    @classmethod
    def rowid_bounds(cls, source: OracleSource, table: str, chunk_size: int, *,
                     owner: str | None = None, scn: int | None = None) -> BoundsInput:
        """Measure ``table`` and list its extent ranges for chunks of about
        ``chunk_size`` rows (read the SCN first, see ``oracle_rowid``)."""
        params: dict[str, Any] = {"dms_table": table}
        if owner is not None:
            params["dms_owner"] = owner
        stats = source.fetch(cls.table_stats_sql(owner=owner is not None), params)
        rows = cls.estimated_rows(*stats[0][:3]) if stats else None
        if rows is None:
            count_params = {} if scn is None else {oracle_scn.SCN_BIND: scn}
            rows = int(source.fetch(cls.count_sql(table, owner=owner, scn=scn is not None),
                                    count_params)[0][0])
        query = cls.extent_ranges_sql(table, rows, chunk_size, owner=owner)
        return cls.rowid_bounds_input(source.fetch(query.sql, query.params), rows)


# ------------------------------------------------------------------ the backend
#
# What the runtime calls (dms_pkg.backends.base): the primitives above behind
# the one protocol of every source.  The endpoint keeps the connection row
# (never a password: PWDSRC ENV is read when connecting) and the caller.


def _params(endpoint: Endpoint) -> dict[str, Any]:
    """oracledb.connect() keywords for ``endpoint``, the password looked up now."""
    given = dict(endpoint.params)
    row = given.pop("row", None)
    if row is not None:
        return oracle_connect.connect_params(row, given.get("caller"))
    params = dict(given.get("connect") or {})
    if endpoint.password:
        params["password"] = endpoint.password
    return params


def _caller(endpoint: Endpoint) -> oracle_connect.Caller | None:
    login = endpoint.params.get("caller")
    if not login:
        return None
    return oracle_connect.Caller(str(login), bool(endpoint.params.get("caller_is_superuser")))


def _connect(endpoint: Endpoint) -> Any:
    return oracle_connect.connect(_params(endpoint), label=endpoint.describe(),
                                  caller=_caller(endpoint))


def _source_columns(columns: list[oracle_types.OracleColumn]) -> list[SourceColumn]:
    return [SourceColumn(c.name, 0, c.pg_type) for c in columns]


class _Planning:
    """An Oracle source as the planner sees it: one connection."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self._planner = OracleSource(conn)

    @property
    def planner(self) -> OracleSource:
        return self._planner

    def describe(self, query: str) -> list[SourceColumn]:
        with self.conn.cursor() as cur:
            return _source_columns(oracle_types.describe(cur, query))

    def estimate(self, query: str) -> int | None:
        plan = oracle_types.estimate_sql(query)
        try:
            with self.conn.cursor() as cur:
                cur.execute(plan.explain)
                cur.execute(plan.fetch, plan.params)
                row = cur.fetchone()
                cur.execute(plan.cleanup, plan.params)
        except Exception:  # an estimate is a nicety: never fail a run for it
            return None
        return int(row[0]) if row and row[0] is not None else None

    def notes(self, tree: exp.Query) -> list[str]:
        return []

    def probe(self, sql: str) -> list[tuple[Any, ...]]:
        return self._planner.fetch(sql)


class _Reader:
    """A worker's reader of an Oracle source: one connection, every chunk read AS OF
    the run's SCN, COPY text rendered by the server where it fits."""

    def __init__(self, endpoint: Endpoint, max_string_bytes: int) -> None:
        self.endpoint = endpoint
        self.max_string_bytes = max_string_bytes
        self._conn: Any = None
        self._columns: list[oracle_types.OracleColumn] | None = None

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = _connect(self.endpoint)
        return self._conn

    def _query(self, chunk: Any) -> tuple[str, dict[str, Any]]:
        params = dict(chunk.params)
        if chunk.snapshot is None:
            return chunk.query_sql, params
        pinned = oracle_scn.as_of_scn(chunk.query_sql, int(chunk.snapshot))
        return pinned.sql, {**params, **pinned.params}

    @contextmanager
    def copy(self, chunk: Any, copy_format: str = "text") -> Iterator[Iterator[bytes]]:
        if copy_format != "text":
            raise DmsError("an Oracle source is read as COPY text", sqlstate="0A000")
        query, params = self._query(chunk)
        conn = self._connection()
        if self._columns is None:  # every chunk has the run's select list
            with conn.cursor() as cur:
                self._columns = oracle_types.describe(cur, query, params)
        layout = oracle_copy.copy_layout(query, self._columns,
                                         max_string_bytes=self.max_string_bytes)
        with conn.cursor() as cur:
            yield oracle_copy.read_copy_text(cur, layout, params)

    @contextmanager
    def rows(self, chunk: Any, batch_size: int) -> Iterator[Iterator[list[dict[str, Any]]]]:
        query, params = self._query(chunk)
        with self._connection().cursor() as cur:
            cur.arraysize = batch_size
            cur.execute(query, params)
            names = [d[0] for d in cur.description or ()]

            def batches() -> Iterator[list[dict[str, Any]]]:
                while rows := cur.fetchmany(batch_size):
                    yield [dict(zip(names, row, strict=True)) for row in rows]

            yield batches()

    @property
    def handle(self) -> int | None:
        return None  # oracledb cancels through the connection object, not an id

    def usable(self) -> bool:
        return self._conn is None or bool(self._conn.is_healthy())

    def reset(self) -> None:
        pass  # reads AS OF an SCN keep no transaction state between chunks

    def close(self) -> None:
        if self._conn is not None:
            with suppress(Exception):
                self._conn.close()
            self._conn = None


class OracleSourceBackend(SourceBackend):
    """DBTYP ORACLE behind the runtime's protocol."""

    NAME = "oracle"
    LABEL = "Oracle"
    DBTYPS = ("ORACLE",)
    DIALECT = "oracle"
    PARAM_STYLE = ParamStyle.NAMED
    URL_SCHEMES = tuple(oracle_connect.URL_SCHEMES)
    DRIVER_MODULES = ("oracledb", "cx_Oracle")

    def endpoint(self, row: Mapping[str, Any], caller: str | None) -> Endpoint:
        # The row is read (and a malformed one refused) when connecting, which
        # planning does before anything is written.
        return Endpoint(int(row["conid"]), str(row["connm"]), "ORACLE",
                        params={"row": dict(row), "caller": caller},
                        password_env=row.get("pwdref") if row.get("pwdsrc") == "ENV" else None)

    def redact(self, text: str) -> str:
        return oracle_connect.redact(text)

    def endpoint_from_url(self, url: str) -> Endpoint:
        params = oracle_connect.params_from_url(url)
        password = params.pop("password", None)
        shown = oracle_connect.describe(params)
        return Endpoint(None, f"Oracle at {shown}", "ORACLE", params={"connect": params},
                        password=password, shown=shown)

    @contextmanager
    def planning(self, endpoint: Endpoint) -> Iterator[_Planning]:
        conn = _connect(endpoint)
        try:
            yield _Planning(conn)
        finally:
            conn.close()

    def reader(self, endpoint: Endpoint, *, application_name: str | None,
               search_path: str | None, options: Mapping[str, Any]) -> _Reader:
        limit = options.get("oracle_max_string_bytes") or OracleBackend.MAX_STRING_BYTES
        return _Reader(endpoint, int(limit))

    def consistent_point(self, endpoint: Endpoint, *, tables: list[str], readers: int,
                         application_name: str | None, search_path: str | None,
                         options: Mapping[str, Any] | None = None
                         ) -> ConsistentPoint:
        conn = _connect(endpoint)
        try:
            scn = oracle_scn.current_scn(conn)
        except BaseException:
            conn.close()
            raise
        return ConsistentPoint(str(scn), f"every chunk reads AS OF SCN {scn}",
                               on_close=conn.close, session=conn)

    def checkpoint_value(self, point: ConsistentPoint, query: str, column: str) -> str | None:
        pinned = oracle_scn.as_of_scn(query, int(point.token or 0))
        probe = render(exp.select(exp.Max(this=exp.column(column, quoted=True))).from_(
            exp.paren(parse_query(pinned.sql)).as_("dms_q")))
        with point.session.cursor() as cur:
            cur.execute(probe, pinned.params)
            row = cur.fetchone()
        value = row[0] if row else None
        if value is None:
            return None
        return value.isoformat(sep=" ") if hasattr(value, "isoformat") else str(value)

    def classify(self, exc: BaseException) -> Fault | None:
        try:
            import oracledb
        except ImportError:  # pragma: no cover - a dependency
            return None
        if not isinstance(exc, oracledb.Error):
            return None
        fault = oracle_errors.classify(exc)
        return Fault(fault.sqlstate, fault.message, transient=fault.transient)
