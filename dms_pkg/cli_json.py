"""``--json`` of ``dms plan``, ``run``, ``watch`` and ``status``: the shapes of docs/json.md.

Every shape is built here, from the same rows the text output shows, so the
two cannot say different things.  Values are JSON-native: numbers stay
numbers (a numeric column is not a string), times are ISO 8601 strings,
durations are seconds.
"""

from __future__ import annotations

import datetime
import decimal
import json
from typing import Any

from dms_pkg.chunking.plan import ChunkPlan
from dms_pkg.chunking.preview import PlanRow, readable_binds

SHAPE_VERSION = 1  # bumped when a field changes meaning or goes away


def ready(value: Any) -> Any:
    """``value`` with database types made JSON-native."""
    if isinstance(value, dict):
        return {str(k): ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [ready(v) for v in value]
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return value


def dumps(kind: str, body: dict[str, Any], *, indent: int | None = 2) -> str:
    return json.dumps({"kind": kind, "version": SHAPE_VERSION, **ready(body)}, indent=indent)


def plan(plan: ChunkPlan, rows: list[PlanRow]) -> str:
    return dumps("plan", {
        "strategy": plan.strategy,
        "dialect": plan.dialect,
        "driving_table": plan.driving_table,
        "key": plan.key,
        "refused_reason": plan.refused_reason,
        "notes": list(plan.notes),
        "chunks": [{
            "chunk_no": row.chunk_no,
            "kind": row.kind,
            "estimated_rows": row.estimated_rows,
            "lo": row.lo,
            "hi": row.hi,
            "predicate": readable_binds(row.predicate_sql, plan.param_style) or None,
            "params": json.loads(row.params) if row.params else {},
        } for row in rows],
    })


PROGRESS_FIELDS = ("run_id", "label", "state", "path", "workers", "chunks_total", "chunks_done",
                   "chunks_failed", "chunks_running", "rows_done", "estimated_rows", "percent",
                   "rows_per_sec", "eta_s", "elapsed_s", "message", "parallel_note",
                   "refused_reason", "notes")


def progress(row: dict[str, Any], *, final: bool) -> dict[str, Any]:
    """One run's progress (a row of dms.run_progress, as watch reads it)."""
    body = {name: row.get(name) for name in PROGRESS_FIELDS}
    body["notes"] = list(body["notes"] or [])
    body["final"] = final
    return body


STATUS_FIELDS = ("run_id", "label", "state", "path", "workers", "percent", "rows_done",
                 "rows_per_sec", "elapsed_s", "started_at", "message")


def status(rows: list[dict[str, Any]]) -> str:
    return dumps("status", {"runs": [{name: r.get(name) for name in STATUS_FIELDS}
                                     for r in rows]})


def api_result(result: Any) -> str:
    """``dms run --source-dsn ... --json``: the Python API's result."""
    return dumps("run", {
        "run_id": None,
        "state": "SUCCEEDED" if result.chunks_failed == 0 else "PARTIAL",
        "path": result.path,
        "workers": result.workers,
        "chunks_total": result.chunks_total,
        "chunks_failed": result.chunks_failed,
        "rows_done": result.total_rows_successful,
        "rows_failed": result.total_rows_failed,
        "elapsed_s": result.processing_time,
        "parallel_note": result.parallel_note,
        "chunk_errors": [{"chunk_no": e.get("chunk_id"), "sqlstate": e.get("sqlstate"),
                          "error": e.get("error")} for e in result.chunk_errors],
        "final": True,
    })
