"""What the Python API accepts as ``source_conn`` / ``target_conn``, as a Endpoint.

A psycopg connection or a PostgreSQL connection string (``key=value`` or a
``postgresql://`` URL).  Anything else is refused before a connection is
opened, so a call that cannot work writes nothing:

* a MySQL/MariaDB, Oracle or SQLite connection (or URL) with SQLSTATE 0A000
  -- the engine's Python API moves PostgreSQL data today; other sources come
  with the database backends (DESIGN §2 ``backends/``);
* any other object, or a string libpq cannot parse, with 22023.

A password in the string is taken out of the connection string and kept in
``Endpoint.password``: every reader then gets it the way it needs it (psycopg
as a keyword, a ``psql`` reader through its environment), and no connection
string the engine builds, shows or passes on a command line holds it.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dms_pkg.backends.base import SourceBackend, registered
from dms_pkg.backends.endpoint import Endpoint
from dms_pkg.errors import FEATURE_NOT_SUPPORTED, INVALID_PARAMETER_VALUE, DmsError

# URL schemes (``mysql+pymysql://`` counts as ``mysql``) and driver packages of
# the databases the Python API does not move yet, by the name users know them by.
_OTHER_SCHEMES = {
    "mysql": "MySQL", "mariadb": "MariaDB", "oracle": "Oracle", "sqlite": "SQLite",
    "mssql": "SQL Server", "sqlserver": "SQL Server",
}
_OTHER_DRIVERS = {
    "pymysql": "MySQL", "MySQLdb": "MySQL", "mysql": "MySQL", "mariadb": "MariaDB",
    "oracledb": "Oracle", "cx_Oracle": "Oracle", "sqlite3": "SQLite", "pyodbc": "ODBC",
}
_POSTGRES_SCHEMES = frozenset({"postgresql", "postgres"})


def _other_backend(scheme: str | None = None, driver: str | None = None
                   ) -> SourceBackend | None:
    """The registered source backend for a URL scheme or a driver module, if any."""
    for backend in registered().values():
        if (scheme is not None and scheme in backend.URL_SCHEMES) or (
                driver is not None and driver in backend.DRIVER_MODULES):
            return backend
    return None


def conninfo_for(conn: Any, role: str) -> Endpoint:
    """``conn`` (what the caller passed as ``<role>_conn``) as a Endpoint; refuse what
    the Python API cannot move.  Targets are PostgreSQL; a source may be any
    database with a backend (a URL of its scheme, or its driver's connection)."""
    if isinstance(conn, psycopg.Connection):
        # info.dsn leaves the password out; info.password has it.
        return Endpoint(None, role, "POSTGRESQL", conn.info.dsn, password=conn.info.password)
    if isinstance(conn, str):
        return _from_string(conn, role)
    driver = type(conn).__module__.split(".", 1)[0]
    backend = _other_backend(driver=driver) if role == "source" else None
    if backend is not None:
        return backend.endpoint_from_connection(conn)
    if driver in _OTHER_DRIVERS:
        raise _not_supported(role, f"a {_OTHER_DRIVERS[driver]} connection "
                             f"({type(conn).__module__}.{type(conn).__name__})")
    raise DmsError(
        f"{role}_conn must be a psycopg connection or a PostgreSQL connection string, "
        f"got {type(conn).__name__}",
        sqlstate=INVALID_PARAMETER_VALUE,
        hint="pass psycopg.connect(...) or 'host=... dbname=...'",
    )


def _from_string(text: str, role: str) -> Endpoint:
    scheme = text.split("://", 1)[0].split("+", 1)[0].strip().lower() if "://" in text else None
    if scheme is not None and scheme not in _POSTGRES_SCHEMES:
        backend = _other_backend(scheme=scheme) if role == "source" else None
        if backend is not None:
            return backend.endpoint_from_url(text)
        if scheme in _OTHER_SCHEMES:
            raise _not_supported(role, f"a {_OTHER_SCHEMES[scheme]} URL ({scheme}://...)")
        raise DmsError(
            f"{role}_conn is a {scheme}:// URL; the Python API connects to PostgreSQL "
            "(postgresql:// URLs or key=value connection strings)",
            sqlstate=INVALID_PARAMETER_VALUE,
            hint="pass 'postgresql://user@host/dbname' or 'host=... dbname=...'",
        )
    try:
        parts = conninfo_to_dict(text)
    except psycopg.ProgrammingError:
        # libpq's message quotes the string, password and all: not repeated.
        raise DmsError(
            f"{role}_conn is not a valid PostgreSQL connection string",
            sqlstate=INVALID_PARAMETER_VALUE,
            hint="use key=value pairs such as 'host=db1 dbname=sales user=etl' or a "
            "postgresql://user@host/dbname URL",
        ) from None
    password = parts.pop("password", None)
    conninfo = make_conninfo("", **{k: str(v) for k, v in parts.items() if v is not None})
    return Endpoint(None, role, "POSTGRESQL", conninfo,
                    password=None if password is None else str(password))


def _not_supported(role: str, what: str) -> DmsError:
    if role == "target":
        return DmsError(
            f"target_conn is {what}: the engine loads PostgreSQL targets (psycopg connections "
            "or PostgreSQL connection strings)",
            sqlstate=FEATURE_NOT_SUPPORTED,
            hint="pass that database as source_conn and a PostgreSQL database as target_conn")
    return DmsError(
        f"source_conn is {what}, and the source backend for it could not be loaded",
        sqlstate=FEATURE_NOT_SUPPORTED,
        hint="install its driver (pip install dms_pkg's dependencies: pymysql, oracledb); "
        "dms.plan_chunks shows how a query would be split meanwhile",
    )
