"""DMS_DBCONDTLS rows -> endpoints, without a password ever stored.

A connection row names where its secret lives (DESIGN §4, §6): PWDSRC
``NONE`` (no password: peer, trust, certificates, a socket), ``PGSERVICE``
and ``PGPASS`` (libpq's service and password files), ``ENV`` (the
environment variable ``<PWDREF>`` of the process that connects -- for a
worker inside the server, the server's environment).  Which of them a
database can use, and how its row becomes a driver's connection, is its
source backend's business (``dms_pkg.backends``); this module resolves a
connection id into an endpoint for the caller:

* the row comes from ``dms.connection_for_use``, which refuses (42501) a
  login that was not granted the connection;
* a row that names no login logs in as the caller;
* the backend's guard checks, once connected, that the login holds no more
  than the caller may have (docs/roles.md).

``conid`` NULL means "this database", the one the engine runs in.  Targets
are PostgreSQL databases; sources may be any DBTYP with a backend.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from dms_pkg.backends import postgres
from dms_pkg.backends.base import backend_for
from dms_pkg.backends.endpoint import Endpoint
from dms_pkg.db import faults
from dms_pkg.db.base import Database
from dms_pkg.dsn import UnparseableConnectionString, secret_key
from dms_pkg.errors import FEATURE_NOT_SUPPORTED, INVALID_PARAMETER_VALUE, DmsError


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


def resolve(home: Database, conid: int | None, local_conninfo: str, role: str) -> Endpoint:
    """The connection ``conid`` (None = this database), checked to be usable.

    ``role`` is "source" or "target" (anything else: "source or target");
    a target must be a PostgreSQL database.  It also words the messages.
    """
    if conid is None:
        return postgres.local(local_conninfo)
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
    row = rows[0]
    dbtyp = str(row["dbtyp"])
    if role == "target" and dbtyp != "POSTGRESQL":
        raise DmsError(
            f"target connection {conid} ({row['connm']}) is a {dbtyp} database; the engine "
            "loads PostgreSQL targets",
            sqlstate=FEATURE_NOT_SUPPORTED,
            hint=f"use the {dbtyp} connection as the source, and a PostgreSQL one (or NULL for "
            "this database) as the target",
        )
    backend = backend_for(dbtyp)
    guard = backend.guard(home)
    endpoint = backend.endpoint(row, guard.caller if guard is not None else _caller(home))
    backend.authorize(home, endpoint)
    return dataclasses.replace(endpoint, guard=guard)


def _caller(home: Database) -> str:
    return str(home.query("SELECT session_user::text AS login")[0]["login"])


def _as_dms_error(exc: BaseException) -> DmsError:
    """A refusal raised by the database (psycopg or PL/Python) as a DmsError with
    its own SQLSTATE, message and HINT; anything that is no database error is
    raised as it is."""
    fault = faults.fault_of(exc)
    if fault is None or not fault.sqlstate:
        raise exc
    return DmsError(fault.message.removeprefix("dms: "), sqlstate=fault.sqlstate,
                    detail=fault.detail, hint=fault.hint)
