"""What a DBMS_PARALLEL_EXECUTE chunk runs, rendered without a server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dms_pkg.db.faults import unpack_sqlstate
from dms_pkg.errors import DmsError
from dms_pkg.jobs.parallel_execute import errors
from dms_pkg.jobs.parallel_execute.statement import prepare

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(("given", "runs"), [
    ("UPDATE t SET a = a + 1 WHERE id BETWEEN :start_id AND :end_id",
     "UPDATE t SET a = a + 1 WHERE id BETWEEN $1 AND $2"),
    # a placeholder's name is case-insensitive; a ';' at the end is dropped
    ("UPDATE t SET a = 1 WHERE id >= :START_ID AND id <= :End_Id;",
     "UPDATE t SET a = 1 WHERE id >= $1 AND id <= $2"),
    # text that only looks like a placeholder, and :: casts, stay as they are
    ("UPDATE t SET a = ':start_id'::text, b = c::int WHERE id BETWEEN :start_id AND :end_id",
     "UPDATE t SET a = ':start_id'::text, b = c::int WHERE id BETWEEN $1 AND $2"),
    ('UPDATE t SET "x:start_id" = 1 WHERE id BETWEEN :start_id AND :end_id',
     'UPDATE t SET "x:start_id" = 1 WHERE id BETWEEN $1 AND $2'),
    ("CALL process_range(:start_id, :end_id)", "CALL process_range($1, $2)"),
    ("INSERT INTO log SELECT * FROM t WHERE id BETWEEN :start_id AND :end_id",
     "INSERT INTO log SELECT * FROM t WHERE id BETWEEN $1 AND $2"),
])
def test_number_statements_get_numbered_binds_and_are_otherwise_untouched(
        given: str, runs: str) -> None:
    statement = prepare(given, "NUMBER_RANGE")
    assert (statement.mode, statement.sql) == ("statement", runs)


@pytest.mark.parametrize(("given", "runs"), [
    ("UPDATE emp SET sal = sal * 2 WHERE rowid BETWEEN :start_id AND :end_id",
     "UPDATE emp SET sal = sal * 2 WHERE (ctid BETWEEN $1 AND $2 AND PG_CATALOG.AGE(xmin) > $3)"),
    # Oracle's alias on a SET target is dropped; the alias qualifies ctid and xmin
    ("update emp e set e.sal = e.sal * 2 where e.ROWID between :start_id and :end_id",
     "UPDATE emp AS e SET sal = e.sal * 2 WHERE (e.ctid BETWEEN $1 AND $2 AND "
     "PG_CATALOG.AGE(e.xmin) > $3)"),
    ("DELETE FROM t WHERE ctid >= :start_id AND ctid <= :end_id",
     "DELETE FROM t WHERE (ctid >= $1 AND PG_CATALOG.AGE(xmin) > $3) AND "
     "(ctid <= $2 AND PG_CATALOG.AGE(xmin) > $3)"),
])
def test_rowid_statements_leave_out_row_versions_the_task_wrote(given: str, runs: str) -> None:
    statement = prepare(given, "ROWID_RANGE")
    assert (statement.mode, statement.sql) == ("statement", runs)


def test_a_block_runs_as_do_with_the_range_written_in() -> None:
    block = prepare("BEGIN\n  PERFORM f(:start_id, :end_id);\n  RAISE NOTICE ':start_id';\nEND;",
                    "NUMBER_RANGE")
    assert block.mode == "block"
    assert block.render_block(101, 200) == (
        "DO $dms_pe$\nBEGIN\n  PERFORM f((101), (200));\n  RAISE NOTICE ':start_id';\nEND;\n"
        "$dms_pe$")
    # a body that holds the dollar tag gets another one
    tagged = prepare("DECLARE s text := $dms_pe$x$dms_pe$; BEGIN PERFORM :start_id + :end_id;"
                     " END;", "NUMBER_RANGE")
    assert tagged.sql.startswith("DO $dms_pe_$\n") and tagged.sql.endswith("\n$dms_pe_$")
    with pytest.raises(ValueError):
        block.render_block("1); DROP TABLE t; --", 2)  # only numbers are written in


@pytest.mark.parametrize(("given", "kind", "sqlstate", "message"), [
    ("", "NUMBER_RANGE", "42601", "sql_stmt is empty"),
    ("UPDATE t SET a = 1 WHERE id > :start_id", "NUMBER_RANGE", "42P02",
     "sql_stmt does not use :end_id: every chunk would run on the whole table"),
    ("UPDATE t SET a = 1", "NUMBER_RANGE", "42P02",
     "sql_stmt does not use :start_id: every chunk would run on the whole table"),
    ("UPDATE t SET a = :v WHERE id BETWEEN :start_id AND :end_id", "NUMBER_RANGE", "42P02",
     "sql_stmt uses the placeholder :v; a chunk binds only :start_id and :end_id"),
    ("UPDATE t SET a = 1 WHERE id BETWEEN :start_id AND :end_id", "ROWID_RANGE", "42601",
     "sql_stmt of a ROWID_RANGE task does not compare ROWID (or ctid) with :start_id and "
     ":end_id"),
    ("BEGIN UPDATE t SET a = 1 WHERE rowid BETWEEN :start_id AND :end_id; END;", "ROWID_RANGE",
     "0A000", "a ROWID_RANGE task runs one SQL statement per chunk, not a PL/pgSQL block"),
    ("UPDATE t SET a = 'x WHERE rowid BETWEEN :start_id AND :end_id", "NUMBER_RANGE", "42601",
     None),
])
def test_bad_statements_are_refused(given: str, kind: str, sqlstate: str,
                                    message: str | None) -> None:
    with pytest.raises(DmsError) as err:
        prepare(given, kind)
    assert err.value.sqlstate == sqlstate
    if message is not None:
        assert err.value.message == message
    assert err.value.hint


def test_oracle_exceptions_match_the_sql_table() -> None:
    """errors.py and dms._pe_error raise the same SQLSTATE for each name."""
    text = (ROOT / "sql/api/080_parallel_execute_state.sql").read_text()
    in_sql = dict(re.findall(r"WHEN '([A-Z_]+)' THEN (\d{5})", text))
    assert {e.name: str(abs(e.code)) for e in errors.ALL} == in_sql
    assert [e.sqlstate for e in errors.ALL] == [
        "PE490", "PE491", "PE492", "PE493", "PE494", "PE495", "PE497", "PE498", "PE499"]
    assert errors.TASK_NOT_FOUND.error("task x of y does not exist").message == (
        "ORA-29498: TASK_NOT_FOUND: task x of y does not exist")


def test_a_packed_sqlstate_is_read_back() -> None:
    def pack(code: str) -> int:
        value = 0
        for i, char in enumerate(code):
            value |= (ord(char) - ord("0")) << (6 * i)
        return value

    for code in ("PE498", "22012", "42P02", "XX000"):
        assert unpack_sqlstate(pack(code)) == code
