"""The planner's invariant on real servers: the chunks partition the result.

For generated tables (every key type, NULL keys, duplicates, one value on
90 % of the rows, composite keys, gaps, empty and one-row tables) and
queries (plain, filtered, joins with filters, subqueries, CTEs), against a
real PostgreSQL, a real SQLite file and a real MariaDB: for every strategy
that accepts the query, the multiset union of the chunks' rows equals the
unsplit query's rows, and no row (by its unique rid) is in two chunks.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dms_pkg.chunking import safety
from dms_pkg.chunking.planner import plan_chunks
from dms_pkg.errors import DmsError
from tests.integration.chunk_backends import (
    KEY_TYPES,
    Backend,
    connect_mysql,
    connect_postgres,
    connect_sqlite,
)
from tests.integration.conftest import Cluster, DatabaseFactory

BACKENDS = ("postgres", "mysql", "sqlite")


@pytest.fixture(scope="module")
def backends(
    cluster: Cluster, databases: DatabaseFactory, mariadb: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Backend]]:
    pg = connect_postgres(cluster.dsn(databases.create()))
    name = f"dmst_chunk_{uuid.uuid4().hex[:8]}"
    admin = pymysql.connect(**mariadb)
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    my = connect_mysql({**mariadb, "database": name})
    lite = connect_sqlite(str(Path(tmp_path_factory.mktemp("sqlite")) / "source.db"))
    yield {"postgres": pg, "mysql": my, "sqlite": lite}
    for backend in (pg, my, lite):
        backend.conn.close()
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE {name}")
    admin.close()


# ---------------------------------------------------------------- data
_BASE_DATE = dt.date(2020, 1, 1)
_BASE_TS = dt.datetime(2020, 1, 1, 12, 0, 0)


def _value(key_type: str, i: int) -> Any:
    """A value of ``key_type`` that orders like the integer ``i`` (gaps preserved)."""
    if key_type in ("int", "bigint"):
        return i * (10**12 if key_type == "bigint" else 1)
    if key_type == "numeric":
        return decimal.Decimal(i) / 8
    if key_type == "text":
        # Mixed case and a '%' to exercise escaping; same order in every backend
        # (code-point order, which each test database uses for its text).
        return f"K%{i + 500:04d}"
    if key_type == "uuid":
        return uuid.UUID(int=(i + 2_000_000) * 2**80 + i + 2_000_000)
    if key_type == "date":
        return _BASE_DATE + dt.timedelta(days=i // 300)  # ±9 years; duplicates are welcome
    return _BASE_TS + dt.timedelta(seconds=i * 3601, microseconds=i * 7)


@st.composite
def key_columns(draw: st.DrawFn) -> list[int | None]:
    """Key values as ordinal ints (None = NULL): duplicates, gaps, skew, NULLs."""
    n = draw(st.integers(0, 40))
    shape = draw(st.sampled_from(["spread", "hot", "dups", "nulls"]))
    if shape == "hot" and n:
        hot = draw(st.integers(-50, 50))
        return [hot if draw(st.integers(0, 9)) else draw(st.integers(-200, 200))
                for _ in range(n)]
    if shape == "dups":
        return [draw(st.integers(0, 3)) for _ in range(n)]
    if shape == "nulls":
        return [draw(st.one_of(st.none(), st.integers(-100, 100))) for _ in range(n)]
    return [draw(st.integers(-10**6, 10**6)) for _ in range(n)]


def _rows(key_type: str, k1: list[int | None], k2: list[int | None]) -> list[tuple[Any, ...]]:
    return [
        (rid,
         None if a is None else _value(key_type, a),
         None if b is None else _value("text", b),
         None if rid % 7 == 0 else f"v{rid % 4}")
        for rid, (a, b) in enumerate(zip(k1, k2, strict=False), start=1)
    ]


QUERIES = {
    "plain": ("SELECT rid, k1, v FROM t", "k1"),
    "filter": ("SELECT rid, k1, v FROM t WHERE v <> 'v2' OR v IS NULL", "k1"),
    "join": ("SELECT t.rid, t.k1, d.grp FROM t JOIN d ON d.id = t.rid % 3 "
             "WHERE d.grp <> 'g1'", "t.k1"),
    "subquery": ("SELECT s.rid, s.k1 FROM (SELECT rid, k1 FROM t WHERE rid > 2) s", "k1"),
    "cte": ("WITH c AS (SELECT rid, k1, v FROM t WHERE v IS NOT NULL) "
            "SELECT rid, k1, v FROM c", "k1"),
}

_WIDTH = {"int", "bigint", "numeric", "date", "timestamp"}


def _strategies(backend: str, key_type: str) -> list[tuple[str, str | None]]:
    """(strategy, key) pairs to try; key None = let the planner choose (PK / ctid)."""
    out: list[tuple[str, str | None]] = [("auto", "k1"), ("quantile", "k1"), ("auto", None)]
    kind = "text" if backend == "sqlite" and key_type in ("date", "timestamp", "uuid") else key_type
    if kind in _WIDTH:
        out.append(("key_range", "k1"))
    if backend != "sqlite":
        out.append(("hash", "k1"))
    out.append(("offset", "rid"))
    if backend == "postgres":
        out.append(("ctid", None))
    return out


def _check_partition(backend: Backend, sql: str, key: str | None, strategy: str,
                     n: int) -> None:
    whole = backend.execute(sql)
    plan = plan_chunks(backend.source(), sql, key=key, n_chunks=n, strategy=strategy)
    assert plan.refused_reason is None, plan.refused_reason
    parts: Counter[tuple[Any, ...]] = Counter()
    seen: set[Any] = set()
    source = backend.source()
    for chunk in plan.chunks:
        rows = source.fetch(chunk.query_sql, chunk.params)
        for row in rows:
            assert row[0] not in seen, f"rid {row[0]} in two chunks ({plan.strategy})"
            seen.add(row[0])
        parts.update(rows)
    assert parts == Counter(whole), (plan.strategy, [c.query_sql for c in plan.chunks])


_SETTINGS = settings(
    max_examples=12, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("key_type", KEY_TYPES)
@_SETTINGS
@given(k1=key_columns(), n=st.integers(1, 7), query=st.sampled_from(sorted(QUERIES)))
def test_chunks_partition_the_result(
    backends: dict[str, Backend], backend_name: str, key_type: str,
    k1: list[int | None], n: int, query: str,
) -> None:
    backend = backends[backend_name]
    backend.load(key_type, _rows(key_type, k1, [None] * len(k1)))
    sql, key_column = QUERIES[query]
    for strategy, key in _strategies(backend_name, key_type):
        chosen_key = key_column if key == "k1" else key
        if strategy == "offset" and query == "join":
            # A join can repeat a key, so OFFSET windows are refused there.
            plan = plan_chunks(backend.source(), sql, key="t.rid", n_chunks=n, strategy=strategy)
            assert (plan.strategy, plan.refused_reason) == ("single", safety.OFFSET_JOIN)
            continue
        _check_partition(backend, sql, chosen_key, strategy, n)


@pytest.mark.parametrize("backend_name", BACKENDS)
@_SETTINGS
@given(k1=key_columns(), k2=key_columns(), n=st.integers(1, 6))
def test_composite_keys_partition_the_result(
    backends: dict[str, Backend], backend_name: str,
    k1: list[int | None], k2: list[int | None], n: int,
) -> None:
    size = min(len(k1), len(k2))
    backend = backends[backend_name]
    backend.load("int", _rows("int", k1[:size], k2[:size]))
    for sql in ("SELECT rid, k1, k2, v FROM t", "SELECT rid, k1, k2 FROM t WHERE rid % 2 = 0"):
        for strategy in ("auto", "quantile"):
            _check_partition(backend, sql, "k1, k2", strategy, n)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_empty_and_one_row_tables(backends: dict[str, Backend], backend_name: str) -> None:
    backend = backends[backend_name]
    for rows in ([], [(1, 5, None, "only")]):
        backend.load("int", rows)
        for strategy, key in _strategies(backend_name, "int"):
            _check_partition(backend, "SELECT rid, k1, v FROM t", key or None, strategy, 4)


def test_refused_query_runs_as_one_chunk_with_reason(backends: dict[str, Backend]) -> None:
    backend = backends["postgres"]
    backend.load("int", [(i, i % 5, None, "x") for i in range(1, 30)])
    plan = plan_chunks(backend.source(), "SELECT k1, count(*) FROM t GROUP BY k1", key="rid")
    assert len(plan.chunks) == 1
    assert plan.strategy == "single"
    assert plan.refused_reason is not None and "GROUP BY" in plan.refused_reason


def test_unknown_key_column_names_the_table(backends: dict[str, Backend]) -> None:
    backend = backends["postgres"]
    backend.load("int", [(1, 1, None, "x")])
    with pytest.raises(DmsError) as err:
        plan_chunks(backend.source(), "SELECT rid, k1 FROM t", key="nope")
    assert err.value.sqlstate == "42703"
    assert "nope" in err.value.message


def test_unknown_table_is_a_clear_error(backends: dict[str, Backend]) -> None:
    with pytest.raises(DmsError) as err:
        plan_chunks(backends["mysql"].source(), "SELECT a FROM no_such_table", key="a")
    assert err.value.sqlstate == "42P01"
    assert err.value.message.startswith("table no_such_table does not exist on the mysql source")


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_offset_needs_a_unique_not_null_key(
    backends: dict[str, Backend], backend_name: str
) -> None:
    backend = backends[backend_name]
    backend.load("int", [(i, i % 3, None, "x") for i in range(1, 10)])
    with pytest.raises(DmsError) as err:
        plan_chunks(backend.source(), "SELECT rid, k1 FROM t", key="k1", strategy="offset")
    assert err.value.sqlstate == "22023"
    assert err.value.message == (
        "strategy offset needs a unique NOT NULL key, and k1 is neither the primary key nor "
        "a unique index of t: rows that tie in ORDER BY could land in two windows or none"
    )
    # A unique index on NOT NULL columns is as good as the primary key.
    backend.execute("CREATE UNIQUE INDEX t_k1_v ON t (k1, rid)")
    plan = plan_chunks(backend.source(), "SELECT rid, k1 FROM t", key="k1, rid",
                       strategy="offset", n_chunks=3)
    assert plan.strategy == "offset" and len(plan.chunks) == 3
