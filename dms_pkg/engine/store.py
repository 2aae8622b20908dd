"""Where run and chunk state lives: one protocol, two homes.

``RunStore`` is what a worker needs (claim, started, finish, rejected,
fail, wait_hint); ``RunQueue`` adds what the driver of a run needs (reap
chunks of dead workers, count what is left, see that the readers are
open).  ``SqlStore`` goes through the SECURITY DEFINER functions of
``sql/api/030_engine_state.sql`` and commits after every change, so other
sessions see a claim or a finished chunk at once.  ``LocalStore``
(``local_store``) keeps the same ``run`` and ``chunk`` rows in an
in-memory SQLite database for a Python API run, with the same statements.
Both are driven by one loop (``drive``) and held to one contract
(``tests/integration/test_store_contract.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
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
    """A chunk as the Python API reports it (a row of ``LocalStore``'s queue)."""

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


@dataclass(frozen=True)
class QueueCounts:
    """What is left of a run: its state and how many chunks wait or run."""

    state: str | None
    pending: int
    running: int


class RunQueue(RunStore, Protocol):
    """The driver's side of a store (``drive``)."""

    def reap(self, run_id: int) -> int:
        """Put chunks whose worker is gone back in the queue; how many."""
        ...

    def counts(self, run_id: int) -> QueueCounts: ...

    def readers_open(self, run_id: int) -> int:
        """Workers that have opened their source reader (recorded a source
        handle on a chunk they took)."""
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

    def reap(self, run_id: int) -> int:
        n = int(self.home.query("SELECT dms.reap_chunks($1::bigint) AS n", [run_id])[0]["n"])
        self.home.commit()
        return n

    def counts(self, run_id: int) -> QueueCounts:
        row = self.home.query(
            "SELECT (SELECT state FROM dms.run WHERE run_id = $1::bigint) AS state,"
            " count(*) FILTER (WHERE state = 'PENDING') AS pending,"
            " count(*) FILTER (WHERE state = 'RUNNING') AS running"
            " FROM dms.chunk WHERE run_id = $1::bigint",
            [run_id],
        )[0]
        self.home.commit()
        return QueueCounts(row["state"], int(row["pending"]), int(row["running"]))

    def readers_open(self, run_id: int) -> int:
        row = self.home.query(
            "SELECT count(DISTINCT worker_pid) AS n FROM dms.chunk"
            " WHERE run_id = $1::bigint AND source_pid IS NOT NULL AND state <> 'PENDING'",
            [run_id])[0]
        self.home.commit()
        return int(row["n"])
