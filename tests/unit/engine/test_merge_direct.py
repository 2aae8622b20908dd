"""The direct statement of a first load (dms_pkg.engine.merge.direct, issue 12 item 2)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from dms_pkg.engine import merge
from dms_pkg.engine.merge import MergePlan, MergeSpec

TYPES = {"id": "integer", "a": "text", "b": "numeric"}
SCD = {"kind": "scd", "keys": ["id"], "scd2": ["a"], "scd1": ["b"], "hash_column": "h",
       "created_column": "c", "updated_column": "u", "current_column": "cur",
       "valid_from_column": "vf", "valid_to_column": "vt", "carry": ["z", "y"],
       "since": "2026-01-01"}
APPEND = {"kind": "append", "keys": ["id"], "only_new": True, "hash_column": "h",
          "created_column": "c", "updated_column": "u"}


def parts(statement: str) -> tuple[str, str]:
    """The column list and the select list of an INSERT ... SELECT."""
    match = re.match(r'INSERT INTO "dw"\."t" \((.*?)\) SELECT (.*?) FROM ', statement)
    assert match is not None, statement
    return match.group(1), match.group(2)


def inserted(spec: MergeSpec) -> str:
    return dict(merge.plan(spec, "dw", "t", list(TYPES), TYPES).statements)["inserted"]


@pytest.mark.parametrize("value", [SCD, {**SCD, "carry": [], "since": None}, APPEND])
def test_direct_writes_what_the_staged_insert_writes_for_a_new_key(value: dict[str, Any]
                                                                   ) -> None:
    spec = MergeSpec.from_json(value)
    direct = merge.direct(spec, "dw", "t", list(TYPES), TYPES)
    columns, select = parts(direct)
    staged_columns, staged_select = parts(inserted(spec))
    assert columns == staged_columns
    # A new key has no previous version: its carried columns are NULL, in the
    # row and in the row hash alike.
    assert select == re.sub(r'"p"\."\w+"', "NULL", staged_select)
    if spec.carry:
        assert '"p"."z"' in staged_select
        assert 'md5(ROW("s"."a", "s"."b", NULL, NULL)::text)' in select  # a, b, y, z
    # The chunk query's rows, in the stage's types, under the stage's names.
    assert direct.endswith(
        ' FROM (SELECT CAST(q."id" AS integer) AS "id", CAST(q."a" AS text) AS "a",'
        ' CAST(q."b" AS numeric) AS "b" FROM (/*dms_chunk*/) AS q ("id", "a", "b")) AS s')
    assert direct.count(merge.CHUNK) == 1
    # No row check, no stage, no look-up of the target.
    assert "dms_stage" not in direct and "EXISTS" not in direct and merge.ROWS_FILTER not in direct


def test_only_merges_that_insert_every_row_of_an_empty_target_go_direct() -> None:
    assert merge.offers_direct(MergeSpec.from_json(SCD))
    assert merge.offers_direct(MergeSpec.from_json(APPEND))
    assert not merge.offers_direct(MergeSpec.from_json({"kind": "append", "keys": ["id"]}))
    assert not merge.offers_direct(MergeSpec.from_json({"kind": "append"}))


def test_the_plan_carries_the_direct_statement_and_old_plans_still_load() -> None:
    spec = MergeSpec.from_json(SCD)
    plan = merge.plan(spec, "dw", "t", list(TYPES), TYPES)
    old = plan.as_json()
    assert "direct" not in old and MergePlan.from_json(old).direct is None
    plan.direct, plan.guard = merge.direct(spec, "dw", "t", list(TYPES), TYPES), "t_cur_uk"
    again = MergePlan.from_json(plan.as_json())
    assert (again.direct, again.guard) == (plan.direct, "t_cur_uk")
    assert again.statements == plan.statements and again.check == plan.check


@pytest.mark.parametrize(("predicate", "current"), [
    ("(curflg = 'Y'::bpchar)", True),
    ("curflg = 'Y'::text", True),
    ("((curflg = 'Y'::character varying))", True),
    ("(\"curflg\" = 'Y')", True),
    ("(curflg = 'N'::bpchar)", False),
    ("(other = 'Y'::bpchar)", False),
    ("((curflg = 'Y'::bpchar) AND (id > 0))", False),
    ("(curflg = ANY (ARRAY['Y'::bpchar, 'N'::bpchar]))", False),
])
def test_a_guard_covers_the_current_versions_only_with_current_equal_y(
        predicate: str, current: bool) -> None:
    assert merge._is_current(predicate, "curflg", '"curflg"') is current


def test_an_scd_merge_classifies_once_and_its_statements_read_only_the_changed_rows() -> None:
    plan = merge.plan(MergeSpec.from_json(SCD), "dw", "t", list(TYPES), TYPES)
    (classify,) = plan.classify
    assert classify.startswith('INSERT INTO "pg_temp"."dms_changed" SELECT "s"."id", "s"."a",'
                               ' "s"."b", s.dms_rn FROM "pg_temp"."dms_stage" AS s WHERE NOT'
                               ' EXISTS')
    assert classify.endswith('AND ("t"."a", "t"."b") IS NOT DISTINCT FROM ("s"."a", "s"."b"))')
    assert [label for label, _ in plan.statements] == ["expired", "updated", "completed",
                                                       "inserted"]
    for _, statement in plan.statements:
        assert '"pg_temp"."dms_changed" AS s' in statement and "dms_stage" not in statement
    # The duplicate-key check still reads every staged row.
    assert plan.check is not None and '"pg_temp"."dms_stage"' in plan.check
    assert MergePlan.from_json(plan.as_json()) == plan


def test_the_scd_statements_take_the_key_slice_of_the_changed_rows_as_parameters() -> None:
    plan = merge.plan(MergeSpec.from_json(SCD), "dw", "t", list(TYPES), TYPES)
    assert plan.bounds == ('SELECT min(r."id")::text, max(r."id")::text, count(*)'
                           ' FROM "pg_temp"."dms_changed" AS r')
    given = 't."id" >= CAST($1 AS integer) AND t."id" <= CAST($2 AS integer)'
    for _, statement in plan.statements:
        assert given in statement and "min(" not in statement
    # Classification still bounds the slice by the stage it reads.
    assert "$1" not in plan.classify[0] and 'min(r."id") FROM "pg_temp"."dms_stage"' in (
        plan.classify[0])
    assert MergePlan.from_json(plan.as_json()).bounds == plan.bounds
    # A plan stored before the parameters existed runs its statements without.
    old = plan.as_json()
    del old["bounds"]
    assert MergePlan.from_json(old).bounds is None


def test_a_plan_stored_before_classification_existed_still_reads_its_stage() -> None:
    old = {"prepare": ["CREATE TEMP TABLE x"], "check": None,
           "statements": [["inserted", 'INSERT INTO t SELECT * FROM "pg_temp"."dms_stage"']]}
    plan = MergePlan.from_json(old)
    assert plan.classify == [] and "classify" not in plan.as_json()


def test_the_fused_statement_classifies_as_the_stage_does_and_answers_one_row() -> None:
    spec = MergeSpec.from_json(SCD)
    plan = merge.plan(spec, "dw", "t", list(TYPES), TYPES)
    fused = merge.fused(spec, "dw", "t", list(TYPES), TYPES)
    # The chunk query's rows in the stage's types, read once.
    assert fused.startswith('WITH "s" AS MATERIALIZED (SELECT CAST(q."id" AS integer) AS "id",'
                            ' CAST(q."a" AS text) AS "a", CAST(q."b" AS numeric) AS "b" FROM ('
                            + merge.CHUNK + ') AS q ("id", "a", "b"))')
    # The stage's check, asked of those rows.
    assert plan.check is not None
    asked = plan.check.replace(STAGE, '"s"')
    assert f'"twice" AS ({asked})' in fused
    # The rows read and the key slice's bounds, in one pass.
    assert (' "span" AS MATERIALIZED (SELECT min("id") AS lo, max("id") AS hi, count(*) AS n'
            ' FROM "s"),') in fused
    # The staged classification, word for word, but for where its rows and its
    # slice's bounds come from, their numbers (none) and nothing kept when a
    # key came twice.
    staged = plan.classify[0]
    expected = staged.replace('"pg_temp"."dms_stage"', '"s"').replace(
        "s.dms_rn FROM", "NULL FROM").replace("WHERE NOT EXISTS", 'WHERE NOT EXISTS'
                                              ' (SELECT FROM "twice") AND NOT EXISTS', 1).replace(
        '(SELECT min(r."id") FROM "s" AS r)', '(SELECT lo FROM "span")').replace(
        '(SELECT max(r."id") FROM "s" AS r)', '(SELECT hi FROM "span")')
    assert f'"kept" AS ({expected} RETURNING "id")' in fused
    # One row: rows read, a key twice?, that key, the kept rows' bounds.
    assert fused.endswith(
        ' SELECT (SELECT n FROM "span"), EXISTS (SELECT FROM "twice"), "twice"."id",'
        ' (SELECT min("id")::text FROM "kept"), (SELECT max("id")::text FROM "kept"),'
        ' (SELECT count(*) FROM "kept") FROM (SELECT) AS one LEFT JOIN "twice" ON true')
    plan.fused = fused
    assert MergePlan.from_json(plan.as_json()).fused == fused
    old = plan.as_json()
    del old["fused"]  # a plan stored before: its chunks go through the stage
    assert MergePlan.from_json(old).fused is None



STAGE = '"pg_temp"."dms_stage"'


def test_a_one_column_sortable_key_is_grouped_only_when_a_count_says_one_repeats() -> None:
    spec = MergeSpec.from_json(SCD)
    assert merge.plan(spec, "dw", "t", list(TYPES), TYPES).check == (
        f'SELECT "s"."id" FROM {STAGE} AS s WHERE (SELECT count("d"."id") <>'
        f' count(DISTINCT "d"."id") OR count(*) - count("d"."id") > 1 FROM {STAGE} AS d)'
        ' GROUP BY "s"."id" HAVING count(*) > 1 LIMIT 1')
    # A key type without a sort order, or a key of two columns: grouped always.
    json_key = {**TYPES, "id": "json"}
    assert merge.plan(spec, "dw", "t", list(json_key), json_key).check == (
        f'SELECT "s"."id" FROM {STAGE} AS s GROUP BY "s"."id" HAVING count(*) > 1 LIMIT 1')
    two = MergeSpec.from_json({**SCD, "keys": ["id", "a"], "scd2": []})
    assert merge.plan(two, "dw", "t", list(TYPES), TYPES).check == (
        f'SELECT "s"."id", "s"."a" FROM {STAGE} AS s GROUP BY "s"."id", "s"."a"'
        ' HAVING count(*) > 1 LIMIT 1')
