"""The planner's invariant on real servers: the chunks partition the result.

For generated tables (every key type, NULL keys, duplicates, one value on
90 % of the rows, composite keys, gaps, empty and one-row tables) and
queries (plain, filtered, joins with filters, subqueries, CTEs), against a
real PostgreSQL, a real SQLite file and a real MariaDB: for every strategy
that accepts the query, the multiset union of the chunks' rows equals the
unsplit query's rows, and no row (by its unique rid) is in two chunks.

The same holds for keys whose order is not Python's: text under ICU,
case-insensitive and nondeterministic collations (MariaDB's ``_ci``, SQLite's
NOCASE), SQLite columns mixing integers, reals, text and blobs, and numbers
and timestamps holding NaN or infinities -- and for GROUP BY and DISTINCT on
such a key, where one group must never be cut in two.
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
    COLLATED_TEXT,
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


def _same(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row Counter can match: NaN is not equal to itself in Python."""
    return tuple("NaN" if isinstance(v, float | decimal.Decimal) and v != v else v
                 for v in row)


def _check_partition(backend: Backend, sql: str, key: str | None, strategy: str,
                     n: int) -> None:
    whole = [_same(r) for r in backend.execute(sql)]
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
        parts.update(_same(r) for r in rows)
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


# ------------------------------------------------- keys in the database's order

# Letters whose order differs between code points, ICU locales (Swedish puts
# å, ä, ö after z; German does not), case-insensitive and accent-insensitive
# collations ('ß' = 's' or 'ss'), plus a space for PAD SPACE and SQLite's RTRIM.
_ALPHABET = "aAbBeEfFyYzZåÄöß -_.%"
_text_keys = st.lists(st.one_of(st.none(), st.text(alphabet=_ALPHABET, max_size=4)),
                      max_size=40)


def _grouped_partition(backend: Backend, sql: str, key: str, strategy: str, n: int) -> None:
    """For ``SELECT k1, count(*), min(rid) ... GROUP BY k1``: every group whole in one
    chunk.  Which spelling of a group ('a' or 'A') a database returns is its own
    choice, so groups are compared by (count, min(rid)), which names each group."""
    whole = Counter(_same(r[1:]) for r in backend.execute(sql))
    plan = plan_chunks(backend.source(), sql, key=key, n_chunks=n, strategy=strategy)
    assert plan.refused_reason is None, plan.refused_reason
    assert plan.strategy != "single" or n == 1 or sum(whole.values()) <= 1, plan
    source = backend.source()
    parts: Counter[tuple[Any, ...]] = Counter()
    for chunk in plan.chunks:
        parts.update(_same(r[1:]) for r in source.fetch(chunk.query_sql, chunk.params))
    assert parts == whole, (plan.strategy, [c.query_sql for c in plan.chunks])


@pytest.mark.parametrize(("backend_name", "k1_ddl"),
                         [(b, ddl) for b in BACKENDS for ddl in COLLATED_TEXT[b]])
@_SETTINGS
@given(keys=_text_keys, n=st.integers(1, 6))
def test_collated_text_keys_partition_the_result(
    backends: dict[str, Backend], backend_name: str, k1_ddl: str,
    keys: list[str | None], n: int,
) -> None:
    """Bounds are cut in the key's own collation: no row in two chunks, no group
    of a GROUP BY or DISTINCT on the key split, composite keys included."""
    backend = backends[backend_name]
    backend.load("text", [(rid, k, None, f"v{rid % 3}") for rid, k in enumerate(keys, 1)],
                 k1_ddl=k1_ddl)
    strategies = ["auto", "quantile"] + (["hash"] if backend_name != "sqlite" else [])
    for strategy in strategies:
        _check_partition(backend, "SELECT rid, k1, v FROM t", "k1", strategy, n)
        _check_partition(backend, "SELECT rid, k1 FROM t WHERE v <> 'v1'", "k1", strategy, n)
        _grouped_partition(backend, "SELECT k1, count(*), min(rid) FROM t GROUP BY k1", "k1",
                           strategy, n)
        whole = len(backend.execute("SELECT DISTINCT k1 FROM t"))
        plan = plan_chunks(backend.source(), "SELECT DISTINCT k1 FROM t", key="k1",
                           n_chunks=n, strategy=strategy)
        assert plan.refused_reason is None
        assert sum(len(backend.source().fetch(c.query_sql, c.params)) for c in plan.chunks) \
            == whole
    for strategy in ("auto", "quantile"):
        _check_partition(backend, "SELECT rid, k1, v FROM t", "k1, rid", strategy, n)


def test_mariadb_general_ci_key_puts_each_letter_in_one_chunk(
    backends: dict[str, Backend],
) -> None:
    """The issue's case: 'e', 'F' and 'y' were each in two quantile chunks."""
    backend = backends["mysql"]
    letters = "eEfFyY"
    backend.load("text", [(rid, letters[rid % 6] + " " * (rid % 2), None, None)
                          for rid in range(1, 601)],
                 k1_ddl=COLLATED_TEXT["mysql"][0])
    for strategy in ("quantile", "auto", "hash"):
        _check_partition(backend, "SELECT rid, k1 FROM t", "k1", strategy, 4)
        _grouped_partition(backend, "SELECT k1, count(*), min(rid) FROM t GROUP BY k1", "k1",
                           strategy, 4)


_mixed = st.one_of(
    st.none(), st.integers(-50, 50), st.floats(allow_nan=False, width=32),
    st.text(alphabet="aBz", max_size=2), st.binary(max_size=2),
)


@_SETTINGS
@given(values=st.lists(_mixed, max_size=40), n=st.integers(1, 6))
def test_sqlite_column_of_mixed_types_partitions_the_result(
    backends: dict[str, Backend], values: list[Any], n: int,
) -> None:
    """An untyped SQLite column holding integers, reals, text and blobs is cut in
    SQLite's order (NULL < numbers < text < blob), never by Python's ``<``."""
    backend = backends["sqlite"]
    backend.load("int", [(rid, v, None, None) for rid, v in enumerate(values, 1)], k1_ddl="")
    for strategy in ("auto", "quantile", "key_range"):
        if strategy == "key_range" and not any(
                isinstance(v, int | float) for v in values):
            continue  # no number to measure a width on: refused, see below
        _check_partition(backend, "SELECT rid, k1 FROM t", "k1", strategy, n)
    _grouped_partition(backend, "SELECT k1, count(*), min(rid) FROM t GROUP BY k1", "k1",
                       "quantile", n)


def test_key_range_on_a_text_key_is_refused_clearly(backends: dict[str, Backend]) -> None:
    backend = backends["sqlite"]
    backend.load("text", [(1, "a", None, None), (2, "b", None, None)])
    with pytest.raises(DmsError) as err:
        plan_chunks(backend.source(), "SELECT rid, k1 FROM t", key="k1", strategy="key_range")
    assert err.value.sqlstate == "22023"
    assert err.value.message == (
        "strategy key_range needs an integer, numeric, date or timestamp key, and k1 "
        "holds none (its smallest value is 'a')"
    )


_NON_FINITE_FLOATS = (float("nan"), float("inf"), float("-inf"))
_BASE = dt.datetime(2021, 3, 1)


@pytest.mark.parametrize("column", ["double precision", "numeric", "timestamp", "date",
                                    "timestamptz"])
@_SETTINGS
@given(picks=st.lists(st.one_of(st.none(), st.integers(-3, 3), st.integers(-500, 500)),
                      max_size=40),
       n=st.integers(1, 6))
def test_nan_and_infinite_keys_partition_the_result(
    backends: dict[str, Backend], column: str, picks: list[int | None], n: int,
) -> None:
    """PostgreSQL orders NaN above every number and ±infinity at the ends of
    numbers and times: such keys are split, never an internal error."""
    def value(i: int) -> Any:
        if column in ("double precision", "numeric"):
            special = {-3: float("-inf"), -2: float("nan"), 3: float("inf")}
            if i in special:
                return special[i] if column == "double precision" else str(special[i])
            return i / 4
        if i in (-3, 3):
            return "-infinity" if i < 0 else "infinity"
        moment = _BASE + dt.timedelta(hours=7 * i)
        return moment.date() if column == "date" else moment

    backend = backends["postgres"]
    backend.load("int", [(rid, None if p is None else value(p), None, None)
                         for rid, p in enumerate(picks, 1)], k1_ddl=column)
    # A time key holding only ±infinity has no time to measure a width on
    # (psycopg reads such values as text): key_range says so.
    timeless = column in ("timestamp", "date", "timestamptz") and all(
        p is None or p in (-3, 3) for p in picks) and any(p is not None for p in picks)
    for strategy in ("auto", "quantile", "key_range", "hash"):
        if strategy == "key_range" and timeless:
            with pytest.raises(DmsError, match="strategy key_range needs an integer"):
                plan_chunks(backend.source(), "SELECT rid, k1 FROM t", key="k1", n_chunks=n,
                            strategy=strategy)
            continue
        _check_partition(backend, "SELECT rid, k1 FROM t", "k1", strategy, n)
    _grouped_partition(backend, "SELECT k1, count(*), min(rid) FROM t GROUP BY k1", "k1",
                       "auto", n)


def test_sqlite_table_without_primary_key_splits_on_rowid(
    backends: dict[str, Backend],
) -> None:
    """``auto`` without a key on SQLite cuts the table's rowid, also below a CTE."""
    backend = backends["sqlite"]
    backend.execute("DROP TABLE IF EXISTS nopk")
    backend.execute("CREATE TABLE nopk (a INTEGER, b TEXT)")
    backend.executemany("INSERT INTO nopk VALUES (?, ?)", [(i % 7, f"b{i}") for i in range(200)])
    for sql in ("SELECT a, b FROM nopk", "WITH c AS (SELECT a, b FROM nopk) SELECT b FROM c",
                "SELECT s.b FROM (SELECT b FROM nopk WHERE a > 2) s"):
        plan = plan_chunks(backend.source(), sql, n_chunks=4)
        assert (plan.strategy, plan.key, plan.refused_reason) == ("key_range", "rowid", None)
        assert len(plan.chunks) == 5
        assert all("nopk.rowid" in c.predicate_sql for c in plan.chunks)
        whole = Counter(backend.execute(sql))
        parts: Counter[tuple[Any, ...]] = Counter()
        for chunk in plan.chunks:
            parts.update(backend.source().fetch(chunk.query_sql, chunk.params))
        assert parts == whole
    refused = plan_chunks(backend.source(), "SELECT a, count(*) FROM nopk GROUP BY a")
    assert refused.strategy == "single"
    assert refused.refused_reason == safety.PHYSICAL_GROUP_BY
    # A UNION ALL on a text key: without a hash, SQLite runs it as one chunk.
    union = plan_chunks(backend.source(), "SELECT b FROM nopk UNION ALL SELECT b FROM nopk",
                        key="b", n_chunks=4)
    assert (union.strategy, union.refused_reason) == (
        "single", "quantile ranges cannot cut the text or composite key b of a UNION ALL: they "
        "are measured on the first branch, and another branch may order text in another "
        "collation")
    # A view's rowid is no row address: one chunk, saying so.
    backend.execute("DROP VIEW IF EXISTS nopk_view")
    backend.execute("CREATE VIEW nopk_view AS SELECT a, b FROM nopk")
    view = plan_chunks(backend.source(), "SELECT a, b FROM nopk_view", n_chunks=4)
    assert (view.strategy, view.refused_reason) == (
        "single", "nopk_view is a view, which has no physical row address (rowid); name a "
        "chunk key to split it")
    # Strategies SQLite cannot render are refused before anything is measured.
    with pytest.raises(DmsError) as err:
        plan_chunks(backend.source(), "SELECT a, b FROM nopk", strategy="ctid")
    assert (err.value.sqlstate, err.value.message) == (
        "0A000", 'chunk strategy "ctid" is not available for sqlite: ctid TID ranges exist '
        "only in PostgreSQL")


def test_dms_plan_on_sqlite_without_a_key_and_with_mixed_types(tmp_path: Path) -> None:
    """Issue 15, through the command line: ``auto`` without a primary key said
    'chunk strategy "key_range" needs a chunk key', and a column of mixed types
    failed with "'<' not supported between instances of 'bytes' and 'int'"."""
    import sqlite3
    import subprocess
    import sys

    path = tmp_path / "mixed.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE nopk (a, b INTEGER)")
        conn.executemany("INSERT INTO nopk VALUES (?, ?)",
                         [(v, i) for i, v in enumerate([1, 2.5, "x", b"\x01", None] * 40)])

    def plan(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dms_pkg.cli", "plan", "--dsn", f"sqlite:///{path}",
             "--sql", "SELECT a, b FROM nopk", "--chunks", "3", *args],
            capture_output=True, text=True, check=False)

    rowid, mixed = plan(), plan("--key", "a", "--strategy", "quantile")
    assert rowid.returncode == 0, rowid.stderr
    assert "strategy key_range  dialect sqlite  driving table nopk  key rowid  chunks 4" in (
        rowid.stdout)
    assert mixed.returncode == 0, mixed.stderr
    assert "strategy quantile  dialect sqlite  driving table nopk  key a  chunks 4" in (
        mixed.stdout)
