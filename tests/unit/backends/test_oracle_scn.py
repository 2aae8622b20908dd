"""One SCN for every worker: the SCN statements and the AS OF SCN rewrite,
compared as exact SQL and parsed back with sqlglot."""

from __future__ import annotations

from typing import Any

import oracledb
import pytest
import sqlglot
from oracledb import errors as ora_errors
from sqlglot import exp

from dms_pkg.backends.oracle_scn import (
    CURRENT_SCN_SQL,
    FALLBACK_SCN_SQL,
    as_of_scn,
    current_scn,
    current_scn_sql,
)
from dms_pkg.errors import DmsError

AS_OF = "AS OF SCN :dms_scn"


def rewritten(sql: str, scn: int = 4711) -> str:
    result = as_of_scn(sql, scn)
    assert result.params == {"dms_scn": scn}
    sqlglot.parse_one(result.sql, read="oracle")  # well-formed Oracle SQL
    return result.sql


def versioned_tables(sql: str) -> list[str]:
    tree = sqlglot.parse_one(sql, read="oracle")
    return [t.sql(dialect="oracle").split(" AS OF")[0] for t in tree.find_all(exp.Table)
            if t.args.get("version") is not None]


def test_scn_statements() -> None:
    assert current_scn_sql() == "SELECT CURRENT_SCN FROM V$DATABASE"
    assert current_scn_sql(fallback=True) == (
        "SELECT DBMS_FLASHBACK.GET_SYSTEM_CHANGE_NUMBER FROM DUAL")
    for sql in (CURRENT_SCN_SQL, FALLBACK_SCN_SQL):
        sqlglot.parse_one(sql, read="oracle")


def test_join_reads_both_tables_at_the_scn_and_keeps_the_chunk_binds() -> None:
    sql = ("SELECT o.id, c.name FROM sales.orders o JOIN customers c ON c.id = o.cid "
           "LEFT JOIN regions r ON r.id = c.rid WHERE o.ROWID BETWEEN :dms_lo AND :dms_hi")
    assert rewritten(sql) == (
        f"SELECT o.id, c.name FROM sales.orders {AS_OF} o JOIN customers {AS_OF} c "
        f"ON c.id = o.cid LEFT JOIN regions {AS_OF} r ON r.id = c.rid "
        "WHERE o.ROWID BETWEEN :dms_lo AND :dms_hi")


def test_cte_names_are_left_alone_and_their_bodies_rewritten() -> None:
    sql = ("WITH recent AS (SELECT * FROM orders WHERE d > SYSDATE - 1), "
           "big AS (SELECT * FROM recent WHERE amount > 100) "
           "SELECT b.id FROM big b JOIN recent r ON r.id = b.id")
    assert rewritten(sql) == (
        f"WITH recent AS (SELECT * FROM orders {AS_OF} WHERE d > SYSDATE - 1), "
        "big AS (SELECT * FROM recent WHERE amount > 100) "
        "SELECT b.id FROM big b JOIN recent r ON r.id = b.id")


def test_a_cte_is_visible_only_after_it_is_defined() -> None:
    # In the first CTE, "b" is still the stored table b; later it is the CTE.
    sql = "WITH a AS (SELECT * FROM b), b AS (SELECT * FROM a) SELECT * FROM b"
    assert versioned_tables(rewritten(sql)) == ["b"]
    # A schema-qualified name is a stored table even where a CTE has that name.
    sql = "WITH orders AS (SELECT 1 AS x FROM dual) SELECT * FROM orders, sales.orders s"
    assert versioned_tables(rewritten(sql)) == ["sales.orders"]


def test_recursive_cte_refers_to_itself() -> None:
    sql = ("WITH tree (id, parent) AS (SELECT id, parent FROM nodes WHERE parent IS NULL "
           "UNION ALL SELECT n.id, n.parent FROM nodes n JOIN tree t ON n.parent = t.id) "
           "SELECT * FROM tree")
    assert versioned_tables(rewritten(sql)) == ["nodes", "nodes"]


def test_subqueries_everywhere_read_at_the_scn() -> None:
    sql = ('SELECT x."Id", (SELECT COUNT(*) FROM lines l WHERE l.oid = x."Id") AS n '
           'FROM "Sales"."Order Lines" x, (SELECT MAX(id) AS m FROM t) y '
           "WHERE x.a IN (SELECT a FROM u) AND EXISTS (SELECT 1 FROM v WHERE v.a = x.a)")
    assert rewritten(sql) == (
        f'SELECT x."Id", (SELECT COUNT(*) FROM lines {AS_OF} l WHERE l.oid = x."Id") AS n '
        f'FROM "Sales"."Order Lines" {AS_OF} x, (SELECT MAX(id) AS m FROM t {AS_OF}) y '
        f"WHERE x.a IN (SELECT a FROM u {AS_OF}) "
        f"AND EXISTS(SELECT 1 FROM v {AS_OF} WHERE v.a = x.a)")


def test_quoted_names_are_kept_exactly() -> None:
    assert rewritten('SELECT "id" FROM "MixedCase"."lower table"') == (
        f'SELECT "id" FROM "MixedCase"."lower table" {AS_OF}')
    # A quoted "RECENT" is the CTE recent (unquoted names fold to upper case).
    sql = 'WITH recent AS (SELECT 1 AS x FROM dual) SELECT * FROM "RECENT", "recent"'
    assert versioned_tables(rewritten(sql)) == ['"recent"']


def test_set_operations_partitions_and_user_points_in_time() -> None:
    assert rewritten("SELECT a FROM t1 UNION ALL SELECT a FROM t2 MINUS SELECT a FROM t3") == (
        f"SELECT a FROM t1 {AS_OF} UNION ALL SELECT a FROM t2 {AS_OF} "
        f"MINUS SELECT a FROM t3 {AS_OF}")
    assert rewritten("SELECT * FROM t PARTITION (p1) x") == (
        f"SELECT * FROM t PARTITION(p1) {AS_OF} x")
    # The user asked for a point of their own: kept.
    assert rewritten("SELECT * FROM t AS OF TIMESTAMP SYSTIMESTAMP - 1 a, u b") == (
        f"SELECT * FROM t AS OF TIMESTAMP SYSTIMESTAMP - 1 a, u {AS_OF} b")


def test_dual_and_table_functions_are_not_versioned() -> None:
    assert rewritten("SELECT SYSDATE FROM dual") == "SELECT SYSDATE FROM dual"
    assert rewritten("SELECT 1 FROM sys.dual") == "SELECT 1 FROM sys.dual"
    assert versioned_tables(rewritten("SELECT * FROM TABLE(f()) x, t")) == ["t"]


def test_a_database_link_is_refused() -> None:
    with pytest.raises(DmsError) as err:
        as_of_scn("SELECT * FROM sales.orders@erp o", 1)
    assert err.value.sqlstate == "0A000"
    assert err.value.message == (
        "sales.orders@erp is read over a database link: AS OF SCN reads this database's SCN, "
        "which the remote database does not share")


@pytest.mark.parametrize("scn", [-1, True, "42", 4.2, None])
def test_an_scn_must_be_a_non_negative_integer(scn: Any) -> None:
    with pytest.raises(DmsError) as err:
        as_of_scn("SELECT 1 FROM t", scn)
    assert err.value.sqlstate == "22023"
    assert err.value.message == f"an SCN must be a non-negative integer, got {scn!r}"


class ScnConnection:
    """Stands in for an oracledb connection (no server here): each statement
    returns a row or raises the driver's own error for the ORA number given."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.ran: list[str] = []
        self.row: Any = None

    def cursor(self) -> ScnConnection:
        return self

    def __enter__(self) -> ScnConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, sql: str) -> None:
        self.ran.append(sql)
        answer = self.answers[sql]
        if isinstance(answer, int) and answer < 0:
            code = -answer
            error = ora_errors._Error(f"ORA-{code:05d}: refused", code=code)
            raise error.exc_type(error)
        self.row = (answer,)

    def fetchone(self) -> Any:
        return self.row


def test_current_scn_reads_v_database_first() -> None:
    conn = ScnConnection({CURRENT_SCN_SQL: 123456789012})
    assert current_scn(conn) == 123456789012
    assert conn.ran == [CURRENT_SCN_SQL]


def test_current_scn_falls_back_to_dbms_flashback_when_v_database_is_not_granted() -> None:
    conn = ScnConnection({CURRENT_SCN_SQL: -942, FALLBACK_SCN_SQL: 987})
    assert current_scn(conn) == 987
    assert conn.ran == [CURRENT_SCN_SQL, FALLBACK_SCN_SQL]


def test_current_scn_names_both_grants_when_neither_is_granted() -> None:
    conn = ScnConnection({CURRENT_SCN_SQL: -942, FALLBACK_SCN_SQL: -904})
    with pytest.raises(DmsError) as err:
        current_scn(conn)
    assert err.value.sqlstate == "42501"
    assert err.value.message == ("cannot read the Oracle SCN for a consistent read: "
                                 "ORA-00942: refused; ORA-00904: refused")
    assert err.value.hint is not None and "GRANT SELECT ON V_$DATABASE" in err.value.hint
    assert "GRANT EXECUTE ON DBMS_FLASHBACK" in err.value.hint


def test_current_scn_passes_other_errors_on() -> None:
    conn = ScnConnection({CURRENT_SCN_SQL: -3113})
    with pytest.raises(DmsError) as err:
        current_scn(conn)
    assert (err.value.sqlstate, err.value.message) == (
        "08006", "cannot read the Oracle SCN: ORA-03113: refused")
    assert isinstance(oracledb.DatabaseError, type)
