"""DBMS_SCHEDULER on the real cluster: a real pg_cron tick running a MINUTELY
job, runs in the caller's session and through the dispatcher (always as the
job's owner), failures, stop, disable/enable, drop, auto_drop, set_attribute,
roles and other logins' jobs, and every refusal with its exact message."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from tests.integration.conftest import Cluster, DatabaseFactory, wait_for

ZONE = "Europe/Amsterdam"
CAL_HINT = ("for example FREQ=DAILY;BYHOUR=2;BYMINUTE=0 or "
            "FREQ=WEEKLY;BYDAY=MON,FRI;BYHOUR=6")
# What a run its owner's session did not record says (fixed text, never a caller's).
ABANDONED = ("08006: the job's session did not record the run: it could not start the run, "
             "or it ended first")
LOCK_CLASS = 1396918340  # the advisory lock key class "running" used to be


@dataclass
class Env:
    cluster: Cluster
    db: str
    op: str  # the operator whose jobs most tests make
    other: str  # another operator
    viewer: str
    admin: str  # a dms_admin login (not a superuser): the dispatcher's
    nobody: str  # a login with no dms role

    def connect(self, user: str | None = None) -> psycopg.Connection[Any]:
        return psycopg.connect(self.cluster.dsn(self.db, user), autocommit=True)

    def rows(self, text: str, params: list[Any] | None = None,
             user: str | None = None) -> list[dict[str, Any]]:
        with self.connect(user) as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(text, params)
            return cur.fetchall() if cur.description else []

    def one(self, text: str, params: list[Any] | None = None, user: str | None = None) -> Any:
        rows = self.rows(text, params, user)
        assert len(rows) == 1, rows
        return next(iter(rows[0].values()))

    def call(self, text: str, params: list[Any] | None = None, user: str | None = None) -> None:
        self.rows(text, params, user or self.op)

    def refused(self, text: str, params: list[Any] | None = None,
                user: str | None = None) -> psycopg.Error:
        """The error a call as ``user`` (the operator) raises."""
        with pytest.raises(psycopg.Error) as err:
            self.rows(text, params, user or self.op)
        return err.value

    def jobs(self, user: str | None = None) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM dbms_scheduler.user_scheduler_jobs ORDER BY job_name",
                         user=user or self.op)

    def job(self, name: str) -> dict[str, Any]:
        found = [j for j in self.jobs() if j["job_name"] == name]
        assert len(found) == 1, found
        return found[0]

    def runs(self, name: str, user: str | None = None) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM dbms_scheduler.user_scheduler_job_run_details"
                         " WHERE job_name = %s ORDER BY log_id", [name], user or self.op)

    def table_state(self) -> list[Any]:
        """Everything the scheduler stores, as the superuser sees it."""
        return [self.rows(f"SELECT * FROM dms.{t} ORDER BY 1")
                for t in ("sched_job", "sched_job_arg", "sched_job_run")]


@pytest.fixture(scope="module")
def env(cluster: Cluster, databases: DatabaseFactory) -> Iterator[Env]:
    db = databases.create(installed=True)
    suffix = uuid.uuid4().hex[:8]
    op, other, viewer = f"dmst_sched_op_{suffix}", f"dmst_sched_op2_{suffix}", \
        f"dmst_sched_view_{suffix}"
    admin, nobody = f"dmst_sched_adm_{suffix}", f"dmst_sched_none_{suffix}"
    with cluster.admin() as conn:
        for login, role in ((op, "dms_operator"), (other, "dms_operator"),
                            (viewer, "dms_viewer"), (admin, "dms_admin"), (nobody, None)):
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(login)))
            if role:
                conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role),
                                                             sql.Identifier(login)))
        # Calendars are read in the database's time zone, not the session's.
        conn.execute(sql.SQL("ALTER DATABASE {} SET TimeZone = {}").format(
            sql.Identifier(db), sql.Literal(ZONE)))
    environment = Env(cluster, db, op, other, viewer, admin, nobody)
    with environment.connect() as conn:
        conn.execute("CREATE SCHEMA app")
        conn.execute("CREATE TABLE app.log (id bigserial PRIMARY KEY, job text, v text,"
                     " who text NOT NULL DEFAULT current_user,"
                     " is_super boolean NOT NULL DEFAULT current_setting('is_superuser')::boolean,"
                     " at timestamptz DEFAULT clock_timestamp())")
        conn.execute("CREATE PROCEDURE app.add(p_job text, p_n integer, p_v text)"
                     " LANGUAGE sql AS $$ INSERT INTO app.log (job, v)"
                     " VALUES (p_job, p_n * 2 || ':' || p_v) $$")
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA app TO {0}, {1};"
                             " GRANT SELECT, INSERT ON app.log TO {0}, {1};"
                             " GRANT USAGE ON SEQUENCE app.log_id_seq TO {0}, {1};"
                             " GRANT EXECUTE ON PROCEDURE app.add(text, integer, text) TO {0}")
                     .format(sql.Identifier(op), sql.Identifier(other)))
    yield environment
    with cluster.admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(db)))
        for login in (op, other, viewer, admin, nobody):
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(login)))


def logged(env: Env, job: str) -> list[dict[str, Any]]:
    return env.rows("SELECT v, who, is_super FROM app.log WHERE job = %s ORDER BY id", [job])


# -- the acceptance: a real pg_cron tick -------------------------------------------------

def test_a_minutely_job_runs_through_pg_cron_within_two_minutes(env: Env) -> None:
    with env.cluster.admin() as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
        row = conn.execute(
            "SELECT cron.schedule_in_database(%s, '* * * * *', 'CALL dbms_scheduler.dispatch()',"
            " %s)", [f"dms-scheduler-{env.db}", env.db]).fetchone()
    assert row is not None
    cron_job = row[0]
    try:
        created = env.one("SELECT clock_timestamp()")
        env.call("CALL dbms_scheduler.create_job(job_name => 'every_minute',"
                 " job_type => 'PLSQL_BLOCK',"
                 " job_action => 'BEGIN INSERT INTO app.log (job, v) VALUES (''CRON'', ''tick'');"
                 " END;', repeat_interval => 'FREQ=MINUTELY;INTERVAL=1', enabled => true)")
        runs = wait_for(lambda: env.runs("EVERY_MINUTE"), 150,
                        "pg_cron to run the MINUTELY job", every=0.5)
        first = runs[0]
        assert first["status"] == "SUCCEEDED" and first["error#"] == "00000"
        assert first["additional_info"] is None
        assert first["log_date"] - created < timedelta(minutes=2)
        # Carried out in a session of the job's owner, not the superuser pg_cron runs as.
        assert logged(env, "CRON")[0] == {"v": "tick", "who": env.op, "is_super": False}
        assert first["session_id"] != env.one("SELECT pg_backend_pid()")
        job = env.job("EVERY_MINUTE")
        assert job["run_count"] >= 1 and job["failure_count"] == 0
        assert job["state"] in ("SCHEDULED", "RUNNING")
        assert job["next_run_date"] > first["req_start_date"]
        with env.cluster.admin() as conn:
            failed = conn.execute("SELECT return_message FROM cron.job_run_details"
                                  " WHERE jobid = %s AND status = 'failed'", [cron_job]).fetchall()
        assert failed == []
    finally:
        with env.cluster.admin() as conn:
            conn.execute("SELECT cron.unschedule(%s)", [cron_job])
        env.call("CALL dbms_scheduler.drop_job('every_minute', force => true)")


# -- running ---------------------------------------------------------------------------

def test_run_job_in_the_current_session_for_both_job_types(env: Env) -> None:
    env.call("CALL dbms_scheduler.create_job(job_name => 'block_job', job_type => 'PLSQL_BLOCK',"
             " job_action => 'DECLARE n integer := 3; BEGIN"
             " INSERT INTO app.log (job, v) VALUES (''BLOCK'', n::text); END;\n/',"
             " comments => 'a plpgsql block')")
    env.call("CALL dbms_scheduler.create_job(job_name => 'proc_job',"
             " job_type => 'STORED_PROCEDURE', job_action => 'APP.ADD',"
             " number_of_arguments => 3)")
    env.call("CALL dbms_scheduler.set_job_argument_value('proc_job', 1, 'PROC')")
    env.call("CALL dbms_scheduler.set_job_argument_value(job_name => 'proc_job',"
             " argument_position => 2, argument_value => '21')")
    env.call("CALL dbms_scheduler.set_job_argument_value('proc_job', 3, %s)",
             ["it's $$ \\ 'quoted'"])
    with env.connect(env.op) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()
        conn.execute("CALL dbms_scheduler.run_job('block_job')")
        conn.execute("CALL dbms_scheduler.run_job(job_name => 'PROC_JOB',"
                     " use_current_session => true)")
    assert logged(env, "BLOCK") == [{"v": "3", "who": env.op, "is_super": False}]
    assert logged(env, "PROC") == [{"v": "42:it's $$ \\ 'quoted'", "who": env.op,
                                    "is_super": False}]
    for name in ("BLOCK_JOB", "PROC_JOB"):
        [run] = env.runs(name)
        assert (run["status"], run["error#"], run["additional_info"]) == (
            "SUCCEEDED", "00000", None)
        assert pid is not None and run["session_id"] == pid[0]
        assert run["run_duration"] >= timedelta(0)
        # As in Oracle, a run in the caller's session is logged but not counted.
        job = env.job(name)
        assert (job["run_count"], job["state"], job["last_start_date"]) == (0, "DISABLED", None)
    assert env.job("BLOCK_JOB")["comments"] == "a plpgsql block"


def test_run_job_refuses_a_session_acting_as_another_role(env: Env) -> None:
    env.call("CALL dbms_scheduler.create_job(job_name => 'as_role', job_type => 'PLSQL_BLOCK',"
             " job_action => 'INSERT INTO app.log (job, v) VALUES (''AS_ROLE'', current_user)')")
    with env.connect(env.op) as conn:
        conn.execute("SET ROLE dms_operator")
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as err:
            conn.execute("CALL dbms_scheduler.run_job('as_role')")
    assert err.value.diag.message_primary == (
        "dms: a job runs as its owner, but this session acts as role dms_operator instead of "
        f"its login {env.op}")
    assert logged(env, "AS_ROLE") == [] and env.runs("AS_ROLE") == []
    env.call("CALL dbms_scheduler.drop_job('as_role')")


def test_a_plain_sql_action_and_a_queued_run_go_through_the_dispatcher(env: Env) -> None:
    env.call("CALL dbms_scheduler.create_job(job_name => 'sql_job', job_type => 'PLSQL_BLOCK',"
             " job_action => 'INSERT INTO app.log (job, v) VALUES (''SQL'', ''a'');"
             " INSERT INTO app.log (job, v) VALUES (''SQL'', ''b'')')")
    env.call("CALL dbms_scheduler.run_job('sql_job', use_current_session => false)")
    assert logged(env, "SQL") == []  # queued: nothing ran yet
    # Dispatched by the superuser, carried out as the owner.
    env.rows("CALL dbms_scheduler.dispatch()")
    assert logged(env, "SQL") == [{"v": "a", "who": env.op, "is_super": False},
                                  {"v": "b", "who": env.op, "is_super": False}]
    [run] = env.runs("SQL_JOB")
    assert run["status"] == "SUCCEEDED"
    job = env.job("SQL_JOB")
    assert (job["run_count"], job["failure_count"]) == (1, 0)
    assert job["last_start_date"] == run["actual_start_date"]
    assert job["last_run_duration"] == run["run_duration"]


def test_a_failing_job_is_recorded_failed_with_its_error(env: Env) -> None:
    env.call("CALL dbms_scheduler.create_job(job_name => 'bad_job', job_type => 'PLSQL_BLOCK',"
             " job_action => 'BEGIN INSERT INTO app.log (job, v) VALUES (''BAD'', ''x'');"
             " RAISE EXCEPTION ''no data for %'', 42 USING ERRCODE = ''P0002'',"
             " DETAIL = ''source empty''; END;')")
    err = env.refused("CALL dbms_scheduler.run_job('bad_job')")
    assert err.sqlstate == "P0002"
    assert err.diag.message_primary == "no data for 42"
    log_id = env.runs("BAD_JOB")[0]["log_id"]
    assert err.diag.message_detail == (
        f"source empty\njob BAD_JOB, run {log_id} (dbms_scheduler.user_scheduler_job_run_details)")
    # Through the dispatcher too; the action's own writes roll back.
    env.call("CALL dbms_scheduler.run_job('bad_job', false)")
    env.rows("CALL dbms_scheduler.dispatch()")
    runs = env.runs("BAD_JOB")
    assert [(r["status"], r["error#"], r["additional_info"]) for r in runs] == [
        ("FAILED", "P0002", "P0002: no data for 42\nDETAIL: source empty")] * 2
    assert logged(env, "BAD") == []
    job = env.job("BAD_JOB")
    assert (job["run_count"], job["failure_count"], job["state"]) == (1, 1, "DISABLED")


def test_stop_job_cancels_the_running_action(env: Env) -> None:
    env.call("CALL dbms_scheduler.create_job(job_name => 'slow_job', job_type => 'PLSQL_BLOCK',"
             " job_action => 'SELECT pg_sleep(60)')")
    env.call("CALL dbms_scheduler.run_job('slow_job', false)")
    dispatcher = threading.Thread(target=lambda: env.rows("CALL dbms_scheduler.dispatch()"),
                                  daemon=True)
    dispatcher.start()
    wait_for(lambda: env.job("SLOW_JOB")["state"] == "RUNNING", 30, "the job to run", every=0.2)
    err = env.refused("CALL dbms_scheduler.drop_job('slow_job')")
    assert (err.sqlstate, err.diag.message_primary) == ("55006", "dms: job SLOW_JOB is running")
    err = env.refused("CALL dbms_scheduler.run_job('slow_job')")
    assert (err.sqlstate, err.diag.message_primary) == ("55006", "dms: job SLOW_JOB is running")
    started = time.monotonic()
    env.call("CALL dbms_scheduler.stop_job('slow_job')")
    dispatcher.join(30)
    assert not dispatcher.is_alive() and time.monotonic() - started < 20
    [run] = env.runs("SLOW_JOB")
    assert (run["status"], run["error#"], run["additional_info"]) == (
        "STOPPED", "57014", "57014: canceling statement due to user request")
    assert env.job("SLOW_JOB")["state"] == "DISABLED"
    err = env.refused("CALL dbms_scheduler.stop_job('slow_job')")
    assert (err.sqlstate, err.diag.message_primary) == ("55000", "dms: job SLOW_JOB is not running")


def test_stop_job_with_force_ends_a_session_that_ignores_the_cancel(env: Env) -> None:
    env.call("CALL dbms_scheduler.create_job(job_name => 'stubborn', job_type => 'PLSQL_BLOCK',"
             " job_action => 'BEGIN LOOP BEGIN PERFORM pg_sleep(60);"
             " EXCEPTION WHEN query_canceled THEN NULL; END; END LOOP; END;')")
    env.call("CALL dbms_scheduler.run_job('stubborn', false)")
    dispatcher = threading.Thread(target=lambda: env.rows("CALL dbms_scheduler.dispatch()"),
                                  daemon=True)
    dispatcher.start()
    wait_for(lambda: env.job("STUBBORN")["state"] == "RUNNING", 30, "the job to run", every=0.2)
    env.call("CALL dbms_scheduler.stop_job('stubborn', force => true)")
    dispatcher.join(30)
    assert not dispatcher.is_alive()
    [run] = env.runs("STUBBORN")
    assert (run["status"], run["error#"], run["additional_info"]) == (
        "FAILED", "08006", ABANDONED)
    assert env.job("STUBBORN")["state"] == "DISABLED"
    env.call("CALL dbms_scheduler.drop_job('stubborn')")


# -- scheduling --------------------------------------------------------------------------

def make_due(env: Env, name: str) -> None:
    """Bring a job's next run to now, as if its time had come."""
    env.rows("UPDATE dms.sched_job SET next_run_date = clock_timestamp() - interval '1 second'"
             " WHERE job_name = %s AND owner = %s", [name, env.op])


def test_disable_and_enable(env: Env) -> None:
    env.call("CALL dbms_scheduler.create_job(job_name => 'toggle', job_type => 'PLSQL_BLOCK',"
             " job_action => 'INSERT INTO app.log (job, v) VALUES (''TOGGLE'', ''run'')',"
             " repeat_interval => 'FREQ=HOURLY;BYMINUTE=0;BYSECOND=0', enabled => true)")
    job = env.job("TOGGLE")
    now = env.one("SELECT clock_timestamp()")
    expected = (now.astimezone(ZoneInfo(ZONE)).replace(minute=0, second=0, microsecond=0)
                + timedelta(hours=1))
    assert (job["enabled"], job["state"], job["next_run_date"]) == (True, "SCHEDULED", expected)
    env.call("CALL dbms_scheduler.disable('toggle')")
    job = env.job("TOGGLE")
    assert (job["enabled"], job["state"], job["next_run_date"]) == (False, "DISABLED", None)
    env.rows("CALL dbms_scheduler.dispatch()")
    assert logged(env, "TOGGLE") == []
    env.call("CALL dbms_scheduler.enable(name => 'toggle')")
    assert env.job("TOGGLE")["state"] == "SCHEDULED"
    make_due(env, "TOGGLE")
    env.rows("CALL dbms_scheduler.dispatch()")
    assert logged(env, "TOGGLE") == [{"v": "run", "who": env.op, "is_super": False}]
    job = env.job("TOGGLE")
    now = env.one("SELECT clock_timestamp()")
    expected = (now.astimezone(ZoneInfo(ZONE)).replace(minute=0, second=0, microsecond=0)
                + timedelta(hours=1))
    assert (job["run_count"], job["enabled"], job["next_run_date"]) == (1, True, expected)
    env.call("CALL dbms_scheduler.drop_job('toggle')")


def test_the_database_time_zone_decides_the_wall_clock(env: Env) -> None:
    with env.connect(env.op) as conn:
        conn.execute("SET TimeZone = 'America/New_York'")  # a session SET moves nothing
        conn.execute("CALL dbms_scheduler.create_job(job_name => 'nightly',"
                     " job_type => 'PLSQL_BLOCK', job_action => 'SELECT 1',"
                     " repeat_interval => 'FREQ=DAILY;BYHOUR=2;BYMINUTE=0;BYSECOND=0',"
                     " enabled => true)")
    nxt = env.job("NIGHTLY")["next_run_date"].astimezone(ZoneInfo(ZONE))
    assert (nxt.hour, nxt.minute, nxt.second) == (2, 0, 0)
    assert timedelta(0) < nxt - env.one("SELECT clock_timestamp()") <= timedelta(days=1)
    with env.connect(env.op) as conn:
        found = conn.execute(
            "CALL dbms_scheduler.evaluate_calendar_string('FREQ=MONTHLY;BYMONTHDAY=-1;BYHOUR=6;"
            "BYMINUTE=0;BYSECOND=0', '2028-01-15 00:00+01', '2028-01-31 12:00+01', NULL)"
        ).fetchone()
    assert found is not None
    assert found[0] == datetime(2028, 2, 29, 6, 0, tzinfo=ZoneInfo(ZONE))
    env.call("CALL dbms_scheduler.drop_job('nightly')")


def test_auto_drop_drops_a_job_after_its_last_run(env: Env) -> None:
    for name, auto_drop in (("once_drop", True), ("once_keep", False)):
        env.call("CALL dbms_scheduler.create_job(job_name => %s, job_type => 'PLSQL_BLOCK',"
                 " job_action => 'INSERT INTO app.log (job, v) VALUES (''ONCE'', ' ||"
                 " quote_literal(%s) || ')', auto_drop => %s, enabled => true)",
                 [name, name, auto_drop])
    assert [j["job_name"] for j in env.jobs() if j["job_name"].startswith("ONCE")] == [
        "ONCE_DROP", "ONCE_KEEP"]
    env.rows("CALL dbms_scheduler.dispatch()")
    assert sorted(r["v"] for r in logged(env, "ONCE")) == ["once_drop", "once_keep"]
    # The one with auto_drop is gone, its log stays; the other is done and disabled.
    assert [j["job_name"] for j in env.jobs() if j["job_name"].startswith("ONCE")] == [
        "ONCE_KEEP"]
    assert [r["status"] for r in env.runs("ONCE_DROP")] == ["SUCCEEDED"]
    job = env.job("ONCE_KEEP")
    assert (job["enabled"], job["state"], job["next_run_date"], job["run_count"]) == (
        False, "SUCCEEDED", None, 1)
    env.rows("CALL dbms_scheduler.dispatch()")  # nothing runs twice
    assert len(logged(env, "ONCE")) == 2


def test_an_ended_repeating_job_is_completed(env: Env) -> None:
    env.call("CALL dbms_scheduler.create_job(job_name => 'ending', job_type => 'PLSQL_BLOCK',"
             " job_action => 'SELECT 1', repeat_interval => 'FREQ=MINUTELY',"
             " end_date => clock_timestamp() + interval '30 seconds', auto_drop => false,"
             " enabled => true)")
    env.rows("CALL dbms_scheduler.dispatch()")
    job = env.job("ENDING")
    assert (job["state"], job["enabled"], job["next_run_date"], job["run_count"]) == (
        "COMPLETED", False, None, 1)
    err = env.refused("CALL dbms_scheduler.enable('ending')")
    assert err.sqlstate == "22023"
    assert err.diag.message_primary == (
        "dms: job ENDING would never run: its end_date has passed or no date of its "
        "repeat_interval falls before it")
    env.call("CALL dbms_scheduler.drop_job('ending')")


def test_set_attribute(env: Env) -> None:
    env.call("CALL dbms_scheduler.create_job(job_name => 'attrs', job_type => 'PLSQL_BLOCK',"
             " job_action => 'INSERT INTO app.log (job, v) VALUES (''ATTR'', ''old'')',"
             " repeat_interval => 'FREQ=DAILY;BYHOUR=2;BYMINUTE=0;BYSECOND=0', enabled => true,"
             " comments => 'first')")
    env.call("CALL dbms_scheduler.set_attribute('attrs', 'repeat_interval',"
             " 'FREQ=WEEKLY;BYDAY=MON;BYHOUR=3;BYMINUTE=30;BYSECOND=0')")
    job = env.job("ATTRS")
    nxt = job["next_run_date"].astimezone(ZoneInfo(ZONE))
    assert (nxt.weekday(), nxt.hour, nxt.minute) == (0, 3, 30)
    assert job["repeat_interval"] == "FREQ=WEEKLY;BYDAY=MON;BYHOUR=3;BYMINUTE=30;BYSECOND=0"
    env.call("CALL dbms_scheduler.set_attribute(name => 'attrs', attribute => 'JOB_ACTION',"
             " value => 'INSERT INTO app.log (job, v) VALUES (''ATTR'', ''new'')')")
    env.call("CALL dbms_scheduler.set_attribute('attrs', 'auto_drop', false)")
    env.call("CALL dbms_scheduler.set_attribute('attrs', 'end_date',"
             " timestamptz '2099-01-01 00:00+00')")
    env.call("CALL dbms_scheduler.set_attribute_null('attrs', 'comments')")
    env.call("CALL dbms_scheduler.run_job('attrs')")
    assert [r["v"] for r in logged(env, "ATTR")] == ["new"]
    job = env.job("ATTRS")
    assert (job["auto_drop"], job["comments"], job["end_date"]) == (
        False, None, datetime(2099, 1, 1, tzinfo=ZoneInfo("UTC")))
    before = env.table_state()
    err = env.refused("CALL dbms_scheduler.set_attribute('attrs', 'repeat_interval',"
                      " 'FREQ=WEEKLY;BYDAY=MON,FUNDAY')")
    assert err.sqlstate == "22023"
    assert err.diag.message_primary == (
        'dms: repeat_interval: BYDAY must be MON..SUN, optionally with a week number like '
        '2MON or -1FRI, got "FUNDAY" at position 23')
    err = env.refused("CALL dbms_scheduler.set_attribute('attrs', 'max_runs', '3')")
    assert err.diag.message_primary == "dms: unknown attribute 'max_runs'"
    assert err.diag.message_hint == (
        "supported attributes: job_action, job_type, number_of_arguments, start_date, "
        "repeat_interval, end_date, auto_drop, comments")
    err = env.refused("CALL dbms_scheduler.set_attribute('attrs', 'auto_drop', 'maybe')")
    assert err.diag.message_primary == "dms: attribute auto_drop takes TRUE or FALSE, got 'maybe'"
    err = env.refused("CALL dbms_scheduler.set_attribute_null('attrs', 'job_action')")
    assert err.diag.message_primary == "dms: attribute job_action cannot be NULL"
    assert env.table_state() == before
    env.call("CALL dbms_scheduler.drop_job('attrs')")


def test_drop_job_keeps_the_log_and_drops_queued_runs(env: Env) -> None:
    env.call("CALL dbms_scheduler.create_job(job_name => 'dropme', job_type => 'PLSQL_BLOCK',"
             " job_action => 'INSERT INTO app.log (job, v) VALUES (''DROP'', ''x'')')")
    env.call("CALL dbms_scheduler.run_job('dropme')")
    env.call("CALL dbms_scheduler.run_job('dropme', false)")
    env.call("CALL dbms_scheduler.drop_job(job_name => 'dropme')")
    assert [j for j in env.jobs() if j["job_name"] == "DROPME"] == []
    env.rows("CALL dbms_scheduler.dispatch()")
    assert len(logged(env, "DROP")) == 1  # the queued run went with the job
    assert [r["status"] for r in env.runs("DROPME")] == ["SUCCEEDED"]
    assert env.rows("SELECT status FROM dms.sched_job_run WHERE job_name = 'DROPME'"
                    " AND status NOT IN ('SUCCEEDED')") == []
    err = env.refused("CALL dbms_scheduler.drop_job('dropme')")
    assert (err.sqlstate, err.diag.message_primary) == ("42704", "dms: job DROPME does not exist")
    assert err.diag.message_hint == (
        "SELECT job_name FROM dbms_scheduler.user_scheduler_jobs lists your jobs")


# -- roles and owners ----------------------------------------------------------------------

def test_a_viewer_reads_the_views_and_is_refused_the_rest(env: Env) -> None:
    env.call("CALL dbms_scheduler.create_job(job_name => 'mine', job_type => 'PLSQL_BLOCK',"
             " job_action => 'SELECT 1')")
    before = env.table_state()
    for statement, what in (
            ("CALL dbms_scheduler.create_job('V_JOB', 'PLSQL_BLOCK', 'SELECT 1')",
             "procedure create_job"),
            (f"CALL dbms_scheduler.run_job('{env.op}.MINE')", "procedure run_job"),
            (f"CALL dbms_scheduler.drop_job('{env.op}.MINE')", "procedure drop_job"),
            ("CALL dbms_scheduler.dispatch()", "procedure dispatch"),
            ("SELECT * FROM dms._sched_begin(NULL, 'MINE')", "function _sched_begin")):
        err = env.refused(statement, user=env.viewer)
        assert (err.sqlstate, err.diag.message_primary) == (
            "42501", f"permission denied for {what}")
    assert env.table_state() == before
    assert env.jobs(env.viewer) == []
    assert env.rows("SELECT * FROM dms.sched_job", user=env.viewer) == []
    env.call("CALL dbms_scheduler.drop_job('mine')")


def test_another_operator_cannot_see_run_change_or_drop_my_job(env: Env) -> None:
    env.call("CALL dbms_scheduler.create_job(job_name => 'private', job_type => 'PLSQL_BLOCK',"
             " job_action => 'INSERT INTO app.log (job, v) VALUES (''PRIVATE'', ''x'')')")
    env.call("CALL dbms_scheduler.run_job('private')")
    before = env.table_state()
    for verb, statement in (
            ("run", "CALL dbms_scheduler.run_job('{}.private')"),
            ("run", "CALL dbms_scheduler.run_job('{}.private', false)"),
            ("drop", "CALL dbms_scheduler.drop_job('{}.private')"),
            ("stop", "CALL dbms_scheduler.stop_job('{}.private')"),
            ("disable", "CALL dbms_scheduler.disable('{}.private')"),
            ("enable", "CALL dbms_scheduler.enable('{}.private')"),
            ("change", "CALL dbms_scheduler.set_attribute('{}.private', 'job_action', 'SELECT 2')"),
            ("change", "CALL dbms_scheduler.set_job_argument_value('{}.private', 1, 'x')")):
        err = env.refused(statement.format(env.op), user=env.other)
        assert (err.sqlstate, err.diag.message_primary) == (
            "42501", f"dms: job {env.op}.PRIVATE belongs to {env.op}: only its owner can "
                     f"{verb} it")
    # Unqualified, the name is the other login's own: there is no such job.
    err = env.refused("CALL dbms_scheduler.run_job('private')", user=env.other)
    assert (err.sqlstate, err.diag.message_primary) == ("42704", "dms: job PRIVATE does not exist")
    assert env.table_state() == before
    assert env.jobs(env.other) == []
    assert env.runs("PRIVATE", env.other) == []
    assert env.rows("SELECT * FROM dms.sched_job_run", user=env.other) == []
    assert len(env.rows("SELECT * FROM dms.sched_job_run WHERE job_name = 'PRIVATE'",
                        user=env.op)) == 1
    # The same name is free for the other login.
    env.call("CALL dbms_scheduler.create_job('private', 'PLSQL_BLOCK', 'SELECT 1')",
             user=env.other)
    assert [j["job_action"] for j in env.jobs(env.other)] == ["SELECT 1"]
    env.call("CALL dbms_scheduler.drop_job('private')", user=env.other)
    env.call("CALL dbms_scheduler.drop_job('private')")


# -- the dispatcher is the administrators' ---------------------------------------------------

def test_only_an_administrator_may_dispatch_queue_claim_or_abandon(env: Env) -> None:
    # A one-off job with auto_drop, due now, and a queued run: what an operator
    # could hijack if it could drive the dispatcher.
    env.call("CALL dbms_scheduler.create_job(job_name => 'one_off', job_type => 'PLSQL_BLOCK',"
             " job_action => 'INSERT INTO app.log (job, v) VALUES (''ONE_OFF'', ''x'')',"
             " enabled => true)")
    env.call("CALL dbms_scheduler.create_job(job_name => 'queued', job_type => 'PLSQL_BLOCK',"
             " job_action => 'INSERT INTO app.log (job, v) VALUES (''QUEUED'', ''x'')')")
    env.call("CALL dbms_scheduler.run_job('queued', false)")
    log_id = env.one("SELECT log_id FROM dms.sched_job_run WHERE owner = %s"
                     " AND job_name = 'QUEUED' AND status = 'QUEUED'", [env.op])
    before = env.table_state()
    for user in (env.other, env.op):  # another operator, and the jobs' owner itself
        for statement, what in (
                ("SELECT dms._sched_queue_due()", "function _sched_queue_due"),
                ("SELECT dms._sched_claim()", "function _sched_claim"),
                (f"SELECT dms._sched_abandon({log_id})", "function _sched_abandon"),
                ("CALL dbms_scheduler.dispatch()", "procedure dispatch"),
                ("CALL dbms_scheduler.dispatch(1)", "procedure dispatch")):
            err = env.refused(statement, user=user)
            assert (err.sqlstate, err.diag.message_primary) == (
                "42501", f"permission denied for {what}")
        err = env.refused("SELECT dms.run_as_owner('sched', %s)", [log_id], user=user)
        assert (err.sqlstate, err.diag.message_primary) == (
            "42501", f"dms: DBMS_SCHEDULER run {log_id} is not claimed by this session")
        # The old helper that recorded the caller's text is gone.
        err = env.refused(f"SELECT dms._sched_abandon({log_id}, 'any text')", user=user)
        assert (err.sqlstate, err.diag.message_primary) == (
            "42883", "function dms._sched_abandon(integer, unknown) does not exist")
    assert env.table_state() == before
    assert logged(env, "ONE_OFF") == [] and logged(env, "QUEUED") == []
    # An administrator's dispatch (not a superuser's) carries both out, as their owner.
    env.call("CALL dbms_scheduler.dispatch()", user=env.admin)
    for name in ("ONE_OFF", "QUEUED"):
        assert logged(env, name) == [{"v": "x", "who": env.op, "is_super": False}]
        assert [r["status"] for r in env.runs(name)] == ["SUCCEEDED"]
    assert [j["job_name"] for j in env.jobs()
            if j["job_name"] in ("ONE_OFF", "QUEUED")] == ["QUEUED"]  # auto_drop
    env.call("CALL dbms_scheduler.drop_job('queued')")


def test_run_as_owner_starts_only_a_run_this_session_claimed(env: Env) -> None:
    env.call("CALL dbms_scheduler.create_job(job_name => 'claimed', job_type => 'PLSQL_BLOCK',"
             " job_action => 'INSERT INTO app.log (job, v) VALUES (''CLAIMED'', ''x'')')")
    env.call("CALL dbms_scheduler.run_job('claimed', false)")
    log_id = env.one("SELECT log_id FROM dms.sched_job_run WHERE owner = %s"
                     " AND job_name = 'CLAIMED' AND status = 'QUEUED'", [env.op])
    with env.connect(env.admin) as dispatcher:
        row = dispatcher.execute("SELECT dms._sched_claim()").fetchone()
        assert row == (log_id,)
        before = env.table_state()
        message = f"dms: DBMS_SCHEDULER run {log_id} is not claimed by this session"
        for user in (env.other, env.op, env.admin):  # the owner, another admin session too
            err = env.refused("SELECT dms.run_as_owner('sched', %s)", [log_id], user=user)
            assert (err.sqlstate, err.diag.message_primary) == ("42501", message)
            assert err.diag.message_hint == (
                "CALL dbms_scheduler.dispatch() (dms_admin) claims the queued runs and carries"
                " them out")
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
            env.rows("SELECT dms.run_as_owner('sched', %s)", [log_id])  # a superuser's session
        assert refused.value.diag.message_primary == message
        assert env.table_state() == before and logged(env, "CLAIMED") == []
        # The session that claimed it carries it out.
        assert dispatcher.execute("SELECT dms.run_as_owner('sched', %s)",
                                  [log_id]).fetchone() == (None,)
        assert dispatcher.execute("SELECT dms._sched_abandon(%s)", [log_id]).fetchone() == (
            False,)  # recorded by the owner's session: nothing to abandon
    assert logged(env, "CLAIMED") == [{"v": "x", "who": env.op, "is_super": False}]
    assert [r["status"] for r in env.runs("CLAIMED")] == ["SUCCEEDED"]
    env.call("CALL dbms_scheduler.drop_job('claimed')")


def test_a_cancelled_run_as_owner_leaves_no_session_of_the_owner_open(env: Env) -> None:
    env.call("CALL dbms_scheduler.create_job(job_name => 'slow_owner', job_type =>"
             " 'PLSQL_BLOCK', job_action => 'SELECT pg_sleep(60)')")
    env.call("CALL dbms_scheduler.run_job('slow_owner', false)")
    log_id = env.one("SELECT log_id FROM dms.sched_job_run WHERE owner = %s"
                     " AND job_name = 'SLOW_OWNER' AND status = 'QUEUED'", [env.op])
    application = f"dms dispatcher sched {log_id}"
    with env.connect() as conn:  # a superuser: it may list its dblink connections
        assert conn.execute("SELECT dms._sched_claim()").fetchone() == (log_id,)
        conn.execute("SET statement_timeout = '5s'")
        with pytest.raises(psycopg.errors.QueryCanceled) as err:
            conn.execute("SELECT dms.run_as_owner('sched', %s)", [log_id])
        assert err.value.diag.message_primary == "canceling statement due to statement timeout"
        conn.execute("RESET statement_timeout")
        row = conn.execute("SELECT dms._dblink_schema()").fetchone()
        assert row is not None
        listed = conn.execute(sql.SQL("SELECT {}.dblink_get_connections()").format(
            sql.Identifier(row[0]))).fetchone()
        assert listed == (None,)  # the owner's session was closed, not left in ours
        wait_for(lambda: not env.rows("SELECT pid FROM pg_stat_activity"
                                      " WHERE application_name = %s", [application]),
                 30, "the owner's session to end", every=0.1)
        # It was cancelled too, so it recorded the run STOPPED itself.
        [run] = env.runs("SLOW_OWNER")
        assert (run["status"], run["error#"], run["additional_info"]) == (
            "STOPPED", "57014", "57014: canceling statement due to user request")
        assert conn.execute("SELECT dms._sched_abandon(%s)", [log_id]).fetchone() == (False,)
    assert env.job("SLOW_OWNER")["state"] == "DISABLED"
    env.call("CALL dbms_scheduler.drop_job('slow_owner')")


def test_a_run_its_owner_cannot_start_is_failed_with_fixed_text_and_drops_nothing(
        env: Env) -> None:
    env.call("CALL dbms_scheduler.create_job(job_name => 'locked_out', job_type =>"
             " 'PLSQL_BLOCK', job_action => 'SELECT 1', enabled => true)", user=env.other)
    notices: list[tuple[str, str]] = []
    with env.cluster.admin() as conn:
        conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(env.other)))
    try:
        with env.connect(env.admin) as conn:
            conn.add_notice_handler(lambda d: notices.append(
                (d.severity_nonlocalized or "", d.message_primary or "")))
            conn.execute("CALL dbms_scheduler.dispatch()")
    finally:
        with env.cluster.admin() as conn:
            conn.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(env.other)))
    [run] = env.runs("LOCKED_OUT", env.other)
    assert (run["status"], run["error#"], run["additional_info"]) == (
        "FAILED", "08006", ABANDONED)
    # Why is the dispatcher's own WARNING, not the run's record.
    assert [m for severity, m in notices if severity == "WARNING"] == [
        f"dbms_scheduler.dispatch: run {run['log_id']} was not recorded by its job's session:"
        f" dms: a worker session cannot log in to this server as {env.other}"]
    # A one-off job with auto_drop whose run never ran is kept, disabled, FAILED.
    [job] = env.jobs(env.other)
    assert (job["job_name"], job["auto_drop"], job["enabled"], job["state"], job["run_count"],
            job["failure_count"], job["next_run_date"]) == (
        "LOCKED_OUT", True, False, "FAILED", 1, 1, None)
    env.call("CALL dbms_scheduler.drop_job('locked_out')", user=env.other)


# -- "running" cannot be faked -----------------------------------------------------------------

def test_advisory_locks_of_a_login_with_no_dms_role_stop_no_job(env: Env) -> None:
    env.call("CALL dbms_scheduler.create_job(job_name => 'squatted', job_type => 'PLSQL_BLOCK',"
             " job_action => 'INSERT INTO app.log (job, v) VALUES (''SQUAT'', ''x'')',"
             " repeat_interval => 'FREQ=HOURLY', enabled => true)")
    top = env.one("SELECT max(job_id) FROM dms.sched_job")
    count = max(500, top + 50)
    with env.connect(env.nobody) as squatter:
        squatter.execute("SELECT pg_advisory_lock(%s, n) FROM generate_series(1, %s) n",
                         [LOCK_CLASS, count])
        pid = squatter.execute("SELECT pg_backend_pid()").fetchone()
        assert pid is not None
        assert env.one("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                       " AND classid = %s::bigint::oid AND objsubid = 2 AND pid = %s",
                       [LOCK_CLASS, pid[0]]) == count
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as err:
            squatter.execute("SELECT * FROM dms.sched_job_lock FOR UPDATE")
        assert err.value.diag.message_primary == "permission denied for schema dms"
        # Not shown running; it runs in the owner's session and through the dispatcher.
        assert env.job("SQUATTED")["state"] == "SCHEDULED"
        env.call("CALL dbms_scheduler.run_job('squatted')")
        make_due(env, "SQUATTED")
        env.rows("CALL dbms_scheduler.dispatch()")
        env.call("CALL dbms_scheduler.run_job('squatted', use_current_session => false)")
        env.rows("CALL dbms_scheduler.dispatch()")
        assert [(r["status"], r["error#"]) for r in env.runs("SQUATTED")] == [
            ("SUCCEEDED", "00000")] * 3
        assert len(logged(env, "SQUAT")) == 3
        job = env.job("SQUATTED")
        assert (job["state"], job["run_count"], job["failure_count"]) == ("SCHEDULED", 2, 0)
        err2 = env.refused("CALL dbms_scheduler.stop_job('squatted')")
        assert (err2.sqlstate, err2.diag.message_primary) == (
            "55000", "dms: job SQUATTED is not running")
        env.call("CALL dbms_scheduler.disable('squatted')")  # no force needed
    env.call("CALL dbms_scheduler.drop_job('squatted')")


def test_no_dms_role_reads_or_locks_the_running_rows(env: Env) -> None:
    for user in (env.viewer, env.op, env.admin):
        for statement, table in (("SELECT * FROM dms.sched_job_lock", "sched_job_lock"),
                                 ("SELECT 1 FROM dms.sched_job_lock FOR KEY SHARE",
                                  "sched_job_lock"),
                                 ("SELECT 1 FROM dms.sched_job FOR KEY SHARE", "sched_job"),
                                 ("SELECT 1 FROM dms.sched_job_run FOR KEY SHARE",
                                  "sched_job_run")):
            err = env.refused(statement, user=user)
            assert (err.sqlstate, err.diag.message_primary) == (
                "42501", f"permission denied for table {table}")


def test_a_running_job_is_shown_running_by_its_session(env: Env) -> None:
    env.call("CALL dbms_scheduler.create_job(job_name => 'held', job_type => 'PLSQL_BLOCK',"
             " job_action => 'SELECT pg_sleep(60)')")
    env.call("CALL dbms_scheduler.run_job('held', false)")  # queued before the run below
    with env.connect(env.op) as runner:
        pid = runner.execute("SELECT pg_backend_pid()").fetchone()
        assert pid is not None
        errors: list[psycopg.Error] = []

        def run_it() -> None:
            try:
                runner.execute("CALL dbms_scheduler.run_job('held')")
            except psycopg.Error as exc:
                errors.append(exc)

        thread = threading.Thread(target=run_it, daemon=True)
        thread.start()
        wait_for(lambda: env.job("HELD")["state"] == "RUNNING", 30, "the job to run",
                 every=0.1)
        err = env.refused("CALL dbms_scheduler.run_job('held')")
        assert (err.sqlstate, err.diag.message_primary) == ("55006", "dms: job HELD is running")
        # The queued run finds the job running: recorded FAILED, not started.
        env.call("CALL dbms_scheduler.dispatch()", user=env.admin)
        [queued] = env.runs("HELD")
        assert (queued["status"], queued["error#"], queued["additional_info"]) == (
            "FAILED", "55006", "job HELD was still running: this run did not start")
        assert env.job("HELD")["state"] == "RUNNING"
        env.call("CALL dbms_scheduler.stop_job('held')")
        thread.join(30)
        assert not thread.is_alive()
    # run_job in the caller's session raises the job's error: here, the cancel.
    assert [(e.sqlstate, e.diag.message_primary) for e in errors] == [
        ("57014", "canceling statement due to user request")]
    [queued, run] = env.runs("HELD")
    assert (run["status"], run["session_id"]) == ("STOPPED", pid[0])
    assert env.job("HELD")["state"] == "DISABLED"
    env.call("CALL dbms_scheduler.drop_job('held')")


# -- refusals --------------------------------------------------------------------------------

@pytest.mark.parametrize(("interval", "message"), [
    ("FREQ=FORTNIGHTLY", 'unknown frequency "FORTNIGHTLY" at position 6'),
    ("FREQ=DAILY;BYHOUR=25", 'BYHOUR must be 0..23, got "25" at position 19'),
    ("FREQ=MONTHLY;BYMONTHDAY=-1;INTERVAL=0",
     'INTERVAL must be an integer from 1 to 999, got "0" at position 37'),
    ("BYDAY=MON", "FREQ is required at position 1"),
    ("FREQ=WEEKLY;BYDAY=-1FRI", 'BYDAY "-1FRI" has a week number, which needs FREQ=MONTHLY or '
                                "FREQ=YEARLY at position 19"),
    ("FREQ=DAILY;BYSETPOS=1", "clause BYSETPOS is not supported at position 12"),
])
def test_bad_calendar_strings_are_refused_with_their_position(
        env: Env, interval: str, message: str) -> None:
    before = env.table_state()
    err = env.refused("CALL dbms_scheduler.create_job(job_name => 'cal', job_type =>"
                      " 'PLSQL_BLOCK', job_action => 'SELECT 1', repeat_interval => %s)",
                      [interval])
    assert err.sqlstate == "22023"
    assert err.diag.message_primary == f"dms: repeat_interval: {message}"
    assert err.diag.message_hint == CAL_HINT
    assert env.table_state() == before


PROC = "CALL dbms_scheduler.create_job(job_name => 'e_{}', job_type => 'STORED_PROCEDURE', " \
       "job_action => 'app.add', number_of_arguments => 3)"


@pytest.mark.parametrize(("setup", "statement", "sqlstate", "message"), [
    (["CALL dbms_scheduler.create_job('e_dup', 'PLSQL_BLOCK', 'SELECT 1')"],
     "CALL dbms_scheduler.create_job('E_DUP', 'PLSQL_BLOCK', 'SELECT 2')",
     "42710", "dms: job E_DUP already exists"),
    ([], "CALL dbms_scheduler.create_job('e_type', 'SHELL', 'ls')",
     "22023", "dms: job_type must be PLSQL_BLOCK or STORED_PROCEDURE, got 'SHELL'"),
    ([], "CALL dbms_scheduler.create_job('e_type', 'executable', '/bin/ls')",
     "0A000", "dms: job_type EXECUTABLE is not supported"),
    ([], "CALL dbms_scheduler.create_job('e_act', 'PLSQL_BLOCK', '  ')",
     "22023", "dms: job_action must be given"),
    ([], "CALL dbms_scheduler.create_job('e_proc', 'STORED_PROCEDURE', 'app.add(1)')",
     "22023", "dms: job_action 'app.add(1)' is not a procedure name"),
    ([], "CALL dbms_scheduler.create_job('e_args', 'PLSQL_BLOCK', 'SELECT 1', 2)",
     "22023", "dms: a PLSQL_BLOCK job takes no arguments (number_of_arguments 2)"),
    ([], "CALL dbms_scheduler.create_job('e_args', 'STORED_PROCEDURE', 'app.add', 256)",
     "22023", "dms: number_of_arguments must be 0..255, got 256"),
    ([], "CALL dbms_scheduler.create_job('e_name', 'PLSQL_BLOCK', 'SELECT 1', job_class =>"
         " 'BATCH')",
     "0A000", "dms: job_class BATCH is not supported: every job is in DEFAULT_JOB_CLASS"),
    ([], "CALL dbms_scheduler.create_job('e_dates', 'PLSQL_BLOCK', 'SELECT 1', start_date =>"
         " '2030-01-02', end_date => '2030-01-01')",
     "22023", "dms: end_date is before start_date"),
    ([], "CALL dbms_scheduler.create_job('bad name', 'PLSQL_BLOCK', 'SELECT 1')",
     "22023", "dms: job name 'bad name' is not a valid name"),
    ([], "CALL dbms_scheduler.create_job('e_enable', 'STORED_PROCEDURE', 'app.add', 3,"
         " enabled => true)",
     "55000", "dms: job E_ENABLE cannot be enabled: argument 1 has no value"),
    ([PROC.format("pos")], "CALL dbms_scheduler.set_job_argument_value('e_pos', 4, 'x')",
     "22023", "dms: argument_position 4 is out of range: job E_POS has 3 arguments"),
    ([PROC.format("pos0")], "CALL dbms_scheduler.set_job_argument_value('e_pos0', 0, 'x')",
     "22023", "dms: argument_position 0 is out of range: job E_POS0 has 3 arguments"),
    (["CALL dbms_scheduler.create_job('e_blk', 'PLSQL_BLOCK', 'SELECT 1')"],
     "CALL dbms_scheduler.set_job_argument_value('e_blk', 1, 'x')",
     "22023", "dms: job E_BLK is a PLSQL_BLOCK job: it takes no arguments"),
    ([PROC.format("miss"), "CALL dbms_scheduler.set_job_argument_value('e_miss', 1, 'x')"],
     "CALL dbms_scheduler.enable('e_miss')",
     "55000", "dms: job E_MISS cannot be enabled: argument 2 has no value"),
    ([PROC.format("runm")], "CALL dbms_scheduler.run_job('e_runm')",
     "55000", "dms: job E_RUNM cannot be run: argument 1 has no value"),
    ([], "CALL dbms_scheduler.run_job('e_nothing')", "42704", "dms: job E_NOTHING does not exist"),
    ([], "CALL dbms_scheduler.enable('e_nothing')", "42704", "dms: job E_NOTHING does not exist"),
    (["CALL dbms_scheduler.create_job('e_stop', 'PLSQL_BLOCK', 'SELECT 1')"],
     "CALL dbms_scheduler.stop_job('e_stop')", "55000", "dms: job E_STOP is not running"),
    (["CALL dbms_scheduler.create_job('e_defer', 'PLSQL_BLOCK', 'SELECT 1')"],
     "CALL dbms_scheduler.drop_job('e_defer', defer => true)",
     "0A000", "dms: drop_job with defer => true is not supported"),
    (["CALL dbms_scheduler.create_job('e_cs', 'PLSQL_BLOCK', 'SELECT 1')"],
     "CALL dbms_scheduler.enable('e_cs', commit_semantics => 'SOMETIMES')",
     "22023", "dms: commit_semantics must be one of STOP_ON_FIRST_ERROR, TRANSACTIONAL, "
              "ABSORB_ERRORS, got 'SOMETIMES'"),
    (["CALL dbms_scheduler.create_job('e_list', 'PLSQL_BLOCK', 'SELECT 1')"],
     "CALL dbms_scheduler.enable('e_list, e_nothing')",  # all or nothing
     "42704", "dms: job E_NOTHING does not exist"),
])
def test_every_other_refusal_says_what_is_wrong_and_writes_nothing(
        env: Env, setup: list[str], statement: str, sqlstate: str, message: str) -> None:
    for text in setup:
        env.call(text)
    before = env.table_state()
    err = env.refused(statement)
    assert (err.sqlstate, err.diag.message_primary) == (sqlstate, message)
    assert err.diag.message_hint  # every refusal says how to go on
    assert env.table_state() == before
    env.rows("DELETE FROM dms.sched_job WHERE owner = %s AND job_name LIKE 'E\\_%%'", [env.op])
