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


def _has_table(db: Database, name: str) -> bool:
    rows = db.query("SELECT pg_catalog.to_regclass($1::text) IS NOT NULL AS ok", [name])
    return bool(rows and rows[0]["ok"])
