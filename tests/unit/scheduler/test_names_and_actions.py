"""Job names as Oracle reads them, and the statement each job type runs."""

from __future__ import annotations

import pytest

from dms_pkg.errors import DmsError
from dms_pkg.scheduler import actions
from dms_pkg.scheduler.names import JobName, job_name, job_names, procedure_name


def test_job_names_fold_to_upper_case_unless_quoted() -> None:
    assert job_name(" nightly_load ", "alice", "run") == JobName("alice", "NIGHTLY_LOAD")
    assert job_name('"Nightly Load"', "alice", "run") == JobName("alice", "Nightly Load")
    assert job_name("ALICE.nightly", "alice", "run") == JobName("alice", "NIGHTLY")
    assert job_names("a, b,A", "alice", "enable") == [JobName("alice", "A"),
                                                      JobName("alice", "B")]


def test_another_owners_job_is_refused_before_it_is_looked_up() -> None:
    with pytest.raises(DmsError) as err:
        job_name("bob.nightly", "alice", "drop")
    assert (err.value.sqlstate, err.value.message) == (
        "42501", "job bob.NIGHTLY belongs to bob: only its owner can drop it")


@pytest.mark.parametrize(("text", "message"), [
    (None, "job_name must be given"),
    ("  ", "job_name must be given"),
    ("a.b.c", "job name 'a.b.c' is not a valid name"),
    ("bad name", "job name 'bad name' is not a valid name"),
    ('"', "job name '\"' is not a valid name"),
    ("x" * 129, f"job name {'X' * 129!r} is longer than 128 characters"),
])
def test_bad_job_names(text: str | None, message: str) -> None:
    with pytest.raises(DmsError) as err:
        job_name(text, "alice", "run")
    assert (err.value.sqlstate, err.value.message) == ("22023", message)


def test_procedure_names_fold_the_postgresql_way() -> None:
    assert procedure_name("SALES_PKG.UPDATE_SALES") == ("sales_pkg", "update_sales")
    assert procedure_name('"Sales".load') == ("Sales", "load")
    for bad in ("app.add(1)", "a.b.c", "", "drop table x"):
        with pytest.raises(DmsError, match="is not a procedure name"):
            procedure_name(bad)


@pytest.mark.parametrize(("action", "block"), [
    ("BEGIN NULL; END;", True),
    ("  -- comment\n/* more */ declare n int; begin null; end;", True),
    ("<<outer>> BEGIN NULL; END;", True),
    ("BEGIN;", False),
    ("begin transaction", False),
    ("BEGIN WORK", False),
    ("BEGINNING", False),
    ("INSERT INTO t VALUES (1)", False),
    ("CALL p()", False),
])
def test_blocks_are_told_from_sql(action: str, block: bool) -> None:
    assert actions.is_block(action) is block


def test_a_block_runs_as_do_with_a_tag_it_cannot_end() -> None:
    text = actions.command("PLSQL_BLOCK", "BEGIN RAISE NOTICE '$$'; END;\n/\n", [])
    assert text.startswith("DO $dms_job_")
    tag = text[3:text.index("$", 4) + 1]
    assert text == f"DO {tag}BEGIN RAISE NOTICE '$$'; END;{tag}"


def test_the_dollar_tag_never_occurs_in_the_body_nor_across_its_end() -> None:
    body = "SELECT 1; -- $dms_job_"  # ends with the start of every tag
    quoted = actions.dollar_quote(body)
    tag = quoted[: quoted.index("$", 1) + 1]
    assert quoted == tag + body + tag
    assert (tag + body + tag).find(tag, len(tag)) == len(tag) + len(body)


def test_sql_runs_as_written() -> None:
    assert actions.command("PLSQL_BLOCK", "INSERT INTO t VALUES (1); DELETE FROM u", []) == (
        "INSERT INTO t VALUES (1); DELETE FROM u")


def test_a_procedure_is_called_with_quoted_names_and_literal_arguments() -> None:
    assert actions.command("STORED_PROCEDURE", "Sales_Pkg.update", ["7", None, "it's \\ x"]) == (
        "CALL \"sales_pkg\".\"update\"('7', NULL,  E'it''s \\\\ x')")
    assert actions.command("STORED_PROCEDURE", '"Odd""Name"', []) == 'CALL "Odd""Name"()'
