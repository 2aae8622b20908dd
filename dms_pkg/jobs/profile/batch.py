"""Profile many tables side by side, each over connections of its own.

At most ``parallel`` tables at once, and never more per dialect than
``WAREHOUSE_LIMITS`` allows (SQLite one at a time: one writer lock, one
file).  A table that fails is reported with its error; the others go on.
"""

from __future__ import annotations

import datetime
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from dms_pkg.db.binds import ParamStyle
from dms_pkg.db.sources import SourceConnection
from dms_pkg.errors import DmsError
from dms_pkg.jobs.profile import metrics
from dms_pkg.jobs.schema_diff import catalog
from dms_pkg.jobs.schema_diff.batch import Opener, _error
from dms_pkg.jobs.schema_diff.pairs import Side

SHAPE_VERSION = 1
# Tables profiled at once per kind of database, as the profiling tool's guide has them.
WAREHOUSE_LIMITS = {"snowflake": 20, "bigquery": 15, "redshift": 10, "postgres": 8,
                    "mysql": 8, "sqlite": 1}


@dataclass
class TableProfile:
    side: Side
    dialect: str | None = None
    row_count: int | None = None
    row_count_change: int | None = None
    columns: list[metrics.ColumnProfile] = field(default_factory=list)
    error: dict[str, Any] | None = None
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {"table": self.side.label, "dialect": self.dialect, "row_count": self.row_count,
                "row_count_change": self.row_count_change, "seconds": round(self.seconds, 3),
                "error": self.error, "columns": [c.as_json() for c in self.columns]}


class _Caps:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sems: dict[str, threading.Semaphore] = {}

    def of(self, dialect: str) -> threading.Semaphore:
        with self._lock:
            if dialect not in self._sems:
                self._sems[dialect] = threading.Semaphore(WAREHOUSE_LIMITS.get(dialect, 4))
            return self._sems[dialect]


def _fetch(source: SourceConnection, sql: str) -> tuple[Any, ...]:
    return _fetch_all(source, sql)[0]


def _fetch_all(source: SourceConnection, sql: str) -> list[tuple[Any, ...]]:
    if source.style is ParamStyle.PYFORMAT:
        sql = sql.replace("%", "%%")  # a % in a quoted name is not a bind
    return source.fetch(sql, {})


def profile_table(side: Side, opener: Opener, caps: _Caps) -> TableProfile:
    result = TableProfile(side)
    started = time.monotonic()
    try:
        with opener(side) as source:
            result.dialect = source.dialect
            with caps.of(source.dialect):
                shape = catalog.read(source, side.schema, side.table)
                columns = shape.columns
                not_null = {c.name for c in columns if not c.nullable}
                unique = frozenset(k[0] for k in (shape.primary_key, *shape.unique)
                                   if len(k) == 1 and k[0] in not_null)
                plan = metrics.scan_one(source.dialect, side.schema, side.table, columns,
                                        unique)
                result.row_count, result.columns = metrics.read_scan_one(
                    plan, _fetch(source, plan.sql), columns)
                hist = metrics.histograms(source.dialect, side.schema, side.table,
                                          result.columns, columns)
                if hist is not None:
                    metrics.read_histograms(_fetch_all(source, hist.sql), hist, result.columns)
    except Exception as exc:  # reported with the table; the batch goes on
        result.error = _error(exc)
    result.seconds = time.monotonic() - started
    return result


def run(sides: list[Side], opener: Opener, *, parallel: int = 4,
        on_done: Callable[[TableProfile], None] = lambda r: None) -> list[TableProfile]:
    workers = max(1, min(parallel, 2 * (os.cpu_count() or 1), len(sides) or 1))
    caps = _Caps()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(profile_table, side, opener, caps) for side in sides]
        results = []
        for future in futures:
            results.append(future.result())
            on_done(results[-1])
    return results


def record(dsn: str, results: list[TableProfile], started: datetime.datetime) -> int:
    """Keep the run in the --dsn database's DMS tables; fills in each table's
    row_count_change (against its last profile there) and returns the profile id."""
    from dms_pkg.install.installer import connect

    body = {"started_at": started.isoformat(),
            "ended_at": datetime.datetime.now(datetime.UTC).isoformat(),
            "tables": [r.as_json() | {"columns": [c.as_json() | {"column": c.column}
                                                  for c in r.columns]} for r in results]}
    with connect(dsn, autocommit=True) as conn:
        try:
            row = conn.execute("SELECT dms.record_profile(%s::jsonb)",
                               [json.dumps(body, default=str)]).fetchone()
        except Exception as exc:  # not installed, not an operator, ...
            error = _error(exc)
            raise DmsError(f"the profile could not be kept: {error['message']}",
                           sqlstate=error["sqlstate"] or "XX000",
                           hint="profiles are kept where dms is installed (dms install), by "
                                "a dms_operator login; --no-store only prints them") from None
        assert row is not None
        profile_id = int(row[0])
        changes = dict(conn.execute(
            "SELECT table_ref, row_count_change FROM dms.profile_table WHERE profile_id = %s",
            [profile_id]).fetchall())
    for r in results:
        r.row_count_change = changes.get(r.side.label)
    return profile_id


def exit_code(results: list[TableProfile]) -> int:
    return 2 if any(r.error for r in results) else 0


def as_json(results: list[TableProfile], profile_id: int | None) -> str:
    return json.dumps({"kind": "profile", "version": SHAPE_VERSION, "profile_id": profile_id,
                       "tables": [r.as_json() for r in results],
                       "summary": {"tables": len(results),
                                   "failed": sum(1 for r in results if r.error)}}, indent=2)


def as_text(results: list[TableProfile], profile_id: int | None) -> str:
    out: list[str] = []
    for r in results:
        if r.error:
            state = f"[{r.error['sqlstate']}] " if r.error.get("sqlstate") else ""
            out.append(f"{r.side.label}: error: {state}{r.error['message']}")
            continue
        change = ("" if r.row_count_change is None
                  else f" ({r.row_count_change:+,} since the last profile)")
        out.append(f"{r.side.label}: {r.row_count:,} rows{change}, {r.seconds:.2f} s")
        for c in r.columns:
            parts = [f"{c.type}", f"nulls {c.null_ratio:.1%}" if c.null_ratio is not None else "",
                     f"distinct {c.distinct_count:,}" if c.distinct_count is not None else ""]
            if c.min is not None:
                parts.append(f"min {metrics._text(c.min)} max {metrics._text(c.max)}")
            if c.mean is not None:
                parts.append(f"mean {c.mean:.6g} sd {c.stddev:.6g}" if c.stddev is not None
                             else f"mean {c.mean:.6g}")
            if c.avg_length is not None:
                parts.append(f"length {c.min_length}..{c.max_length} (avg {c.avg_length:.1f})")
            out.append(f"  {c.column}: " + ", ".join(p for p in parts if p))
    failed = sum(1 for r in results if r.error)
    out.append(f"{len(results)} table{'s' if len(results) != 1 else ''} profiled, {failed} failed"
               + (f"; kept as profile {profile_id}" if profile_id is not None else ""))
    return "\n".join(out)
