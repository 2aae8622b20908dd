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
* ``oracle_rowid`` -- ROWID-range chunks of about chunk_size rows, measured
  after an SCN that becomes the run's point (``OracleSource.row_ranges``);
* ``oracle_copy`` -- the chunk query as PostgreSQL COPY text (server-rendered
  where it fits, driver-formatted otherwise) and the reader;
* ``oracle_errors`` -- ``(code, message, transient)`` and the SQLSTATE.

How the SCN flows when a table is cut in ROWID ranges: the planner asks
``OracleSource.row_ranges``, which reads the SCN *first*, then the extents;
the plan carries the SCN (``ChunkPlan.point``), planning records it in the
run's settings (``base.PLANNED_POINT``), ``consistent_point`` returns it
instead of a new SCN, and every ``_Reader`` reads AS OF it.  A read whose SCN
is gone (ORA-01555, 08181, 01466, 08176) raises ``SnapshotGone``.

A chunk is read like this (docs/source-oracle.md walks through it)::

    params = OracleBackend.connect_params(row, caller)       # at connect time
    conn = OracleBackend.connect(params, label=..., caller=caller)
    scn = OracleBackend.current_scn(conn)                     # once: planning or coordinator
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
from dms_pkg.backends.base import PLANNED_POINT, ConsistentPoint, SnapshotGone, SourceBackend
from dms_pkg.backends.endpoint import Endpoint
from dms_pkg.backends.oracle_sql import parse_query, render
from dms_pkg.chunking.dialects import ParamStyle, get_dialect
from dms_pkg.chunking.plan import BoundsInput
from dms_pkg.db.faults import Fault
from dms_pkg.engine.columns import SourceColumn
from dms_pkg.errors import INSUFFICIENT_PRIVILEGE, DmsError


def _is_oracle_error(exc: BaseException) -> bool:
    try:
        import oracledb
    except ImportError:  # pragma: no cover - a dependency
        return False
    return isinstance(exc, oracledb.Error)


class OracleSource:
    """The chunk planner's ``SourceConnection`` over an oracledb connection
    (binds ``:name``, rows as tuples), and its ``RowRangeSource``: ROWID
    ranges measured after an SCN taken first (``row_ranges``)."""

    dialect = "oracle"
    style = ParamStyle.NAMED

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.scn: int | None = None  # the SCN the last ROWID ranges hold at

    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(sql, dict(params or {}))
            return list(cur.fetchall()) if cur.description is not None else []

    def row_ranges(self, table: exp.Table, *, rows_per_chunk: int,
                   n_chunks: int | None) -> BoundsInput:
        """ROWID ranges of ``table`` (as the query names it) for chunks of about
        ``rows_per_chunk`` rows, or ``n_chunks`` of them, and the SCN they hold
        at -- read first, so every row visible at it lies in a listed extent
        (see ``oracle_rowid``).  The plan records that SCN: the run reads as of
        it, never a later one."""
        dialect = get_dialect("oracle")
        name = dialect.normalize(table.this) if isinstance(table.this, exp.Identifier) \
            else table.name.upper()
        schema = table.args.get("db")
        scn = oracle_scn.current_scn(self.conn)  # first, before any extent is listed
        self.scn = scn
        shown = name
        try:
            login, current = self.fetch(oracle_rowid.SCHEMA_SQL)[0]
            owner = dialect.normalize(schema) if isinstance(schema, exp.Identifier) \
                else str(current)
            shown = f"{owner}.{name}"
            return OracleBackend.rowid_bounds(
                self, name, rows_per_chunk, owner=None if owner == login else owner, scn=scn,
                n_chunks=n_chunks)
        except Exception as exc:
            if not _is_oracle_error(exc):
                raise
            fault = oracle_errors.classify(exc)
            if fault.code in ("ORA-00942", "ORA-01031"):
                raise DmsError(
                    f"cannot read the extents of {shown} for ROWID chunks: {fault.message}",
                    sqlstate=INSUFFICIENT_PRIVILEGE,
                    hint="GRANT SELECT ON " + ", ".join(oracle_rowid.DBA_VIEWS)
                    + " (or SELECT_CATALOG_ROLE) and FLASHBACK on the table to the source "
                    "login, or name a chunk key",
                ) from None
            raise fault.as_dms_error(f"cannot list the extents of {shown}") from None


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
                     owner: str | None = None, scn: int | None = None,
                     n_chunks: int | None = None) -> BoundsInput:
        """Measure ``table`` and list its extent ranges for chunks of about
        ``chunk_size`` rows, or ``n_chunks`` groups (read the SCN first and pass
        it: it becomes the ranges' point, see ``oracle_rowid``)."""
        params: dict[str, Any] = {"dms_table": table}
        if owner is not None:
            params["dms_owner"] = owner
        stats = source.fetch(cls.table_stats_sql(owner=owner is not None), params)
        if not stats:  # no table of that owner and name: a view or a synonym
            return cls.rowid_bounds_input((), None, scn)
        num_rows, blocks, segment_blocks = stats[0][:3]
        if segment_blocks is None:
            # No table segment (never written, index-organized, clustered):
            # no extents to cut, and nothing to count them for.
            return cls.rowid_bounds_input((), None if num_rows is None else int(num_rows), scn)
        rows = cls.estimated_rows(num_rows, blocks, segment_blocks)
        if rows is None:
            count_params = {} if scn is None else {oracle_scn.SCN_BIND: scn}
            rows = int(source.fetch(cls.count_sql(table, owner=owner, scn=scn is not None),
                                    count_params)[0][0])
        query = cls.extent_ranges_sql(table, rows, chunk_size, owner=owner, n_chunks=n_chunks)
        return cls.rowid_bounds_input(source.fetch(query.sql, query.params), rows, scn)


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


def planned_scn(options: Mapping[str, Any] | None) -> int | None:
    """The SCN planning bound the run's chunks to (``PLANNED_POINT`` of the run's
    settings: its ROWID ranges were measured at it), or None."""
    value = (options or {}).get(PLANNED_POINT)
    if isinstance(value, Mapping):  # a recorded setting: {"value": ..., "from": ...}
        value = value.get("value")
    if value is None:
        return None
    try:
        return oracle_scn.check_scn(int(str(value)))
    except ValueError:
        raise DmsError(f"the run's planned point {value!r} is no Oracle SCN",
                       sqlstate="XX000") from None


class _Reader:
    """A worker's reader of an Oracle source: one connection, every chunk read AS OF
    the run's SCN, COPY text rendered by the server where it fits.

    ``planned`` is the SCN the run's chunks were planned at, when the plan is
    exact only there (ROWID ranges): every chunk reads AS OF it, with or
    without a point taken by the coordinator (which is then that SCN too).
    A read AS OF the run's SCN that Oracle can no longer answer (ORA-01555,
    ORA-08181, ORA-01466, ORA-08176) raises ``SnapshotGone``: the runtime
    puts the chunk back and stops, as for a PostgreSQL snapshot that ended.
    """

    def __init__(self, endpoint: Endpoint, max_string_bytes: int,
                 planned: int | None = None) -> None:
        self.endpoint = endpoint
        self.max_string_bytes = max_string_bytes
        self.planned = planned
        self._conn: Any = None
        self._columns: list[oracle_types.OracleColumn] | None = None

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = _connect(self.endpoint)
        return self._conn

    def _scn(self, chunk: Any) -> int | None:
        """The SCN ``chunk`` is read as of: the planned one, else the run's point."""
        given = None if chunk.snapshot is None else int(chunk.snapshot)
        if self.planned is None:
            return given
        if given is not None and given != self.planned:
            raise DmsError(
                f"the run's point in time is SCN {given}, but its chunks were planned at "
                f"SCN {self.planned}: ROWID ranges hold only at the SCN they were measured at",
                sqlstate="XX000", hint="start a new run: its chunks are planned at a new SCN")
        return self.planned

    def _query(self, chunk: Any) -> tuple[str, dict[str, Any]]:
        params = dict(chunk.params)
        scn = self._scn(chunk)
        if scn is None:
            return chunk.query_sql, params
        pinned = oracle_scn.as_of_scn(chunk.query_sql, scn)
        return pinned.sql, {**params, **pinned.params}

    @contextmanager
    def _snapshot_errors(self, chunk: Any) -> Iterator[None]:
        """Oracle's "this SCN cannot be read any more" as ``SnapshotGone``, for
        chunks read AS OF the run's SCN (unpinned, the same codes are the
        user's own AS OF's errors and stay as they are)."""
        scn = self._scn(chunk)
        try:
            yield
        except SnapshotGone:
            raise
        except Exception as exc:
            if scn is None or not _is_oracle_error(exc):
                raise
            fault = oracle_errors.classify(exc)
            if not fault.snapshot_lost:
                raise
            raise SnapshotGone(snapshot_gone_message(scn, fault.message,
                                                     planned=self.planned is not None)) from None

    @contextmanager
    def copy(self, chunk: Any, copy_format: str = "text") -> Iterator[Iterator[bytes]]:
        if copy_format != "text":
            raise DmsError("an Oracle source is read as COPY text", sqlstate="0A000")
        query, params = self._query(chunk)
        conn = self._connection()
        with self._snapshot_errors(chunk):
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
        with self._snapshot_errors(chunk), self._connection().cursor() as cur:
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


def snapshot_gone_message(scn: int, message: str, *, planned: bool) -> str:
    """What a chunk says when SCN ``scn`` can no longer be read (``message``:
    Oracle's), and what a resume will do about it."""
    text = f"Oracle can no longer read SCN {scn}: {message.splitlines()[0]}"
    if planned:
        return text + (" (the run's ROWID chunks were measured at that SCN, so a resume reads "
                       "at it again: start a new run, with more UNDO_RETENTION or a chunk key)")
    return text + " (a resume reads the chunks left as of a new SCN)"


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
        return _Reader(endpoint, int(limit), planned_scn(options))

    def consistent_point(self, endpoint: Endpoint, *, tables: list[str], readers: int,
                         application_name: str | None, search_path: str | None,
                         options: Mapping[str, Any] | None = None
                         ) -> ConsistentPoint:
        """The run's SCN: the one its chunks were planned at when planning took
        one (ROWID ranges: a later SCN could see rows in extents the ranges do
        not list), else the current SCN.  Either way the session stays open for
        the coordinator's own reads as of it (a checkpoint's max)."""
        planned = planned_scn(options)
        conn = _connect(endpoint)
        try:
            scn = planned if planned is not None else oracle_scn.current_scn(conn)
        except BaseException:
            conn.close()
            raise
        said = f"every chunk reads AS OF SCN {scn}"
        if planned is not None:
            said += ", the SCN its ROWID ranges were measured at"
        return ConsistentPoint(str(scn), said, on_close=conn.close, session=conn)

    def consistency_note(self, options: Mapping[str, Any], workers: int) -> str | None:
        planned = planned_scn(options)
        if planned is None or options.get("snapshot", True):
            return None
        return (f"ROWID chunks read AS OF SCN {planned} even with snapshot false: their "
                "ranges list the table's extents as of that SCN only")

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
