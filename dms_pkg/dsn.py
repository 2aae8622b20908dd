"""Connection strings: parse, redact, and describe them without leaking secrets.

DESIGN §6: no credential may reach a table, a log, a notice or an error.  Every
message that mentions a DSN goes through :func:`redact` first.
"""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict, make_conninfo

_SECRET_KEYS = frozenset({"password", "sslpassword", "sslkey"})


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
