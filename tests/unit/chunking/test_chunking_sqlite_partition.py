"""Run rendered chunk SQL in an in-process SQLite database (no server) and check
that the chunks' rows are exactly the rows of the original query.

This ties the three layers together — where the predicate is injected, how it
is rendered, and the bounds — against a real SQL engine's NULL semantics.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dms_pkg.chunking import BoundsInput, ChunkPlan, plan_query
from dms_pkg.chunking.boundaries import sorted_non_null


@pytest.fixture
def db() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:")
    yield conn
    conn.close()


def load(conn: sqlite3.Connection, rows: list[tuple[int | None, int | None, str]]) -> None:
    conn.execute('CREATE TABLE "Orders" (k INTEGER, k2 INTEGER, "Note" TEXT, cust INTEGER)')
    conn.execute("CREATE TABLE cust (id INTEGER, name TEXT)")
    conn.executemany(
        'INSERT INTO "Orders" (k, k2, "Note", cust) VALUES (?, ?, ?, ?)',
        [(k, k2, note, (k or 0) % 3) for k, k2, note in rows],
    )
    conn.executemany("INSERT INTO cust VALUES (?, ?)", [(0, "a"), (1, "b%")])


def rows_of(conn: sqlite3.Connection, plan: ChunkPlan, sql: str) -> None:
    whole = Counter(conn.execute(sql).fetchall())
    parts: Counter[tuple[object, ...]] = Counter()
    for chunk in plan.chunks:
        parts.update(conn.execute(chunk.query_sql, chunk.params).fetchall())
    assert parts == whole


QUERIES = [
    'SELECT o.k, o."Note", c.name FROM "Orders" o LEFT JOIN cust c ON o.cust = c.id',
    'WITH x AS (SELECT k AS key1, k2, "Note" FROM "Orders" WHERE "Note" LIKE \'n%\') '
    "SELECT key1, k2 FROM x",
    'SELECT s.k, s.k2 FROM (SELECT k, k2 FROM "Orders") s',
    'SELECT k, COUNT(*) FROM "Orders" GROUP BY k',
    'SELECT k, "Note" FROM "Orders" UNION ALL SELECT k2, "Note" FROM "Orders"',
]

keys = st.one_of(st.none(), st.integers(-5, 5), st.just(3))
rows = st.lists(st.tuples(keys, keys, st.sampled_from(["n1", "n2", "x"])), max_size=60)


@settings(max_examples=60, deadline=None)
@given(data=rows, n=st.integers(1, 6), query=st.sampled_from(QUERIES))
def test_range_chunks_partition_the_result(
    data: list[tuple[int | None, int | None, str]], n: int, query: str
) -> None:
    conn = sqlite3.connect(":memory:")
    try:
        load(conn, data)
        key = "key1" if "key1" in query else "k"
        values = [r[0] for r in data]
        present = sorted_non_null(values)
        stats = BoundsInput(
            key_kind="int",
            min_value=present[0] if present else None,
            max_value=present[-1] if present else None,
            row_count=len(values),
            sample=values,
        )
        for strategy in ("key_range", "quantile"):
            plan = plan_query(query, "sqlite", key, n, strategy, stats)
            assert plan.refused_reason is None
            rows_of(conn, plan, query)
        composite = plan_query(
            'SELECT k, k2 FROM "Orders"',
            "sqlite",
            "k, k2",
            n,
            "quantile",
            BoundsInput(sample=[(r[0], r[1]) for r in data], row_count=len(data)),
        )
        rows_of(conn, composite, 'SELECT k, k2 FROM "Orders"')
        offset = plan_query(
            'SELECT rowid, k FROM "Orders"',
            "sqlite",
            "rowid",
            n,
            "offset",
            BoundsInput(row_count=len(data)),
        )
        rows_of(conn, offset, 'SELECT rowid, k FROM "Orders"')
    finally:
        conn.close()


def test_implicit_rowid_key_without_a_user_key(db: sqlite3.Connection) -> None:
    load(db, [(i, None, "n") for i in range(50)])
    sql = 'SELECT k FROM "Orders"'
    plan = plan_query(
        sql,
        "sqlite",
        None,
        4,
        "auto",
        BoundsInput(key_kind="int", min_value=1, max_value=50, row_count=50),
    )
    assert plan.strategy == "key_range"
    assert plan.key == "rowid"
    assert plan.chunks[1].predicate_sql == '"Orders".rowid >= :dms_lo AND "Orders".rowid < :dms_hi'
    rows_of(db, plan, sql)
