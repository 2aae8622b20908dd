"""What a DBA needs to know when something about the install looks wrong.

Runs the same checks from the CLI (``dms doctor``, over psycopg) and from SQL
(``dms.check_install()``, over plpy), through the Database interface.
"""

from __future__ import annotations

from dataclasses import dataclass

from dms_pkg import __version__
from dms_pkg.db.base import Database


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


_REQUIRED_EXTENSIONS = ("plpython3u", "dblink")


def check_install(db: Database, *, dms_pkg_path: str | None = None) -> list[Check]:
    """Return one :class:`Check` per fact that must hold for dms_pkg to work."""
    checks: list[Check] = []
    installed = {
        r["extname"]: r["extversion"]
        for r in db.query("SELECT extname::text, extversion FROM pg_catalog.pg_extension")
    }
    for ext in _REQUIRED_EXTENSIONS:
        version = installed.get(ext)
        checks.append(
            Check(
                f"extension {ext}",
                version is not None,
                f"version {version}" if version else "not created in this database",
            )
        )

    state = (
        db.query("SELECT package_version FROM dms.install_state")
        if _has_table(db, "dms.install_state")
        else []
    )
    sql_version = state[0]["package_version"] if state else None
    checks.append(
        Check(
            "sql api version",
            sql_version == __version__,
            f"SQL API {sql_version or 'not installed'}, Python core {__version__}",
        )
    )
    if dms_pkg_path is not None:
        checks.append(Check("python core location", True, dms_pkg_path))

    checks.extend(_security_checks(db))

    preload = db.query("SELECT pg_catalog.current_setting('shared_preload_libraries') AS v")
    has_cron = "pg_cron" in (preload[0]["v"] or "")
    checks.append(
        Check(
            "pg_cron preloaded",
            has_cron,
            "in shared_preload_libraries" if has_cron
            else "not in shared_preload_libraries: scheduling needs pg_cron",
        )
    )
    return checks


def _security_checks(db: Database) -> list[Check]:
    """Worker sessions can log in as the caller; no connection row holds a secret."""
    from dms_pkg.dsn import UnparseableConnectionString, secret_key

    if not _has_table(db, "dms.loopback"):
        return []
    who = db.query("SELECT session_user::text AS u")[0]["u"]
    error = db.query("SELECT dms.check_loopback() AS e")[0]["e"]
    checks = [Check(f"worker sessions log in as {who}", error is None,
                    "over the loopback route, without a password" if error is None
                    else f"{error} -- see docs/roles.md, \"Trust model\"")]
    leaking: list[str] = []
    for row in db.query("SELECT conid, dbtyp, constr FROM dms.dms_dbcondtls"
                        " WHERE constr IS NOT NULL ORDER BY conid"):
        try:
            if secret_key(str(row["constr"]), str(row["dbtyp"])) is not None:
                leaking.append(str(row["conid"]))
        except UnparseableConnectionString:
            leaking.append(str(row["conid"]))
    checks.append(Check("no secret in DMS_DBCONDTLS.CONSTR", not leaking,
                        "none" if not leaking else
                        "connections " + ", ".join(leaking) + " hold a secret (or a string "
                        "libpq cannot read) stored before this version: remove it and set "
                        "PWDSRC"))
    return checks


def _has_table(db: Database, name: str) -> bool:
    rows = db.query("SELECT pg_catalog.to_regclass($1::text) IS NOT NULL AS ok", [name])
    return bool(rows and rows[0]["ok"])
