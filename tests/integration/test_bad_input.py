"""Bad input to `dms install`: each refused with its message, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from dms_pkg import __version__
from dms_pkg.dsn import redact
from dms_pkg.errors import DmsError
from dms_pkg.install.installer import install
from tests.integration.conftest import Cluster, DatabaseFactory
from tests.integration.server_without_plpython import server_without_plpython


def test_unreachable_dsn_cli_message_without_password() -> None:
    dms = Path(sys.executable).parent / "dms"
    dsn = "host=127.0.0.1 port=1 dbname=x user=u password=s3cr3t"
    done = subprocess.run(
        [str(dms), "install", "--dsn", dsn], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == (
        f"dms: error: cannot connect to PostgreSQL at {redact(dsn)}: connection failed: "
        'connection to server at "127.0.0.1", port 1 failed: Connection refused; '
        "Is the server running on that host and accepting TCP/IP connections?"
    )
    assert "password=********" in done.stderr
    assert "s3cr3t" not in done.stderr + done.stdout
    assert done.stderr.splitlines()[1].startswith("HINT: check that the server is running")


def test_server_without_plpython_is_refused_with_the_package_to_install(
    tmp_path: Path,
) -> None:
    with server_without_plpython() as dsn:
        with pytest.raises(DmsError) as err:
            install(dsn)
        with psycopg.connect(dsn) as conn:
            left = conn.execute(
                "SELECT count(*) FROM pg_namespace WHERE nspname = 'dms'"
            ).fetchone()
    assert err.value.message == "PL/Python (extension plpython3u) is not available on this server"
    assert err.value.sqlstate == "58P01"
    assert err.value.hint is not None
    assert "apt-get install postgresql-plpython3-15" in err.value.hint
    assert left == (0,)


def test_server_python_library_missing_rolls_back(
    cluster: Cluster, databases: DatabaseFactory, tmp_path: Path
) -> None:
    db = databases.create()
    with psycopg.connect(cluster.dsn(db), autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {db} SET dms.python_lib_dir = '{tmp_path}/nowhere'")
    with pytest.raises(DmsError) as err:
        install(cluster.dsn(db))
    assert err.value.message == (
        "the server cannot run dms_pkg's Python code: "
        f"dms_pkg {__version__} is not installed for this server's Python"
    )
    assert err.value.hint is not None and "dms pylib install --target" in err.value.hint
    with psycopg.connect(cluster.dsn(db)) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'dms'"
        ).fetchone() == (0,)


def test_install_without_dsn_names_both_ways_to_give_one() -> None:
    dms = Path(sys.executable).parent / "dms"
    done = subprocess.run(
        [str(dms), "install"], capture_output=True, text=True, check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == "dms: error: no database given"
    assert "pass --dsn" in done.stderr and "DMS_DSN" in done.stderr
