"""The validation rules of PKGDWMAPR (dms_pkg.mapper.rules) as pure functions.

The same rules are exercised through SQL in tests/integration/test_mapper_validation.py;
here are the cases the API cannot produce (the upper-casing and unique index of the
packages stand in front of them) and the edges of each rule.
"""

from __future__ import annotations

from typing import Any

import pytest

from dms_pkg.mapper.rules import (
    RESERVED,
    Problem,
    combination_problems,
    detail_problems,
    details_problems,
    mapping_problems,
    name_problem,
)

NAME_RULE = ("must start with a letter and contain only letters, digits and underscores "
             "(no spaces or special characters), at most 63 characters")

MAPPING: dict[str, Any] = {
    "mapref": "DIM_CUSTOMER", "trgschm": "dw", "trgtbnm": "dim_customer", "trgtbtyp": "DIM",
    "frqcd": "NA", "stflg": "N", "lgvrfyflg": "N", "chkpntstrtgy": "NONE",
    "chkpntenbld": "N", "blkprcrows": None,
}


def detail(name: str, *, key: int | None = None, value: str | None = None,
           combination: str | None = None, **more: Any) -> dict[str, Any]:
    return {"trgclnm": name, "trgcldtyp": "STRING", "trgkeyflg": "Y" if key else "N",
            "trgkeyseq": key, "maplogic": "SELECT 1", "keyclnm": "id",
            "valclnm": value or name.lower(), "mapcmbcd": combination, "scdtyp": 1, **more}


@pytest.mark.parametrize("value", ["A", "dim_customer", "X1_2", "a" * 63])
def test_good_names(value: str) -> None:
    assert name_problem(value, "name") is None


@pytest.mark.parametrize(("value", "kind", "message"), [
    pytest.param(None, "REQUIRED", "name is required", id="none"),
    pytest.param("", "REQUIRED", "name is required", id="empty"),
    pytest.param("   ", "REQUIRED", "name is required", id="blank"),
    pytest.param("my map", "NAME", f"name 'my map' {NAME_RULE}", id="space"),
    pytest.param('x"; DROP TABLE t; --', "NAME",
                 f"""name 'x"; DROP TABLE t; --' {NAME_RULE}""", id="hostile"),
    pytest.param("1abc", "NAME", f"name '1abc' {NAME_RULE}", id="digit-first"),
    pytest.param("_abc", "NAME", f"name '_abc' {NAME_RULE}", id="underscore-first"),
    pytest.param("a" * 64, "NAME", f"name '{'a' * 64}' {NAME_RULE}", id="64-characters"),
    pytest.param("abc\n", "NAME", f"name 'abc\\n' {NAME_RULE}", id="trailing-newline"),
    pytest.param("sch.tab", "NAME", f"name 'sch.tab' {NAME_RULE}", id="dotted"),
    pytest.param("naïve", "NAME", f"name 'naïve' {NAME_RULE}", id="non-ascii"),
])
def test_bad_names(value: Any, kind: str, message: str) -> None:
    assert name_problem(value, "name", "COL") == Problem("COL", kind, message)


def test_a_valid_mapping_has_no_problem() -> None:
    assert mapping_problems(MAPPING) == []
    assert mapping_problems({**MAPPING, "chkpntstrtgy": "KEY", "chkpntclnm": "SALE_ID",
                             "blkprcrows": 1}) == []


@pytest.mark.parametrize(("change", "message"), [
    ({"trgtbtyp": "SCD"}, "target table type (TRGTBTYP) must be one of NRM, DIM, FCT, MRT, "
                          "got 'SCD'"),
    ({"trgtbtyp": "dim"}, "target table type (TRGTBTYP) must be one of NRM, DIM, FCT, MRT, "
                          "got 'dim'"),
    ({"frqcd": None}, "frequency (FRQCD) must be one of NA, ID, DL, WK, FN, MN, HY, YR, "
                      "got None"),
    ({"stflg": "Y"}, "status (STFLG) must be one of A, N, got 'Y'"),
    ({"chkpntstrtgy": "DATE"}, "checkpoint strategy (CHKPNTSTRTGY) must be one of NONE, KEY, "
                               "got 'DATE'"),
    ({"chkpntstrtgy": "KEY"}, "checkpoint strategy KEY needs the checkpoint column "
                              "(CHKPNTCLNM)"),
    ({"chkpntstrtgy": "KEY", "chkpntclnm": "sale id"},
     f"checkpoint column (CHKPNTCLNM) 'sale id' {NAME_RULE}"),
    ({"blkprcrows": 0}, "BLKPRCROWS must be a positive number of rows, got 0"),
    ({"blkprcrows": -1}, "BLKPRCROWS must be a positive number of rows, got -1"),
    ({"blkprcrows": "100"}, "BLKPRCROWS must be a positive number of rows, got '100'"),
    ({"blkprcrows": 2.5}, "BLKPRCROWS must be a positive number of rows, got 2.5"),
])
def test_mapping_rules(change: dict[str, Any], message: str) -> None:
    assert [p.message for p in mapping_problems({**MAPPING, **change})] == [message]


def test_every_mapping_problem_is_reported_in_order() -> None:
    problems = mapping_problems({"blkprcrows": 0})
    assert [p.kind for p in problems] == ["REQUIRED"] * 3 + ["VALUE"] * 7
    assert all(p.column is None for p in problems)


def test_a_valid_detail_has_no_problem() -> None:
    assert detail_problems(detail("NAME")) == []
    assert detail_problems(detail("CUST_ID", key=1)) == []


@pytest.mark.parametrize("column", RESERVED)
def test_reserved_target_columns(column: str) -> None:
    for name in (column, column.lower()):
        assert detail_problems(detail(name)) == [Problem(
            name, "NAME", f"target column {name} is added by the package itself; "
            "choose another name")]


@pytest.mark.parametrize(("change", "problem"), [
    ({"trgkeyflg": "y"}, ("VALUE", "key flag (TRGKEYFLG) must be one of Y, N, got 'y'")),
    ({"scdtyp": 3}, ("VALUE", "SCD type (SCDTYP) must be one of 1, 2, got 3")),
    ({"scdtyp": "2"}, ("VALUE", "SCD type (SCDTYP) must be one of 1, 2, got '2'")),
    ({"maplogic": " "}, ("LOGIC", "column NAME: the mapping logic (MAPLOGIC) is required: a "
                                  "query or the code of a DMS_MAPRSQL row")),
    ({"keyclnm": "id, re gion"}, ("NAME", "column NAME: source key column (KEYCLNM) "
                                          f"'re gion' {NAME_RULE}")),
    ({"valclnm": None}, ("REQUIRED", "column NAME: source value column (VALCLNM) is "
                                     "required")),
    ({"mapcmbcd": "A-1"}, ("NAME", f"combination code (MAPCMBCD) 'A-1' {NAME_RULE}")),
    ({"trgkeyflg": "Y"}, ("KEY", "key column NAME needs its key sequence (TRGKEYSEQ)")),
    ({"trgcldtyp": "varchar(30)"}, ("NAME", "datatype code (TRGCLDTYP) 'varchar(30)' "
                                            f"{NAME_RULE}")),
])
def test_detail_rules(change: dict[str, Any], problem: tuple[str, str]) -> None:
    assert [(p.kind, p.message) for p in detail_problems({**detail("NAME"), **change})] == [
        problem]


def test_details_without_key() -> None:
    message = "the mapping has no key column: set TRGKEYFLG 'Y' on at least one column"
    assert details_problems([]) == [Problem(None, "KEY", message)]
    assert details_problems([detail("NAME")]) == [Problem(None, "KEY", message)]


def test_duplicate_key_sequences() -> None:
    rows = [detail("A", key=1), detail("B", key=2), detail("C", key=1), detail("D", key=2),
            detail("NAME")]
    assert [p.message for p in details_problems(rows)] == [
        "key sequence 1 is used by more than one key column (A, C); give each its own TRGKEYSEQ",
        "key sequence 2 is used by more than one key column (B, D); give each its own TRGKEYSEQ",
    ]


def test_duplicate_target_column_in_any_case() -> None:
    """Not reachable through the API (names are upper-cased, a unique index holds)."""
    rows = [detail("ID", key=1), detail("NAME"), detail("name", value="other")]
    assert details_problems(rows) == [
        Problem("NAME", "DUPLICATE", "target column NAME is mapped more than once")]


def test_duplicate_value_column_per_combination() -> None:
    rows = [detail("ID", key=1), detail("A", value="name", combination="C1"),
            detail("B", value="NAME", combination="C1"), detail("C", value="name",
                                                                 combination="C2"),
            detail("D", value="x"), detail("E", value="x")]
    assert [p.message for p in details_problems(rows)] == [
        "value column NAME is used more than once in combination C1",
        "value column X is used more than once in combination (none)",
    ]


def test_key_columns_may_share_their_value_column_with_other_details() -> None:
    assert details_problems([detail("ID", key=1, value="id"), detail("ID_COPY", value="id")]
                            ) == []


def test_combinations() -> None:
    rows = [detail("ID", key=1), detail("A", combination="C1"), detail("B", combination="C2"),
            detail("C")]
    assert combination_problems(MAPPING, rows) == []  # a DIM may have several
    assert [p.message for p in combination_problems({**MAPPING, "trgtbtyp": "FCT"}, rows)] == [
        "a FCT mapping loads rows from one combination, this one has 3 ((none), C1, C2); join "
        "the queries in one combination (several details may share MAPCMBCD)"]
    one = [detail("ID", key=1), detail("A", combination="C1"), detail("B", combination="C1")]
    assert combination_problems({**MAPPING, "trgtbtyp": "FCT"}, one) == []


def test_checkpoint_column() -> None:
    key = {**MAPPING, "chkpntstrtgy": "KEY"}
    rows = [detail("ID", key=1), detail("A", combination="C1"), detail("B", combination="C2")]
    assert combination_problems({**key, "chkpntclnm": "id"}, rows) == []
    assert combination_problems({**key, "chkpntclnm": "nope"}, rows) == [Problem(
        None, "CHECKPOINT", "checkpoint column NOPE is not a target column of the mapping; "
        "CHKPNTCLNM names the mapped column whose last loaded value is kept")]
    assert combination_problems({**key, "chkpntclnm": "a"}, rows) == [Problem(
        "A", "CHECKPOINT", "checkpoint column A must be a key column when the mapping has "
        "several combinations (every combination reads the key)")]
    assert combination_problems({**key, "chkpntclnm": "a"}, rows[:2]) == []
    assert combination_problems({**MAPPING, "chkpntclnm": "nope"}, rows) == []  # NONE
