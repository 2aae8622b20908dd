"""What a Python API run returns, with the rows of failed chunks counted for real.

A chunk is loaded in one target transaction, so a failed chunk loaded
nothing: the rows it did not load are all the rows its query returns.  They
are counted on the source after the workers finished -- in the run's
snapshot when the run has one (so the count is of the very rows the chunk
read), otherwise as the source is then -- never taken from the planner's
estimate, which can be far off (a filter the statistics cannot judge, stale
statistics).  Should the count itself fail (the source query fails there
too, the source is gone), the chunk's estimate is used and its
``chunk_errors`` entry says ``rows_counted: False``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from dms_pkg.db.binds import pyformat_to_numeric
from dms_pkg.engine.store import ChunkRecord


@dataclass
class ParallelResult:
    """Counts of a run; ``success`` when every chunk loaded."""

    total_rows_processed: int = 0  # successful + failed
    total_rows_successful: int = 0  # rows loaded (returned, without a target)
    total_rows_failed: int = 0  # source rows of the failed chunks, counted
    chunks_total: int = 0
    chunks_succeeded: int = 0
    chunks_failed: int = 0
    # One dict per failed chunk: chunk_id (= chunk_no), sqlstate, error,
    # attempts, rows_in_chunk, rows_counted.
    chunk_errors: list[dict[str, Any]] = field(default_factory=list)
    processing_time: float = 0.0
    path: str = ""
    strategy: str = ""
    workers: int = 0
    parallel_note: str | None = None
    # What the run says of itself, as the SQL API's dms.run.notes: how consistent
    # its reads were when a setting gave up one moment, say.
    notes: list[str] = field(default_factory=list)
    refused_reason: str | None = None
    rows: list[dict[str, Any]] | None = None  # the rows, when no target was given
    # The effective settings, each with where it came from: {"max_workers":
    # {"value": 4, "from": "environment"}, ...}
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return self.chunks_failed == 0


def count_rows(conn: psycopg.Connection[Any], chunk: ChunkRecord) -> int | None:
    """Rows of ``chunk``'s query on ``conn``, or None when the source cannot count them.

    Runs in a savepoint when ``conn`` is inside a transaction (the run's
    snapshot), so a count that fails leaves the snapshot usable for the next.
    """
    statement = f"SELECT count(*) FROM ({chunk.query_sql}) AS dms_q"
    params: dict[str, Any] | None = dict(chunk.params) or None
    if params is None:  # psycopg reads % markers only when given parameters
        statement = pyformat_to_numeric(statement, [])
    try:
        with conn.transaction():
            row = conn.execute(statement.encode(), params).fetchone()
    except psycopg.Error:
        return None
    return int(row[0]) if row else None


def build_result(chunks: list[ChunkRecord], failed_rows: dict[int, int | None],
                 **fields: Any) -> ParallelResult:
    """The result of a finished queue; ``failed_rows`` are the counts of its failed chunks."""
    done = [c for c in chunks if c.state == "DONE"]
    failed = [c for c in chunks if c.state != "DONE"]
    successful = sum(c.rows or 0 for c in done)
    errors: list[dict[str, Any]] = []
    lost = 0
    for c in failed:
        counted = failed_rows.get(c.chunk_no)
        rows = counted if counted is not None else (c.estimated_rows or 0)
        lost += rows
        errors.append({
            "chunk_id": c.chunk_no, "chunk_no": c.chunk_no, "sqlstate": c.sqlstate,
            "error": c.last_error, "attempts": c.attempts, "rows_in_chunk": rows,
            "rows_counted": counted is not None,
        })
    return ParallelResult(
        total_rows_processed=successful + lost, total_rows_successful=successful,
        total_rows_failed=lost, chunks_total=len(chunks), chunks_succeeded=len(done),
        chunks_failed=len(failed), chunk_errors=errors, **fields,
    )
