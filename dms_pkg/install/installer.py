"""``dms install``: put the plugin into one database, in one transaction.

Order: preflight checks (nothing written) -> bootstrap (dms schema, version
tables, roles) -> pending numbered migrations -> SQL API (functions, views)
-> privileges -> a call of ``dms.version()`` that proves the server's
PL/Python imports the right dms_pkg.  Any failure rolls the whole transaction
back, so a database is either fully installed at one version or untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from dms_pkg import __version__
from dms_pkg.dsn import redact
from dms_pkg.errors import (
    FEATURE_NOT_SUPPORTED,
    INSUFFICIENT_PRIVILEGE,
    OBJECT_NOT_IN_PREREQUISITE_STATE,
    SQLCLIENT_UNABLE_TO_ESTABLISH,
    DmsError,
)
from dms_pkg.install import bundle as bundle_mod
from dms_pkg.install.migrations import Applied, Migration, discover, pending
from dms_pkg.resources import resource_dir

MIN_SERVER_VERSION = 150000
# Serialises concurrent installs into the same database.
_INSTALL_LOCK_KEY = 0x646D735F696E73  # "dms_ins"


@dataclass
class InstallReport:
    database: str
    package_version: str
    applied: list[str] = field(default_factory=list)
    code_installed: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.applied) or self.code_installed

    def summary(self) -> str:
        if not self.changed:
            return (
                f"dms_pkg {self.package_version} is already installed in database "
                f"{self.database}: nothing to do"
            )
        parts = []
        if self.applied:
            parts.append(f"applied migrations {', '.join(self.applied)}")
        if self.code_installed:
            parts.append("installed the SQL API")
        return (
            f"dms_pkg {self.package_version} installed in database {self.database}: "
            + "; ".join(parts)
        )


def connect(dsn: str, *, connect_timeout: int = 10, **kwargs: Any) -> psycopg.Connection[Any]:
    """Open a connection, turning failures into a DmsError without secrets."""
    try:
        return psycopg.connect(dsn, connect_timeout=connect_timeout, **kwargs)
    except psycopg.OperationalError as exc:
        # libpq reports one line per address tried; keep them all, one sentence.
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        reason = "; ".join(lines) or type(exc).__name__
        raise DmsError(
            f"cannot connect to PostgreSQL at {redact(dsn)}: {reason}",
            sqlstate=SQLCLIENT_UNABLE_TO_ESTABLISH,
            hint="check that the server is running and the host, port and database are "
            "right; for the project's own cluster run 'dms sandbox start' and use "
            "'dms sandbox url'",
        ) from None
    except psycopg.ProgrammingError as exc:
        raise DmsError(
            f"invalid connection string {redact(dsn)}: {exc}",
            sqlstate=SQLCLIENT_UNABLE_TO_ESTABLISH,
            hint="use key=value pairs (host=... dbname=...) or a postgresql:// URL",
        ) from None


def _server_package_hint(server_version_num: int) -> str:
    major = server_version_num // 10000
    return (
        f"install it on the database host: apt-get install postgresql-plpython3-{major} "
        f"(Debian/Ubuntu) or dnf install postgresql{major}-plpython3 (RHEL), then run "
        "dms install again"
    )


def preflight(conn: psycopg.Connection[Any]) -> None:
    """Refuse early, with the fix, when the server cannot host the plugin."""
    row = conn.execute(
        "SELECT current_setting('server_version_num')::int AS v,"
        " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS su,"
        " current_user::text AS who"
    ).fetchone()
    assert row is not None
    version_num, is_super, who = row
    if version_num < MIN_SERVER_VERSION:
        raise DmsError(
            f"PostgreSQL {version_num // 10000} is not supported: dms_pkg needs 15 or newer",
            sqlstate=FEATURE_NOT_SUPPORTED,
            hint="install into a PostgreSQL 15+ server",
        )
    if not is_super:
        raise DmsError(
            f"dms install must run as a superuser, and {who} is not one",
            sqlstate=INSUFFICIENT_PRIVILEGE,
            detail="it creates the untrusted language plpython3u and SECURITY DEFINER "
            "functions, which only a superuser may do",
            hint="connect as postgres (or another superuser) for the install; daily use "
            "needs only the dms_admin, dms_operator or dms_viewer roles",
        )
    available = {
        r[0]
        for r in conn.execute(
            "SELECT name::text FROM pg_available_extensions"
            " WHERE name IN ('plpython3u', 'dblink')"
        )
    }
    if "plpython3u" not in available:
        raise DmsError(
            "PL/Python (extension plpython3u) is not available on this server",
            sqlstate="58P01",
            detail="pg_available_extensions has no plpython3u: the server's PL/Python "
            "package is not installed",
            hint=_server_package_hint(version_num),
        )
    if "dblink" not in available:
        major = version_num // 10000
        raise DmsError(
            "extension dblink is not available on this server",
            sqlstate="58P01",
            detail="dms_pkg fans work out to parallel sessions through dblink",
            hint=f"install the server's contrib modules on the database host "
            f"(postgresql-{major} on Debian/Ubuntu, postgresql{major}-contrib on RHEL)",
        )


def _applied(conn: psycopg.Connection[Any]) -> list[Applied]:
    exists = conn.execute("SELECT to_regclass('dms.schema_migration') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return []
    return [
        Applied(*r)
        for r in conn.execute(
            "SELECT version, name, checksum, package_version"
            " FROM dms.schema_migration ORDER BY version"
        )
    ]


def _installed_code(conn: psycopg.Connection[Any]) -> tuple[str, str] | None:
    exists = conn.execute("SELECT to_regclass('dms.install_state') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return None
    row = conn.execute("SELECT package_version, code_checksum FROM dms.install_state").fetchone()
    return (row[0], row[1]) if row else None


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def _run(conn: psycopg.Connection[Any], what: str, text: str) -> None:
    """Run a multi-statement script, naming the file when it fails."""
    try:
        # No parameters: psycopg sends it with the simple query protocol,
        # which accepts several statements in one string.
        conn.execute(text.encode())
    except psycopg.Error as exc:
        diag = exc.diag
        raise DmsError(
            f"{what} failed: {diag.message_primary or exc}",
            sqlstate=diag.sqlstate or OBJECT_NOT_IN_PREREQUISITE_STATE,
            detail="nothing was installed: the install runs in one transaction and was "
            "rolled back" + (f"; {diag.message_detail}" if diag.message_detail else ""),
            hint=diag.message_hint,
        ) from None


def install(
    dsn: str,
    *,
    migrations_dir: Path | None = None,
    sql_dir: Path | None = None,
    plpy_dir: Path | None = None,
) -> InstallReport:
    """Install or upgrade dms_pkg in the database ``dsn`` points at."""
    known: list[Migration] = discover(migrations_dir or resource_dir("migrations"))
    code = bundle_mod.build(sql_dir, plpy_dir)
    with connect(dsn) as conn:
        report = InstallReport(database=conn.info.dbname, package_version=__version__)
        preflight(conn)
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [_INSTALL_LOCK_KEY])
        todo = pending(known, _applied(conn))
        installed = _installed_code(conn)
        if installed is not None and _version_tuple(installed[0]) > _version_tuple(__version__):
            raise DmsError(
                f"database {report.database} has the SQL API of dms_pkg {installed[0]}, "
                f"newer than this dms_pkg {__version__}",
                sqlstate=OBJECT_NOT_IN_PREREQUISITE_STATE,
                detail="nothing was changed",
                hint=f"install dms_pkg {installed[0]} or newer",
            )
        if not todo and installed == (__version__, code.checksum):
            conn.rollback()
            return report

        conn.execute("CREATE EXTENSION IF NOT EXISTS plpython3u")
        conn.execute("CREATE EXTENSION IF NOT EXISTS dblink")
        _run(conn, "bootstrap (sql/bootstrap.sql)", code.bootstrap)
        for mig in todo:
            _run(conn, f"migration {mig.name}", mig.sql)
            conn.execute(
                "INSERT INTO dms.schema_migration (version, name, checksum, package_version)"
                " VALUES (%s, %s, %s, %s)",
                [mig.version, mig.name, mig.checksum, __version__],
            )
            report.applied.append(mig.name)
        for name, text in code.api:
            _run(conn, f"SQL API file {name}", text)
        _run(conn, "privileges (sql/privileges.sql)", code.privileges)
        conn.execute(
            "INSERT INTO dms.install_state (package_version, code_checksum) VALUES (%s, %s)"
            " ON CONFLICT (singleton) DO UPDATE SET package_version = excluded.package_version,"
            " code_checksum = excluded.code_checksum, installed_at = now(),"
            " installed_by = session_user",
            [__version__, code.checksum],
        )
        report.code_installed = True
        _verify_server_python(conn)
        conn.commit()
    return report


def _verify_server_python(conn: psycopg.Connection[Any]) -> None:
    """Call dms.version() inside the install transaction.

    This proves, before anything is committed, that the server's PL/Python can
    import dms_pkg at exactly this version; if not, the install rolls back with
    the preamble's message and hint.
    """
    try:
        row = conn.execute(sql.SQL("SELECT dms.version()")).fetchone()
    except psycopg.Error as exc:
        diag = exc.diag
        # PL/Python prefixes errors raised with plpy.error() by the exception
        # class; the message itself is ours and reads better without it.
        message = (diag.message_primary or str(exc)).removeprefix("plpy.Error: ")
        raise DmsError(
            f"the server cannot run dms_pkg's Python code: {message}",
            sqlstate=diag.sqlstate or OBJECT_NOT_IN_PREREQUISITE_STATE,
            detail="nothing was installed"
            + (f"; {diag.message_detail}" if diag.message_detail else ""),
            hint=diag.message_hint,
        ) from None
    assert row is not None and row[0] == __version__, row
