"""Every validation rule of PKGDWMAPR, called only through SQL, one case per rule.

Three ways a rule is enforced, three tables of cases:

* ``create_update_mapping`` / ``create_update_mapping_detail`` refuse bad input
  with one error (SQLSTATE 22023) listing every problem, and write nothing;
* ``validate_mapping_details`` checks what only the whole mapping can show
  (rules across details, datatype codes, EXPLAIN of the logic) and returns the
  problems as rows, kept in DMS_MAPERR; the mapping stays unverified;
* ``activate_deactivate_mapping`` refuses a mapping whose logic is not verified.

Each case asserts the exact message a DBA reads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from tests.integration.conftest import Cluster, DatabaseFactory
from tests.integration.mapper_env import MapperEnv

SOURCES = """
CREATE SCHEMA src;
CREATE SCHEMA dw;
CREATE TABLE src.customer (cust_id integer PRIMARY KEY, name text, segment text);
CREATE TABLE src.credit (cust_id integer PRIMARY KEY, credit_limit numeric(12,2), rating text);
INSERT INTO src.customer SELECT g, 'customer ' || g, 's' || (g % 3) FROM generate_series(1, 20) g;
INSERT INTO src.credit SELECT g, g * 10, 'r' || (g % 2) FROM generate_series(1, 20) g;
"""
CUSTOMER = "SELECT cust_id, name, segment FROM src.customer"
CREDIT = "SELECT cust_id, credit_limit, rating FROM src.credit"

HOSTILE = 'x"; DROP TABLE t; --'
NAME_RULE = ("must start with a letter and contain only letters, digits and underscores "
             "(no spaces or special characters), at most 63 characters")
INVALID = "22023"
NOT_VERIFIED = "55000"

# The SQL types of the parameters the tests pass (sql/api/070_mapper_api.sql).
MAPPING_PARAMS = {
    "mapref": "text", "mapdesc": "text", "trgschm": "text", "trgtbtyp": "text",
    "trgtbnm": "text", "frqcd": "text", "srcsystm": "text", "lgvrfyflg": "text",
    "stflg": "text", "blkprcrows": "integer", "trgconid": "bigint", "chkpntstrtgy": "text",
    "chkpntclnm": "text", "chkpntenbld": "text",
}
DETAIL_PARAMS = {
    "mapref": "text", "trgclnm": "text", "trgcldtyp": "text", "trgkeyflg": "text",
    "trgkeyseq": "integer", "maplogic": "text", "keyclnm": "text", "valclnm": "text",
    "mapcmbcd": "text", "excseq": "integer", "scdtyp": "integer",
}


@pytest.fixture(scope="module")
def env(cluster: Cluster, databases: DatabaseFactory) -> MapperEnv:
    environment = MapperEnv(cluster, databases.create(installed=True))
    with environment.connect() as conn:
        conn.execute(SOURCES)
    return environment


def call(env: MapperEnv, function: str, values: Mapping[str, Any]) -> Any:
    """``SELECT pkgdwmapr.<function>(p_x => ..., ...)`` in named notation, as a DBA calls it."""
    types = MAPPING_PARAMS if function == "create_update_mapping" else DETAIL_PARAMS
    args = ", ".join(f"p_{name} => %s::{types[name]}" for name in values)
    return env.one(f"SELECT pkgdwmapr.{function}({args})", list(values.values()))


def refused(env: MapperEnv, text: str, params: list[Any] | None = None) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as err:
        env.rows(text, params)
    return err.value


def counts(env: MapperEnv) -> tuple[int, int]:
    """Rows of DMS_MAPR and DMS_MAPRDTL, history included."""
    row = env.rows("SELECT (SELECT count(*) FROM dms.dms_mapr) AS mapr,"
                   " (SELECT count(*) FROM dms.dms_maprdtl) AS maprdtl")[0]
    return int(row["mapr"]), int(row["maprdtl"])


def mapref_of(case_id: str) -> str:
    return "V_" + re.sub(r"\W", "_", case_id).upper()


def case(change: dict[str, Any], message: str, *, case_id: str, problems: int = 1) -> Any:
    """A refused call: the values changed from a valid call, the message, its problem count."""
    return pytest.param(change, message, problems, id=case_id)


# -- create_update_mapping ------------------------------------------------------------

MAPPING = {"mapref": "BAD_MAP", "mapdesc": "refused", "trgschm": "dw", "trgtbtyp": "FCT",
           "trgtbnm": "bad_map"}
BAD_MAP = "dms: mapping BAD_MAP is not valid: "

MAPPING_CASES = [
    case({"mapref": "my map"},
                 f"dms: mapping MY MAP is not valid: MAPREF 'MY MAP' {NAME_RULE}",
                 case_id="mapref-with-space"),
    case({"mapref": HOSTILE},
                 f"""dms: mapping X"; DROP TABLE T; -- is not valid: """
                 f"""MAPREF 'X"; DROP TABLE T; --' {NAME_RULE}""",
                 case_id="mapref-hostile"),
    case({"mapref": "1_MAP"},
                 f"dms: mapping 1_MAP is not valid: MAPREF '1_MAP' {NAME_RULE}",
                 case_id="mapref-starts-with-digit"),
    case({"mapref": "M" * 64},
                 f"dms: mapping {'M' * 64} is not valid: MAPREF '{'M' * 64}' {NAME_RULE}",
                 case_id="mapref-longer-than-63"),
    case({"mapref": None}, "dms: mapping (no name) is not valid: MAPREF is required",
                 case_id="mapref-missing"),
    case({"trgschm": "dw stage"},
                 f"{BAD_MAP}target schema (TRGSCHM) 'dw stage' {NAME_RULE}",
                 case_id="target-schema-with-space"),
    case({"trgschm": HOSTILE},
                 f"""{BAD_MAP}target schema (TRGSCHM) 'x"; DROP TABLE t; --' {NAME_RULE}""",
                 case_id="target-schema-hostile"),
    case({"trgtbnm": "bad map"},
                 f"{BAD_MAP}target table (TRGTBNM) 'bad map' {NAME_RULE}",
                 case_id="target-table-with-space"),
    case({"trgtbnm": HOSTILE},
                 f"""{BAD_MAP}target table (TRGTBNM) 'x"; DROP TABLE t; --' {NAME_RULE}""",
                 case_id="target-table-hostile"),
    case({"trgtbtyp": "SCD"},
                 f"{BAD_MAP}target table type (TRGTBTYP) must be one of NRM, DIM, FCT, MRT, "
                 "got 'SCD'",
                 case_id="table-type-unknown"),
    case({"frqcd": "HOURLY"},
                 f"{BAD_MAP}frequency (FRQCD) must be one of NA, ID, DL, WK, FN, MN, HY, YR, "
                 "got 'HOURLY'",
                 case_id="frequency-unknown"),
    case({"stflg": "X"}, f"{BAD_MAP}status (STFLG) must be one of A, N, got 'X'",
                 case_id="status-flag-unknown"),
    case({"lgvrfyflg": "X"},
                 f"{BAD_MAP}logic verified flag (LGVRFYFLG) must be one of Y, N, got 'X'",
                 case_id="verified-flag-unknown"),
    case({"chkpntstrtgy": "DATE"},
                 f"{BAD_MAP}checkpoint strategy (CHKPNTSTRTGY) must be one of NONE, KEY, "
                 "got 'DATE'",
                 case_id="checkpoint-strategy-unknown"),
    case({"chkpntenbld": "X"},
                 f"{BAD_MAP}checkpoint enabled flag (CHKPNTENBLD) must be one of Y, N, got 'X'",
                 case_id="checkpoint-enabled-flag-unknown"),
    case({"chkpntstrtgy": "KEY"},
                 f"{BAD_MAP}checkpoint strategy KEY needs the checkpoint column (CHKPNTCLNM)",
                 case_id="checkpoint-key-without-column"),
    case({"chkpntstrtgy": "KEY", "chkpntclnm": HOSTILE},
                 f"""{BAD_MAP}checkpoint column (CHKPNTCLNM) 'x"; DROP TABLE t; --' """
                 f"{NAME_RULE}",
                 case_id="checkpoint-column-hostile"),
    case({"blkprcrows": 0},
                 f"{BAD_MAP}BLKPRCROWS must be a positive number of rows, got 0",
                 case_id="bulk-rows-zero"),
    case({"blkprcrows": -500},
                 f"{BAD_MAP}BLKPRCROWS must be a positive number of rows, got -500",
                 case_id="bulk-rows-negative"),
    case({"trgconid": 424242},
                 f"{BAD_MAP}target connection 424242 does not exist in DMS_DBCONDTLS",
                 case_id="target-connection-unknown"),
    case({"trgtbtyp": "SCD", "frqcd": "HOURLY", "blkprcrows": 0},
                 f"{BAD_MAP}target table type (TRGTBTYP) must be one of NRM, DIM, FCT, MRT, "
                 "got 'SCD'; frequency (FRQCD) must be one of NA, ID, DL, WK, FN, MN, HY, YR, "
                 "got 'HOURLY'; BLKPRCROWS must be a positive number of rows, got 0",
                 case_id="three-problems-in-one-message", problems=3),
]


@pytest.mark.parametrize(("change", "message", "problems"), MAPPING_CASES)
def test_create_update_mapping_refuses(env: MapperEnv, change: dict[str, Any], message: str,
                                       problems: int) -> None:
    before = counts(env)
    values = {**MAPPING, **change}
    args = ", ".join(f"p_{name} => %s::{MAPPING_PARAMS[name]}" for name in values)
    err = refused(env, f"SELECT pkgdwmapr.create_update_mapping({args})",
                  list(values.values()))
    assert err.diag.sqlstate == INVALID
    assert err.diag.message_primary == message
    assert err.diag.message_detail == (
        f"{problems} problem{'s' if problems > 1 else ''}; nothing was written")
    assert err.diag.message_hint == "correct the values and call again"
    assert counts(env) == before  # nothing was written


# -- create_update_mapping_detail -----------------------------------------------------

DETAIL = {"mapref": "DETAIL_MAP", "trgclnm": "NAME", "trgcldtyp": "STRING",
          "maplogic": CUSTOMER, "keyclnm": "cust_id", "valclnm": "name"}
BAD_NAME = "dms: mapping detail DETAIL_MAP.NAME is not valid: "

DETAIL_CASES = [
    case({"trgclnm": "full name"},
                 "dms: mapping detail DETAIL_MAP.FULL NAME is not valid: "
                 f"target column (TRGCLNM) 'FULL NAME' {NAME_RULE}",
                 case_id="column-with-space"),
    case({"trgclnm": HOSTILE},
                 """dms: mapping detail DETAIL_MAP.X"; DROP TABLE T; -- is not valid: """
                 f"""target column (TRGCLNM) 'X"; DROP TABLE T; --' {NAME_RULE}""",
                 case_id="column-hostile"),
    case({"trgclnm": None},
                 "dms: mapping detail DETAIL_MAP.(no name) is not valid: "
                 "target column (TRGCLNM) is required",
                 case_id="column-missing"),
    case({"trgclnm": "skey"},
                 "dms: mapping detail DETAIL_MAP.SKEY is not valid: "
                 "target column SKEY is added by the package itself; choose another name",
                 case_id="column-reserved-skey"),
    case({"trgclnm": "RWHKEY"},
                 "dms: mapping detail DETAIL_MAP.RWHKEY is not valid: "
                 "target column RWHKEY is added by the package itself; choose another name",
                 case_id="column-reserved-rwhkey"),
    case({"trgclnm": "CurFlg"},
                 "dms: mapping detail DETAIL_MAP.CURFLG is not valid: "
                 "target column CURFLG is added by the package itself; choose another name",
                 case_id="column-reserved-curflg"),
    case({"trgcldtyp": "WIDGET"},
                 f"{BAD_NAME}column NAME: datatype code WIDGET has no DMS_PARAMS row for "
                 "POSTGRESQL (PRTYP 'POSTGRESQL', PRCD 'WIDGET')",
                 case_id="datatype-unknown"),
    case({"trgcldtyp": "varchar(30)"},
                 f"{BAD_NAME}datatype code (TRGCLDTYP) 'VARCHAR(30)' {NAME_RULE}",
                 case_id="datatype-not-a-code"),
    case({"trgkeyflg": "X"},
                 f"{BAD_NAME}key flag (TRGKEYFLG) must be one of Y, N, got 'X'",
                 case_id="key-flag-unknown"),
    case({"trgkeyflg": "Y"},
                 f"{BAD_NAME}key column NAME needs its key sequence (TRGKEYSEQ)",
                 case_id="key-without-sequence"),
    case({"scdtyp": 3}, f"{BAD_NAME}SCD type (SCDTYP) must be one of 1, 2, got 3",
                 case_id="scd-type-unknown"),
    case({"maplogic": None},
                 f"{BAD_NAME}column NAME: the mapping logic (MAPLOGIC) is required: a query or "
                 "the code of a DMS_MAPRSQL row",
                 case_id="logic-missing"),
    case({"maplogic": "SELEC cust_id, name FROM src.customer"},
                 f"{BAD_NAME}cannot parse source SQL as postgres at line 1, column 14 "
                 'near ",": Invalid expression / Unexpected token',
                 case_id="logic-does-not-parse"),
    case({"maplogic": f"{CUSTOMER}; DROP TABLE src.customer"},
                 f"{BAD_NAME}source SQL must be a single query, found 2 statements",
                 case_id="logic-two-statements"),
    case({"maplogic": "DELETE FROM src.customer"},
                 f"{BAD_NAME}source SQL must be a query (SELECT), not DELETE",
                 case_id="logic-not-a-query"),
    case({"maplogic": "NO_SUCH_QUERY"},
                 f"{BAD_NAME}MAPLOGIC NO_SUCH_QUERY is neither a query nor the code of a "
                 "DMS_MAPRSQL row",
                 case_id="logic-unknown-sql-code"),
    case({"keyclnm": HOSTILE},
                 f"""{BAD_NAME}column NAME: source key column (KEYCLNM) 'x"; DROP TABLE t; --' """
                 f"{NAME_RULE}",
                 case_id="key-column-hostile"),
    case({"keyclnm": None},
                 f"{BAD_NAME}column NAME: source key column (KEYCLNM) is required",
                 case_id="key-column-missing"),
    # KEYCLNM is a comma-separated list for a composite key: each name is checked.
    case({"keyclnm": "cust_id, seg ment"},
                 f"{BAD_NAME}column NAME: source key column (KEYCLNM) 'seg ment' "
                 f"{NAME_RULE}",
                 case_id="key-column-composite-list"),
    case({"valclnm": "full name"},
                 f"{BAD_NAME}column NAME: source value column (VALCLNM) 'full name' {NAME_RULE}",
                 case_id="value-column-with-space"),
    case({"valclnm": None},
                 f"{BAD_NAME}column NAME: source value column (VALCLNM) is required",
                 case_id="value-column-missing"),
    case({"mapcmbcd": HOSTILE},
                 f"""{BAD_NAME}combination code (MAPCMBCD) 'X"; DROP TABLE T; --' {NAME_RULE}""",
                 case_id="combination-code-hostile"),
    case({"mapcmbcd": "cust one"},
                 f"{BAD_NAME}combination code (MAPCMBCD) 'CUST ONE' {NAME_RULE}",
                 case_id="combination-code-with-space"),
    case({"trgkeyflg": "X", "scdtyp": 3, "valclnm": None},
                 f"{BAD_NAME}key flag (TRGKEYFLG) must be one of Y, N, got 'X'; "
                 "SCD type (SCDTYP) must be one of 1, 2, got 3; "
                 "column NAME: source value column (VALCLNM) is required",
                 case_id="three-problems-in-one-message", problems=3),
]


@pytest.fixture(scope="module")
def detail_mapping(env: MapperEnv) -> str:
    call(env, "create_update_mapping", {"mapref": "DETAIL_MAP", "mapdesc": "details",
                                        "trgschm": "dw", "trgtbtyp": "FCT",
                                        "trgtbnm": "detail_map"})
    return "DETAIL_MAP"


@pytest.mark.parametrize(("change", "message", "problems"), DETAIL_CASES)
def test_create_update_mapping_detail_refuses(env: MapperEnv, detail_mapping: str,
                                              change: dict[str, Any], message: str,
                                              problems: int) -> None:
    before = counts(env)
    values = {**DETAIL, **change}
    args = ", ".join(f"p_{name} => %s::{DETAIL_PARAMS[name]}" for name in values)
    err = refused(env, f"SELECT pkgdwmapr.create_update_mapping_detail({args})",
                  list(values.values()))
    assert err.diag.sqlstate == INVALID
    assert err.diag.message_primary == message
    assert err.diag.message_detail == (
        f"{problems} problem{'s' if problems > 1 else ''}; nothing was written")
    assert err.diag.message_hint == "correct the values and call again"
    assert counts(env) == before  # nothing was written


def test_a_detail_of_an_unknown_mapping_is_refused(env: MapperEnv) -> None:
    err = refused(env, "SELECT pkgdwmapr.create_update_mapping_detail(p_mapref => 'NO_MAP',"
                  " p_trgclnm => 'NAME', p_trgcldtyp => 'STRING')")
    assert err.diag.sqlstate == "42704"
    assert err.diag.message_primary == "dms: mapping NO_MAP does not exist"
    assert err.diag.message_hint == "create it with pkgdwmapr.create_update_mapping"


def test_a_target_column_cannot_be_mapped_twice(env: MapperEnv) -> None:
    """The rule "no duplicate target column" (rules.details_problems) cannot be broken
    through the API: names are stripped and upper-cased and the unique index on the
    current (MAPREF, TRGCLNM) holds, so a second call for the same column -- in any
    case, with spaces around it -- is an update of that column, kept as history."""
    call(env, "create_update_mapping", {"mapref": "DUP_COLUMN", "mapdesc": "dup",
                                        "trgschm": "dw", "trgtbtyp": "FCT",
                                        "trgtbnm": "dup_column"})
    first = call(env, "create_update_mapping_detail", {**DETAIL, "mapref": "DUP_COLUMN"})
    second = call(env, "create_update_mapping_detail",
                  {**DETAIL, "mapref": "DUP_COLUMN", "trgclnm": " name ", "valclnm": "segment"})
    assert second != first
    rows = env.rows("SELECT mapdtlid, trgclnm, valclnm, curflg FROM dms.dms_maprdtl"
                    " WHERE mapref = 'DUP_COLUMN' ORDER BY mapdtlid")
    assert rows == [
        {"mapdtlid": first, "trgclnm": "NAME", "valclnm": "name", "curflg": "N"},
        {"mapdtlid": second, "trgclnm": "NAME", "valclnm": "segment", "curflg": "Y"},
    ]


# -- validate_mapping_details ----------------------------------------------------------

@dataclass(frozen=True)
class Col:
    """One detail: target column, its query, source columns, key sequence (key columns)."""

    name: str
    logic: str = CUSTOMER
    value: str | None = None  # VALCLNM, the target name in lower case by default
    key: int | None = None  # TRGKEYSEQ; a key column (TRGKEYFLG 'Y') when set
    combination: str | None = None
    dtype: str = "STRING"
    keycol: str = "cust_id"

    def values(self, mapref: str, excseq: int) -> dict[str, Any]:
        return {"mapref": mapref, "trgclnm": self.name, "trgcldtyp": self.dtype,
                "trgkeyflg": "Y" if self.key is not None else "N", "trgkeyseq": self.key,
                "maplogic": self.logic, "keyclnm": self.keycol,
                "valclnm": self.value or self.name.lower(), "mapcmbcd": self.combination,
                "excseq": excseq}


KEY = Col("CUST_ID", key=1, dtype="INTEGER")
NAME = Col("NAME")
SEGMENT = Col("SEGMENT")
DIM_COLUMNS = (KEY, Col("NAME", combination="CUST"), Col("SEGMENT", combination="CUST"),
               Col("CREDIT_LIMIT", CREDIT, dtype="MONEY", combination="CREDIT"),
               Col("RATING", CREDIT, combination="CREDIT"))
TMP_TYPE = "TMP_WIDGET"


@dataclass(frozen=True)
class Validation:
    columns: tuple[Col, ...]
    problems: tuple[tuple[str | None, str, str], ...]  # (TRGCLNM, ERRTYP, ERRMSG); {mapref}
    table_type: str = "FCT"
    checkpoint: str | None = None  # CHKPNTCLNM of a KEY checkpoint
    setup: tuple[str, ...] = ()  # SQL run before the details are defined ...
    before_validation: tuple[str, ...] = ()  # ... and after


VALIDATION_CASES = [
    pytest.param(Validation(DIM_COLUMNS, (), table_type="DIM"), id="valid-dim-two-combinations"),
    pytest.param(Validation(
        (KEY, Col("NAME", "SELECT cust_id, name FROM src.customer"
                          " WHERE segment = DWT_PARAM1 OR name = DWT_PARAM10")), ()),
        id="valid-logic-with-dwt-param1-and-10"),
    pytest.param(Validation(
        (KEY, Col("NAME", combination="A"), Col("FULL_NAME", value="name", combination="B")),
        (), table_type="DIM"),
        id="valid-same-value-column-in-two-combinations"),
    pytest.param(Validation((NAME, SEGMENT), (
        (None, "KEY", "the mapping has no key column: set TRGKEYFLG 'Y' on at least one "
                      "column"),)),
        id="no-key-column"),
    pytest.param(Validation((KEY, Col("SEGMENT", key=1), NAME), (
        (None, "KEY", "key sequence 1 is used by more than one key column (CUST_ID, SEGMENT); "
                      "give each its own TRGKEYSEQ"),)),
        id="duplicate-key-sequence"),
    pytest.param(Validation((KEY, NAME, Col("FULL_NAME", value="name")), (
        (None, "DUPLICATE", "value column NAME is used more than once in combination "
                            "(none)"),)),
        id="duplicate-value-column-in-one-combination"),
    pytest.param(Validation(
        (KEY, Col("NAME", combination="CUST"), Col("RATING", CREDIT, combination="CREDIT")), (
            (None, "COMBINATION", "a FCT mapping loads rows from one combination, this one has "
                                  "2 (CREDIT, CUST); join the queries in one combination "
                                  "(several details may share MAPCMBCD)"),)),
        id="fct-with-two-combinations"),
    pytest.param(Validation((KEY, NAME), (
        (None, "CHECKPOINT", "checkpoint column LOADED_AT is not a target column of the "
                             "mapping; CHKPNTCLNM names the mapped column whose last loaded "
                             "value is kept"),), checkpoint="loaded_at"),
        id="checkpoint-column-not-mapped"),
    pytest.param(Validation(DIM_COLUMNS, (
        ("NAME", "CHECKPOINT", "checkpoint column NAME must be a key column when the mapping "
                               "has several combinations (every combination reads the key)"),),
        table_type="DIM", checkpoint="NAME"),
        id="checkpoint-column-not-a-key-with-two-combinations"),
    pytest.param(Validation((KEY, Col("NAME", dtype=TMP_TYPE)), (
        ("NAME", "DATATYPE", f"column NAME: datatype code {TMP_TYPE} has no DMS_PARAMS row "
                             f"for POSTGRESQL (PRTYP 'POSTGRESQL', PRCD '{TMP_TYPE}')"),),
        setup=(f"INSERT INTO dms.dms_params (prtyp, prcd, prdesc, prval) VALUES ('POSTGRESQL',"
               f" '{TMP_TYPE}', 'removed below', 'text')",),
        before_validation=(f"DELETE FROM dms.dms_params WHERE prcd = '{TMP_TYPE}'",)),
        id="datatype-code-unknown"),
    pytest.param(Validation((KEY, Col("NAME", "SELECT cust_id, name FROM src.nope")), (
        ("NAME", "LOGIC", 'column NAME: the query fails on its connection: relation '
                          '"src.nope" does not exist'),)),
        id="logic-explain-unknown-table"),
    pytest.param(Validation((KEY, Col("NAME", "SELECT cust_id, nickname AS name"
                                              " FROM src.customer")), (
        ("NAME", "LOGIC", 'column NAME: the query fails on its connection: column '
                          '"nickname" does not exist'),)),
        id="logic-explain-unknown-column"),
    pytest.param(Validation((KEY, Col("SEGMENT", "SELECT cust_id, name FROM src.customer")), (
        ("SEGMENT", "LOGIC", "column SEGMENT: the query returns no column segment "
                             "(it returns cust_id, name)"),)),
        id="logic-without-the-value-column"),
    pytest.param(Validation((KEY, Col("NAME", keycol="customer_no")), (
        ("NAME", "LOGIC", "column NAME: the query returns no column customer_no "
                          "(it returns cust_id, name, segment)"),)),
        id="logic-without-the-key-column"),
    pytest.param(Validation((Col("CUST_ID", key=1, value="customer_no"), NAME), (
        # The key column's VALCLNM is checked as key and as value: named once.
        ("CUST_ID", "LOGIC", "column CUST_ID: the query returns no column customer_no "
                             "(it returns cust_id, name, segment)"),)),
        id="key-logic-without-the-key-column"),
    pytest.param(Validation((), (
        (None, "DETAIL", "mapping {mapref} has no columns (DMS_MAPRDTL)"),
    )),
        id="no-columns"),
    # A composite key read by a second query: KEYCLNM would have to list both key
    # columns, which the name rule refuses (see key-column-composite-list above).
    pytest.param(Validation(
        (KEY, Col("SEGMENT", key=2), Col("RATING", CREDIT)), (
            (None, "COMBINATION", "combination (default) of mapping {mapref}: a query names 1 "
                                  "key column(s) in KEYCLNM, the mapping has 2"),)),
        id="composite-key-with-a-second-query"),
]


def define(env: MapperEnv, mapref: str, case: Validation) -> None:
    mapping: dict[str, Any] = {"mapref": mapref, "mapdesc": "validation case",
                               "trgschm": "dw", "trgtbtyp": case.table_type,
                               "trgtbnm": mapref.lower()}
    if case.checkpoint:
        mapping.update(chkpntstrtgy="KEY", chkpntclnm=case.checkpoint)
    call(env, "create_update_mapping", mapping)
    for statement in case.setup:
        env.rows(statement)
    for excseq, column in enumerate(case.columns, start=1):
        call(env, "create_update_mapping_detail", column.values(mapref, excseq))
    for statement in case.before_validation:
        env.rows(statement)


def validate(env: MapperEnv, mapref: str) -> list[tuple[str | None, str, str]]:
    return [(r["trgclnm"], r["errtyp"], r["errmsg"]) for r in env.rows(
        "SELECT * FROM pkgdwmapr.validate_mapping_details(%s)", [mapref])]


def verified(env: MapperEnv, mapref: str) -> str:
    return str(env.one("SELECT lgvrfyflg FROM dms.dms_mapr WHERE mapref = %s AND curflg = 'Y'",
                       [mapref]))


@pytest.mark.parametrize("case", VALIDATION_CASES)
def test_validate_mapping_details(env: MapperEnv, case: Validation,
                                  request: pytest.FixtureRequest) -> None:
    mapref = mapref_of(request.node.callspec.id)
    define(env, mapref, case)
    expected = [(column, kind, message.replace("{mapref}", mapref))
                for column, kind, message in case.problems]
    assert validate(env, mapref) == expected
    recorded = env.rows("SELECT trgclnm, errtyp, errmsg FROM dms.dms_maperr WHERE mapref = %s"
                        " ORDER BY maperrid", [mapref])
    assert [(r["trgclnm"], r["errtyp"], r["errmsg"]) for r in recorded] == expected
    assert verified(env, mapref) == ("N" if expected else "Y")


def test_a_fixed_mapping_validates_and_its_old_problems_are_cleared(env: MapperEnv) -> None:
    mapref = "V_FIXED"
    define(env, mapref, Validation((KEY, Col("SEGMENT", "SELECT cust_id, name"
                                                        " FROM src.customer")), ()))
    assert len(validate(env, mapref)) == 1
    assert env.one("SELECT count(*) FROM dms.dms_maperr WHERE mapref = %s", [mapref]) == 1
    call(env, "create_update_mapping_detail", SEGMENT.values(mapref, 2))
    assert validate(env, mapref) == []
    assert env.one("SELECT count(*) FROM dms.dms_maperr WHERE mapref = %s", [mapref]) == 0
    assert verified(env, mapref) == "Y"


# -- validate_logic, validate_sql, create_update_sql -----------------------------------

LOGIC_CASES = [
    pytest.param(f"{CUSTOMER} WHERE segment = DWT_PARAM1", "cust_id", "name", "Y",
                 id="valid-with-dwt-param1"),
    pytest.param("SELEC cust_id FROM src.customer", None, None,
                 "cannot parse source SQL as postgres at line 1, column 18 near \"FROM\": "
                 "Invalid expression / Unexpected token",
                 id="does-not-parse"),
    pytest.param("SELECT cust_id FROM src.nope", None, None,
                 'the query fails on its connection: relation "src.nope" does not exist',
                 id="unknown-table"),
    pytest.param("SELECT cust_id, nickname FROM src.customer", None, None,
                 'the query fails on its connection: column "nickname" does not exist',
                 id="unknown-column"),
    pytest.param(CUSTOMER, "cust_id", "rating",
                 "the query returns no column rating (it returns cust_id, name, segment)",
                 id="value-column-not-returned"),
    pytest.param(CUSTOMER, "customer_no", "name",
                 "the query returns no column customer_no (it returns cust_id, name, segment)",
                 id="key-column-not-returned"),
    pytest.param("NO_SUCH_QUERY", None, None,
                 "MAPLOGIC NO_SUCH_QUERY is neither a query nor the code of a DMS_MAPRSQL row",
                 id="unknown-sql-code"),
]


@pytest.mark.parametrize(("logic", "key", "value", "answer"), LOGIC_CASES)
def test_validate_logic(env: MapperEnv, logic: str, key: str | None, value: str | None,
                        answer: str) -> None:
    assert env.one("SELECT pkgdwmapr.validate_logic(p_maplogic => %s, p_keyclnm => %s,"
                   " p_valclnm => %s)", [logic, key, value]) == answer


def test_validate_sql(env: MapperEnv) -> None:
    env.rows("SELECT pkgdwmapr.create_update_sql(p_maprsqlcd => 'GONE_Q',"
             " p_maprsql => 'SELECT cust_id FROM src.gone')")
    assert env.one("SELECT pkgdwmapr.validate_sql('gone_q')") == (
        'the query fails on its connection: relation "src.gone" does not exist')
    assert env.one("SELECT pkgdwmapr.validate_sql('NO_SUCH_Q')") == (
        "SQL code NO_SUCH_Q does not exist in DMS_MAPRSQL")
    env.rows("SELECT pkgdwmapr.create_update_sql(p_maprsqlcd => 'PARAM_Q',"
             " p_maprsql => 'SELECT cust_id FROM src.customer WHERE name = DWT_PARAM1')")
    assert env.one("SELECT pkgdwmapr.validate_sql('PARAM_Q')") == "Y"


@pytest.mark.parametrize(("code", "text", "message"), [
    pytest.param(HOSTILE, CUSTOMER,
                 """dms: SQL X"; DROP TABLE T; -- is not valid: SQL code (MAPRSQLCD) """
                 f"""'X"; DROP TABLE T; --' {NAME_RULE}""",
                 id="code-hostile"),
    pytest.param("BAD_Q", "SELEC cust_id FROM src.customer", "dms: SQL BAD_Q is not valid: "
                 'cannot parse source SQL as postgres at line 1, column 18 near "FROM": '
                 "Invalid expression / Unexpected token", id="does-not-parse"),
])
def test_create_update_sql_refuses(env: MapperEnv, code: str, text: str, message: str) -> None:
    before = env.one("SELECT count(*) FROM dms.dms_maprsql")
    err = refused(env, "SELECT pkgdwmapr.create_update_sql(p_maprsqlcd => %s, p_maprsql => %s)",
                  [code, text])
    assert err.diag.sqlstate == INVALID
    assert err.diag.message_primary == message
    assert err.diag.message_detail == "1 problem; nothing was written"
    assert env.one("SELECT count(*) FROM dms.dms_maprsql") == before


# -- activate_deactivate_mapping -------------------------------------------------------

def activation_refused(env: MapperEnv, mapref: str) -> None:
    err = refused(env, "SELECT pkgdwmapr.activate_deactivate_mapping(%s, 'A')", [mapref])
    assert err.diag.sqlstate == NOT_VERIFIED
    assert err.diag.message_primary == (
        f"dms: mapping {mapref} cannot be activated: its logic is not verified")
    assert err.diag.message_hint == (
        f"SELECT * FROM pkgdwmapr.validate_mapping_details('{mapref}') must return no "
        "problem first")
    assert env.one("SELECT stflg FROM dms.dms_mapr WHERE mapref = %s AND curflg = 'Y'",
                   [mapref]) == "N"


def test_only_a_verified_mapping_can_be_activated(env: MapperEnv) -> None:
    mapref = "V_ACTIVATE"
    define(env, mapref, Validation((KEY, NAME), ()))
    activation_refused(env, mapref)  # never validated
    call(env, "create_update_mapping_detail",
         Col("NAME", "SELECT cust_id FROM src.customer").values(mapref, 2))
    assert len(validate(env, mapref)) == 1
    activation_refused(env, mapref)  # validation found a problem
    call(env, "create_update_mapping_detail", NAME.values(mapref, 2))
    assert validate(env, mapref) == []
    call(env, "create_update_mapping_detail", SEGMENT.values(mapref, 3))
    assert verified(env, mapref) == "N"
    activation_refused(env, mapref)  # changed after it was verified
    assert validate(env, mapref) == []
    assert env.one("SELECT pkgdwmapr.activate_deactivate_mapping(%s, 'a')", [mapref]) == "A"
    assert env.one("SELECT pkgdwmapr.activate_deactivate_mapping(%s, 'N')", [mapref]) == "N"


def test_an_unknown_status_is_refused(env: MapperEnv) -> None:
    mapref = "V_STATUS"
    define(env, mapref, Validation((KEY, NAME), ()))
    err = refused(env, "SELECT pkgdwmapr.activate_deactivate_mapping(%s, 'X')", [mapref])
    assert err.diag.sqlstate == INVALID
    assert err.diag.message_primary == "dms: status must be A (active) or N (inactive), got 'X'"


def test_a_mapping_cannot_be_declared_verified_by_its_definer(env: MapperEnv) -> None:
    """LGVRFYFLG 'Y' given to create_update_mapping is refused (only validation
    sets it), so an unvalidated mapping can never be activated."""
    mapref = "V_SELF_VERIFIED"
    before = counts(env)
    err = refused(env, "SELECT pkgdwmapr.create_update_mapping(p_mapref => %s, p_mapdesc =>"
                  " 'no details', p_trgschm => 'dw', p_trgtbtyp => 'FCT', p_trgtbnm => %s,"
                  " p_lgvrfyflg => 'Y')", [mapref, mapref.lower()])
    assert err.diag.sqlstate == "22023"
    assert err.diag.message_primary == (
        f"dms: mapping {mapref} is not valid: the logic verified flag (LGVRFYFLG) is set by "
        "pkgdwmapr.validate_mapping_details, not given: pass N or leave it out")
    assert counts(env) == before


# -- job runs: a refused call leaves no row behind -------------------------------------------

RUN_SETTINGS = ("chunk_size, chunks, copy_reader, enable_parallel, enable_progress, "
                "enable_retry, max_retries, max_workers, min_rows_for_parallel, "
                "mysql_consistency, mysql_reader, mysql_zero_dates, "
                "retry_initial_delay, retry_max_delay, strategy")
KNOWN_KEYS = "known keys: params, param1 .. param10, " + RUN_SETTINGS


@pytest.fixture(scope="module")
def runnable(env: MapperEnv) -> tuple[str, str]:
    """An active FCT job and an active DIM job, both ready to run."""
    for mapref, kind in (("V_RUN_FCT", "FCT"), ("V_RUN_DIM", "DIM")):
        define(env, mapref, Validation((KEY, NAME), (), table_type=kind))
        assert validate(env, mapref) == []
        env.rows("SELECT pkgdwmapr.activate_deactivate_mapping(%s, 'A')", [mapref])
        env.rows("SELECT pkgdwjob.create_update_job(%s)", [mapref])
    return "V_RUN_FCT", "V_RUN_DIM"


def written(env: MapperEnv) -> dict[str, int]:
    """Rows of every table a job run writes."""
    return {table: int(env.one(f"SELECT count(*) FROM {table}")) for table in (
        "dms.dms_prclog", "dms.dms_joblog", "dms.dms_joberr", "dms.dms_prcreq",
        "dms.dms_jobsch", "dms.run", "dms.chunk")}


RUN_JOB = "CALL pkgdwjob.run_job(p_mapref => 'V_RUN_FCT', p_params => %s)"
REFUSED_RUNS = [
    pytest.param(RUN_JOB, ['{"maxworkers": 4}'],
                 'dms: unknown key "maxworkers" in p_params; did you mean "max_workers"?',
                 KNOWN_KEYS, id="run_job-unknown-key"),
    pytest.param(RUN_JOB, ['{"param11": "x"}'],
                 'dms: unknown key "param11" in p_params; did you mean "param1"?',
                 KNOWN_KEYS, id="run_job-param11"),
    pytest.param(RUN_JOB, ['{"max_workers": 0}'],
                 "dms: max_workers must be from 1 to 64, got 0 (from p_params)",
                 "max_workers: parallel sessions; capped by the server's free connections",
                 id="run_job-max-workers-0"),
    pytest.param(RUN_JOB, ['{"chunk_size": "many"}'],
                 'dms: chunk_size must be a number (from 1 to 1e+09), got "many", a string'
                 " (from p_params)",
                 'write the number without quotes, for example {"chunk_size": 100000}',
                 id="run_job-chunk-size-text"),
    pytest.param(RUN_JOB, ['{"params": "2026-01-01"}'],
                 "dms: params must be a list of at most 10 values",
                 """for example p_params => '{"params": ["2026-01-01"]}'""",
                 id="run_job-params-not-a-list"),
    pytest.param(RUN_JOB, ['{"key": "name"}'],
                 "dms: setting key is decided by the job flow and cannot be given to a job run",
                 "run settings: " + RUN_SETTINGS, id="run_job-key"),
    pytest.param(RUN_JOB, ['{"if_busy": "queue"}'],
                 "dms: setting if_busy cannot be given to a job run: a job refuses a target "
                 "another run is loading", "run settings: " + RUN_SETTINGS, id="run_job-if-busy"),
    pytest.param(RUN_JOB, ['{"snapshot": false}'],
                 "dms: setting snapshot is always on for a job run: its chunks and its "
                 "checkpoint are read as of one moment", "run settings: " + RUN_SETTINGS,
                 id="run_job-snapshot"),
    pytest.param(RUN_JOB, ['{"strategy": "ctid"}'],
                 "dms: strategy ctid cannot be used by a job run: a job's chunks are cut on the "
                 "business key, so that one key is never merged by two chunks",
                 "strategies: auto, key_range, quantile, hash, offset, single",
                 id="run_job-ctid"),
    pytest.param(RUN_JOB, ['[4]'], "dms: p_params must be a JSON object, got list",
                 """for example p_params => '{"max_workers": 4}'""", id="run_job-not-an-object"),
    pytest.param("CALL pkgdwjob.run_job(p_mapref => %s)", ["V_NO_SUCH_JOB"],
                 "dms: mapping V_NO_SUCH_JOB has no job",
                 "create it with SELECT pkgdwjob.create_update_job('V_NO_SUCH_JOB')",
                 id="run_job-unknown-mapref"),
    pytest.param("CALL pkgdwprc.process_job_flow(p_mapref => %s, p_param1 => 'x')",
                 ["V_NO_SUCH_JOB"], "dms: mapping V_NO_SUCH_JOB has no job",
                 "create it with SELECT pkgdwjob.create_update_job('V_NO_SUCH_JOB')",
                 id="process_job_flow-unknown-mapref"),
    pytest.param("CALL pkgdwprc.process_historical_data(p_mapref => 'V_RUN_FCT',"
                 " p_strtdt => %s, p_enddt => '2026-01-31', p_tl_flg => 'X')", ["2026-01-01"],
                 "dms: p_tl_flg must be Y (empty the target first) or N, got 'X'", None,
                 id="historical-bad-flag"),
    pytest.param("CALL pkgdwprc.process_historical_data(p_mapref => 'V_RUN_FCT',"
                 " p_strtdt => %s, p_enddt => '2026-01-31')", ["2026-02-01"],
                 "dms: p_enddt 2026-01-31 is before p_strtdt 2026-02-01", None,
                 id="historical-period-reversed"),
    pytest.param("CALL pkgdwprc.process_historical_data(p_mapref => 'V_RUN_FCT',"
                 " p_strtdt => %s, p_enddt => NULL)", ["2026-02-01"],
                 "dms: a historical load needs its period: p_strtdt and p_enddt",
                 "the job's queries read them as DWT_PARAM1 and DWT_PARAM2",
                 id="historical-no-end"),
    pytest.param("CALL pkgdwprc.process_historical_data(p_mapref => 'V_RUN_DIM',"
                 " p_strtdt => %s, p_enddt => '2026-01-31', p_tl_flg => 'Y')", ["2026-01-01"],
                 "dms: job V_RUN_DIM loads a dimension: emptying it first would drop its history",
                 "call process_historical_data with p_tl_flg => 'N' for a DIM",
                 id="historical-truncate-a-dim"),
    pytest.param("SELECT pkgdwprc.schedule_job_immediate(%s)", ["V_NO_SUCH_JOB"],
                 "dms: mapping V_NO_SUCH_JOB has no job",
                 "create it with SELECT pkgdwjob.create_update_job('V_NO_SUCH_JOB')",
                 id="schedule_job_immediate-unknown-mapref"),
]


@pytest.mark.parametrize(("statement", "params", "message", "hint"), REFUSED_RUNS)
def test_a_refused_job_run_writes_nothing(
        env: MapperEnv, runnable: tuple[str, str], login_role: Any, statement: str,
        params: list[Any], message: str, hint: str | None) -> None:
    operator = login_role("dms_operator")  # a login with only the role that runs jobs
    before = written(env)
    try:
        with pytest.raises(psycopg.Error) as err:
            env.rows(statement, params, user=operator)
    finally:
        with env.connect() as conn:
            conn.execute(f'DROP OWNED BY "{operator}"')
    assert (err.value.diag.sqlstate, err.value.diag.message_primary,
            err.value.diag.message_hint) == (
        "42704" if "no job" in message else INVALID, message, hint)
    assert written(env) == before


def test_a_bad_engine_setting_in_dms_params_refuses_the_run_before_it_starts(
        env: MapperEnv, runnable: tuple[str, str]) -> None:
    before = written(env)
    with env.connect() as conn:
        conn.execute("INSERT INTO dms.dms_params (prtyp, prcd, prdesc, prval) VALUES"
                     " ('PARALLEL', 'MAPPER_MAX_WORKERS', 'a typo', 'four')")
        try:
            err = refused(env, "CALL pkgdwjob.run_job(p_mapref => 'V_RUN_FCT')")
        finally:
            conn.execute("DELETE FROM dms.dms_params WHERE prtyp = 'PARALLEL'"
                         " AND prcd = 'MAPPER_MAX_WORKERS'")
    assert (err.diag.sqlstate, err.diag.message_primary) == (
        INVALID, "dms: max_workers must be from 1 to 64, got 'four' (from DMS_PARAMS)")
    assert written(env) == before


REFUSED_SCHEDULES = [
    pytest.param("SELECT pkgdwprc.create_job_dependency(%s, 'V_RUN_FCT')", ["V_RUN_FCT"],
                 "dms: job V_RUN_FCT cannot depend on itself", id="dependency-on-itself"),
    pytest.param("SELECT pkgdwprc.create_job_dependency(%s, 'V_NO_SUCH_JOB')", ["V_RUN_FCT"],
                 "dms: mapping V_NO_SUCH_JOB has no job", id="dependency-unknown-child"),
    pytest.param("SELECT pkgdwprc.create_job_schedule(p_mapref => %s, p_frqcd => 'WK',"
                 " p_frqhh => 2, p_frqmi => 30)", ["V_RUN_FCT"],
                 "dms: a WK schedule needs the weekday (FRQDD)",
                 id="schedule-without-weekday"),
    pytest.param("SELECT pkgdwprc.enable_disable_schedule(%s, 'SOMETIMES')", ["V_RUN_FCT"],
                 "dms: p_action must be ENABLE (E) or DISABLE (D), got 'SOMETIMES'",
                 id="enable-disable-bad-action"),
]


@pytest.mark.parametrize(("statement", "params", "message"), REFUSED_SCHEDULES)
def test_a_refused_schedule_call_writes_nothing(
        env: MapperEnv, runnable: tuple[str, str], login_role: Any, statement: str,
        params: list[Any], message: str) -> None:
    admin = login_role("dms_admin")  # schedules are set up by administrators
    before = written(env)
    try:
        with pytest.raises(psycopg.Error) as err:
            env.rows(statement, params, user=admin)
    finally:
        with env.connect() as conn:
            conn.execute(f'DROP OWNED BY "{admin}"')
    assert err.value.diag.message_primary == message
    assert written(env) == before
