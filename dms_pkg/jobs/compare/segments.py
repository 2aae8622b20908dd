"""Compare one pair of tables: segment checksums in each database, bisection, row diff.

1. The key space is cut into segments at every n-th key of table A (one
   query, a window function: only the boundary keys travel).  The first
   and last segments are open, so keys of B outside A's range are seen.
2. Each segment's (row count, sum of row hashes) is computed inside both
   databases; segments run side by side on ``parallel`` threads, each with
   connections of its own.
3. A segment whose checksums differ is cut in ``SPLIT_FACTOR`` parts at every
   n-th key and the parts are checked again, until one holds at most ``ROW_THRESHOLD`` rows;
   then its (key, hash) rows are fetched from both sides and diffed.
4. Keys are compared in a byte order both databases share (integers,
   decimals and dates by value; text through a binary collation), so a row
   is in the same segment on both sides.  Should a database order
   differently anyway, a key found missing on one side in one segment and
   extra in another is reconciled at the end, by its hash.
"""

from __future__ import annotations

import datetime
import decimal
import itertools
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from typing import Any

from dms_pkg.db.binds import ParamStyle
from dms_pkg.db.sources import SourceConnection
from dms_pkg.errors import DmsError
from dms_pkg.jobs.compare import joined, normalize
from dms_pkg.jobs.schema_diff.catalog import Column, TableShape

ROW_THRESHOLD = 16384  # a segment this small is diffed row by row (data-diff's threshold)
SPLIT_FACTOR = 32  # an unequal bigger segment is cut in this many (data-diff's factor)
SEGMENTS_PER_WORKER = 8
# Integer keys: a top segment's scan also sums every BUCKET_KEYS keys apart (at
# most MAX_BUCKETS per segment), so one pass finds where rows differ.
BUCKET_KEYS = 1024
MAX_BUCKETS = 4096
_INTEGERS = ("INT", "SMALLINT", "BIGINT")
_BUCKET_DIALECTS = ("postgres", "mysql", "sqlite")
_INTEGER_OR_DATE = ("INT", "SMALLINT", "BIGINT", "DECIMAL", "DATE", "TIMESTAMP", "TIMESTAMPTZ")


@dataclass
class Side:
    opener: Callable[[], AbstractContextManager[SourceConnection]]  # a new connection
    schema: str | None
    table: str
    shape: TableShape

    @property
    def dialect(self) -> str:
        return self.shape.dialect


@dataclass
class Outcome:
    key: list[str]
    columns: list[str]
    rows_a: int = 0
    rows_b: int = 0
    only_in_a: list[list[Any]] = field(default_factory=list)
    only_in_b: list[list[Any]] = field(default_factory=list)
    different: list[list[Any]] = field(default_factory=list)
    segments: int = 0
    limited: bool = False
    method: str = "checksum"  # or "join": one PostgreSQL database, a FULL JOIN per range

    @property
    def differences(self) -> int:
        return len(self.only_in_a) + len(self.only_in_b) + len(self.different)


class _Queries:
    """The SQL of one side: key order, checksums, rows, bisection."""

    def __init__(self, side: Side, key: list[tuple[Column, Column]],
                 columns: list[tuple[Column, Column]], native: bool = False) -> None:
        d = side.dialect
        self.dialect = d
        self.style = {"sqlite": ParamStyle.NAMED}.get(d, ParamStyle.PYFORMAT)
        table = normalize.quote(side.table, d)
        self.table = (f"{normalize.quote(side.schema, d)}.{table}" if side.schema else table)
        self.keys = [self._key(col, d) for col, _ in key]
        row_text = (_native_row_text(columns) if native
                    else normalize.row_text_sql(columns, d))
        self.hash = normalize.hash_sql(row_text, d)
        self.key_list = ", ".join(self.keys)

    @staticmethod
    def _key(col: Column, dialect: str) -> str:
        c = normalize.quote(col.name, dialect)
        if col.type.split("(")[0] in _INTEGER_OR_DATE:
            return c
        if dialect == "postgres":
            return f'({c}::text COLLATE "C")'
        if dialect == "mysql":
            return f"(CAST({c} AS CHAR) COLLATE utf8mb4_bin)"
        # BigQuery, Snowflake and Redshift compare strings by their bytes already.
        if dialect == "bigquery":
            return f"CAST({c} AS STRING)"
        if dialect == "snowflake":
            return f"TO_VARCHAR({c})"
        if dialect == "redshift":
            return f"({c})::varchar"
        return f"CAST({c} AS TEXT)"

    def _bind(self, name: str) -> str:
        return f"%({name})s" if self.style is ParamStyle.PYFORMAT else f":{name}"

    def where(self, lo: tuple[Any, ...] | None, hi: tuple[Any, ...] | None
              ) -> tuple[str, dict[str, Any]]:
        parts, params = [], {}
        row = f"({self.key_list})" if len(self.keys) > 1 else self.key_list
        for edge, op, prefix in ((lo, ">=", "lo"), (hi, "<", "hi")):
            if edge is None:
                continue
            names = [f"{prefix}{i}" for i in range(len(edge))]
            values = [_bindable(v) for v in edge] if self.dialect == "sqlite" else list(edge)
            params.update(dict(zip(names, values, strict=True)))
            binds = ", ".join(self._bind(n) for n in names)
            parts.append(f"{row} {op} ({binds})" if len(names) > 1 else f"{row} {op} {binds}")
        return (" WHERE " + " AND ".join(parts)) if parts else "", params

    def boundaries(self, step: int, where: str = "") -> str:
        """Every ``step``-th key (of the rows ``where`` selects), but the first."""
        keys = ", ".join(f"{k} AS k{i}" for i, k in enumerate(self.keys))
        names = ", ".join(f"k{i}" for i in range(len(self.keys)))
        every = (f"MOD(dms_rn, {step}) = 1" if self.dialect != "sqlite"
                 else f"dms_rn % {step} = 1")
        return (f"SELECT {names} FROM (SELECT {keys}, ROW_NUMBER() OVER (ORDER BY"
                f" {self.key_list}) AS dms_rn FROM {self.table}{where}) dms_s"
                f" WHERE {every} AND dms_rn > 1 ORDER BY {names}")

    def checksum(self) -> str:
        return (f"SELECT COUNT(*), {normalize.sum_sql(self.hash, self.dialect)}"
                f" FROM {self.table}")

    def rows(self) -> str:
        return f"SELECT {self.key_list}, {self.hash} FROM {self.table}"

    def bucket_sums(self) -> str:
        """(bucket, count, sum of hashes) per ``width`` keys from ``base`` (an integer
        key): one scan gives a segment's checksum and where in it rows differ."""
        div = "DIV" if self.dialect == "mysql" else "/"
        return (f"SELECT ({self.key_list} - {self._bind('dms_base')}) {div}"
                f" {self._bind('dms_width')} AS dms_b, COUNT(*),"
                f" {normalize.sum_sql(self.hash, self.dialect)} FROM {self.table}")

    def key_bounds(self) -> str:
        return f"SELECT MIN({self.key_list}), MAX({self.key_list}) FROM {self.table}"

    def middle(self) -> str:
        return f"SELECT {self.key_list} FROM {self.table}"


class _Connections:
    """Each worker thread's own connection to each side, closed at the end."""

    def __init__(self, a: Side, b: Side) -> None:
        self.sides = (a, b)
        self.local = threading.local()
        self.stack = ExitStack()
        self.lock = threading.Lock()

    def get(self, index: int) -> SourceConnection:
        cached = getattr(self.local, "conns", None)
        if cached is None:
            cached = self.local.conns = {}
        if index not in cached:
            side = self.sides[index]
            with self.lock:
                source = self.stack.enter_context(side.opener())
            _prepare(source)
            cached[index] = source
        return cached[index]  # type: ignore[no-any-return]

    def close(self) -> None:
        self.stack.close()


def _prepare(source: SourceConnection) -> None:
    if source.dialect == "sqlite":
        normalize.install_sqlite(source.conn)  # type: ignore[attr-defined]
    elif source.dialect == "mysql":
        source.fetch("SET time_zone = '+00:00'", {})  # TIMESTAMP values in UTC


def common_columns(a: TableShape, b: TableShape, key: list[str] | None
                   ) -> tuple[list[tuple[Column, Column]], list[tuple[Column, Column]]]:
    """(key columns, compared columns), each as (A's, B's) column."""
    b_by_name = {c.name.lower(): c for c in b.columns}
    pairs = [(c, b_by_name[c.name.lower()]) for c in a.columns if c.name.lower() in b_by_name]
    by_name = {ca.name.lower(): (ca, cb) for ca, cb in pairs}
    names = key or list(a.primary_key) or list(b.primary_key)
    if not names:
        raise DmsError(
            f"{a.label} has no primary key to match rows by",
            sqlstate="42P10",
            hint="name the key: --key col[,col] (columns unique on both sides); rows are "
                 "never matched by position")
    missing = [n for n in names if n.lower() not in by_name]
    if missing:
        raise DmsError(f"key column {missing[0]} is not in both tables",
                       sqlstate="42703", hint="--key names columns both tables have")
    return [by_name[n.lower()] for n in names], pairs


def compare(a: Side, b: Side, *, key: list[str] | None = None, parallel: int = 4,
            limit: int | None = None, same_database: bool = False) -> Outcome:
    """Compare A and B by ``key``; ``same_database``: both are tables of one
    database (then two PostgreSQL tables are joined rather than hashed)."""
    key_cols, columns = common_columns(a.shape, b.shape, key)
    outcome = Outcome([c.name for c, _ in key_cols], [c.name for c, _ in columns])
    # Two PostgreSQL tables whose columns have the same types print their rows
    # alike: the row's own text is hashed, with no per-value normalising.
    native = (a.dialect == b.dialect == "postgres"
              and all(ca.type == cb.type for ca, cb in columns))
    queries = (_Queries(a, key_cols, columns, native),
               _Queries(b, [(cb, ca) for ca, cb in key_cols], [(cb, ca) for ca, cb in columns],
                        native))
    conns = _Connections(a, b)
    try:
        if native and same_database:
            outcome.method = "join"
            _run_joined(a, b, key_cols, columns, conns, outcome, parallel)
        else:
            _run(queries, conns, outcome, parallel, limit, key_cols)
    finally:
        conns.close()
    _reconcile(outcome)
    if limit is not None and outcome.differences > limit:
        outcome.limited = True
        _cut(outcome, limit)
    return outcome


def _fetch(conns: _Connections, q: _Queries, index: int, sql: str,
           params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
    return conns.get(index).fetch(sql, params or {})


def _segments(queries: tuple[_Queries, _Queries], conns: _Connections, parallel: int
              ) -> list[tuple[tuple[Any, ...] | None, tuple[Any, ...] | None]]:
    qa = queries[0]
    count = int(_fetch(conns, qa, 0, f"SELECT COUNT(*) FROM {qa.table}")[0][0])
    wanted = max(1, parallel * SEGMENTS_PER_WORKER)
    step = max(ROW_THRESHOLD, -(-count // wanted))
    edges = [tuple(r) for r in _fetch(conns, qa, 0, qa.boundaries(step))] if count > step else []
    bounds: list[tuple[Any, ...] | None] = [None, *edges, None]
    return list(itertools.pairwise(bounds))


def _bucket_plan(queries: tuple[_Queries, _Queries], conns: _Connections, parallel: int,
                 key: list[tuple[Column, Column]]) -> tuple[int, int, list[Any], list[Any]] | None:
    """For one integer key on both sides: (base, bucket width, top segments cut
    evenly from the smallest to the largest key of both tables, the two open
    segments below and above them) -- no count, no window query -- or None
    (other keys: segments at every n-th key)."""
    if not (len(key) == 1 and all(c.type in _INTEGERS for c in key[0])
            and all(q.dialect in _BUCKET_DIALECTS for q in queries)):
        return None
    edges = [_fetch(conns, q, i, q.key_bounds())[0] for i, q in enumerate(queries)]
    lows = [int(e[0]) for e in edges if e[0] is not None]
    highs = [int(e[1]) for e in edges if e[1] is not None]
    if not lows:
        return None  # both empty: one open segment says so
    low, high = min(lows), max(highs)
    span = high - low + 1
    wanted = max(1, parallel * SEGMENTS_PER_WORKER)
    width = max(BUCKET_KEYS, -(-span // (wanted * MAX_BUCKETS)))
    per_segment = max(1, -(-span // wanted // width)) * width
    cuts = [*range(low, high + 1, per_segment), high + 1]
    top = [((a,), (b,)) for a, b in itertools.pairwise(cuts)]
    # Rows written below or above the bounds since they were read are still seen
    # (an empty index range each, when there are none).
    edges_out: list[Any] = [(None, (low,)), ((high + 1,), None)]
    return low, width, top, edges_out


def _check_buckets(queries: tuple[_Queries, _Queries], conns: _Connections,
                   lo: tuple[Any, ...] | None, hi: tuple[Any, ...] | None, base: int,
                   width: int) -> dict[str, Any]:
    """A top segment in one scan per side: its count and, per ``width`` keys, a
    checksum; the buckets that differ are diffed row by row (or split further,
    when they hold more than ``ROW_THRESHOLD`` rows)."""
    sides: list[dict[int, tuple[int, int]]] = []
    for i, q in enumerate(queries):
        where, params = q.where(lo, hi)
        rows = _fetch(conns, q, i, q.bucket_sums() + where + " GROUP BY 1",
                      {**params, "dms_base": base, "dms_width": width})
        sides.append({int(b): (int(n), int(total or 0)) for b, n, total in rows})
    result: dict[str, Any] = {"counts": tuple(sum(n for n, _ in s.values()) for s in sides),
                              "rows": [{}, {}], "split": []}
    for bucket in sorted(set(sides[0]) | set(sides[1])):
        a, b = sides[0].get(bucket, (0, 0)), sides[1].get(bucket, (0, 0))
        if a == b:
            continue
        b_lo, b_hi = (base + bucket * width,), (base + (bucket + 1) * width,)
        if max(a[0], b[0]) > ROW_THRESHOLD:
            result["split"].append((b_lo, b_hi))
            continue
        for i, q in enumerate(queries):
            where, params = q.where(b_lo, b_hi)
            result["rows"][i].update({_key_of(r[:-1]): int(r[-1]) for r in
                                      _fetch(conns, q, i, q.rows() + where, params)})
    return result


def _check(queries: tuple[_Queries, _Queries], conns: _Connections,
           lo: tuple[Any, ...] | None, hi: tuple[Any, ...] | None) -> dict[str, Any]:
    """One segment: equal, its row-level differences, or its two halves."""
    sums = []
    for i, q in enumerate(queries):
        where, params = q.where(lo, hi)
        count, total = _fetch(conns, q, i, q.checksum() + where, params)[0]
        sums.append((int(count), int(total or 0)))
    result: dict[str, Any] = {"counts": (sums[0][0], sums[1][0])}
    if sums[0] == sums[1]:
        return result
    if max(sums[0][0], sums[1][0]) <= ROW_THRESHOLD:
        rows = []
        for i, q in enumerate(queries):
            where, params = q.where(lo, hi)
            rows.append({_key_of(r[:-1]): int(r[-1]) for r in
                         _fetch(conns, q, i, q.rows() + where, params)})
        result["rows"] = rows
        return result
    # Split in SPLIT_FACTOR parts at once (one window query over the segment):
    # a difference is then found in one or two rounds, not in a round per halving.
    bigger = 0 if sums[0][0] >= sums[1][0] else 1
    q = queries[bigger]
    where, params = q.where(lo, hi)
    step = max(1, -(-sums[bigger][0] // SPLIT_FACTOR))
    inner = [tuple(r) for r in _fetch(conns, q, bigger, q.boundaries(step, where), params)]
    bounds: list[tuple[Any, ...] | None] = [lo, *inner, hi]
    result["split"] = list(itertools.pairwise(bounds))
    return result


def _run(queries: tuple[_Queries, _Queries], conns: _Connections, outcome: Outcome,
         parallel: int, limit: int | None, key: list[tuple[Column, Column]]) -> None:
    buckets = _bucket_plan(queries, conns, parallel, key)
    pending = (_segments(queries, conns, parallel) if buckets is None
               else buckets[2] + buckets[3])
    bucketed = set(buckets[2]) if buckets is not None else set()
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        running: dict[Future[dict[str, Any]], bool] = {}

        def submit(lo: Any, hi: Any, first: bool) -> None:
            if first and (lo, hi) in bucketed:
                assert buckets is not None
                running[pool.submit(_check_buckets, queries, conns, lo, hi,
                                    buckets[0], buckets[1])] = first
            else:
                running[pool.submit(_check, queries, conns, lo, hi)] = first

        for lo, hi in pending:
            submit(lo, hi, True)
        while running:
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in done:
                first = running.pop(future)
                result = future.result()
                outcome.segments += 1
                if first:
                    outcome.rows_a += result["counts"][0]
                    outcome.rows_b += result["counts"][1]
                if "rows" in result:
                    _diff_rows(result["rows"][0], result["rows"][1], outcome)
                if "split" in result:
                    if limit is not None and outcome.differences > limit:
                        continue  # enough found: the rest is not looked into
                    for lo, hi in result["split"]:
                        submit(lo, hi, False)


def _run_joined(a: Side, b: Side, key: list[tuple[Column, Column]],
                columns: list[tuple[Column, Column]], conns: _Connections, outcome: Outcome,
                parallel: int) -> None:
    """Both tables in one PostgreSQL database: a FULL JOIN per key range (``joined``)."""
    tables = [(f"{normalize.quote(s.schema, 'postgres')}." if s.schema else "")
              + normalize.quote(s.table, "postgres") for s in (a, b)]
    query = joined.JoinQuery(tables[0], tables[1], key, columns)
    ranges: list[tuple[int | None, int | None]] = [(None, None)]
    if joined.integer_key(key):
        low, high = conns.get(0).fetch(joined.bounds_sql(tables[0], tables[1], key[0]))[0]
        ranges = joined.pieces((low, high), max(1, parallel) * joined.PIECES_PER_WORKER)

    def piece(bounds: tuple[int | None, int | None]) -> tuple[Any, ...]:
        source = conns.get(0)
        sql, params = query.sql(*bounds, style=source.style)
        return source.fetch(sql, params)[0]

    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(ranges)))) as pool:
        for rows_a, rows_b, only_a, only_b, different in pool.map(piece, ranges):
            outcome.segments += 1
            outcome.rows_a += int(rows_a)
            outcome.rows_b += int(rows_b)
            outcome.only_in_a += [[*_key_of(tuple(k)), None] for k in joined.keys_of(only_a)]
            outcome.only_in_b += [[*_key_of(tuple(k)), None] for k in joined.keys_of(only_b)]
            outcome.different += [list(_key_of(tuple(k))) for k in joined.keys_of(different)]


def _diff_rows(a: dict[tuple[Any, ...], int], b: dict[tuple[Any, ...], int],
               outcome: Outcome) -> None:
    for key, h in a.items():
        if key not in b:
            outcome.only_in_a.append([*list(key), h])
        elif b[key] != h:
            outcome.different.append(list(key))
    for key, h in b.items():
        if key not in a:
            outcome.only_in_b.append([*list(key), h])


def _reconcile(outcome: Outcome) -> None:
    """A key missing in one segment and extra in another (the databases placed it
    differently) is one row: equal when its hashes are, else different."""
    only_b = {tuple(r[:-1]): r[-1] for r in outcome.only_in_b}
    keep_a = []
    for row in outcome.only_in_a:
        key, h = tuple(row[:-1]), row[-1]
        if key in only_b:
            if only_b.pop(key) != h:
                outcome.different.append(list(key))
        else:
            keep_a.append(list(key))
    outcome.only_in_a = sorted(keep_a, key=_order)
    outcome.only_in_b = sorted((list(k) for k in only_b), key=_order)
    outcome.different = sorted(outcome.different, key=_order)


def _order(key: list[Any]) -> tuple[Any, ...]:
    return tuple((0, v) if isinstance(v, int | float) else (1, str(v)) for v in key)


def _cut(outcome: Outcome, limit: int) -> None:
    left = limit
    for name in ("different", "only_in_a", "only_in_b"):
        rows: list[list[Any]] = getattr(outcome, name)
        setattr(outcome, name, rows[:left])
        left = max(0, left - len(rows))


def _native_row_text(columns: list[tuple[Column, Column]]) -> str:
    """PostgreSQL's text of the row of these columns (NULL and quoting unambiguous)."""
    return "ROW(" + ", ".join(normalize.quote(ca.name, "postgres") for ca, _ in columns) \
        + ")::text"


def _bindable(value: Any) -> Any:
    """A key from another database as SQLite can bind it (no Decimal, dates as text)."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def _key_of(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """A key as both sides write it: dates as ISO text (SQLite keeps them so),
    decimals without trailing zeros, bytes as hex."""
    out: list[Any] = []
    for v in values:
        if isinstance(v, datetime.datetime):
            out.append(v.isoformat(sep=" "))
        elif isinstance(v, datetime.date):
            out.append(v.isoformat())
        elif isinstance(v, decimal.Decimal):
            out.append(format(v.normalize(), "f"))
        elif isinstance(v, bytes):
            out.append(v.hex())
        else:
            out.append(v)
    return tuple(out)
