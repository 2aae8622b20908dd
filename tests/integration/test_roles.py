"""The role model of DESIGN §6, checked with real logins."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import errors

from tests.integration.conftest import Cluster


def test_viewer_reads_tables_but_cannot_run_operator_functions(
    cluster: Cluster, installed_db: str, login_role: Any
) -> None:
    viewer = login_role("dms_viewer")
    with psycopg.connect(cluster.dsn(installed_db, user=viewer)) as conn:
        assert conn.execute("SELECT count(*) FROM dms.dms_mapr").fetchone() == (0,)
        assert conn.execute("SELECT dms.version()").fetchone() is not None
        with pytest.raises(errors.InsufficientPrivilege) as err:
            conn.execute("SELECT * FROM dms.check_install()")
    assert str(err.value).startswith("permission denied for function check_install")


def test_viewer_cannot_write_config_tables(
    cluster: Cluster, installed_db: str, login_role: Any
) -> None:
    viewer = login_role("dms_viewer")
    with (
        psycopg.connect(cluster.dsn(installed_db, user=viewer)) as conn,
        pytest.raises(errors.InsufficientPrivilege) as err,
    ):
        conn.execute("INSERT INTO dms.dms_params (prtyp, prcd) VALUES ('X', 'Y')")
    assert str(err.value).startswith("permission denied for table dms_params")


def test_operator_runs_operator_functions(
    cluster: Cluster, installed_db: str, login_role: Any
) -> None:
    operator = login_role("dms_operator")
    with psycopg.connect(cluster.dsn(installed_db, user=operator)) as conn:
        names = [r[0] for r in conn.execute("SELECT check_name FROM dms.check_install()")]
    assert "extension plpython3u" in names


def test_public_has_no_access(cluster: Cluster, installed_db: str, login_role: Any) -> None:
    nobody = login_role(None)
    with (
        psycopg.connect(cluster.dsn(installed_db, user=nobody)) as conn,
        pytest.raises(errors.InsufficientPrivilege) as err,
    ):
        conn.execute("SELECT count(*) FROM dms.dms_mapr")
    assert str(err.value).startswith("permission denied for schema dms")


def test_role_check_inside_definer_function_is_a_second_gate(
    cluster: Cluster, installed_db: str, login_role: Any
) -> None:
    """Even if EXECUTE were granted by mistake, the body refuses a viewer."""
    viewer = login_role("dms_viewer")
    with psycopg.connect(cluster.dsn(installed_db), autocommit=True) as admin:
        admin.execute("GRANT EXECUTE ON FUNCTION dms.check_install() TO dms_viewer")
    try:
        with (
            psycopg.connect(cluster.dsn(installed_db, user=viewer)) as conn,
            pytest.raises(errors.InsufficientPrivilege) as err,
        ):
            conn.execute("SELECT * FROM dms.check_install()")
        # PL/Python prefixes an error with its class name; ours reads "dms: ".
        assert err.value.diag.message_primary == (
            f"dms: permission denied: role {viewer} is not a member of dms_operator"
        )
        assert err.value.diag.message_hint == (
            f"ask an administrator to GRANT dms_operator TO {viewer}"
        )
    finally:
        with psycopg.connect(cluster.dsn(installed_db), autocommit=True) as admin:
            admin.execute("REVOKE EXECUTE ON FUNCTION dms.check_install() FROM dms_viewer")
