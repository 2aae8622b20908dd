"""Scheduling and control of mapper jobs: the dispatcher, dependencies, a real
pg_cron tick starting a DL schedule, stopping a running job, and roles."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import psycopg
import pytest
from psycopg import sql

from tests.integration.conftest import Cluster, DatabaseFactory, wait_for
from tests.integration.mapper_env import MapperEnv, define_fct

SLOW_FN = ("CREATE FUNCTION src.slow(x bigint) RETURNS bigint LANGUAGE sql VOLATILE"
           " AS 'SELECT x FROM pg_sleep(0.002)'")


@pytest.fixture(scope="module")
def env(cluster: Cluster, databases: DatabaseFactory) -> MapperEnv:
    environment = MapperEnv(cluster, databases.create(installed=True))
    with environment.connect() as conn:
        conn.execute("CREATE SCHEMA src; CREATE SCHEMA dw")
        conn.execute(SLOW_FN)
        for table, rows in (("orders", 3000), ("lines", 3000), ("slow_orders", 3000)):
            conn.execute(sql.SQL("CREATE TABLE src.{} (id bigint PRIMARY KEY, amount numeric)")
                         .format(sql.Identifier(table)))
            conn.execute(sql.SQL("INSERT INTO src.{} SELECT g, g FROM generate_series(1, {}) g")
                         .format(sql.Identifier(table), sql.Literal(rows)))
    for mapref, query in (("FCT_ORDERS", "SELECT id, amount FROM src.orders"),
                          ("FCT_LINES", "SELECT id, amount FROM src.lines"),
                          ("FCT_SLOW", "SELECT src.slow(id) AS id, amount FROM src.slow_orders")):
        define_fct(environment, mapref, query)
    return environment


def test_immediate_request_runs_at_dispatch_and_then_its_child(env: MapperEnv) -> None:
    child_schedule = env.one("SELECT pkgdwprc.create_job_dependency(p_parent_mapref =>"
                             " 'FCT_ORDERS', p_child_mapref => 'FCT_LINES')")
    assert env.rows("SELECT frqcd, dpnd_jobschid IS NOT NULL AS dependent, nxtrundt"
                    " FROM dms.dms_jobsch WHERE jobschid = %s", [child_schedule]) == [
        {"frqcd": "NA", "dependent": True, "nxtrundt": None}]
    # A cycle is refused with both jobs named.
    with pytest.raises(psycopg.errors.InvalidParameterValue) as err:
        env.rows("SELECT pkgdwprc.create_job_dependency('FCT_LINES', 'FCT_ORDERS')")
    assert err.value.diag.message_primary == (
        "dms: job FCT_ORDERS cannot depend on FCT_LINES: FCT_LINES already runs after "
        "FCT_ORDERS")

    reqid = env.one("SELECT pkgdwprc.schedule_job_immediate('FCT_ORDERS')")
    assert env.one("SELECT status FROM dms.dms_prcreq WHERE reqid = %s", [reqid]) == "NEW"
    env.rows("CALL pkgdwprc.dispatch()")

    requests = env.rows("SELECT r.mapref, r.reqtyp, r.status, p.status AS process, p.prctyp,"
                        " r.msg"
                        " FROM dms.dms_prcreq r JOIN dms.dms_prclog p USING (prcid)"
                        " WHERE r.reqid >= %s ORDER BY r.reqid", [reqid])
    assert requests == [
        {"mapref": "FCT_ORDERS", "reqtyp": "IMMEDIATE", "status": "DONE", "process": "PC",
         "prctyp": "IMMEDIATE", "msg": "process 1 PC"},
        {"mapref": "FCT_LINES", "reqtyp": "SCHEDULED", "status": "DONE", "process": "PC",
         "prctyp": "REGULAR", "msg": "process 2 PC"},
    ]
    assert env.one("SELECT count(*) FROM dw.fct_lines") == 3000


def test_a_dl_schedule_is_started_by_pg_cron(env: MapperEnv, cluster: Cluster) -> None:
    """The real thing: pg_cron calls the dispatcher every minute; a DL schedule
    due a minute from now is queued and run by it."""
    with cluster.admin() as conn:
        conn.autocommit = True
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
        jobid = conn.execute(
            "SELECT cron.schedule_in_database(%s, '* * * * *', 'CALL pkgdwprc.dispatch()', %s)",
            [f"dms-dispatch-{env.db}", env.db]).fetchone()
    assert jobid is not None
    try:
        due = env.one("SELECT date_trunc('minute', now()) + interval '1 minute'")
        env.rows("SELECT pkgdwprc.create_job_schedule(p_mapref => 'FCT_SLOW', p_frqcd => 'DL',"
                 " p_frqhh => %s, p_frqmi => %s)", [due.hour, due.minute])
        assert env.one("SELECT nxtrundt FROM dms.dms_jobsch WHERE mapref = 'FCT_SLOW'"
                       " AND curflg = 'Y'") == due
        process = wait_for(lambda: env.rows(
            "SELECT prcid, status, prctyp FROM dms.dms_prclog WHERE mapref = 'FCT_SLOW'"
            " AND status <> 'IP'"), 150, "pg_cron to start the DL schedule", every=0.5)
        assert process == [{"prcid": process[0]["prcid"], "status": "PC", "prctyp": "REGULAR"}]
        moved = env.rows("SELECT lstrundt, nxtrundt FROM dms.dms_jobsch WHERE mapref ="
                         " 'FCT_SLOW' AND curflg = 'Y'")[0]
        assert moved["nxtrundt"] == due + timedelta(days=1)
        assert moved["lstrundt"] >= due
        with cluster.admin() as conn:  # pg_cron's own record of the dispatcher's runs
            failed = conn.execute("SELECT return_message FROM cron.job_run_details"
                                  " WHERE jobid = %s AND status = 'failed'",
                                  [jobid[0]]).fetchall()
        assert failed == []
    finally:
        with cluster.admin() as conn:
            conn.autocommit = True
            conn.execute("SELECT cron.unschedule(%s)", [jobid[0]])


def test_stop_running_job(env: MapperEnv) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            env.run_job("FCT_SLOW", '{"max_workers": 2, "min_rows_for_parallel": 0}')
        except psycopg.Error as exc:
            errors.append(exc)

    with env.connect() as conn:
        conn.execute("TRUNCATE dw.fct_slow")
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    prcid = wait_for(lambda: env.one(
        "SELECT max(p.prcid) FROM dms.dms_prclog p JOIN dms.run r USING (prcid)"
        " WHERE p.mapref = 'FCT_SLOW' AND p.status = 'IP' AND r.state = 'RUNNING'"), 60,
        "the job to run", every=0.5)
    env.rows("CALL pkgdwprc.stop_running_job('FCT_SLOW')")
    thread.join(60)
    assert not thread.is_alive() and len(errors) == 1
    log = env.rows("SELECT status, msg FROM dms.dms_prclog WHERE prcid = %s", [prcid])[0]
    assert log["status"] == "FL" and "STOPPED" in log["msg"]
    assert env.one("SELECT status FROM dms.dms_joblog WHERE prcid = %s", [prcid]) == "FL"


def test_roles_admin_defines_operator_runs_viewer_reads(
        env: MapperEnv, login_role: Callable[[str | None], str]) -> None:
    admin, operator, viewer = (login_role(r) for r in ("dms_admin", "dms_operator",
                                                       "dms_viewer"))
    try:
        check_roles(env, admin, operator, viewer)
    finally:  # what the logins own or were granted here goes before the logins do
        with env.connect() as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}, {}, {} CASCADE").format(
                sql.Identifier(admin), sql.Identifier(operator), sql.Identifier(viewer)))


def check_roles(env: MapperEnv, admin: str, operator: str, viewer: str) -> None:
    with env.connect() as conn:
        conn.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA dw TO {}").format(
            sql.Identifier(admin)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA dw TO {}").format(sql.Identifier(operator)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA src TO {}, {}").format(
            sql.Identifier(admin), sql.Identifier(operator)))
        conn.execute(sql.SQL("GRANT SELECT ON src.orders TO {}, {}").format(
            sql.Identifier(admin), sql.Identifier(operator)))
    define_fct(env, "FCT_ROLES", "SELECT id, amount FROM src.orders", user=admin)
    with env.connect(admin) as conn:  # the admin owns the target and lets the operator load
        conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE ON dw.fct_roles TO {}").format(
            sql.Identifier(operator)))
        conn.execute(sql.SQL("GRANT USAGE ON SEQUENCE dw.fct_roles_skey_seq TO {}").format(
            sql.Identifier(operator)))

    with pytest.raises(psycopg.errors.InsufficientPrivilege) as err:
        env.rows("SELECT pkgdwjob.create_update_job('FCT_ROLES')", user=operator)
    assert err.value.diag.message_primary == "permission denied for function create_update_job"
    prcid = env.run_job("FCT_ROLES", user=operator)
    assert env.one("SELECT crtdby FROM dms.dms_prclog WHERE prcid = %s", [prcid]) == operator
    assert env.one("SELECT count(*) FROM dw.fct_roles") == 3000

    with pytest.raises(psycopg.errors.InsufficientPrivilege) as err:
        env.run_job("FCT_ROLES", user=viewer)
    assert err.value.diag.message_primary == "permission denied for procedure run_job"
    # Nobody writes the DMS tables directly, not even through dms._write's ops
    # above their role.
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as err:
        env.rows("INSERT INTO dms.dms_prclog (mapref) VALUES ('X')", user=operator)
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as err:
        env.rows("SELECT dms._write('save_mapping', '{}')", user=operator)
    assert err.value.diag.message_primary == (
        f"dms: permission denied: role {operator} is not a member of dms_admin")
    assert env.rows("SELECT mapref FROM dms.dms_joblog WHERE prcid = %s", [prcid],
                    user=viewer) == [{"mapref": "FCT_ROLES"}]
