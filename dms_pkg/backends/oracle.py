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

from collections.abc import Mapping
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
from dms_pkg.backends.oracle_sql import render
from dms_pkg.chunking.dialects import ParamStyle
from dms_pkg.chunking.plan import BoundsInput


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
