"""The source query before anything runs it, and database errors as users read them."""

from __future__ import annotations

import psycopg
import pytest

from dms_pkg.db.faults import Fault, describe, fault_of, from_server_text
from dms_pkg.db.plpy_db import as_dms_error
from dms_pkg.engine import source_query as sq
from dms_pkg.errors import DmsError


@pytest.mark.parametrize(("text", "statement"), [
    ("SELECT id, v FROM src;", "SELECT id, v FROM src"),
    ("  SELECT id, v FROM src ;  \n", "SELECT id, v FROM src"),
    # a line comment would swallow the ")" of a probe wrapping the query
    ("SELECT id, v FROM src -- every row", "SELECT id, v FROM src /* every row */"),
    ("SELECT id, v FROM src /* a comment */;", "SELECT id, v FROM src /* a comment */"),
])
def test_one_trailing_semicolon_or_comment_leaves_one_runnable_statement(
    text: str, statement: str
) -> None:
    assert sq.runnable(text) == statement


@pytest.mark.parametrize(("text", "sqlstate", "message"), [
    ("SELECT 1; SELECT nextval('s')", "42601",
     "source SQL must be a single query, found 2 statements"),
    ("SELECT 1 FROM t WHERE id = $1", "0A000", "source SQL contains the bind parameter $1"),
    ("SELECT 1 FROM t WHERE id = $12", "0A000", "source SQL contains the bind parameter $12"),
    ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "0A000",
     "source SQL must only read, but it runs DELETE in its WITH clause"),
    ("WITH u AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM u", "0A000",
     "source SQL must only read, but it runs UPDATE in its WITH clause"),
    ("WITH i AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM i", "0A000",
     "source SQL must only read, but it runs INSERT in its WITH clause"),
    ("SELECT * INTO TEMP copied FROM t", "0A000",
     "source SQL must only read, but it creates a table (SELECT ... INTO)"),
    ("INSERT INTO t SELECT 1", "0A000", "source SQL must be a query (SELECT), not INSERT"),
])
def test_what_must_not_run_is_refused_before_it_reaches_a_server(
    text: str, sqlstate: str, message: str
) -> None:
    with pytest.raises(DmsError) as err:
        sq.runnable(text)
    assert (err.value.sqlstate, err.value.message) == (sqlstate, message)


def test_the_rendering_keeps_strings_and_quoted_names_intact() -> None:
    text = "SELECT 'a;b' AS \"x;y\", $$c;d$$ AS z FROM t WHERE s LIKE 'e%' -- ; SELECT 2"
    assert sq.runnable(text) == (
        "SELECT 'a;b' AS \"x;y\", 'c;d' AS z FROM t WHERE s LIKE 'e%' /* ; SELECT 2 */")


def test_functions_and_tables_the_query_uses() -> None:
    tree = sq.parsed(
        "WITH c AS (SELECT * FROM public.orders) SELECT nextval('s'), \"My\".\"Fn\"(1, 2),"
        " upper(x), s.f() FROM c JOIN \"Sales\".\"Items\" i ON true, LATERAL tf(3) AS z")
    assert sorted(sq._functions(tree)) == [
        ("", "nextval", 1), ("", "tf", 1), ("My", "Fn", 2), ("s", "f", 0)]
    assert sorted(sq.read_tables(tree)) == ['"Sales"."Items"', "public.orders"]


def test_side_effect_names() -> None:
    assert all(sq._side_effect_name(n) for n in (
        "nextval", "setval", "set_config", "pg_advisory_xact_lock", "pg_try_advisory_lock",
        "lo_import", "dblink_exec", "pg_notify"))
    assert not any(sq._side_effect_name(n) for n in ("random", "now", "pg_sleep", "upper"))
    assert sq.side_effect_note([]) is None


def test_a_remote_error_text_loses_its_traceback_and_keeps_detail_and_hint() -> None:
    text = (
        "ERROR:  dms: snapshot gone: invalid snapshot identifier\n"
        "DETAIL:  the coordinator ended\n"
        "HINT:  resume the run\n"
        "CONTEXT:  Traceback (most recent call last):\n"
        '  PL/Python function "work", line 3, in <module>\n'
        "    with dms_errors(plpy):\n"
        'PL/Python procedure "work"\n'
    )
    fault = from_server_text(text)
    assert fault == Fault(None, "dms: snapshot gone: invalid snapshot identifier",
                          "the coordinator ended", "resume the run")
    assert fault.one_line() == ("dms: snapshot gone: invalid snapshot identifier"
                                " (DETAIL: the coordinator ended) (HINT: resume the run)")
    assert from_server_text("could not connect: no route").message == (
        "could not connect: no route")


class FakeSPIError(Exception):
    """Shaped like plpy.SPIError, which cannot be raised outside a backend (no server
    here); the integration tests meet the real one."""

    sqlstate = "42501"
    spidata = (0, "the role has no USAGE", "GRANT USAGE ON SCHEMA s TO r", None, 0)


def test_database_errors_keep_their_words_and_bugs_are_called_bugs() -> None:
    spi = fault_of(FakeSPIError("permission denied for schema s"))
    assert spi == Fault("42501", "permission denied for schema s", "the role has no USAGE",
                        "GRANT USAGE ON SCHEMA s TO r")
    error = as_dms_error(FakeSPIError("permission denied for schema s"))
    assert (error.sqlstate, error.message, error.detail, error.hint) == (
        "42501", "permission denied for schema s", "the role has no USAGE",
        "GRANT USAGE ON SCHEMA s TO r")
    bug = as_dms_error(TypeError("'int' object is not subscriptable"))
    assert (bug.sqlstate, bug.message) == (
        "XX000", "internal error: TypeError: 'int' object is not subscriptable")
    assert describe(psycopg.errors.UndefinedColumn("column x does not exist\nLINE 1: ...")) \
        == "[42703] column x does not exist"
    assert describe(DmsError("no such run", hint="list them")) == "no such run (HINT: list them)"
