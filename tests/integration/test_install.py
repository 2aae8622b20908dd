"""`dms install` against the real cluster: tables, idempotence, versions, roles."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dms_pkg import __version__
from dms_pkg.install.installer import install
from tests.integration.conftest import Cluster, DatabaseFactory

# DESIGN §4: the DMS tables users know, by name.
DMS_TABLES = {
    "dms_params", "dms_dbcondtls", "dms_mapr", "dms_maprdtl", "dms_maprsql", "dms_maperr",
    "dms_job", "dms_jobdtl", "dms_jobflw", "dms_jobsch", "dms_prclog", "dms_joblog",
    "dms_joberr", "dms_prcreq",
}


def _rows(dsn: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


def test_fresh_database_gets_every_dms_table(cluster: Cluster, installed_db: str) -> None:
    found = {
        r[0]
        for r in _rows(
            cluster.dsn(installed_db),
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'dms'",
        )
    }
    assert found >= DMS_TABLES, f"missing: {sorted(DMS_TABLES - found)}"
    schemas = {
        r[0]
        for r in _rows(
            cluster.dsn(installed_db),
            "SELECT schema_name FROM information_schema.schemata"
            " WHERE schema_name IN ('dms', 'pkgdwmapr', 'pkgdwjob', 'pkgdwprc')",
        )
    }
    assert schemas == {"dms", "pkgdwmapr", "pkgdwjob", "pkgdwprc"}


def test_oracle_style_sql_runs_unchanged(cluster: Cluster, installed_db: str) -> None:
    with psycopg.connect(cluster.dsn(installed_db)) as conn:
        conn.execute("SET search_path = dms, public")
        conn.execute(
            "INSERT INTO DMS_MAPR (MAPREF, TRGSCHM, TRGTBTYP, TRGTBNM)"
            " VALUES ('DIM_CUSTOMER', 'dwh', 'DIM', 'DIM_CUSTOMER')"
        )
        rows = conn.execute(
            "SELECT MAPREF, TRGTBNM FROM DMS_MAPR WHERE CURFLG = 'Y'"
        ).fetchall()
        conn.rollback()
    assert rows == [("DIM_CUSTOMER", "DIM_CUSTOMER")]


def test_every_table_and_column_has_a_comment(cluster: Cluster, installed_db: str) -> None:
    missing = _rows(
        cluster.dsn(installed_db),
        """
        SELECT c.relname::text
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'dms' AND c.relkind IN ('r', 'v', 'p')
          AND obj_description(c.oid, 'pg_class') IS NULL
        UNION ALL
        SELECT c.relname || '.' || a.attname
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE n.nspname = 'dms' AND c.relkind IN ('r', 'v', 'p')
          AND col_description(c.oid, a.attnum) IS NULL
        """,
    )
    assert missing == []


def _catalog_snapshot(dsn: str) -> list[tuple[Any, ...]]:
    """Everything an install creates, as data: objects, definitions, ACLs, comments."""
    return _rows(
        dsn,
        """
        SELECT 'rel', c.relname, c.relkind::text, c.relacl::text,
               obj_description(c.oid, 'pg_class'), c.oid::text, c.xmin::text
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname IN ('dms', 'pkgdwmapr', 'pkgdwjob', 'pkgdwprc')
        UNION ALL
        SELECT 'proc', p.proname, p.prokind::text, p.proacl::text,
               md5(pg_get_functiondef(p.oid)), p.oid::text, p.xmin::text
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname IN ('dms', 'pkgdwmapr', 'pkgdwjob', 'pkgdwprc')
        UNION ALL
        SELECT 'mig', name, version::text, checksum, package_version, applied_at::text, ''
        FROM dms.schema_migration
        UNION ALL
        SELECT 'state', package_version, code_checksum, installed_at::text, '', '', ''
        FROM dms.install_state
        ORDER BY 1, 2, 3
        """,
    )


def test_second_install_changes_nothing(cluster: Cluster, installed_db: str) -> None:
    dsn = cluster.dsn(installed_db)
    before = _catalog_snapshot(dsn)
    report = install(dsn)
    after = _catalog_snapshot(dsn)
    assert not report.changed
    assert report.summary() == (
        f"dms_pkg {__version__} is already installed in database {installed_db}: nothing to do"
    )
    # xmin is in the snapshot: not even a CREATE OR REPLACE rewrote a row.
    assert after == before


def test_server_version_equals_cli_version(cluster: Cluster, installed_db: str) -> None:
    dms = Path(sys.executable).parent / "dms"
    cli = subprocess.run([str(dms), "--version"], capture_output=True, text=True, check=True)
    (server,) = _rows(cluster.dsn(installed_db), "SELECT dms.version()")[0]
    assert cli.stdout.strip() == f"dms_pkg {server}"
    assert server == __version__


def test_server_imports_the_packaged_core_not_the_checkout(
    cluster: Cluster, installed_db: str
) -> None:
    rows = dict(
        (name, (ok, detail))
        for name, ok, detail in _rows(
            cluster.dsn(installed_db), "SELECT * FROM dms.check_install()"
        )
    )
    _, location = rows["python core location"]
    assert location.endswith(f"/{__version__}/dms_pkg/__init__.py")
    assert all(ok for ok, _ in rows.values()), rows


def test_install_refuses_non_superuser(
    cluster: Cluster, databases: DatabaseFactory, login_role: Any
) -> None:
    db = databases.create()
    user = login_role(None)
    from dms_pkg.errors import DmsError

    with pytest.raises(DmsError) as err:
        install(cluster.dsn(db, user=user))
    assert err.value.message == f"dms install must run as a superuser, and {user} is not one"
    assert err.value.sqlstate == "42501"
