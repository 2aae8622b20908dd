"""Numbered migrations against a real database: once each, frozen, no downgrade."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from dms_pkg import __version__
from dms_pkg.errors import DmsError
from dms_pkg.install.installer import install
from dms_pkg.resources import resource_dir
from tests.integration.conftest import Cluster, DatabaseFactory


@pytest.fixture
def migrations_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    shutil.copytree(resource_dir("migrations"), folder)
    return folder


_EXTRA = (
    "-- a test migration: its INSERT would show a second application as a second row\n"
    "INSERT INTO dms.dms_params (prtyp, prcd, prval) VALUES ('TEST', 'EXTRA', '1');\n"
)


def test_new_migration_is_applied_exactly_once(
    cluster: Cluster, databases: DatabaseFactory, migrations_copy: Path
) -> None:
    db = databases.create(installed=True)
    (migrations_copy / "0999_test_extra.sql").write_text(_EXTRA)

    first = install(cluster.dsn(db), migrations_dir=migrations_copy)
    second = install(cluster.dsn(db), migrations_dir=migrations_copy)

    assert first.applied == ["0999_test_extra.sql"]
    assert second.applied == []
    with psycopg.connect(cluster.dsn(db)) as conn:
        assert conn.execute(
            "SELECT count(*) FROM dms.dms_params WHERE prtyp = 'TEST'"
        ).fetchone() == (1,)
        recorded = conn.execute(
            "SELECT version, name, package_version FROM dms.schema_migration ORDER BY version"
        ).fetchall()
    assert recorded[-1] == (999, "0999_test_extra.sql", __version__)
    assert [r[0] for r in recorded] == sorted(r[0] for r in recorded)


def test_older_package_over_newer_schema_is_refused(
    cluster: Cluster, databases: DatabaseFactory, migrations_copy: Path
) -> None:
    db = databases.create()
    (migrations_copy / "0999_test_extra.sql").write_text(_EXTRA)
    install(cluster.dsn(db), migrations_dir=migrations_copy)

    with pytest.raises(DmsError) as err:
        install(cluster.dsn(db))  # the packaged folder knows nothing of 0999
    newest = max(p.name[:4] for p in resource_dir("migrations").glob("*.sql"))
    assert err.value.message == (
        f"this database's dms schema is newer than dms_pkg {__version__}: it has migration "
        f"0999_test_extra.sql (applied by dms_pkg {__version__}), and this package knows "
        f"migrations only up to {newest}"
    )
    assert err.value.sqlstate == "55000"
    assert err.value.hint == f"install dms_pkg {__version__} or newer"


def test_changed_released_migration_is_refused(
    cluster: Cluster, databases: DatabaseFactory, migrations_copy: Path
) -> None:
    db = databases.create(installed=True)
    first = sorted(migrations_copy.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited after release\n")
    with pytest.raises(DmsError) as err:
        install(cluster.dsn(db), migrations_dir=migrations_copy)
    assert err.value.message == f"migration {first.name} was changed after it was applied"


def test_failing_install_leaves_nothing_behind(
    cluster: Cluster, databases: DatabaseFactory, migrations_copy: Path
) -> None:
    db = databases.create()
    (migrations_copy / "0998_broken.sql").write_text(
        "CREATE TABLE dms.half_done (id int);\nCREATE TABLE dms.oops (id nosuchtype);\n"
    )
    with pytest.raises(DmsError) as err:
        install(cluster.dsn(db), migrations_dir=migrations_copy)
    assert err.value.message == 'migration 0998_broken.sql failed: type "nosuchtype" does not exist'
    assert err.value.sqlstate == "42704"
    assert err.value.detail is not None
    assert err.value.detail.startswith("nothing was installed")
    with psycopg.connect(cluster.dsn(db)) as conn:
        left = conn.execute(
            "SELECT nspname FROM pg_namespace"
            " WHERE nspname IN ('dms', 'pkgdwmapr', 'pkgdwjob', 'pkgdwprc')"
        ).fetchall()
        exts = conn.execute(
            "SELECT extname FROM pg_extension WHERE extname IN ('plpython3u', 'dblink')"
        ).fetchall()
    assert left == []
    assert exts == []
