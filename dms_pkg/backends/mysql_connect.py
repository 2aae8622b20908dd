"""Connecting to MariaDB/MySQL without a secret in a table, a message, a log or
a command line.

A DMS_DBCONDTLS row of DBTYP MYSQL or MARIADB names the server by parts:
DBHOST (reached over TCP; a unix socket is named in CONSTR), DBPORT (3306
when empty), DBSRVNM the database, USRNM the login (a row that names none
logs in as the caller's PostgreSQL login name).  CONSTR
may add driver options as ``key=value`` pairs -- ``unix_socket=/run/mysqld/
mysqld.sock``, ``ssl_ca=/etc/ssl/ca.pem``, ``ssl_cert``, ``ssl_key``,
``connect_timeout`` -- or be a ``mysql://user@host:port/db`` URL; a password
in it is refused when the row is stored.

Where the password lives (PWDSRC): ``ENV``, the environment variable PWDREF
of the process that connects (inside the server: the server's environment),
read when it connects; ``NONE``, no password (unix-socket authentication, an
account without one).  ``PGPASS`` and ``PGSERVICE`` are libpq's files and
mean nothing to MariaDB: refused with a message that says so.

The ``mariadb`` client that streams the rows gets its options, password
included, from an option file it reads through a pipe
(``--defaults-file=/dev/fd/N``): nothing is on its command line or on disk.

After connecting, ``check_login`` looks at the login's grants: a login with
SUPER or ALL PRIVILEGES ON *.* would run a caller's SQL with more than the
caller may have, and is refused -- the rule the PostgreSQL connections
follow for superuser logins (docs/roles.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from dms_pkg.backends.mysql_errors import as_dms_error, from_pymysql
from dms_pkg.errors import INSUFFICIENT_PRIVILEGE, INVALID_PARAMETER_VALUE, DmsError

DEFAULT_PORT = 3306
CONNECT_TIMEOUT = 10  # seconds, like the PostgreSQL connections' connect_timeout
URL_SCHEMES = ("mysql", "mariadb", "mysql+pymysql", "mariadb+pymysql")
MASK = "********"
# CONSTR options a row may give, as pymysql's keywords.
OPTIONS = ("unix_socket", "ssl_ca", "ssl_cert", "ssl_key", "connect_timeout", "charset")
_URL_PASSWORD = re.compile(r"(?i)(\b(?:mysql|mariadb)(?:\+\w+)?://[^/:@\s]*):[^@\s]*@")
_PAIR_SECRET = re.compile(r"(?i)\b(password|passwd|pwd)\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s&;]+)")


def redact(text: str) -> str:
    """``text`` with a URL's password and any ``password=`` value masked."""
    return _PAIR_SECRET.sub(lambda m: f"{m.group(1)}={MASK}",
                            _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{MASK}@", text))


def _row_name(row: Mapping[str, Any]) -> str:
    return f"connection {row.get('conid')} ({row.get('connm')})"


def _text(row: Mapping[str, Any], key: str) -> str | None:
    value = row.get(key)
    return str(value).strip() or None if value is not None else None


def params_from_row(row: Mapping[str, Any], caller: str | None) -> dict[str, Any]:
    """pymysql keyword arguments (no password) for a MYSQL/MARIADB connection row."""
    name = _row_name(row)
    pwdsrc = str(row.get("pwdsrc") or "NONE").upper()
    if pwdsrc in ("PGPASS", "PGSERVICE"):
        raise DmsError(
            f"{name} is a MariaDB/MySQL connection with PWDSRC {pwdsrc}, which is a libpq "
            "password file and means nothing to MariaDB", sqlstate=INVALID_PARAMETER_VALUE,
            hint="use PWDSRC ENV with PWDREF naming an environment variable of the process "
            "that connects, or NONE for unix-socket authentication")
    params: dict[str, Any] = {}
    constr = _text(row, "constr")
    if constr:
        params.update(_constr_params(constr, name))
    host = _text(row, "dbhost")
    if host:
        params["host"] = host
    port = row.get("dbport")
    if port not in (None, ""):
        try:
            params["port"] = int(str(port))
        except ValueError:
            raise DmsError(f"DBPORT of {name} is not a port number: {port!r}",
                           sqlstate=INVALID_PARAMETER_VALUE, hint="give a number such as 3306"
                           ) from None
    database = _text(row, "dbsrvnm")
    if database:
        params["database"] = database
    user = _text(row, "usrnm") or params.get("user") or caller
    if not user:
        raise DmsError(f"{name} names no login", sqlstate=INVALID_PARAMETER_VALUE,
                       hint="set USRNM to the MariaDB account to log in as")
    params["user"] = user
    params.setdefault("host", "localhost")
    params.setdefault("port", DEFAULT_PORT)
    return params


def _constr_params(constr: str, name: str) -> dict[str, Any]:
    if "://" in constr:
        return params_from_url(constr)
    params: dict[str, Any] = {}
    for part in re.split(r"[\s;&]+", constr.strip()):
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in OPTIONS:
            raise DmsError(
                f"CONSTR of {name} has {key or part!r}, which is no MariaDB connection option "
                "dms_pkg reads", sqlstate=INVALID_PARAMETER_VALUE,
                hint="CONSTR takes " + ", ".join(f"{o}=..." for o in OPTIONS)
                + " or a mysql://user@host:port/db URL; host, port, database and login have "
                "their own columns")
        params[key] = int(value) if key == "connect_timeout" else value.strip("'\"")
    return params


def params_from_url(url: str) -> dict[str, Any]:
    """pymysql keyword arguments for ``mysql://user:password@host:port/db?opt=v``
    (the password among them, for the caller's own URL)."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in URL_SCHEMES:
        raise DmsError(f"{redact(url)} is not a mysql:// URL", sqlstate=INVALID_PARAMETER_VALUE,
                       hint="write mysql://user@host:port/database")
    try:
        port = parts.port
    except ValueError:
        raise DmsError(f"the port of {redact(url)} is not a number",
                       sqlstate=INVALID_PARAMETER_VALUE) from None
    params: dict[str, Any] = {"host": parts.hostname or "localhost",
                              "port": port or DEFAULT_PORT}
    if parts.username:
        params["user"] = unquote(parts.username)
    if parts.password is not None:
        params["password"] = unquote(parts.password)
    database = unquote(parts.path.lstrip("/"))
    if database:
        params["database"] = database
    for key, value in parse_qsl(parts.query):
        key = key.lower()
        if key in ("password", "passwd"):
            params["password"] = value
        elif key in OPTIONS:
            params[key] = int(value) if key == "connect_timeout" else value
        else:
            raise DmsError(f"the MariaDB URL option {key!r} is not one dms_pkg reads",
                           sqlstate=INVALID_PARAMETER_VALUE,
                           hint="URL options: " + ", ".join(OPTIONS))
    return params


def describe(params: Mapping[str, Any]) -> str:
    """Where ``params`` connect, for messages (no password)."""
    where = params.get("unix_socket") or (
        f"{params.get('host', 'localhost')}:{params.get('port', DEFAULT_PORT)}")
    return f"{params.get('user', '')}@{where}/{params.get('database') or ''}"


def connect(params: Mapping[str, Any], password: str | None, *, where: str) -> Any:
    """A pymysql connection in the session state every dms_pkg source session
    has: UTC, utf8mb4, autocommit off.  A refused login is a DmsError that names
    ``where`` and never the password."""
    import pymysql

    args = dict(params)
    args.setdefault("connect_timeout", CONNECT_TIMEOUT)
    args["charset"] = "utf8mb4"
    if password is not None:
        args["password"] = password
    try:
        conn = pymysql.connect(**args, autocommit=False, init_command="SET time_zone = '+00:00'")
    except pymysql.err.Error as exc:
        error = from_pymysql(exc)
        assert error is not None
        raise as_dms_error(error, f"cannot connect to the MariaDB/MySQL source {where}"
                           ) from None
    return conn


def check_login(conn: Any, where: str) -> None:
    """Refuse a login that holds SUPER or every privilege on every database."""
    with conn.cursor() as cur:
        cur.execute("SHOW GRANTS FOR CURRENT_USER()")
        grants = [str(row[0]) for row in cur.fetchall()]
    for grant in grants:
        upper = grant.upper()
        on_all = " ON *.* " in upper
        if on_all and ("ALL PRIVILEGES" in upper or re.search(r"\bSUPER\b", upper)):
            what = "ALL PRIVILEGES" if "ALL PRIVILEGES" in upper else "SUPER"
            raise DmsError(
                f"{where} logs in as a MariaDB account with {what} "
                "ON *.*, which would run your SQL with more than you may have",
                sqlstate=INSUFFICIENT_PRIVILEGE,
                hint="give the connection a login with SELECT on the tables it reads (and "
                "RELOAD or LOCK TABLES for consistent reads by several workers)")


def option_file(params: Mapping[str, Any], password: str | None) -> bytes:
    """The ``[client]`` option file the ``mariadb`` client reads through a pipe."""
    keys = {"host": "host", "port": "port", "user": "user", "unix_socket": "socket",
            "ssl_ca": "ssl-ca", "ssl_cert": "ssl-cert", "ssl_key": "ssl-key",
            "connect_timeout": "connect-timeout"}
    lines = ["[client]"]
    for key, option in keys.items():
        value = params.get(key)
        if value is None or (key in ("host", "port") and "unix_socket" in params):
            continue
        lines.append(f"{option}={_option_value(str(value))}")
    # A host means TCP, as for pymysql (MariaDB's own clients would take
    # "localhost" for the default socket).
    lines.append("protocol=" + ("SOCKET" if "unix_socket" in params else "TCP"))
    if "connect_timeout" not in params:
        lines.append(f"connect-timeout={CONNECT_TIMEOUT}")
    if password is not None:
        lines.append(f"password={_option_value(password)}")
    return ("\n".join(lines) + "\n").encode()


def _option_value(value: str) -> str:
    """A value as MariaDB's option-file reader reads it back: quoted, with the
    backslash escapes it understands."""
    if "\n" in value or "\r" in value:
        raise DmsError("a MariaDB connection option holds a line break",
                       sqlstate=INVALID_PARAMETER_VALUE)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
