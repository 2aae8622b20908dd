"""DMS_DBCONDTLS rows -> driver connections, without a password ever stored.

A connection row names where its secret lives (DESIGN §4, §6):

* ``NONE``      -- no password (peer/trust/certificate authentication);
* ``PGSERVICE`` -- ``service=<PWDREF>`` from pg_service.conf;
* ``PGPASS``    -- libpq's password file (``passfile=<PWDREF>`` when given);
* ``ENV``       -- the environment variable ``<PWDREF>`` of the process that
  connects (for a worker inside the server: the server's environment).

The password, when there is one, is handed to the driver as a keyword and
never put into a connection string, a table, a log line or a message.
``conid`` NULL means "this database", the one the engine runs in.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dms_pkg.db.base import Database
from dms_pkg.dsn import redact
from dms_pkg.errors import (
    FEATURE_NOT_SUPPORTED,
    INVALID_PARAMETER_VALUE,
    SQLCLIENT_UNABLE_TO_ESTABLISH,
    UNDEFINED_OBJECT,
    DmsError,
)

# DBTYP -> the chunk planner's dialect.  Only PostgreSQL moves data today.
DIALECTS = {"POSTGRESQL": "postgres", "MYSQL": "mysql", "MARIADB": "mysql",
            "ORACLE": "oracle", "SQLITE": "sqlite"}
SUPPORTED_DBTYPES = ("POSTGRESQL",)


@dataclass(frozen=True)
class ConnInfo:
    """Where one database is, as the engine needs it (no secret inside)."""

    conid: int | None
    name: str
    dbtyp: str
    conninfo: str  # libpq key=value string without any password
    password_env: str | None = None
    # Only for connections handed to the Python API: kept in memory, never shown.
    password: str | None = field(default=None, repr=False, compare=False)

    @property
    def dialect(self) -> str:
        return DIALECTS[self.dbtyp]

    @property
    def is_local(self) -> bool:
        return self.conid is None

    def describe(self) -> str:
        if self.conid is None:
            return "this database"
        return f"connection {self.conid} ({self.name})"

    def connect_kwargs(self, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Keyword arguments for psycopg.connect(), the password looked up now."""
        kwargs: dict[str, Any] = {"conninfo": self.conninfo}
        if self.password:
            kwargs["password"] = self.password
        if self.password_env:
            env = os.environ if environ is None else environ
            secret = env.get(self.password_env)
            if secret is None:
                raise DmsError(
                    f"{self.describe()} takes its password from environment variable "
                    f"{self.password_env}, which is not set",
                    sqlstate=SQLCLIENT_UNABLE_TO_ESTABLISH,
                    hint="set it in the environment of the process that connects "
                    "(for workers inside the server: the server's environment, e.g. "
                    "/etc/postgresql/15/main/environment), or use PGSERVICE/PGPASS",
                )
            kwargs["password"] = secret
        return kwargs


def local(conninfo: str) -> ConnInfo:
    return ConnInfo(None, "this database", "POSTGRESQL", conninfo)


def conninfo_from_row(row: Mapping[str, Any]) -> ConnInfo:
    """Build a ConnInfo from a DMS_DBCONDTLS row."""
    parts: dict[str, Any] = {}
    if row.get("constr"):
        try:
            parts.update(conninfo_to_dict(row["constr"]))
        except psycopg.ProgrammingError as exc:
            raise DmsError(
                f"connection {row['conid']} ({row['connm']}) has an invalid CONSTR: {exc}",
                sqlstate=INVALID_PARAMETER_VALUE,
                hint="use key=value pairs such as 'service=dwh' or 'host=db1 dbname=sales'",
            ) from None
    for column, key in (("dbhost", "host"), ("dbport", "port"), ("dbsrvnm", "dbname"),
                        ("usrnm", "user")):
        if row.get(column) is not None:
            parts[key] = str(row[column])
    parts.pop("password", None)  # the table refuses one too; never pass it on
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
    return ConnInfo(
        conid=int(row["conid"]),
        name=str(row["connm"]),
        dbtyp=str(row["dbtyp"]),
        conninfo=make_conninfo("", **{k: str(v) for k, v in parts.items()}),
        password_env=password_env,
    )


def resolve(home: Database, conid: int | None, local_conninfo: str, role: str) -> ConnInfo:
    """The connection ``conid`` (None = this database), checked to be usable.

    ``role`` (source/target) only words the messages.
    """
    if conid is None:
        return local(local_conninfo)
    rows = home.query(
        "SELECT conid, connm, dbtyp, dbhost, dbport, dbsrvnm, usrnm, constr, pwdsrc, pwdref"
        " FROM dms.dms_dbcondtls WHERE conid = $1 AND curflg = 'Y'",
        [conid],
    )
    if not rows:
        raise DmsError(
            f"{role} connection {conid} does not exist in DMS_DBCONDTLS (or is not current)",
            sqlstate=UNDEFINED_OBJECT,
            hint="SELECT conid, connm, dbtyp FROM dms.dms_dbcondtls WHERE curflg = 'Y' lists "
            "the connections; pass NULL for this database",
        )
    info = conninfo_from_row(rows[0])
    if info.dbtyp not in SUPPORTED_DBTYPES:
        raise DmsError(
            f"{role} {info.describe()} is a {info.dbtyp} database; the parallel engine moves "
            "data between PostgreSQL databases",
            sqlstate=FEATURE_NOT_SUPPORTED,
            hint="plan such a query with dms.plan_chunks(p_dialect => ...); loading from "
            f"{info.dbtyp} comes with the row path for other sources",
        )
    return info


def open_connection(info: ConnInfo, **kwargs: Any) -> psycopg.Connection[Any]:
    """A psycopg connection to ``info``; errors name the connection, never a secret."""
    args = info.connect_kwargs()
    try:
        return psycopg.connect(args.pop("conninfo"), connect_timeout=10, **args, **kwargs)
    except psycopg.OperationalError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        raise DmsError(
            f"cannot connect to {info.describe()} at {redact(info.conninfo)}: "
            + ("; ".join(lines) or type(exc).__name__),
            sqlstate=SQLCLIENT_UNABLE_TO_ESTABLISH,
            hint="check the DMS_DBCONDTLS row and that the server accepts the connection",
        ) from None


@contextmanager
def connect(info: ConnInfo, **kwargs: Any) -> Iterator[psycopg.Connection[Any]]:
    conn = open_connection(info, **kwargs)
    try:
        yield conn
    finally:
        conn.close()
