"""Many pairs, compared in parallel; a failing pair is reported and the others go on.

Each pair reads its two tables over connections of its own (from
``dms_pkg.db.sources.open_source``), so pairs run side by side in threads;
the work is catalog queries, so threads are enough.  Exit status: 0 when
every pair is equal, 1 when some differ, 2 when some could not be compared.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from dms_pkg.db.faults import fault_of
from dms_pkg.db.sources import SourceConnection, open_source
from dms_pkg.errors import DmsError
from dms_pkg.jobs.schema_diff import catalog
from dms_pkg.jobs.schema_diff.diff import Difference, compare
from dms_pkg.jobs.schema_diff.pairs import DEFAULT_DB, Pair, Side

SHAPE_VERSION = 1


@dataclass
class PairResult:
    pair: Pair
    status: str = "error"  # equal | different | error
    differences: list[Difference] = field(default_factory=list)
    error: dict[str, Any] | None = None
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {"pair": self.pair.text, "a": self.pair.a.label or None,
                "b": self.pair.b.label or None,
                "status": self.status,
                "differences": [d.as_json() for d in self.differences],
                "error": self.error, "seconds": round(self.seconds, 3)}


def _url(side: Side, dbs: Mapping[str, str], default: str | None) -> str:
    if side.db == DEFAULT_DB:
        if not default:
            raise DmsError(f"{side.label} names no --db and there is no --dsn database",
                           sqlstate="22023", hint="give --dsn, or name the side's --db")
        return default
    return dbs[side.db]


# How a side's database is reached: a connection for the catalog queries.
Opener = Callable[[Side], AbstractContextManager[SourceConnection]]


def url_opener(dbs: Mapping[str, str], default: str | None) -> Opener:
    """The command line's way: --db URLs and --dsn."""
    return lambda side: open_source(_url(side, dbs, default))


def _shape(side: Side, opener: Opener) -> catalog.TableShape:
    with opener(side) as source:
        return catalog.read(source, side.schema, side.table)


def compare_pair(pair: Pair, opener: Opener) -> PairResult:
    result = PairResult(pair)
    started = time.monotonic()
    try:
        a, b = _shape(pair.a, opener), _shape(pair.b, opener)
        result.differences = compare(a, b)
        result.status = "different" if result.differences else "equal"
    except Exception as exc:  # one pair's failure is reported, the batch goes on
        result.error = _error(exc)
    result.seconds = time.monotonic() - started
    return result


def _error(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, DmsError):
        return {"sqlstate": exc.sqlstate, "message": exc.message, "hint": exc.hint}
    fault = fault_of(exc)
    if fault is not None:
        return {"sqlstate": fault.sqlstate, "message": fault.message, "hint": fault.hint}
    # pymysql, sqlite3: the driver's words (never the URL: it may hold a password)
    return {"sqlstate": None, "message": f"{type(exc).__name__}: {exc}", "hint": None}


def run(pairs: list[Pair], opener: Opener, *, parallel: int = 4,
        on_done: Callable[[PairResult], None] = lambda r: None) -> list[PairResult]:
    """Every pair's result, in the order given."""
    workers = max(1, min(parallel, 2 * (os.cpu_count() or 1), len(pairs) or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(compare_pair, pair, opener) for pair in pairs]
        results = []
        for future in futures:
            results.append(future.result())
            on_done(results[-1])
    return results


def exit_code(results: list[PairResult]) -> int:
    if any(r.status == "error" for r in results):
        return 2
    return 1 if any(r.status == "different" for r in results) else 0


def summary(results: list[PairResult]) -> dict[str, int]:
    return {"pairs": len(results),
            "equal": sum(r.status == "equal" for r in results),
            "different": sum(r.status == "different" for r in results),
            "errors": sum(r.status == "error" for r in results)}


def as_json(results: list[PairResult]) -> str:
    return json.dumps({"kind": "schema-diff", "version": SHAPE_VERSION,
                       "pairs": [r.as_json() for r in results],
                       "summary": summary(results)}, indent=2)


def as_text(results: list[PairResult]) -> str:
    out: list[str] = []
    for r in results:
        if r.status == "error":
            assert r.error is not None
            state = f"[{r.error['sqlstate']}] " if r.error.get("sqlstate") else ""
            what = (f"{r.pair.a.label} vs {r.pair.b.label}" if r.pair.b.text
                    else r.pair.text)  # a line that is no pair
            out.append(f"{what}: error: {state}{r.error['message']}")
            if r.error.get("hint"):
                out.append(f"  hint: {r.error['hint']}")
            continue
        n = len(r.differences)
        out.append(f"{r.pair.a.label} vs {r.pair.b.label}: "
                   + ("equal" if not n else f"{n} difference{'s' if n != 1 else ''}"))
        out += [f"  {d.text()}" for d in r.differences]
    s = summary(results)
    out.append(f"{s['pairs']} pair{'s' if s['pairs'] != 1 else ''}: {s['equal']} equal, "
               f"{s['different']} different, {s['errors']} could not be compared")
    return "\n".join(out)
