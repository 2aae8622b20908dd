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
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dms_pkg.db import faults
from dms_pkg.db.base import Database
from dms_pkg.db.interrupts import InterruptibleConnection
from dms_pkg.dsn import UnparseableConnectionString, redact, secret_key
from dms_pkg.errors import (
    FEATURE_NOT_SUPPORTED,
    INSUFFICIENT_PRIVILEGE,
    INVALID_PARAMETER_VALUE,
    SQLCLIENT_UNABLE_TO_ESTABLISH,
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
    # Checks who a DMS_DBCONDTLS connection really logged in as (see Guard).
    guard: Guard | None = field(default=None, repr=False, compare=False)
    # The engine's own route back to this server (dms.loopback_conninfo).
    loopback: bool = False

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


def local(conninfo: str, *, loopback: bool = True) -> ConnInfo:
    """This database, reached through ``conninfo`` (the loopback route, unless
    ``loopback`` is false: a DSN a ``dms worker`` process was given)."""
    return ConnInfo(None, "this database", "POSTGRESQL", conninfo, loopback=loopback)


LOOPBACK_HINT = (
    "the server must let its own OS user log in as each dms login over its Unix socket "
    "without a password (peer authentication with an ident map, or trust on a socket only "
    "that user can reach): see docs/roles.md, \"Trust model\"")


def check_stored_row(row: Mapping[str, Any]) -> None:
    """Refuse a DMS_DBCONDTLS row whose CONSTR holds a secret (the table's trigger).

    Nothing of the string is repeated in the error: it may be the secret.
    """
    constr = row.get("constr")
    if not constr:
        return
    dbtyp = str(row.get("dbtyp") or "POSTGRESQL")
    name = f"connection {row.get('connm')!s}"
    try:
        key = secret_key(str(constr), dbtyp)
    except UnparseableConnectionString:
        raise DmsError(
            f"CONSTR of {name} is not a connection string libpq can read",
            sqlstate=INVALID_PARAMETER_VALUE,
            hint="use key=value pairs such as 'service=dwh' or 'host=db1 dbname=sales', or a "
            "postgresql://host/db URI; nothing was stored",
        ) from None
    if key is not None:
        raise DmsError(
            f"CONSTR of {name} holds a secret ({key}); DMS tables never store one",
            sqlstate=INVALID_PARAMETER_VALUE,
            detail="nothing was stored, and the string is not repeated here",
            hint="remove it and say where the secret lives: PWDSRC PGPASS (a .pgpass entry), "
            "PGSERVICE (a pg_service.conf entry, PWDREF its name) or ENV (PWDREF names an "
            "environment variable of the connecting process)",
        )


def _names_a_login(parts: Mapping[str, Any]) -> bool:
    """Whether libpq would log in as a user the connection names (or a service might)."""
    return bool(parts.get("user") or parts.get("service"))


def conninfo_from_row(row: Mapping[str, Any], default_user: str | None = None) -> ConnInfo:
    """Build a ConnInfo from a DMS_DBCONDTLS row.

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
    return ConnInfo(
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

    def check(self, conn: psycopg.Connection[Any], info: ConnInfo, probe: str) -> None:
        self.home.query("SELECT pg_catalog.pg_stat_clear_snapshot()")
        here = self.home.query(
            "SELECT a.usename::text AS login FROM pg_catalog.pg_stat_activity a"
            " WHERE a.pid = $1 AND a.application_name = $2",
            [conn.info.backend_pid, probe])
        login = conn.info.user
        if here:
            if here[0]["login"] != self.caller:
                raise DmsError(
                    f"{info.describe()} logs in to this server as {here[0]['login']}, not as "
                    f"you ({self.caller}): the engine would run your SQL with its privileges",
                    sqlstate=INSUFFICIENT_PRIVILEGE,
                    hint="a connection to this server must log in as whoever uses it: leave "
                    "USRNM and the user of CONSTR empty (it then logs in as the caller), or "
                    "pass NULL for this database",
                )
            return
        if conn.info.parameter_status("is_superuser") == "on" and not self.caller_is_superuser:
            raise DmsError(
                f"{info.describe()} logs in as {login}, a superuser of its server: the engine "
                f"would run your SQL there as a superuser, and {self.caller} is not one",
                sqlstate=INSUFFICIENT_PRIVILEGE,
                hint="point the connection at a login without SUPERUSER that has the "
                "privileges the loads need",
            )


def resolve(home: Database, conid: int | None, local_conninfo: str, role: str) -> ConnInfo:
    """The connection ``conid`` (None = this database), checked to be usable.

    The row comes from ``dms.connection_for_use``, which refuses (42501) a
    login that was not granted the connection.  ``role`` (source/target)
    only words the messages.
    """
    if conid is None:
        return local(local_conninfo)
    try:
        rows = home.query(
            "SELECT conid, connm, dbtyp, dbhost, dbport, dbsrvnm, usrnm, constr, pwdsrc, pwdref"
            " FROM dms.connection_for_use($1::bigint)",
            [conid],
        )
    except Exception as exc:  # refused: no such connection, or not granted
        error = _as_dms_error(exc)
        if error.message.startswith("connection ") or error.message.startswith(
                "permission denied for connection "):
            # Say which one: the source or the target.
            error.message = error.message.replace("connection ", f"{role} connection ", 1)
        raise error from None
    guard = Guard.of(home)
    info = conninfo_from_row(rows[0], default_user=guard.caller)
    info = ConnInfo(info.conid, info.name, info.dbtyp, info.conninfo, info.password_env,
                    guard=guard)
    if info.dbtyp not in SUPPORTED_DBTYPES:
        raise DmsError(
            f"{role} {info.describe()} is a {info.dbtyp} database; the parallel engine moves "
            "data between PostgreSQL databases",
            sqlstate=FEATURE_NOT_SUPPORTED,
            hint="plan such a query with dms.plan_chunks(p_dialect => ...); loading from "
            f"{info.dbtyp} comes with the row path for other sources",
        )
    return info


def _as_dms_error(exc: BaseException) -> DmsError:
    """A refusal raised by the database (psycopg or PL/Python) as a DmsError with
    its own SQLSTATE, message and HINT; anything that is no database error is
    raised as it is."""
    fault = faults.fault_of(exc)
    if fault is None or not fault.sqlstate:
        raise exc
    return DmsError(fault.message.removeprefix("dms: "), sqlstate=fault.sqlstate,
                    detail=fault.detail, hint=fault.hint)


def open_connection(info: ConnInfo, **kwargs: Any) -> psycopg.Connection[Any]:
    """A psycopg connection to ``info``; errors name the connection, never a secret.

    A DMS_DBCONDTLS connection first logs in under a one-time application
    name, so that its guard can find it in this server's pg_stat_activity;
    the name asked for is set once the guard agreed.
    """
    args = info.connect_kwargs()
    wanted = kwargs.pop("application_name", None)
    probe = f"dms probe {uuid.uuid4()}" if info.guard is not None else None
    name = probe or wanted
    if name:
        kwargs["application_name"] = name
    try:
        # Interruptible: inside a backend, its waits let a cancel or terminate in.
        conn: psycopg.Connection[Any] = InterruptibleConnection.connect(
            args.pop("conninfo"), connect_timeout=10, **args, **kwargs)
    except psycopg.OperationalError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        reason = "; ".join(lines) or type(exc).__name__
        if info.loopback:
            parts = conninfo_to_dict(info.conninfo)
            raise DmsError(
                f"a worker session cannot log in to this server as {parts.get('user')}",
                sqlstate=SQLCLIENT_UNABLE_TO_ESTABLISH,
                detail=f"{reason} (loopback host={parts.get('host')} port={parts.get('port')})",
                hint=LOOPBACK_HINT,
            ) from None
        raise DmsError(
            f"cannot connect to {info.describe()} at {redact(info.conninfo)}: {reason}",
            sqlstate=SQLCLIENT_UNABLE_TO_ESTABLISH,
            hint="check the DMS_DBCONDTLS row and that the server accepts the connection",
        ) from None
    if info.guard is None or probe is None:
        return conn
    try:
        info.guard.check(conn, info, probe)
        conn.execute("SELECT pg_catalog.set_config('application_name', %s, false)",
                     [wanted or ""])
        if not conn.autocommit:
            conn.commit()
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def connect(info: ConnInfo, **kwargs: Any) -> Iterator[psycopg.Connection[Any]]:
    conn = open_connection(info, **kwargs)
    try:
        yield conn
    finally:
        conn.close()
