"""ROWID-range chunks: the extent SQL, sizing by chunk_size, and one chunk
query from the planner through AS OF SCN to the COPY query -- the pieces
must agree on the ROWID predicate and its binds."""

from __future__ import annotations

from typing import Any

import pytest
import sqlglot
from sqlglot import exp

from dms_pkg.backends.oracle import OracleBackend, OracleSource
from dms_pkg.backends.oracle_copy import copy_layout
from dms_pkg.backends.oracle_rowid import (
    bounds_input,
    chunk_count,
    extent_ranges_sql,
    ranges_from_rows,
)
from dms_pkg.backends.oracle_scn import as_of_scn
from dms_pkg.backends.oracle_types import OracleColumn, table_stats_sql
from dms_pkg.chunking import plan_query
from dms_pkg.chunking.plan import MAX_CHUNKS
from dms_pkg.errors import DmsError

RANGES = [
    ("AAAR1AAEAAAAAIAAA", "AAAR1AAEAAAAAPH/8"),
    ("AAAR1AAEAAAAAQAAA", "AAAR1AAEAAAAAXH/8"),
    ("AAAR1BAEAAAAAYAAA", "AAAR1BAEAAAAAfH/8"),
]


@pytest.mark.parametrize(("rows", "chunk_size", "n"), [
    (None, 100_000, 1), (0, 100_000, 1), (1, 100_000, 1), (100_000, 100_000, 1),
    (100_001, 100_000, 2), (2_000_000, 250_000, 8), (10**12, 1, MAX_CHUNKS),
])
def test_chunk_count_gives_about_chunk_size_rows_per_group(
    rows: int | None, chunk_size: int, n: int
) -> None:
    assert chunk_count(rows, chunk_size) == n


@pytest.mark.parametrize("bad", [0, -5, True, 1.5])
def test_chunk_size_must_be_positive(bad: Any) -> None:
    with pytest.raises(DmsError) as err:
        chunk_count(10, bad)
    assert err.value.message == f"chunk_size must be a positive integer, got {bad!r}"


def test_extent_sql_lists_table_segments_and_builds_rowids() -> None:
    own = extent_ranges_sql("ORDERS", 2_000_000, 250_000)
    dba = extent_ranges_sql("ORDERS", 2_000_000, 250_000, owner="SALES")
    assert own.params == {"dms_n": 8, "dms_table": "ORDERS"}
    assert dba.params == {"dms_n": 8, "dms_table": "ORDERS", "dms_owner": "SALES"}
    assert own.columns == ("grp", "data_object_id", "lo_rid", "hi_rid")
    for query, views in ((own, ("user_extents", "user_objects")),
                         (dba, ("dba_extents", "dba_objects"))):
        tree = sqlglot.parse_one(query.sql, read="oracle")
        tables = {t.name for t in tree.find_all(exp.Table)}
        assert tables == set(views)
        created = [f for f in tree.find_all(exp.Anonymous) if f.name.upper() == "ROWID_CREATE"]
        assert len(created) == 2 and query.sql.count("DBMS_ROWID.ROWID_CREATE(1, ") == 2
        assert "ORDERS" not in query.sql and "SALES" not in query.sql  # bound, never pasted
        # Only the table's own segments: an index may share its name.
        assert "AND o.object_type = e.segment_type" in query.sql
        assert "e.segment_type IN ('TABLE', 'TABLE PARTITION', 'TABLE SUBPARTITION')" in query.sql
        # Bigfile tablespaces (RELATIVE_FNO 1024) encode the block number in
        # the ROWID's file and block parts.
        assert "CASE WHEN e.relative_fno = 1024 THEN TRUNC(e.block_id / 4194304)" in query.sql
        assert "CASE WHEN e.relative_fno = 1024 THEN MOD(e.block_id, 4194304)" in query.sql
        assert "* :dms_n / SUM(e.blocks) OVER ()" in query.sql
    assert "AND e.owner = :dms_owner" in dba.sql and "AND o.owner = e.owner" in dba.sql


def test_rows_of_the_extent_query_become_the_planners_input() -> None:
    rows = [(0, 7301, *RANGES[0]), (1, 7301, *RANGES[1]), (1, 7302, *RANGES[2]),
            (2, 7303, None, None)]
    assert ranges_from_rows(rows) == RANGES
    stats = bounds_input(rows, 3_000)
    assert (tuple(stats.rowid_ranges), stats.row_count) == (tuple(RANGES), 3_000)


def test_planner_rowid_chunks_read_at_the_scn_and_render_as_copy_text() -> None:
    sql = "SELECT o.id, o.note FROM sales.orders o WHERE o.status = 'OPEN'"
    plan = plan_query(sql, "oracle", None, None, "rowid", bounds_input(
        [(i, 1, lo, hi) for i, (lo, hi) in enumerate(RANGES)], 3_000))
    assert plan.strategy == "rowid" and len(plan.chunks) == 3
    columns = [OracleColumn("ID", "DB_TYPE_NUMBER", 10, 0),
               OracleColumn("NOTE", "DB_TYPE_VARCHAR", size=100, byte_size=100)]
    for chunk, (lo, hi) in zip(plan.chunks, RANGES, strict=True):
        assert chunk.predicate_sql == "o.ROWID BETWEEN :dms_lo AND :dms_hi"
        assert chunk.params == {"dms_lo": lo, "dms_hi": hi}
        at_scn = as_of_scn(chunk.query_sql, 55_000)
        assert at_scn.sql == (
            "SELECT o.id, o.note FROM sales.orders AS OF SCN :dms_scn o "
            "WHERE o.status = 'OPEN' AND o.ROWID BETWEEN :dms_lo AND :dms_hi")
        layout = copy_layout(at_scn.sql, columns)
        assert layout.single_line
        tree = sqlglot.parse_one(layout.sql, read="oracle")
        binds = {p.name for p in tree.find_all(exp.Placeholder)}
        assert binds == {"dms_scn", "dms_lo", "dms_hi"} == {*chunk.params, *at_scn.params}


def test_minus_stays_minus_for_oracle_before_21c() -> None:
    sql = "SELECT id FROM a MINUS SELECT id FROM b"
    assert as_of_scn(sql, 1).sql == (
        "SELECT id FROM a AS OF SCN :dms_scn MINUS SELECT id FROM b AS OF SCN :dms_scn")
    plan = plan_query(sql, "oracle", "id", 2, "hash")
    assert all(" MINUS " in c.query_sql and "EXCEPT" not in c.query_sql for c in plan.chunks)


class ScriptedSource(OracleSource):
    """Answers the planner's statements as an Oracle dictionary would (no
    server here); records what ran."""

    def __init__(self, answers: list[list[tuple[Any, ...]]]) -> None:
        super().__init__(None)
        self.answers = answers
        self.ran: list[tuple[str, dict[str, Any]]] = []

    def fetch(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        self.ran.append((sql, dict(params or {})))
        return self.answers.pop(0)


def test_rowid_bounds_sizes_groups_from_the_statistics() -> None:
    extents = [(i, 1, lo, hi) for i, (lo, hi) in enumerate(RANGES)]
    source = ScriptedSource([[(1_000_000, 1_000, 1_500, None)], extents])
    stats = OracleBackend.rowid_bounds(source, "ORDERS", 500_000, owner="SALES")
    assert tuple(stats.rowid_ranges) == tuple(RANGES) and stats.row_count == 1_500_000
    assert source.ran[0] == (table_stats_sql(owner=True),
                             {"dms_table": "ORDERS", "dms_owner": "SALES"})
    assert source.ran[1][1] == {"dms_n": 3, "dms_table": "ORDERS", "dms_owner": "SALES"}


def test_rowid_bounds_counts_a_table_never_analyzed_at_the_scn() -> None:
    source = ScriptedSource([[(None, None, 8, None)], [(250,)], []])
    stats = OracleBackend.rowid_bounds(source, "ORDERS", 100, scn=77)
    assert stats.row_count == 250 and tuple(stats.rowid_ranges) == ()
    assert source.ran[1] == ('SELECT COUNT(*) FROM "ORDERS" AS OF SCN :dms_scn', {"dms_scn": 77})
    assert source.ran[2][1] == {"dms_n": 3, "dms_table": "ORDERS"}
    assert OracleBackend.count_sql("Order Lines", owner="Sales") == (
        'SELECT COUNT(*) FROM "Sales"."Order Lines"')
