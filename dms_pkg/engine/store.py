"""Where run and chunk state lives: the dms tables, or memory for a Python-only run.

``SqlStore`` goes through the SECURITY DEFINER functions of
``sql/api/030_engine_state.sql`` and commits after every change, so other
sessions see a claim or a finished chunk at once.  ``MemoryStore`` serves
the Python API when the target database has no dms schema: the same queue
semantics (claim in chunk order, retries after a delay) under a lock.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from dms_pkg.db.base import Session
from dms_pkg.engine.codec import decode_params


@dataclass
class ChunkTask:
    """A claimed chunk, as a worker needs it."""

    run_id: int
    chunk_no: int
    query_sql: str
    params: dict[str, Any]
    attempts: int
    estimated_rows: int | None = None
    run_uuid: str | None = None  # the ledger's key for the run
    snapshot_id: str | None = None  # read the source as of this exported snapshot


@dataclass
class ChunkRecord:
    """A chunk in a MemoryStore."""

    chunk_no: int
    query_sql: str
    params: dict[str, Any]
    estimated_rows: int | None
    state: str = "PENDING"
    attempts: int = 0
    rows: int | None = None
    bytes: int | None = None
    sqlstate: str | None = None
    last_error: str | None = None
    retry_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None


class RunStore(Protocol):
    def claim(self, run_id: int) -> ChunkTask | None: ...

    def started(self, task: ChunkTask, source_pid: int | None, target_pid: int | None) -> None:
        ...

    def finish(self, run_id: int, chunk_no: int, rows: int, nbytes: int | None,
               stats: dict[str, int] | None = None) -> None: ...

    def rejected(self, task: ChunkTask, rejects: list[Any]) -> None:
        """Rows of a failed chunk that the target refused (key, sqlstate, message)."""
        ...

    def fail(
        self, run_id: int, chunk_no: int, sqlstate: str | None, message: str,
        retry_in: float | None,
    ) -> str: ...

    def wait_hint(self, run_id: int) -> float | None:
        """Seconds until a pending chunk may be claimed; None when nothing is left to claim."""
        ...


class SqlStore:
    """State in dms.run / dms.chunk of the home database."""

    def __init__(self, home: Session) -> None:
        self.home = home

    def claim(self, run_id: int) -> ChunkTask | None:
        rows = self.home.query(
            "SELECT chunk_no, query_sql, params::text AS params, attempts, estimated_rows,"
            " run_uuid::text AS run_uuid, snapshot_id FROM dms.claim_chunk($1::bigint)",
            [run_id],
        )
        self.home.commit()
        if not rows:
            return None
        row = rows[0]
        return ChunkTask(run_id, int(row["chunk_no"]), row["query_sql"],
                         decode_params(json.loads(row["params"])), int(row["attempts"]),
                         row["estimated_rows"], row["run_uuid"], row["snapshot_id"])

    def started(self, task: ChunkTask, source_pid: int | None, target_pid: int | None) -> None:
        """Record who reads and writes the chunk, so a stop can cancel them."""
        self.home.query(
            "SELECT dms.chunk_started($1::bigint, $2::int, $3::int, $4::int)",
            [task.run_id, task.chunk_no, source_pid, target_pid],
        )
        self.home.commit()

    def finish(self, run_id: int, chunk_no: int, rows: int, nbytes: int | None,
               stats: dict[str, int] | None = None) -> None:
        self.home.query(
            "SELECT dms.finish_chunk($1::bigint, $2::int, $3::bigint, $4::bigint, $5::jsonb)",
            [run_id, chunk_no, rows, nbytes, json.dumps(stats) if stats is not None else None],
        )
        self.home.commit()

    def rejected(self, task: ChunkTask, rejects: list[Any]) -> None:
        self.home.rollback()
        self.home.query(
            "SELECT dms.record_rejects($1::bigint, $2::int, $3::jsonb)",
            [task.run_id, task.chunk_no, json.dumps([r.__dict__ for r in rejects])],
        )
        self.home.commit()

    def fail(
        self, run_id: int, chunk_no: int, sqlstate: str | None, message: str,
        retry_in: float | None,
    ) -> str:
        rows = self.home.query(
            "SELECT dms.fail_chunk($1::bigint, $2::int, $3::text, $4::text, $5::float8) AS state",
            [run_id, chunk_no, sqlstate, message, retry_in],
        )
        self.home.commit()
        return str(rows[0]["state"])

    def wait_hint(self, run_id: int) -> float | None:
        rows = self.home.query(
            "SELECT count(*) FILTER (WHERE c.state = 'PENDING') AS pending,"
            " extract(epoch FROM min(c.retry_at) FILTER (WHERE c.state = 'PENDING')"
            "   - clock_timestamp())::float8 AS wait,"
            " (SELECT state FROM dms.run WHERE run_id = $1) AS run_state"
            " FROM dms.chunk c WHERE c.run_id = $1",
            [run_id],
        )
        self.home.commit()
        row = rows[0]
        if not row["pending"] or row["run_state"] != "RUNNING":
            return None
        return max(0.0, float(row["wait"] or 0.0))


@dataclass
class MemoryStore:
    """The queue in memory: for Python API runs against a database without dms."""

    chunks: list[ChunkRecord]
    run_id: int = 0
    run_uuid: str | None = None
    snapshot_id: str | None = None
    stopped: bool = False
    rejects: dict[int, list[Any]] = field(default_factory=dict)
    # Worker threads that have opened their source reader (a chunk started with
    # a source handle): a start-only point in time is let go once all have.
    readers_open: set[int] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(self, run_id: int) -> ChunkTask | None:
        now = time.monotonic()
        with self._lock:
            if self.stopped:
                return None
            for c in self.chunks:
                if c.state == "PENDING" and (c.retry_at is None or c.retry_at <= now):
                    c.state, c.attempts, c.retry_at = "RUNNING", c.attempts + 1, None
                    c.started_at = now
                    return ChunkTask(run_id, c.chunk_no, c.query_sql, dict(c.params), c.attempts,
                                     c.estimated_rows, self.run_uuid, self.snapshot_id)
        return None

    def _get(self, chunk_no: int) -> ChunkRecord:
        return self.chunks[chunk_no - 1]

    def rejected(self, task: ChunkTask, rejects: list[Any]) -> None:
        with self._lock:
            self.rejects[task.chunk_no] = list(rejects)

    def finish(self, run_id: int, chunk_no: int, rows: int, nbytes: int | None,
               stats: dict[str, int] | None = None) -> None:
        with self._lock:
            c = self._get(chunk_no)
            c.state, c.rows, c.bytes, c.ended_at = "DONE", rows, nbytes, time.monotonic()
            c.sqlstate = c.last_error = None

    def fail(
        self, run_id: int, chunk_no: int, sqlstate: str | None, message: str,
        retry_in: float | None,
    ) -> str:
        with self._lock:
            c = self._get(chunk_no)
            c.sqlstate, c.last_error = sqlstate, message
            if retry_in is None:
                c.state, c.ended_at = "FAILED", time.monotonic()
            else:
                c.state, c.retry_at = "PENDING", time.monotonic() + retry_in
            return c.state

    def started(self, task: ChunkTask, source_pid: int | None, target_pid: int | None) -> None:
        # Nobody outside this process cancels a Python API run; the handle only
        # says that this thread's reader is open.
        if source_pid is not None:
            with self._lock:
                self.readers_open.add(threading.get_ident())

    def pending(self) -> int:
        with self._lock:
            return sum(1 for c in self.chunks if c.state == "PENDING")

    def records(self) -> list[ChunkRecord]:
        """A consistent copy of every chunk, for progress and the result."""
        with self._lock:
            return [replace(c) for c in self.chunks]

    def wait_hint(self, run_id: int) -> float | None:
        now = time.monotonic()
        with self._lock:
            pending = [c for c in self.chunks if c.state == "PENDING"]
            if not pending or self.stopped:
                return None
            return max(0.0, min((c.retry_at or now) - now for c in pending))
