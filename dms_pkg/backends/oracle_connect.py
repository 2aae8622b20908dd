"""Connecting to Oracle with python-oracledb (thin mode), without a secret in
a table, a message or a log.

A DMS_DBCONDTLS row of DBTYP ORACLE names the database either by parts
(DBHOST, DBPORT -- 1521 when empty --, DBSRVNM the *service name*) or by
CONSTR: an EZConnect string (``host:port/service``, ``tcps://host/svc?...``),
a TNS alias looked up in ``tnsnames.ora`` (``TNS_ADMIN``), or a full
``(DESCRIPTION=...)``.  USRNM is the login; a row that names none logs in
as the caller, like a user mapping FOR CURRENT_USER (docs/roles.md).

Where the password lives (PWDSRC):

* ``ENV`` -- the environment variable PWDREF of the process that connects,
  read when it connects (for workers inside the server: the server's
  environment);
* ``NONE`` -- external authentication (OS or wallet-stored credentials).
  python-oracledb's thin mode cannot do it (it logs in with a password or a
  token only): such a row is refused before any network traffic unless the
  process runs the driver in thick mode (``oracledb.init_oracle_client()``);
* ``PGSERVICE`` / ``PGPASS`` are libpq's files and mean nothing to Oracle:
  refused with a message that says so.

After connecting, ``check_login`` looks at who the session is: a login with
the DBA role, SYSDBA-style or "become anybody" privileges would run the
caller's SQL with more than the caller may have, and is refused unless the
caller is a PostgreSQL superuser -- the same rule as a PostgreSQL
connection's superuser check.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlsplit

from dms_pkg.errors import (
    FEATURE_NOT_SUPPORTED,
    INSUFFICIENT_PRIVILEGE,
    INVALID_PARAMETER_VALUE,
    SQLCLIENT_UNABLE_TO_ESTABLISH,
    DmsError,
)

DEFAULT_PORT = 1521
CONNECT_TIMEOUT = 10.0  # seconds, like the PostgreSQL connections' connect_timeout
PROGRAM = "dms_pkg"  # V$SESSION.PROGRAM, so a DBA sees whose sessions these are
MASK = "********"
URL_SCHEMES = ("oracle", "oracle+oracledb")

# What may carry a secret in an Oracle connect string: the password of the
# ``user/password@dsn`` form, and EZConnect Plus or descriptor parameters.
_SECRET_PARAM = re.compile(r"(?i)(?:^|[\s(?&;])([a-z_]*password|pwd|passwd)\s*=")
_SECRET_PARAM_VALUE = re.compile(
    r"(?i)((?:^|[\s(?&;])(?:[a-z_]*password|pwd|passwd)\s*=\s*)(\"[^\"]*\"|[^\s&;)]+)")
_URL_PASSWORD = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/:@\s]*):[^\s/]*@")
# user/password@ where the user is an Oracle name (optionally "quoted" or
# with a [proxy] part) and the password runs to the last '@' before a blank,
# as the driver reads it (an unquoted password may itself hold an '@').
_USER_PASSWORD = re.compile(r'((?:"[^"]+"|[\w$#.]+)(?:\[[^\]]*\])?)/("[^"]*"|[^\s"]*)@')


@dataclass(frozen=True)
class Caller:
    """The PostgreSQL login a connection is opened for."""

    login: str
    is_superuser: bool = False


def _dms_error(message: str, hint: str, sqlstate: str = INVALID_PARAMETER_VALUE) -> DmsError:
    return DmsError(message, sqlstate=sqlstate, hint=hint)


def _split_credentials(constr: str) -> tuple[str | None, str | None, str]:
    """``(user, password, dsn)`` of a connect string, parsed by python-oracledb
    itself.  Only a string with ``@`` can hold ``user/password@``: the driver
    would read ``host:1521/svc`` alone as user ``host:1521``, password ``svc``."""
    text = constr.strip()
    if "@" not in text or text.startswith("("):
        return None, None, text
    import oracledb

    user, password, dsn = oracledb.ConnectParams().parse_dsn_with_credentials(text)
    return user, password, dsn or ""


def secret_key(constr: str) -> str | None:
    """What in an Oracle connect string is a secret, or None.

    Sees ``user/password@dsn`` (the driver's own parser), ``password=`` style
    parameters of EZConnect Plus (``?wallet_password=...``) and of a
    descriptor (``(PASSWORD=...)``).  The string itself is never repeated.
    """
    _user, password, _dsn = _split_credentials(constr)
    if password is not None:
        return "password (user/password@)"
    found = _SECRET_PARAM.search(constr)
    if found is not None:
        return found.group(1).lower()
    return None


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every password replaced by ``********``: in URLs
    (``oracle://u:pw@h``), in ``user/password@dsn``, in ``password=`` style
    parameters, and every literal occurrence of ``secrets``."""
    # Parameters first: their values may hold an '@' the other forms key on.
    shown = _SECRET_PARAM_VALUE.sub(lambda m: f"{m.group(1)}{MASK}", text)
    shown = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{MASK}@", shown)
    shown = _USER_PASSWORD.sub(lambda m: f"{m.group(1)}/{MASK}@", shown)
    for secret in secrets:
        if secret:
            shown = shown.replace(secret, MASK)
    return shown


def _row_name(row: Mapping[str, Any]) -> str:
    if row.get("conid") is None:
        return "the Oracle connection"
    return f"connection {row.get('conid')} ({row.get('connm')})"


def _text(row: Mapping[str, Any], column: str) -> str | None:
    value = row.get(column)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def connect_params(
    row: Mapping[str, Any],
    caller: Caller | str | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``oracledb.connect()`` from a DMS_DBCONDTLS row.

    Looked up now: an ENV password is read from ``environ`` (default
    ``os.environ``) at this call, so call it when connecting and drop the
    result afterwards.  Every refusal names the connection and the fix and
    never repeats CONSTR (it may hold the secret it is refused for).
    """
    name = _row_name(row)
    dbtyp = str(row.get("dbtyp") or "ORACLE").upper()
    if dbtyp != "ORACLE":
        raise _dms_error(f"{name} is a {dbtyp} database, not ORACLE",
                         "use the backend of its DBTYP")
    login = caller.login if isinstance(caller, Caller) else caller
    params: dict[str, Any] = {"tcp_connect_timeout": CONNECT_TIMEOUT, "program": PROGRAM}

    constr = _text(row, "constr")
    user = _text(row, "usrnm")
    if constr is not None:
        if any(_text(row, c) for c in ("dbhost", "dbport", "dbsrvnm")):
            raise _dms_error(
                f"{name} gives both CONSTR and DBHOST/DBPORT/DBSRVNM",
                "name the database one way: CONSTR (an EZConnect string such as "
                "'db1:1521/sales', a TNS alias or a descriptor) or DBHOST, DBPORT and DBSRVNM")
        key = secret_key(constr)
        if key is not None:
            raise DmsError(
                f"CONSTR of {name} holds a secret ({key}); DMS tables never store one",
                sqlstate=INVALID_PARAMETER_VALUE,
                detail="the string is not repeated here",
                hint="remove it, put the login in USRNM and set PWDSRC ENV with PWDREF the "
                "name of an environment variable that holds the password")
        constr_user, _password, dsn = _split_credentials(constr)
        if constr_user is not None and user is not None and constr_user != user:
            raise _dms_error(f"{name} names the login twice, in USRNM and in CONSTR",
                             "keep it in USRNM only")
        user = user or constr_user
        params["dsn"] = dsn
    else:
        host, service = _text(row, "dbhost"), _text(row, "dbsrvnm")
        if host is None or service is None:
            missing = " and ".join(c for c, v in (("DBHOST", host), ("DBSRVNM", service))
                                   if v is None)
            raise _dms_error(
                f"{name} has no {missing}",
                "give DBHOST, DBPORT (1521 when empty) and DBSRVNM (the service name), "
                "or CONSTR (an EZConnect string such as 'db1:1521/sales', a TNS alias or "
                "a (DESCRIPTION=...) for a SID)")
        port = row.get("dbport")
        params.update(host=host, port=int(port) if port is not None else DEFAULT_PORT,
                      service_name=service)

    source = str(row.get("pwdsrc") or "NONE").upper()
    reference = _text(row, "pwdref")
    if source in ("PGSERVICE", "PGPASS"):
        raise _dms_error(
            f"{name} has PWDSRC {source}, a libpq password source that Oracle logins "
            "cannot use",
            "set PWDSRC ENV with PWDREF the name of an environment variable that holds the "
            "password, or NONE for external authentication (thick mode only)")
    if source == "NONE":
        if user is not None:
            raise _dms_error(
                f"{name} has PWDSRC NONE (external authentication) and a login ({user})",
                "external authentication logs in as the OS or wallet identity: leave USRNM "
                "empty, or set PWDSRC ENV for a password login")
        params["externalauth"] = True
        return params
    if source != "ENV":
        raise _dms_error(f"{name} has an unknown PWDSRC {source}",
                         "use ENV (PWDREF names an environment variable) or NONE")
    if reference is None:
        raise _dms_error(f"{name} has PWDSRC ENV but no PWDREF",
                         "put the name of the environment variable that holds the password "
                         "in PWDREF")
    env = os.environ if environ is None else environ
    secret = env.get(reference)
    if secret is None:
        raise DmsError(
            f"{name} takes its password from environment variable {reference}, which is "
            "not set",
            sqlstate=SQLCLIENT_UNABLE_TO_ESTABLISH,
            hint="set it in the environment of the process that connects (for workers "
            "inside the server: the server's environment, e.g. "
            "/etc/postgresql/15/main/environment)")
    user = user or login
    if user is None:
        raise _dms_error(f"{name} names no login and no caller was given",
                         "put the Oracle login in USRNM")
    params.update(user=user, password=secret)
    return params


def params_from_url(url: str) -> dict[str, Any]:
    """``oracledb.connect()`` keywords for ``oracle://user[:password]@host[:port]/service``.

    The service may also come as ``?service_name=`` (SQLAlchemy's form, which
    testcontainers prints).  A password in the URL is kept in the returned
    dict only -- for the Python API, which is handed one in memory; print the
    URL only through ``redact``.  Without one, the login is external (thick mode).
    """
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in URL_SCHEMES:
        raise _dms_error(f"{redact(url)} is not an oracle:// URL",
                         "write oracle://user@host:1521/service")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    service = unquote(parts.path.lstrip("/")) or query.get("service_name")
    unknown = sorted(set(query) - {"service_name"})
    if unknown:
        raise _dms_error(f"{redact(url)} has parameters this backend does not take: "
                         + ", ".join(unknown), "keep only the service name")
    if not parts.hostname or not service:
        raise _dms_error(f"{redact(url)} names no host or no service",
                         "write oracle://user@host:1521/service")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise _dms_error(f"{redact(url)} has an invalid port",
                         "write oracle://user@host:1521/service") from None
    params: dict[str, Any] = {
        "host": parts.hostname, "port": port, "service_name": service,
        "tcp_connect_timeout": CONNECT_TIMEOUT, "program": PROGRAM,
    }
    if parts.username:
        params["user"] = unquote(parts.username)
    if parts.password is not None:
        params["password"] = unquote(parts.password)
    elif not parts.username:
        params["externalauth"] = True
    return params


def describe(params: Mapping[str, Any]) -> str:
    """Where ``params`` connect, without a secret: ``scott@db1:1521/sales``."""
    where = params.get("dsn") or (
        f"{params.get('host')}:{params.get('port', DEFAULT_PORT)}/{params.get('service_name')}")
    who = params.get("user")
    shown = f"{who}@{where}" if who else f"{where} (external authentication)"
    return redact(str(shown), [params.get("password")])


def connect(params: Mapping[str, Any], *, label: str | None = None,
            caller: Caller | None = None) -> Any:
    """An ``oracledb.Connection`` for ``params``; errors (SQLSTATE 08001 and
    Oracle's own message) name ``label`` and never the secret.

    With ``caller``, ``check_login`` refuses a login with more privileges than
    the caller may have (the connection is closed first).  The session runs
    the chunk dialect's setup (binary text order, see chunking.dialects).
    """
    import oracledb

    from dms_pkg.backends.oracle_errors import classify

    where = label or f"Oracle at {describe(params)}"
    if params.get("externalauth") and oracledb.is_thin_mode():
        raise DmsError(
            f"cannot connect to {where}: external authentication needs python-oracledb's "
            "thick mode (Oracle Client libraries); thin mode logs in with a password only",
            sqlstate=FEATURE_NOT_SUPPORTED,
            hint="set PWDSRC ENV with PWDREF naming an environment variable that holds the "
            "password (and USRNM the login)")
    try:
        conn = oracledb.connect(**params)
    except oracledb.Error as exc:
        fault = classify(exc)
        raise DmsError(
            f"cannot connect to {where}: {redact(fault.message, [params.get('password')])}",
            sqlstate=SQLCLIENT_UNABLE_TO_ESTABLISH,
            hint="check the DMS_DBCONDTLS row, the password's environment variable and that "
            "the listener accepts the service") from None
    try:
        with conn.cursor() as cur:
            for statement in session_setup():
                cur.execute(statement)
            if caller is not None:
                cur.execute(LoginCheck.SQL)
                row = cur.fetchone()
                LoginCheck.check(row, caller, where)
    except BaseException:
        conn.close()
        raise
    return conn


def session_setup() -> tuple[str, ...]:
    """Statements every Oracle session of a run runs first (the chunk dialect's)."""
    from dms_pkg.chunking.dialects import get_dialect

    return get_dialect("oracle").SESSION_SETUP


class LoginCheck:
    """Who an Oracle session is, and whether it may run the caller's SQL.

    One row: the session user, how many of ``ADMIN_ROLES`` are enabled and
    how many of ``ADMIN_PRIVILEGES`` it holds (SESSION_ROLES / SESSION_PRIVS
    include what roles grant).  Those are the privileges that reach beyond
    any grant -- the PostgreSQL superuser's equivalent -- so a caller who is
    no superuser is not handed them through a connection row.
    """

    ADMIN_USERS: ClassVar[frozenset[str]] = frozenset({"SYS", "SYSTEM"})
    ADMIN_ROLES: ClassVar[tuple[str, ...]] = ("DBA", "IMP_FULL_DATABASE",
                                              "DATAPUMP_IMP_FULL_DATABASE")
    ADMIN_PRIVILEGES: ClassVar[tuple[str, ...]] = (
        "SYSDBA", "SYSOPER", "BECOME USER", "ALTER USER", "GRANT ANY PRIVILEGE",
        "GRANT ANY ROLE", "GRANT ANY OBJECT PRIVILEGE", "CREATE ANY PROCEDURE",
        "EXECUTE ANY PROCEDURE", "ALTER SYSTEM", "ALTER DATABASE")
    SQL: ClassVar[str] = (
        "SELECT SYS_CONTEXT('USERENV', 'SESSION_USER') AS login, "
        "(SELECT COUNT(*) FROM session_roles WHERE role IN ("
        + ", ".join(f"'{r}'" for r in ADMIN_ROLES) + ")) AS admin_roles, "
        "(SELECT COUNT(*) FROM session_privs WHERE privilege IN ("
        + ", ".join(f"'{p}'" for p in ADMIN_PRIVILEGES) + ")) AS admin_privileges "
        "FROM dual"
    )

    @classmethod
    def check(cls, row: tuple[Any, ...] | None, caller: Caller, where: str) -> None:
        """Refuse (42501) an administrator login for a caller who is no superuser."""
        if row is None or caller.is_superuser:
            return
        login, roles, privileges = str(row[0]), int(row[1] or 0), int(row[2] or 0)
        if login.upper() in cls.ADMIN_USERS or roles or privileges:
            raise DmsError(
                f"{where} logs in as {login}, an administrator of its database: the engine "
                f"would run your SQL there with privileges beyond any grant, and "
                f"{caller.login} is not a superuser",
                sqlstate=INSUFFICIENT_PRIVILEGE,
                hint="point the connection at an Oracle login without the DBA role or ANY/"
                "SYS privileges, granted SELECT (and FLASHBACK, for consistent reads) on the "
                "tables the loads read")


def cancel(connection: Any) -> None:
    """Break the statement ``connection`` is running, from any thread.

    python-oracledb's way: ``Connection.cancel()`` sends a break (out of band
    where the network allows it); the call running in the other thread
    raises ORA-01013 and the connection stays usable.  A connection that is
    already closed has nothing to cancel: that is not an error.
    """
    import oracledb

    try:
        connection.cancel()
    except oracledb.Error as exc:
        from dms_pkg.backends.oracle_errors import classify

        if classify(exc).sqlstate not in ("08003", "08006"):
            raise
