"""No operator can become superuser, and connections obey roles (issue 15).

Every test is an attack (or the legitimate use next to one), made the way an
attacker would: a LOGIN role that is a member of dms_operator (or dms_admin)
and nothing else, using only the public SQL API.  Each asserts the refusal
and that nothing changed: the role is no superuser, no file was written, no
row reached a table the role may not write, no run or connection row was
recorded.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql

from tests.integration.conftest import Cluster, DatabaseFactory, wait_for
from tests.integration.second_server import second_server

ROWS = 3000
WHO = ("SELECT id, (SELECT a.usename::text FROM pg_catalog.pg_stat_activity a"
       " WHERE a.pid = pg_catalog.pg_backend_pid()) AS login,"
       " pg_catalog.current_setting('is_superuser') AS su FROM public.src")


@dataclass
class Env:
    cluster: Cluster
    home: str
    other: str  # another database of the same server

    def connect(self, db: str | None = None, user: str | None = None,
                **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.cluster.dsn(db or self.home, user), autocommit=True,
                               **kwargs)

    def one(self, query: str, params: list[Any] | None = None, db: str | None = None) -> Any:
        with self.connect(db) as conn:
            row = conn.execute(query, params or []).fetchone()
        return row[0] if row else None

    def call(self, user: str | None, source_conid: int | None, source_sql: str,
             target_conid: int | None, table: str, params: dict[str, Any] | None = None,
             schema: str = "public") -> int:
        with self.connect(user=user) as conn:
            row = conn.execute(
                "CALL dms.execute_query_parallel(%s, %s, %s, %s, %s, %s::jsonb)",
                [source_conid, source_sql, target_conid, schema, table,
                 json.dumps(params or {})]).fetchone()
        assert row is not None
        return int(row[0])

    def runs(self) -> int:
        return int(self.one("SELECT count(*) FROM dms.run"))

    def is_superuser(self, role: str) -> bool:
        return bool(self.one("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [role]))

    def target(self, columns: str = "id bigint PRIMARY KEY, login text, su text",
               db: str | None = None) -> str:
        """A new empty table; its name."""
        name = f"t_{uuid.uuid4().hex[:10]}"
        with self.connect(db) as conn:
            conn.execute(sql.SQL("CREATE TABLE public.{} ({})").format(
                sql.Identifier(name), sql.SQL(columns)))
        return name

    def count(self, table: str, db: str | None = None) -> int:
        return int(self.one(sql.SQL("SELECT count(*) FROM public.{}").format(
            sql.Identifier(table)).as_string(None), db=db))

    def connection(self, name: str, constr: str) -> int:
        return int(self.one(
            "INSERT INTO dms.dms_dbcondtls (connm, dbtyp, constr) VALUES (%s, 'POSTGRESQL', %s)"
            " RETURNING conid", [name, constr]))

    def grant_connection(self, conid: int, role: str) -> None:
        self.one("SELECT dms.grant_connection(%s, %s)", [conid, role])

    def socket_dsn(self, db: str, user: str | None = None) -> str:
        """host/port/dbname of this server's socket, and a user only when given."""
        parts = psycopg.conninfo.conninfo_to_dict(self.cluster.dsn(db))
        text = f"host={parts['host']} port={parts['port']} dbname={db}"
        return text + (f" user={user}" if user else "")


@pytest.fixture(scope="module")
def env(cluster: Cluster, databases: DatabaseFactory) -> Env:
    home = databases.create(installed=True)
    other = databases.create()
    for db in (home, other):
        with psycopg.connect(cluster.dsn(db), autocommit=True) as conn:
            conn.execute("CREATE TABLE public.src (id bigint PRIMARY KEY, v text)")
            conn.execute("INSERT INTO public.src SELECT g, 'v' || g FROM"
                         " generate_series(1, %s) g", [ROWS])
            conn.execute("CREATE TABLE public.secret (id bigint PRIMARY KEY, s text)")
            conn.execute("INSERT INTO public.secret VALUES (1, 'the secret')")
            conn.execute("ANALYZE")
    return Env(cluster, home, other)


@pytest.fixture
def member(env: Env, login_role: Callable[[str | None], str]) -> Iterator[Callable[..., str]]:
    """A LOGIN role that is only a member of the given dms role, with SELECT on
    public.src; whatever it was granted or owns here goes when the test ends."""
    made: list[str] = []

    def make(role: str = "dms_operator") -> str:
        name = login_role(role)
        made.append(name)
        with env.connect() as conn:
            conn.execute(sql.SQL("GRANT SELECT ON public.src TO {}").format(
                sql.Identifier(name)))
        return name

    yield make
    for db in (env.home, env.other):
        with env.connect(db) as conn:
            for name in made:
                conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(name)))


def grant_insert(env: Env, table: str, role: str, db: str | None = None) -> None:
    with env.connect(db) as conn:
        conn.execute(sql.SQL("GRANT INSERT, SELECT ON public.{} TO {}").format(
            sql.Identifier(table), sql.Identifier(role)))


def chunk_errors(env: Env, run_id: int) -> list[str]:
    with env.connect() as conn:
        return [r[0] for r in conn.execute(
            "SELECT DISTINCT last_error FROM dms.chunk WHERE run_id = %s AND state = 'FAILED'",
            [run_id])]


def last_run(env: Env) -> int:
    return int(env.one("SELECT max(run_id) FROM dms.run"))


# ------------------------------------------------------------ who workers are

@pytest.mark.parametrize(("path", "via_connection"), [
    ("same_db", False), ("rows", False), ("copy", False), ("rows", True), ("copy", True)])
def test_every_session_of_a_run_is_logged_in_as_the_caller(env: Env, member: Any,
                                                          path: str, via_connection: bool
                                                          ) -> None:
    """Worker and data sessions are authenticated as the operator, not as a
    superuser that switched: pg_stat_activity names the login they logged in as.
    (The rows path inside one database also used to hang: one connection
    served as source and target.)"""
    operator = member()
    target = env.target()
    grant_insert(env, target, operator)
    source = None
    if via_connection:  # a connection row back to this database, logging in as the caller
        source = env.connection(f"self_{uuid.uuid4().hex[:6]}", env.socket_dsn(env.home))
        env.grant_connection(source, operator)
    run_id = env.call(operator, source, WHO, None, target,
                      {"max_workers": 2, "chunks": 4, "min_rows_for_parallel": 0,
                       "path": path})
    assert env.one("SELECT state FROM dms.run WHERE run_id = %s", [run_id]) == "SUCCEEDED"
    assert env.one("SELECT workers_planned FROM dms.run WHERE run_id = %s", [run_id]) == 2
    with env.connect() as conn:
        seen = conn.execute(sql.SQL("SELECT login, su, count(*) FROM public.{}"
                                    " GROUP BY 1, 2").format(sql.Identifier(target))).fetchall()
    assert seen == [(operator, "off", ROWS)]


def test_a_source_query_cannot_switch_to_the_superuser(env: Env, member: Any) -> None:
    operator = member()
    target = env.target("id bigint, a text")
    grant_insert(env, target, operator)
    attack = ("SELECT id, set_config('session_authorization', 'postgres', false) AS a"
              " FROM public.src")
    with pytest.raises(psycopg.Error) as err:
        env.call(operator, None, attack, None, target,
                 {"max_workers": 2, "chunks": 3, "min_rows_for_parallel": 0})
    run_id = last_run(env)
    assert chunk_errors(env, run_id) == [
        'permission denied to set session authorization "postgres"'], str(err.value)
    assert not env.is_superuser(operator)
    assert env.count(target) == 0


def test_a_source_query_cannot_call_dblink(env: Env, member: Any) -> None:
    operator = member()
    target = env.target("id bigint, a text, b text")
    grant_insert(env, target, operator)
    loopback = env.socket_dsn(env.home, "postgres")
    attack = (f"SELECT id, set_config('session_authorization', 'postgres', false) AS a,"
              f" public.dblink_exec('{loopback}', 'ALTER ROLE \"{operator}\" SUPERUSER') AS b"
              " FROM public.src")
    runs = env.runs()
    with pytest.raises(errors.InsufficientPrivilege) as err:
        env.call(operator, None, attack, None, target,
                 {"max_workers": 2, "chunks": 3, "min_rows_for_parallel": 0})
    assert "permission denied for function dblink_exec" in str(err.value.diag.message_primary)
    assert not env.is_superuser(operator)
    assert env.runs() == runs and env.count(target) == 0


def test_dblink_is_not_for_public(env: Env, member: Any) -> None:
    operator = member()
    callable_ = env.one(
        "SELECT count(*) FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid"
        " AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e'"
        " JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'dblink'"
        " WHERE has_function_privilege(%s, p.oid, 'EXECUTE')", [operator])
    assert callable_ == 0
    with env.connect(user=operator) as conn, pytest.raises(errors.InsufficientPrivilege) as err:
        conn.execute("SELECT public.dblink_exec(%s, 'SELECT 1')",
                     [env.socket_dsn(env.home, "postgres")])
    assert err.value.diag.message_primary == "permission denied for function dblink_exec"


def test_query_to_xml_reads_nothing_the_caller_may_not(env: Env, member: Any) -> None:
    operator = member()
    target = env.target("id bigint, a text, x text")
    grant_insert(env, target, operator)
    # First switch back to the superuser (the session used to be one that
    # switched to the operator), then read a table only it may read.
    attack = ("SELECT id, set_config('session_authorization', 'postgres', false) AS a,"
              " query_to_xml('SELECT * FROM public.secret', true, true, '')::text AS x"
              " FROM public.src")
    with pytest.raises(psycopg.Error):
        env.call(operator, None, attack, None, target,
                 {"max_workers": 2, "chunks": 3, "min_rows_for_parallel": 0})
    assert chunk_errors(env, last_run(env)) == [
        'permission denied to set session authorization "postgres"']
    assert env.count(target) == 0
    # Nor without the switch: the worker is the operator, who may not read it.
    with pytest.raises(psycopg.Error):
        env.call(operator, None, "SELECT id, NULL::text AS a, query_to_xml('SELECT * FROM"
                 " public.secret', true, true, '')::text AS x FROM public.src", None, target,
                 {"max_workers": 2, "chunks": 3, "min_rows_for_parallel": 0})
    assert chunk_errors(env, last_run(env)) == ["permission denied for table secret"]
    assert env.count(target) == 0


@pytest.mark.parametrize("switch", ["SET SESSION AUTHORIZATION postgres",
                                    "RESET SESSION AUTHORIZATION"])
def test_an_operators_function_cannot_become_the_superuser_through_the_engine(
        env: Env, member: Any, switch: str) -> None:
    operator = member()
    marker = f"/tmp/dms_pwned_{uuid.uuid4().hex}"
    with env.connect() as conn:
        schema = f"op_{uuid.uuid4().hex[:6]}"
        conn.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
            sql.Identifier(schema), sql.Identifier(operator)))
    with env.connect(user=operator) as conn:
        conn.execute(sql.SQL(
            "CREATE FUNCTION {}.evil() RETURNS int LANGUAGE plpgsql AS $f$ BEGIN {};"
            " COPY (SELECT 1) TO PROGRAM {}; RETURN 1; END $f$").format(
            sql.Identifier(schema), sql.SQL(switch),
            sql.Literal(f"touch {marker}")))
        # Called directly, the server refuses it.
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(sql.SQL("SELECT {}.evil()").format(sql.Identifier(schema)))
    target = env.target("id bigint, e int")
    grant_insert(env, target, operator)
    with pytest.raises(psycopg.Error):
        env.call(operator, None, f"SELECT id, {schema}.evil() AS e FROM public.src", None,
                 target, {"max_workers": 2, "chunks": 2, "min_rows_for_parallel": 0})
    error = chunk_errors(env, last_run(env))
    assert error in (['permission denied to set session authorization "postgres"'],
                     ["must be superuser or have privileges of the pg_execute_server_program "
                      "role to COPY to or from an external program (HINT: Anyone can COPY to "
                      "stdout or from stdin. psql's \\copy command also works for anyone.)"]
                     ), error
    assert not os.path.exists(marker)
    assert not env.is_superuser(operator)
    assert env.count(target) == 0


def test_start_workers_hands_out_no_connection(env: Env, member: Any) -> None:
    operator = member()
    target = env.target()
    grant_insert(env, target, operator)
    run_id = env.call(operator, None, WHO, None, target)
    with env.connect(user=operator) as conn, pytest.raises(
            errors.ObjectNotInPrerequisiteState) as err:
        conn.execute("SELECT dms.start_workers(%s, 1)", [run_id])
    assert err.value.diag.message_primary == (
        f"dms: run {run_id} is not coordinated by this session")
    assert not env.is_superuser(operator)


def test_a_start_that_fails_midway_leaves_no_worker_session_open(env: Env, member: Any
                                                                   ) -> None:
    """dms.start_workers opens its sessions one by one; when one cannot log in
    (here: the operator's CONNECTION LIMIT), the ones already open are closed
    before the error goes on -- a coordinator that sees the error never learns
    their names, so nobody else would close them while its backend lives."""
    operator = member()
    target = env.target()
    grant_insert(env, target, operator)
    run_id = env.call(operator, None, WHO, None, target)
    label = f"dms worker run {run_id}"
    # The CALL's sessions (its workers, sessions it booted) end a moment after it.
    wait_for(lambda: env.one("SELECT count(*) FROM pg_stat_activity WHERE usename = %s",
                             [operator]) == 0, timeout=10, what="the CALL's sessions to end")
    # Room for the operator's own session and one worker, not two.
    with env.connect() as admin:
        admin.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT 2").format(
            sql.Identifier(operator)))
    try:
        with env.connect(user=operator) as conn:
            pid = conn.info.backend_pid
            # As if this session coordinated the run (its chunks are all done:
            # a worker that gets it has nothing to do).
            env.one("UPDATE dms.run SET state = 'RUNNING', coordinator_pid = %s"
                    " WHERE run_id = %s RETURNING run_id", [pid, run_id])
            with pytest.raises(psycopg.Error) as err:
                conn.execute("SELECT dms.start_workers(%s, 2)", [run_id])
            assert "too many connections for role" in str(err.value), err.value
            # The first worker's session is closed although this one is still open.
            wait_for(lambda: env.one("SELECT count(*) FROM pg_stat_activity WHERE"
                                     " application_name = %s", [label]) == 0,
                     timeout=10, what="the first worker's session to be closed")
    finally:
        with env.connect() as admin:
            admin.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT -1").format(
                sql.Identifier(operator)))
        env.one("UPDATE dms.run SET state = 'SUCCEEDED', coordinator_pid = NULL"
                " WHERE run_id = %s RETURNING run_id", [run_id])


def test_booted_worker_sessions_hand_out_no_connection(env: Env, member: Any) -> None:
    """dms.boot_workers opens sessions that load the worker's code while a run is
    planned.  They log in as the caller, and nothing but dms's own functions can
    use them: the caller cannot send them SQL, nor give them a run it does not
    coordinate."""
    operator = member()
    target = env.target()
    grant_insert(env, target, operator)
    run_id = env.call(operator, None, WHO, None, target)
    # The CALL booted sessions of its own and closed them; they end once their
    # boot is done, a moment after the CALL returns: counted out first.
    wait_for(lambda: env.one("SELECT count(*) FROM pg_stat_activity"
                             " WHERE application_name = 'dms worker booting'") == 0,
             timeout=10, what="the CALL's booted sessions to end")
    with env.connect(user=operator) as conn:
        row = conn.execute("SELECT dms.boot_workers(1)").fetchone()
        assert row is not None
        names = row[0]
        assert len(names) == 1 and names[0].startswith("dms_boot_")
        booted = conn.execute(
            "SELECT usename::text FROM pg_stat_activity"
            " WHERE application_name = 'dms worker booting'").fetchall()
        assert booted == [(operator,)]  # the caller's own login, not a superuser
        with pytest.raises(errors.InsufficientPrivilege) as err:
            conn.execute("SELECT public.dblink_exec(%s, 'CREATE TABLE public.x (i int)')",
                         [names[0]])
        assert err.value.diag.message_primary == "permission denied for function dblink_exec"
        with pytest.raises(errors.ObjectNotInPrerequisiteState) as not_ours:
            conn.execute("SELECT dms.adopt_workers(%s, %s)", [run_id, names])
        assert not_ours.value.diag.message_primary == (
            f"dms: run {run_id} is not coordinated by this session")
        conn.execute("SELECT dms.stop_workers(%s, true)", [names])
    # A closed session ends once it notices (after its boot, at the latest).
    wait_for(lambda: env.one("SELECT count(*) FROM pg_stat_activity"
                             " WHERE application_name = 'dms worker booting'") == 0,
             timeout=10, what="the booted session to end")
    assert env.one("SELECT to_regclass('public.x')") is None
    assert not env.is_superuser(operator)


def test_a_viewer_boots_no_worker_session(env: Env, member: Any) -> None:
    viewer = member("dms_viewer")
    with env.connect(user=viewer) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute("SELECT dms.boot_workers(2)")
    # Sessions other tests booted may still be ending: the viewer's own are counted.
    assert env.one("SELECT count(*) FROM pg_stat_activity"
                   " WHERE application_name = 'dms worker booting' AND usename = %s",
                   [viewer]) == 0


def test_a_run_takes_its_booted_sessions_and_leaves_none_behind(env: Env, member: Any
                                                                  ) -> None:
    """A 2-worker run's chunks are moved by the sessions booted while it was
    planned; a run planned with one worker (too few rows) closes them."""
    operator = member()
    target, small = env.target(), env.target()
    grant_insert(env, target, operator)
    grant_insert(env, small, operator)
    # Each row takes 1 ms to read, so each chunk ~0.5 s: one worker cannot
    # take all six before the other starts (3,000 quick rows once went to one).
    slow = WHO + " WHERE pg_catalog.pg_sleep(0.001)::text = ''"
    run_id = env.call(operator, None, slow, None, target,
                      {"max_workers": 2, "chunks": 6, "min_rows_for_parallel": 0})
    workers = env.one("SELECT count(DISTINCT worker_pid) FROM dms.chunk WHERE run_id = %s",
                      [run_id])
    assert workers == 2
    assert env.one("SELECT state FROM dms.run WHERE run_id = %s", [run_id]) == "SUCCEEDED"
    assert env.count(target) == ROWS
    # Every row was loaded by a session logged in as the operator, never a superuser.
    assert env.one(sql.SQL("SELECT count(*) FROM public.{} WHERE login = %s AND su = 'off'")
                   .format(sql.Identifier(target)).as_string(None), [operator]) == ROWS
    one = env.call(operator, None, WHO, None, small, {"max_workers": 2})  # below 100,000 rows
    assert env.one("SELECT workers_planned FROM dms.run WHERE run_id = %s", [one]) == 1
    assert env.count(small) == ROWS
    wait_for(lambda: env.one(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name IN"
        " ('dms worker booting', %s, %s)",
        [f"dms worker run {run_id}", f"dms worker run {one}"]) == 0,
        timeout=10, what="the run's sessions to end")


def test_a_session_setting_cannot_redirect_workers(env: Env, member: Any) -> None:
    """dms.worker_conninfo used to say where workers log in; now nothing a
    session sets does: they go where the superuser-owned dms.loopback says."""
    operator = member()
    target = env.target()
    grant_insert(env, target, operator)
    with env.connect(user=operator) as conn:
        conn.execute("SET dms.worker_conninfo = 'host=127.0.0.1 port=1'")
        row = conn.execute(
            "CALL dms.execute_query_parallel(NULL, %s, NULL, 'public', %s, %s::jsonb)",
            [WHO, target, json.dumps({"max_workers": 2, "chunks": 4,
                                      "min_rows_for_parallel": 0})]).fetchone()
    assert row is not None
    assert env.one("SELECT state FROM dms.run WHERE run_id = %s", [row[0]]) == "SUCCEEDED"
    assert env.count(target) == ROWS


def test_only_a_superuser_moves_the_loopback(env: Env, member: Any) -> None:
    admin = member("dms_admin")
    with env.connect(user=admin) as conn:
        with pytest.raises(errors.InsufficientPrivilege) as err:
            conn.execute("SELECT dms.set_loopback('127.0.0.1', 1)")
        assert err.value.diag.message_primary == "permission denied for function set_loopback"
        with pytest.raises(errors.InsufficientPrivilege) as err:
            conn.execute("UPDATE dms.loopback SET port = 1")
        assert err.value.diag.message_primary == "permission denied for table loopback"
    assert env.one("SELECT port FROM dms.loopback") is None


def test_a_loopback_the_server_refuses_says_how_to_allow_it(env: Env, member: Any) -> None:
    """Over TCP the sandbox asks for a password: a worker cannot log in there,
    and the error says why and where the trust setup is documented."""
    operator = member()
    target = env.target()
    grant_insert(env, target, operator)
    port = int(str(psycopg.conninfo.conninfo_to_dict(env.cluster.dsn(env.home))["port"]))
    env.one("SELECT dms.set_loopback('127.0.0.1', %s)", [port])
    try:
        with pytest.raises(psycopg.errors.SqlclientUnableToEstablishSqlconnection) as err:
            env.call(operator, None, WHO, None, target,
                     {"max_workers": 2, "chunks": 4, "min_rows_for_parallel": 0})
    finally:
        env.one("SELECT dms.set_loopback(NULL, NULL)")
    assert err.value.diag.message_primary == (
        f"dms: a worker session cannot log in to this server as {operator}")
    assert "password" in (err.value.diag.message_detail or "")
    assert "docs/roles.md" in (err.value.diag.message_hint or "")
    assert env.count(target) == 0


def test_another_logins_run_is_not_worked_on(env: Env, member: Any) -> None:
    owner, other = member(), member()
    target = env.target()
    grant_insert(env, target, owner)
    run_id = env.call(owner, None, WHO, None, target)
    with env.connect(user=other) as conn, pytest.raises(errors.InsufficientPrivilege) as err:
        conn.execute("CALL dms.work(%s)", [run_id])
    assert err.value.diag.message_primary == (
        f"dms: run {run_id} belongs to {owner}: only its own sessions work on it")


# ---------------------------------------------------- queued and resumed runs

def test_the_dispatcher_runs_a_queued_run_as_whoever_queued_it(env: Env, member: Any) -> None:
    operator = member()
    target = env.target()
    grant_insert(env, target, operator)
    with env.connect(user=operator) as conn:
        run_id = conn.execute(
            "SELECT dms.submit_query_parallel(NULL, %s, NULL, 'public', %s, %s::jsonb)",
            [WHO, target, json.dumps({"max_workers": 2, "chunks": 4,
                                      "min_rows_for_parallel": 0})]).fetchone()[0]  # type: ignore[index]
    with env.connect() as conn:  # the superuser's dispatcher, as pg_cron would run it
        conn.execute("CALL dms.dispatch()")
    assert env.one("SELECT state FROM dms.run WHERE run_id = %s", [run_id]) == "SUCCEEDED"
    with env.connect() as conn:
        seen = conn.execute(sql.SQL("SELECT DISTINCT login, su FROM public.{}").format(
            sql.Identifier(target))).fetchall()
    assert seen == [(operator, "off")]


def test_a_queued_attack_fails_under_a_superusers_dispatcher(env: Env, member: Any) -> None:
    operator = member()
    target = env.target("id bigint, a text")
    grant_insert(env, target, operator)
    attack = ("SELECT id, set_config('session_authorization', 'postgres', false) AS a"
              " FROM public.src")
    with env.connect(user=operator) as conn:
        run_id = conn.execute(
            "SELECT dms.submit_query_parallel(NULL, %s, NULL, 'public', %s, '{}')",
            [attack, target]).fetchone()[0]  # type: ignore[index]
    with env.connect() as conn:
        conn.execute("CALL dms.dispatch()")
    assert env.one("SELECT state FROM dms.run WHERE run_id = %s", [run_id]) in (
        "PARTIAL", "FAILED")  # PARTIAL: the empty chunk of NULL keys "loaded"
    assert chunk_errors(env, run_id) == [
        'permission denied to set session authorization "postgres"']
    assert not env.is_superuser(operator)
    assert env.count(target) == 0


def test_resuming_another_logins_run_runs_it_as_its_owner(env: Env, member: Any) -> None:
    operator = member()
    target = env.target("id bigint PRIMARY KEY, login text, su text, CHECK (id <> 2000)")
    grant_insert(env, target, operator)
    with pytest.raises(psycopg.Error):
        env.call(operator, None, WHO, None, target,
                 {"max_workers": 2, "chunks": 3, "min_rows_for_parallel": 0})
    run_id = last_run(env)
    assert env.one("SELECT state FROM dms.run WHERE run_id = %s", [run_id]) == "PARTIAL"
    with env.connect() as conn:  # the superuser fixes the cause and resumes
        conn.execute(sql.SQL("ALTER TABLE public.{} DROP CONSTRAINT {}").format(
            sql.Identifier(target), sql.Identifier(f"{target}_id_check")))
        conn.execute("CALL dms.resume_run(%s)", [run_id])
    assert env.one("SELECT state FROM dms.run WHERE run_id = %s", [run_id]) == "SUCCEEDED"
    with env.connect() as conn:
        seen = conn.execute(sql.SQL("SELECT login, count(*) FROM public.{} GROUP BY 1").format(
            sql.Identifier(target))).fetchall()
    assert seen == [(operator, ROWS)]


# ------------------------------------------------------- connections and roles

def test_a_connection_is_used_only_by_the_roles_it_is_granted_to(env: Env,
                                                                   member: Any) -> None:
    operator = member()
    conid = env.connection(f"other_{uuid.uuid4().hex[:6]}", env.socket_dsn(env.other))
    target = env.target()
    grant_insert(env, target, operator)
    runs = env.runs()
    with pytest.raises(errors.InsufficientPrivilege) as err:
        env.call(operator, conid, WHO, None, target)
    assert err.value.diag.message_primary == (
        f"dms: permission denied for source connection {conid}"
        f" ({env.one('SELECT connm FROM dms.dms_dbcondtls WHERE conid = %s', [conid])}):"
        f" role {operator} may not use it")
    assert err.value.diag.message_hint == (
        f"an administrator grants it with SELECT dms.grant_connection({conid}, '{operator}')")
    assert env.runs() == runs and env.count(target) == 0

    with env.connect(env.other) as conn:  # the operator's own privileges apply there
        conn.execute(sql.SQL("GRANT SELECT ON public.src TO {}").format(
            sql.Identifier(operator)))
    env.grant_connection(conid, operator)
    run_id = env.call(operator, conid, WHO, None, target)
    assert env.one("SELECT state FROM dms.run WHERE run_id = %s", [run_id]) == "SUCCEEDED"
    with env.connect() as conn:
        assert conn.execute(sql.SQL("SELECT DISTINCT login FROM public.{}").format(
            sql.Identifier(target))).fetchall() == [(operator,)]
    # An admin may grant; an operator may not grant to itself.
    with env.connect(user=operator) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute("SELECT dms.grant_connection(%s, %s)", [conid, operator])


def test_a_connection_back_to_this_server_must_log_in_as_the_caller(env: Env,
                                                                      member: Any) -> None:
    """A row that logs in to this very server as postgres would have let an
    operator write a table it may not, or read one it may not."""
    operator = member()
    name = f"home_pg_{uuid.uuid4().hex[:6]}"
    as_postgres = env.connection(name, env.socket_dsn(env.home, "postgres"))
    env.grant_connection(as_postgres, operator)
    guarded = env.target("id bigint, v text")  # the operator has no INSERT on it
    runs = env.runs()
    # Write 2,000 rows into it through a target connection pointing here.
    with pytest.raises(errors.InsufficientPrivilege) as err:
        env.call(operator, None, "SELECT id, v FROM public.src WHERE id <= 2000", as_postgres,
                 guarded)
    assert err.value.diag.message_primary == (
        f"dms: connection {as_postgres} ({name}) logs in to this server as postgres, not as"
        f" you ({operator}): the engine would run your SQL with its privileges")
    # Read a table it may not read through a source connection pointing here.
    target = env.target("id bigint, s text")
    grant_insert(env, target, operator)
    with pytest.raises(errors.InsufficientPrivilege):
        env.call(operator, as_postgres, "SELECT id, s FROM public.secret", None, target)
    assert env.runs() == runs
    assert env.count(guarded) == 0 and env.count(target) == 0


def test_a_database_the_caller_may_not_connect_to_stays_closed(env: Env, member: Any,
                                                                databases: DatabaseFactory
                                                                ) -> None:
    operator = member()
    closed = databases.create()
    with env.connect() as conn:
        conn.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(
            sql.Identifier(closed)))
    as_postgres = env.connection(f"closed_pg_{uuid.uuid4().hex[:6]}",
                                 env.socket_dsn(closed, "postgres"))
    as_caller = env.connection(f"closed_{uuid.uuid4().hex[:6]}", env.socket_dsn(closed))
    for conid in (as_postgres, as_caller):
        env.grant_connection(conid, operator)
    target = env.target("id bigint, datname text")
    grant_insert(env, target, operator)
    runs = env.runs()
    with pytest.raises(errors.InsufficientPrivilege):
        env.call(operator, as_postgres, "SELECT 1::bigint AS id, current_database() AS datname",
                 None, target)
    with pytest.raises(psycopg.errors.SqlclientUnableToEstablishSqlconnection) as err:
        env.call(operator, as_caller, "SELECT 1::bigint AS id, current_database() AS datname",
                 None, target)
    assert f'permission denied for database "{closed}"' in str(err.value.diag.message_primary)
    assert env.runs() == runs and env.count(target) == 0


def test_a_superuser_login_of_another_server_is_refused_to_non_superusers(
        env: Env, member: Any) -> None:
    operator = member()
    with second_server() as (host, port):
        with psycopg.connect(f"host={host} port={port} dbname=postgres user=postgres",
                             autocommit=True) as conn:
            conn.execute("CREATE TABLE src AS SELECT g::bigint AS id FROM generate_series(1, 10) g")
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(operator)))
            conn.execute(sql.SQL("GRANT SELECT ON src TO {}").format(sql.Identifier(operator)))
        as_postgres = env.connection(f"far_pg_{uuid.uuid4().hex[:6]}",
                                     f"host={host} port={port} dbname=postgres user=postgres")
        as_caller = env.connection(f"far_{uuid.uuid4().hex[:6]}",
                                   f"host={host} port={port} dbname=postgres")
        for conid in (as_postgres, as_caller):
            env.grant_connection(conid, operator)
        target = env.target("id bigint")
        grant_insert(env, target, operator)
        runs = env.runs()
        with pytest.raises(errors.InsufficientPrivilege) as err:
            env.call(operator, as_postgres, "SELECT id FROM src", None, target)
        assert str(err.value.diag.message_primary).endswith(
            f"logs in as postgres, a superuser of its server: the engine would run your SQL"
            f" there as a superuser, and {operator} is not one")
        assert env.runs() == runs and env.count(target) == 0
        # The caller's own login there works; a superuser caller may use either.
        run_id = env.call(operator, as_caller, "SELECT id FROM src", None, target)
        assert env.one("SELECT rows_done FROM dms.run_progress WHERE run_id = %s",
                       [run_id]) == 10
        env.call(None, as_postgres, "SELECT id FROM src", None, target)
        assert env.count(target) == 20


# ------------------------------------------------------------ secrets in CONSTR

SECRET = "Sup3rS3cr3tValue"


@pytest.mark.parametrize(("constr", "key"), [
    (f"postgresql://etl:{SECRET}@db1/sales", "password"),
    (f"postgresql://db1/sales?%70assword={SECRET}", "password"),
    (f"host=db1 dbname=sales sslpassword={SECRET}", "sslpassword"),
    (f"host=db1 dbname=sales password = '{SECRET}'", "password"),
])
def test_a_secret_in_constr_is_refused_without_repeating_it(env: Env, member: Any,
                                                              constr: str, key: str) -> None:
    admin = member("dms_admin")
    marker = f"{SECRET}{uuid.uuid4().hex[:8]}"
    constr = constr.replace(SECRET, marker)
    before = env.one("SELECT count(*) FROM dms.dms_dbcondtls")
    name = f"leak_{uuid.uuid4().hex[:6]}"
    with env.connect(user=admin) as conn:
        with pytest.raises(errors.InvalidParameterValue) as err:
            conn.execute("INSERT INTO dms.dms_dbcondtls (connm, dbtyp, constr)"
                         " VALUES (%s, 'POSTGRESQL', %s)", [name, constr])
        conid = conn.execute("INSERT INTO dms.dms_dbcondtls (connm, dbtyp, constr)"
                             " VALUES (%s, 'POSTGRESQL', 'host=db1') RETURNING conid",
                             [name]).fetchone()[0]  # type: ignore[index]
        with pytest.raises(errors.InvalidParameterValue) as err2:
            conn.execute("UPDATE dms.dms_dbcondtls SET constr = %s WHERE conid = %s",
                         [constr, conid])
    for e in (err.value, err2.value):
        assert e.diag.message_primary == (
            f"dms: CONSTR of connection {name} holds a secret ({key}); DMS tables never store one")
        assert marker not in str(e) and marker not in (e.diag.message_detail or "")
    assert env.one("SELECT count(*) FROM dms.dms_dbcondtls") == before + 1
    assert env.one("SELECT constr FROM dms.dms_dbcondtls WHERE conid = %s", [conid]) == "host=db1"
    if env.cluster.sandbox is not None:
        log = env.cluster.sandbox.logfile.read_text(errors="replace")
        assert f"CONSTR of connection {name} holds a secret" in log  # the error was logged
        assert marker not in log


@pytest.mark.parametrize(("constr", "key"), [
    (f"etl/{SECRET}@db1:1521/sales", "password (user/password@)"),
    (f"tcps://db1/sales?wallet_password={SECRET}", "wallet_password"),
])
def test_a_secret_in_an_oracle_constr_is_refused_by_the_trigger(env: Env, member: Any,
                                                                 constr: str, key: str) -> None:
    # The server's PL/Python reads it with python-oracledb's own parser.
    admin = member("dms_admin")
    marker = f"{SECRET}{uuid.uuid4().hex[:8]}"
    name = f"ora_{uuid.uuid4().hex[:6]}"
    before = env.one("SELECT count(*) FROM dms.dms_dbcondtls")
    with env.connect(user=admin) as conn:
        with pytest.raises(errors.InvalidParameterValue) as err:
            conn.execute("INSERT INTO dms.dms_dbcondtls (connm, dbtyp, constr, usrnm, pwdsrc,"
                         " pwdref) VALUES (%s, 'ORACLE', %s, 'etl', 'ENV', 'ERP_PW')",
                         [name, constr.replace(SECRET, marker)])
        conn.execute("INSERT INTO dms.dms_dbcondtls (connm, dbtyp, constr, usrnm, pwdsrc, pwdref)"
                     " VALUES (%s, 'ORACLE', 'db1:1521/sales', 'etl', 'ENV', 'ERP_PW')", [name])
    assert err.value.diag.message_primary == (
        f"dms: CONSTR of connection {name} holds a secret ({key}); DMS tables never store one")
    assert marker not in str(err.value) and marker not in (err.value.diag.message_detail or "")
    assert env.one("SELECT count(*) FROM dms.dms_dbcondtls") == before + 1


def test_constr_libpq_cannot_read_is_refused_without_repeating_it(env: Env,
                                                                  member: Any) -> None:
    admin = member("dms_admin")
    marker = f"{SECRET}{uuid.uuid4().hex[:8]}"
    with env.connect(user=admin) as conn, pytest.raises(errors.InvalidParameterValue) as err:
        conn.execute("INSERT INTO dms.dms_dbcondtls (connm, dbtyp, constr)"
                     " VALUES ('bad', 'POSTGRESQL', %s)", [f"host=db1 {marker}"])
    assert err.value.diag.message_primary == (
        "dms: CONSTR of connection bad is not a connection string libpq can read")
    assert marker not in str(err.value)


# ------------------------------------------------------------------ mapper jobs

def test_mapper_jobs_run_as_whoever_asked_and_never_as_a_superuser_over_others_sql(
        env: Env, member: Any) -> None:
    """An administrator writes a job's SQL; a superuser's session does not run it
    (it would run as a superuser), an operator's does, and a request the
    operator queued is carried out as the operator by a superuser's dispatcher."""
    from tests.integration.mapper_env import MapperEnv, define_fct

    admin, operator = member("dms_admin"), member()
    mapper = MapperEnv(env.cluster, env.home)
    with env.connect() as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS src; CREATE SCHEMA IF NOT EXISTS dw")
        conn.execute("CREATE TABLE src.orders_sec AS SELECT g::bigint AS id, g::numeric AS"
                     " amount, NULL::text AS who FROM generate_series(1, 500) g")
        for schema in ("src", "dw"):
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}, {}").format(
                sql.Identifier(schema), sql.Identifier(admin), sql.Identifier(operator)))
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA dw TO {}").format(sql.Identifier(admin)))
        conn.execute(sql.SQL("GRANT SELECT ON src.orders_sec TO {}, {}").format(
            sql.Identifier(admin), sql.Identifier(operator)))
    define_fct(mapper, "FCT_SEC", "SELECT id, amount FROM src.orders_sec", user=admin)
    with env.connect(user=admin) as conn:  # the admin owns the target; the operator loads it
        conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE ON dw.fct_sec TO {}").format(
            sql.Identifier(operator)))
        conn.execute(sql.SQL("GRANT USAGE ON SEQUENCE dw.fct_sec_skey_seq TO {}").format(
            sql.Identifier(operator)))
    logged = env.one("SELECT count(*) FROM dms.dms_prclog")
    for call in ("CALL pkgdwjob.run_job('FCT_SEC')",
                 "SELECT pkgdwprc.schedule_job_immediate('FCT_SEC')"):
        with env.connect() as conn, pytest.raises(errors.InsufficientPrivilege) as err:
            conn.execute(call)
        assert err.value.diag.message_primary == (
            f"dms: job FCT_SEC runs SQL written by {admin}, who is not a superuser: a"
            " superuser's session does not run it")
    assert env.one("SELECT count(*) FROM dms.dms_prclog") == logged
    assert env.one("SELECT count(*) FROM dms.dms_prcreq WHERE mapref = 'FCT_SEC'") == 0

    with env.connect(user=operator) as conn:
        reqid = conn.execute("SELECT pkgdwprc.schedule_job_immediate('FCT_SEC')").fetchone()
    assert reqid is not None
    with env.connect() as conn:  # the superuser's dispatcher, as pg_cron runs it
        conn.execute("CALL pkgdwprc.dispatch()")
    with env.connect() as conn:
        request = conn.execute("SELECT r.status, p.status, p.crtdby FROM dms.dms_prcreq r"
                               " JOIN dms.dms_prclog p USING (prcid) WHERE r.reqid = %s",
                               [reqid[0]]).fetchone()
        assert request == ("DONE", "PC", operator)
        assert conn.execute("SELECT DISTINCT created_by FROM dms.run WHERE prcid = ("
                            "SELECT prcid FROM dms.dms_prcreq WHERE reqid = %s)",
                            [reqid[0]]).fetchall() == [(operator,)]
        assert conn.execute("SELECT count(*) FROM dw.fct_sec").fetchone() == (500,)


def test_check_install_says_whether_workers_log_in_and_finds_secrets_stored_before(
        env: Env, member: Any) -> None:
    operator = member()
    marker = f"{SECRET}{uuid.uuid4().hex[:8]}"

    def checks() -> dict[str, tuple[bool, str]]:
        with env.connect(user=operator) as conn:
            return {r[0]: (r[1], r[2]) for r in conn.execute("SELECT * FROM dms.check_install()")}

    assert checks()[f"worker sessions log in as {operator}"] == (
        True, "over the loopback route, without a password")
    assert checks()["no secret in DMS_DBCONDTLS.CONSTR"] == (True, "none")
    # A row an earlier version stored (it only had a CHECK that URIs slipped
    # through): made here by a superuser with the trigger switched off.
    with env.connect() as conn:
        conn.execute("ALTER TABLE dms.dms_dbcondtls DISABLE TRIGGER dms_dbcondtls_no_secret")
        try:
            conid = conn.execute(
                "INSERT INTO dms.dms_dbcondtls (connm, dbtyp, constr) VALUES (%s, 'POSTGRESQL',"
                " %s) RETURNING conid",
                [f"old_{uuid.uuid4().hex[:6]}", f"postgresql://u:{marker}@db1/x"]).fetchone()
        finally:
            conn.execute("ALTER TABLE dms.dms_dbcondtls ENABLE TRIGGER dms_dbcondtls_no_secret")
    assert conid is not None
    try:
        ok, detail = checks()["no secret in DMS_DBCONDTLS.CONSTR"]
        assert (ok, detail) == (False, f"connections {conid[0]} hold a secret (or a string libpq "
                                       "cannot read) stored before this version: remove it and "
                                       "set PWDSRC")
    finally:
        env.one("DELETE FROM dms.dms_dbcondtls WHERE conid = %s RETURNING 1", [conid[0]])
