"""Bad input to `dms install` and to the engine's entry points: each refused with its
message, SQLSTATE and hint, and nothing written."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dms_pkg import __version__, execute_query_parallel
from dms_pkg.dsn import redact
from dms_pkg.errors import DmsError
from dms_pkg.install.installer import install
from dms_pkg.sample_data import checksum
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


# ------------------------------------------------- bad source queries and p_params
#
# Each refusal is checked through the entry point a user calls, as an operator
# login, and with nothing written: no dms.run or dms.chunk row, no target row,
# and no side effect of the refused SQL (the sequence is not advanced).

ENGINE_SETUP = """
CREATE TABLE src (id integer PRIMARY KEY, v integer NOT NULL);
INSERT INTO src SELECT g, g * 2 FROM generate_series(1, 1000) g;
ANALYZE src;
CREATE TABLE dst (id integer, v integer);
CREATE SEQUENCE seq;
CREATE SCHEMA locked;
CREATE TABLE locked.dst (id integer, v integer);
"""
TWO_STATEMENTS = "SELECT id, v FROM src; SELECT nextval('seq')"
TWO_STATEMENTS_MESSAGE = "source SQL must be a single query, found 2 statements"


@pytest.fixture(scope="module")
def engine_db(cluster: Cluster, databases: DatabaseFactory) -> str:
    name = databases.create(installed=True)
    with psycopg.connect(cluster.dsn(name), autocommit=True) as conn:
        conn.execute(ENGINE_SETUP.encode())
    return name


@pytest.fixture
def operator(cluster: Cluster, engine_db: str, login_role: Any) -> Iterator[str]:
    """A login that is only a member of dms_operator, with the table privileges a
    load from src into dst needs."""
    name = login_role("dms_operator")
    with psycopg.connect(cluster.dsn(engine_db), autocommit=True) as conn:
        conn.execute(f'GRANT SELECT ON src TO "{name}"')
        conn.execute(f'GRANT SELECT, INSERT, TRUNCATE ON dst TO "{name}"')
        conn.execute(f'GRANT USAGE ON SEQUENCE seq TO "{name}"')
    yield name
    with psycopg.connect(cluster.dsn(engine_db), autocommit=True) as conn:
        conn.execute(f'REVOKE ALL ON src, dst, seq FROM "{name}"')


def _written(cluster: Cluster, db: str) -> tuple[Any, ...]:
    """Everything a refused call must leave as it was."""
    with psycopg.connect(cluster.dsn(db)) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM dms.run), (SELECT count(*) FROM dms.chunk),"
            " (SELECT count(*) FROM dst), (SELECT count(*) FROM locked.dst),"
            " (SELECT last_value FROM seq), (SELECT is_called FROM seq)"
        ).fetchone()
    assert row is not None
    return tuple(row)


def _call(dsn: str, source_sql: str, params: str = "{}", schema: str = "public",
          table: str = "dst") -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("CALL dms.execute_query_parallel(NULL, %s, NULL, %s, %s, %s)",
                           [source_sql, schema, table, params]).fetchone()
    assert row is not None
    return int(row[0])


def _refused_in_sql(dsn: str, entry: str, source_sql: str, params: str = "{}") -> psycopg.Error:
    statements = {
        "execute_query_parallel": ("CALL dms.execute_query_parallel(NULL, %s, NULL, 'public',"
                                   " 'dst', %s)", [source_sql, params]),
        "submit_query_parallel": ("SELECT dms.submit_query_parallel(NULL, %s, NULL, 'public',"
                                  " 'dst', %s)", [source_sql, params]),
        "plan_chunks": ("SELECT * FROM dms.plan_chunks(%s)", [source_sql]),
    }
    statement, args = statements[entry]
    with psycopg.connect(dsn, autocommit=True) as conn, pytest.raises(psycopg.Error) as err:
        conn.execute(statement, args)
    return err.value


def _dms(*args: str) -> subprocess.CompletedProcess[str]:
    dms = Path(sys.executable).parent / "dms"
    return subprocess.run([str(dms), *args], capture_output=True, text=True, check=False,
                          timeout=300)


SQL_ENTRIES = ["execute_query_parallel", "submit_query_parallel", "plan_chunks"]


@pytest.mark.parametrize("entry", SQL_ENTRIES)
def test_a_second_statement_never_runs_and_is_refused_with_42601(
    cluster: Cluster, engine_db: str, operator: str, entry: str
) -> None:
    before = _written(cluster, engine_db)
    error = _refused_in_sql(cluster.dsn(engine_db, operator), entry, TWO_STATEMENTS)
    assert error.diag.sqlstate == "42601"
    assert error.diag.message_primary == f"dms: {TWO_STATEMENTS_MESSAGE}"
    assert error.diag.message_hint == (
        "remove the extra statements or the trailing text after the query")
    assert _written(cluster, engine_db) == before  # the sequence did not move either


def test_a_second_statement_is_refused_by_the_python_api_and_the_cli(
    cluster: Cluster, engine_db: str, operator: str
) -> None:
    dsn = cluster.dsn(engine_db, operator)
    before = _written(cluster, engine_db)
    with pytest.raises(DmsError) as err:
        execute_query_parallel(dsn, TWO_STATEMENTS, target_conn=dsn, target_schema="public",
                               target_table="dst")
    assert (err.value.sqlstate, err.value.message) == ("42601", TWO_STATEMENTS_MESSAGE)
    for command in (["plan", "--dsn", dsn, "--sql", TWO_STATEMENTS],
                    ["run", "--dsn", dsn, "--sql", TWO_STATEMENTS, "--table", "dst"]):
        done = _dms(*command)
        assert done.returncode == 1, done.stdout
        assert done.stderr.splitlines()[0] == f"dms: error: {TWO_STATEMENTS_MESSAGE}"
        assert "Traceback" not in done.stderr
    assert _written(cluster, engine_db) == before


@pytest.mark.parametrize("source_sql", [
    "SELECT id, v FROM src;",
    "SELECT id, v FROM src ;\n",
    "SELECT id, v FROM src -- every row",
])
def test_a_trailing_semicolon_or_comment_is_accepted_by_the_run(
    cluster: Cluster, engine_db: str, operator: str, source_sql: str
) -> None:
    dsn = cluster.dsn(engine_db, operator)
    with psycopg.connect(cluster.dsn(engine_db), autocommit=True) as conn:
        conn.execute("TRUNCATE dst")
    run_id = _call(dsn, source_sql)
    with psycopg.connect(cluster.dsn(engine_db)) as conn:
        state = conn.execute("SELECT state FROM dms.run WHERE run_id = %s", [run_id]).fetchone()
        assert state == ("SUCCEEDED",)
        assert checksum(conn, "public", "dst") == checksum(conn, "public", "src")
    # and by the Python API, which probes the query the same way
    with psycopg.connect(cluster.dsn(engine_db), autocommit=True) as conn:
        conn.execute("TRUNCATE dst")
    result = execute_query_parallel(dsn, source_sql, target_conn=dsn, target_schema="public",
                                    target_table="dst")
    assert result.total_rows_successful == 1000
    with psycopg.connect(cluster.dsn(engine_db)) as conn:
        assert checksum(conn, "public", "dst") == checksum(conn, "public", "src")


@pytest.mark.parametrize("entry", SQL_ENTRIES)
def test_a_bind_parameter_is_refused_with_the_documented_message(
    cluster: Cluster, engine_db: str, operator: str, entry: str
) -> None:
    before = _written(cluster, engine_db)
    error = _refused_in_sql(cluster.dsn(engine_db, operator), entry,
                            "SELECT id, v FROM src WHERE id = $1")
    assert error.diag.sqlstate == "0A000"
    assert error.diag.message_primary == "dms: source SQL contains the bind parameter $1"
    assert error.diag.message_hint == (
        "write the value into the query; chunk queries bind only their own bounds")
    assert _written(cluster, engine_db) == before


@pytest.mark.parametrize(("source_sql", "message"), [
    ("WITH gone AS (DELETE FROM dst RETURNING *) SELECT id, v FROM src",
     "source SQL must only read, but it runs DELETE in its WITH clause"),
    ("SELECT id, v INTO copied FROM src",
     "source SQL must only read, but it creates a table (SELECT ... INTO)"),
])
@pytest.mark.parametrize("entry", SQL_ENTRIES)
def test_a_query_that_writes_is_refused_before_it_runs(
    cluster: Cluster, engine_db: str, operator: str, entry: str, source_sql: str, message: str
) -> None:
    with psycopg.connect(cluster.dsn(engine_db), autocommit=True) as conn:
        conn.execute("TRUNCATE dst")
        conn.execute("INSERT INTO dst VALUES (1, 1)")
    before = _written(cluster, engine_db)
    error = _refused_in_sql(cluster.dsn(engine_db, operator), entry, source_sql)
    assert error.diag.sqlstate == "0A000"
    assert error.diag.message_primary == f"dms: {message}"
    assert _written(cluster, engine_db) == before  # the DELETE did not run


@pytest.mark.parametrize(("params", "message", "hint"), [
    ({"max_workers": "4"},
     'max_workers must be a number (from 1 to 64), got "4", a string (from p_params)',
     'write the number without quotes, for example {"max_workers": 4}'),
    ({"enable_parallel": "false"},
     'enable_parallel must be a boolean, got "false", a string (from p_params)',
     "write enable_parallel as true or false, without quotes"),
    ({"write_mode": 1},
     "write_mode must be a string (one of append, truncate), got 1, a number (from p_params)",
     "write write_mode as a string, in double quotes"),
    ({"merge": '{"kind": "append"}'},
     'merge must be an object, got "{\\"kind\\": \\"append\\"}", a string (from p_params)',
     "write merge as a JSON object, not as a string holding one"),
])
def test_p_params_values_must_have_the_settings_json_type(
    cluster: Cluster, engine_db: str, operator: str, params: dict[str, Any], message: str,
    hint: str
) -> None:
    before = _written(cluster, engine_db)
    error = _refused_in_sql(cluster.dsn(engine_db, operator), "execute_query_parallel",
                            "SELECT id, v FROM src", json.dumps(params))
    assert error.diag.sqlstate == "22023"
    assert error.diag.message_primary == f"dms: {message}"
    assert error.diag.message_hint == hint
    assert _written(cluster, engine_db) == before


def test_refused_calls_leave_no_worker_session_open(
    cluster: Cluster, engine_db: str, operator: str
) -> None:
    # The procedure opens its workers' sessions before it imports the engine
    # (booting.head_start); a call refused after that closes them, whether
    # planning refuses it or its p_params are not an object at all.
    with psycopg.connect(cluster.dsn(engine_db, operator), autocommit=True) as conn:
        for _ in range(2):
            with pytest.raises(psycopg.Error) as planned:
                conn.execute("CALL dms.execute_query_parallel(NULL, %s, NULL, 'public', 'dst',"
                             " %s)", [TWO_STATEMENTS, '{"max_workers": 3}'])
            assert planned.value.diag.message_primary == f"dms: {TWO_STATEMENTS_MESSAGE}"
            with pytest.raises(psycopg.Error) as shape:  # the default 4 workers booted
                conn.execute("CALL dms.execute_query_parallel(NULL, 'SELECT id, v FROM src',"
                             " NULL, 'public', 'dst', '[1]')")
            assert shape.value.diag.message_primary == (
                "dms: p_params must be a JSON object, got list")

        def booting() -> int:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s"
                               " AND application_name = 'dms worker booting'",
                               [operator]).fetchone()
            return int(row[0]) if row else -1

        deadline = time.monotonic() + 10  # closed backends exit apace
        while booting() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert booting() == 0


def test_python_arguments_must_have_the_settings_type_but_dms_params_text_is_parsed(
    cluster: Cluster, engine_db: str, operator: str
) -> None:
    dsn = cluster.dsn(engine_db, operator)
    with pytest.raises(DmsError) as err:
        execute_query_parallel(dsn, "SELECT id, v FROM src",
                               max_workers="4")  # type: ignore[arg-type]
    assert err.value.message == (
        'max_workers must be a number (from 1 to 64), got "4", a string (from arguments)')
    # DMS_PARAMS values are text by nature: "3" is three workers.
    with psycopg.connect(cluster.dsn(engine_db), autocommit=True) as conn:
        conn.execute("TRUNCATE dst")
        conn.execute("INSERT INTO dms.dms_params (prtyp, prcd, prval)"
                     " VALUES ('PARALLEL', 'MAPPER_MAX_WORKERS', '3')")
    try:
        run_id = _call(dsn, "SELECT id, v FROM src")
    finally:
        with psycopg.connect(cluster.dsn(engine_db), autocommit=True) as conn:
            conn.execute("DELETE FROM dms.dms_params WHERE prtyp = 'PARALLEL'")
    with psycopg.connect(cluster.dsn(engine_db)) as conn:
        row = conn.execute("SELECT config -> 'max_workers' FROM dms.run WHERE run_id = %s",
                           [run_id]).fetchone()
    assert row == ({"value": 3, "from": "DMS_PARAMS"},)


@pytest.mark.parametrize(("column", "hint"), [
    ("nosuchcol", "name one of the query's output columns, or give the column that name "
                  "with AS"),
    ("ID", 'did you mean "id"? Column names are case-sensitive'),
])
def test_an_unknown_checkpoint_column_is_refused_before_the_run_is_recorded(
    cluster: Cluster, engine_db: str, operator: str, column: str, hint: str
) -> None:
    before = _written(cluster, engine_db)
    error = _refused_in_sql(cluster.dsn(engine_db, operator), "execute_query_parallel",
                            "SELECT id, v FROM src", json.dumps({"checkpoint_column": column}))
    assert error.diag.sqlstate == "42703"
    assert error.diag.message_primary == (
        f'dms: checkpoint_column "{column}" is not a column of the source query')
    assert error.diag.message_detail == "the source query returns: id, v"
    assert error.diag.message_hint == hint
    assert _written(cluster, engine_db) == before


def test_a_database_error_keeps_its_sqlstate_and_words_without_python_names(
    cluster: Cluster, engine_db: str, operator: str
) -> None:
    """The operator may not use schema locked: the server's own refusal comes back."""
    before = _written(cluster, engine_db)
    with pytest.raises(psycopg.Error) as err:
        _call(cluster.dsn(engine_db, operator), "SELECT id, v FROM src", schema="locked")
    assert err.value.diag.sqlstate == "42501"
    assert err.value.diag.message_primary == "dms: permission denied for schema locked"
    assert _written(cluster, engine_db) == before


def test_dms_run_prints_a_refusal_as_an_error_with_its_hint(
    cluster: Cluster, engine_db: str, operator: str
) -> None:
    dsn = cluster.dsn(engine_db, operator)
    before = _written(cluster, engine_db)
    done = _dms("run", "--dsn", dsn, "--sql", "SELECT id, v FROM src", "--table", "nosuch")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        'dms: error: target table "public"."nosuch" does not exist',
        """HINT: create it first, or pass p_params => '{"create_target": true}' to create it """
        "from the source query's column types",
    ]
    assert done.stdout == ""
    assert _written(cluster, engine_db) == before
    # a target another run is loading (here: queued)
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT dms.submit_query_parallel(NULL, 'SELECT id, v FROM src',"
                           " NULL, 'public', 'dst')").fetchone()
    assert row is not None
    queued = int(row[0])
    try:
        done = _dms("run", "--dsn", dsn, "--sql", "SELECT id, v FROM src", "--table", "dst")
        assert done.returncode == 1
        lines = done.stderr.splitlines()
        assert lines[0] == (f'dms: error: target "public"."dst" is being loaded by run {queued}'
                            f" (QUEUED, started by {operator})")
        assert lines[1] == ("DETAIL: two runs loading one table at once could interleave or "
                            "undo each other")
        assert lines[2].startswith(f"HINT: wait for run {queued}")
        assert "Traceback" not in done.stderr
    finally:
        with psycopg.connect(cluster.dsn(engine_db), autocommit=True) as conn:
            conn.execute("DELETE FROM dms.run WHERE run_id = %s", [queued])
