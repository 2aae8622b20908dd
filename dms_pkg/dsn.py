"""Connection strings: parse, redact, and describe them without leaking secrets.

DESIGN §6: no credential may reach a table, a log, a notice or an error.  Every
message that mentions a DSN goes through :func:`redact` first.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

_SECRET_KEYS = frozenset({"password", "sslpassword", "sslkey"})
# Keys whose value is itself a secret (sslkey is a file name, not a secret).
SECRET_BEARING_KEYS = frozenset({"password", "sslpassword", "pwd", "passwd"})
# key=value pairs of a driver's own connection string (ODBC-, JDBC- or
# MySQL-style): separated by blanks, ';' or '&'.
_PAIR = re.compile(r"(?:^|[\s;&?])([A-Za-z_][A-Za-z0-9_.%-]*)\s*=")


class UnparseableConnectionString(ValueError):
    """libpq could not parse a PostgreSQL connection string (its text is not repeated)."""


def secret_key(constr: str, dbtyp: str = "POSTGRESQL") -> str | None:
    """The first secret-bearing key in a connection string, or None.

    PostgreSQL strings are parsed by libpq itself (psycopg's
    ``conninfo_to_dict``), so every form libpq accepts is seen as libpq sees
    it: key=value pairs, ``postgresql://user:secret@host/db`` URIs and
    percent-encoded query keys (``?%70assword=...``).  Other databases'
    strings are read as URLs (a password in the user-info part or the query)
    and as key=value pairs; Oracle's also as ``user/password@dsn``.  Raises
    :class:`UnparseableConnectionString` for a PostgreSQL string libpq
    refuses; libpq's message is not passed on because it may quote part of
    the string.
    """
    if dbtyp in ("POSTGRESQL", ""):
        try:
            parts = conninfo_to_dict(constr)
        except psycopg.ProgrammingError:
            raise UnparseableConnectionString("libpq cannot parse it") from None
        return next((k for k in parts if k in SECRET_BEARING_KEYS), None)
    if dbtyp == "ORACLE":
        # Oracle's own forms (user/password@dsn, EZConnect Plus and descriptor
        # parameters), read with python-oracledb's parser.
        from dms_pkg.backends.oracle_connect import secret_key as oracle_secret_key

        oracle_key = oracle_secret_key(constr)
        if oracle_key is not None:
            return oracle_key
    text = constr.strip()
    if "://" in text:
        url = urlsplit(text)
        if url.password is not None:
            return "password (in the URL)"
        for key, _value in parse_qsl(url.query, keep_blank_values=True):
            if key.lower() in SECRET_BEARING_KEYS:
                return key.lower()
        text = url.query
    for found in _PAIR.finditer(text):
        key = unquote(found.group(1)).lower()
        if key in SECRET_BEARING_KEYS:
            return key
    return None


def redact(dsn: str) -> str:
    """Return ``dsn`` with every secret replaced, safe to print.

    An unparseable DSN is not echoed at all, since we cannot tell which part
    of it is secret.
    """
    try:
        parts = conninfo_to_dict(dsn)
    except Exception:
        return "<unparseable connection string>"
    shown = {k: ("********" if k in _SECRET_KEYS else v) for k, v in parts.items()}
    return make_conninfo("", **{k: str(v) for k, v in shown.items() if v is not None})


def with_dbname(dsn: str, dbname: str) -> str:
    """The same connection parameters aimed at another database."""
    return make_conninfo(dsn, dbname=dbname)


def with_user(dsn: str, user: str) -> str:
    """The same connection parameters logging in as another role."""
    return make_conninfo(dsn, user=user)
