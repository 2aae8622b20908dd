"""Source connections: run a dialect's SQL with its own bind style.

The chunk planner renders SQL per dialect (``chunking.render``) with named
binds in the style the dialect's driver understands; a source connection
runs that SQL and returns plain tuples.  One small class per driver: psycopg
(PostgreSQL, ``%(name)s``), pymysql (MySQL/MariaDB, ``%(name)s``) and plpy
(the local PostgreSQL inside a backend, ``$n``); a source backend may bring
its own (SQLite's is ``dms_pkg.backends.sqlite_chunking.SQLiteSource``), and
``open_source`` opens its URLs through the backend.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

import psycopg

from dms_pkg.db.binds import ParamStyle
from dms_pkg.db.pg_values import from_text, keep_out_of_range_as_text


class SourceConnection(Protocol):
    """What the planner needs from a source database."""

    dialect: str
    style: ParamStyle

    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run ``sql`` (written in ``style``) and return every row."""
        ...


class PsycopgSource:
    dialect = "postgres"
    style = ParamStyle.PYFORMAT

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            # A key's min or max may be '-infinity': keep such values as text.
            keep_out_of_range_as_text(cur.adapters)
            # Always pass a mapping: rendered SQL doubles a literal % for the
            # pyformat style, and psycopg un-doubles it only when given params.
            cur.execute(sql.encode(), dict(params or {}))
            return list(cur.fetchall()) if cur.description is not None else []


class PyMySQLSource:
    dialect = "mysql"
    style = ParamStyle.PYFORMAT

    def __init__(self, conn: Any) -> None:  # a pymysql connection
        self.conn = conn

    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            # pymysql applies %-formatting only when args are given; the
            # renderer doubles literal % for PYFORMAT, so always pass a dict.
            cur.execute(sql, dict(params or {}))
            return list(cur.fetchall())


class PlpySource:
    """The local database seen from PL/Python; binds are ``$1..$n`` in params order.

    PL/Python passes dates, timestamps and uuids as text; they are loaded
    into the Python values psycopg returns (``pg_values.from_text``), so a
    plan is the same whether it is measured here or over a connection.  The
    text is read in DateStyle ISO, set for the query and put back after it.
    """

    dialect = "postgres"
    style = ParamStyle.NUMERIC

    def __init__(self, plpy: Any) -> None:
        from dms_pkg.db.plpy_db import PlpyDatabase

        self._plpy = plpy
        self._db = PlpyDatabase(plpy)

    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        datestyle = self._plpy.execute(
            "SELECT pg_catalog.current_setting('DateStyle') AS s")[0]["s"]
        iso = str(datestyle).upper().startswith("ISO")
        if not iso:
            self._plpy.execute("SELECT pg_catalog.set_config('DateStyle', 'ISO', true)")
        try:
            result = self._db.result(sql, list((params or {}).values()))
        finally:
            if not iso:
                plan = self._plpy.prepare(
                    "SELECT pg_catalog.set_config('DateStyle', $1, true)", ["text"])
                self._plpy.execute(plan, [datestyle])
        if result.nrows() == 0 or not result.colnames():
            return []
        names, oids = result.colnames(), result.coltypes()
        return [tuple(from_text(oid, row[name]) for name, oid in zip(names, oids, strict=True))
                for row in result]


@contextmanager
def open_source(url: str) -> Iterator[SourceConnection]:
    """Connect to a source named by a URL and close it afterwards.

    ``mysql://user@host:port/db`` or ``mariadb://...`` (pymysql; a
    ``unix_socket`` query parameter selects a socket), ``sqlite:///path``
    (a file), anything else is a PostgreSQL connection string.  Passwords
    come from the driver's own sources (.pgpass, service files, option
    files), never from a URL we print.
    """
    parts = urlsplit(url)
    if parts.scheme in ("snowflake", "bigquery", "redshift"):
        from dms_pkg.db.warehouses import open_warehouse

        with open_warehouse(url) as warehouse:
            yield warehouse
    elif parts.scheme in ("mysql", "mariadb"):
        import pymysql

        query = dict(parse_qsl(parts.query))
        args: dict[str, Any] = {
            "host": parts.hostname or "localhost",
            "port": parts.port or 3306,
            "user": unquote(parts.username or "") or None,
            "database": parts.path.lstrip("/") or None,
        }
        if parts.password:
            args["password"] = unquote(parts.password)
        if "unix_socket" in query:
            args["unix_socket"] = query["unix_socket"]
        my = pymysql.connect(**args)
        try:
            yield PyMySQLSource(my)
        finally:
            my.close()
    elif (backend := _backend_of_scheme(parts.scheme)) is not None:
        # Another source database's backend (SQLite's file URLs): its planner.
        with backend.planning(backend.endpoint_from_url(url)) as planning:
            yield planning.planner
    else:
        from dms_pkg.install.installer import connect

        with connect(url, autocommit=True) as pg:
            yield PsycopgSource(pg)


def _backend_of_scheme(scheme: str) -> Any:
    """The registered source backend whose URLs use ``scheme``, if any."""
    if not scheme or scheme in ("postgresql", "postgres"):
        return None
    from dms_pkg.backends.base import registered

    for backend in registered().values():
        if scheme in backend.URL_SCHEMES:
            return backend
    return None
