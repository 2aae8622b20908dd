"""The chunk queue of a Python API run: ``dms.run`` / ``dms.chunk`` rows in SQLite.

A Python API run may load a database that has no dms schema (or read with
no target at all), so its queue cannot live in ``dms.chunk``.  It lives in
a private in-memory SQLite database instead, with the same columns and the
same transitions as ``sql/api/030_engine_state.sql``: ``claim`` is
``dms.claim_chunk``'s statement (the first PENDING chunk of a RUNNING run
whose ``retry_at`` has passed, in chunk order, marked RUNNING with one more
attempt), ``fail`` is ``dms.fail_chunk``'s (back to PENDING with a retry
time, or FAILED), ``reap`` is ``dms.reap_chunks``'s (chunks of a worker
that is gone go back to the queue with 57P01).  It implements the same
``RunQueue`` protocol as ``SqlStore``, is driven by the same loop
(``drive``), and both are held to one contract by
``tests/integration/test_store_contract.py``.

Workers are threads of this process: every statement is a single
autocommitted statement under one lock, so a claim is atomic without
SQLite's locking modes; there is no ``SKIP LOCKED`` because SQLite
serialises writers anyway.  Times are ``time.monotonic()`` seconds.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from dms_pkg.engine.codec import decode_params, encode_params
from dms_pkg.engine.store import ChunkRecord, ChunkTask, QueueCounts

_SCHEMA = """
CREATE TABLE run (
    run_id      INTEGER PRIMARY KEY,
    state       TEXT NOT NULL CHECK (state IN ('RUNNING', 'STOPPING', 'STOPPED', 'SUCCEEDED',
                                              'PARTIAL', 'FAILED')),
    run_uuid    TEXT,
    snapshot_id TEXT
);
CREATE TABLE chunk (
    run_id         INTEGER NOT NULL REFERENCES run (run_id),
    chunk_no       INTEGER NOT NULL,
    query_sql      TEXT NOT NULL,
    params         TEXT NOT NULL DEFAULT '[]',
    estimated_rows INTEGER,
    state          TEXT NOT NULL DEFAULT 'PENDING'
                   CHECK (state IN ('PENDING', 'RUNNING', 'DONE', 'FAILED')),
    attempts       INTEGER NOT NULL DEFAULT 0,
    worker_pid     INTEGER,
    source_pid     INTEGER,
    target_pid     INTEGER,
    started_at     REAL,
    ended_at       REAL,
    heartbeat_at   REAL,
    retry_at       REAL,
    rows           INTEGER,
    bytes          INTEGER,
    stats          TEXT,
    sqlstate       TEXT,
    last_error     TEXT,
    PRIMARY KEY (run_id, chunk_no)
);
CREATE TABLE chunk_reject (
    run_id    INTEGER NOT NULL,
    chunk_no  INTEGER NOT NULL,
    seq       INTEGER NOT NULL,
    key_value TEXT,
    sqlstate  TEXT,
    message   TEXT,
    PRIMARY KEY (run_id, chunk_no, seq),
    FOREIGN KEY (run_id, chunk_no) REFERENCES chunk (run_id, chunk_no)
);
"""

# dms.claim_chunk's statement, in SQLite.
_CLAIM = """
UPDATE chunk
   SET state = 'RUNNING', attempts = attempts + 1, worker_pid = :worker,
       started_at = :now, heartbeat_at = :now,
       ended_at = NULL, retry_at = NULL, source_pid = NULL, target_pid = NULL
 WHERE (run_id, chunk_no) = (
        SELECT p.run_id, p.chunk_no
          FROM chunk p JOIN run r ON r.run_id = p.run_id
         WHERE p.run_id = :run_id AND p.state = 'PENDING' AND r.state = 'RUNNING'
           AND (p.retry_at IS NULL OR p.retry_at <= :now)
         ORDER BY p.chunk_no
         LIMIT 1)
RETURNING chunk_no, query_sql, params, attempts, estimated_rows
"""

# dms.fail_chunk's statement.
_FAIL = """
UPDATE chunk
   SET state = :state, sqlstate = :sqlstate, last_error = :message,
       ended_at = CASE WHEN :state = 'FAILED' THEN :now END,
       retry_at = CASE WHEN :retry_in IS NOT NULL THEN :now + :retry_in END
 WHERE run_id = :run_id AND chunk_no = :chunk_no
"""

# dms.wait_hint's query (SqlStore.wait_hint).
_WAIT = """
SELECT count(*) FILTER (WHERE c.state = 'PENDING') AS pending,
       min(c.retry_at) FILTER (WHERE c.state = 'PENDING') - :now AS wait,
       (SELECT state FROM run WHERE run_id = :run_id) AS run_state
  FROM chunk c WHERE c.run_id = :run_id
"""

_RECORD_COLUMNS = ("chunk_no", "query_sql", "params", "estimated_rows", "state", "attempts",
                   "rows", "bytes", "sqlstate", "last_error", "retry_at", "started_at",
                   "ended_at")


def worker_id(thread: threading.Thread) -> int:
    """A worker's id in ``worker_pid``: its Thread object's, which -- unlike a
    thread ident -- no later thread reuses while the run keeps that object."""
    return id(thread) & 0x7FFF_FFFF_FFFF_FFFF


class LocalStore:
    """One run's queue in a private in-memory SQLite database.

    A worker is its thread, recorded as ``worker_id(thread)`` in
    ``worker_pid``; ``alive`` gives the ids of the workers that still run,
    and ``reap`` puts back the chunks of any other.
    """

    def __init__(self, run_id: int = 1, *, run_uuid: str | None = None,
                 alive: Callable[[], Iterable[int]] = lambda: ()) -> None:
        self.run_id = run_id
        self.alive = alive
        # One connection shared by the run's threads, every use under the lock.
        self._db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._db.executescript(_SCHEMA)
            self._db.execute("INSERT INTO run (run_id, state, run_uuid) VALUES (?, 'RUNNING', ?)",
                             (run_id, run_uuid))

    def _run(self, sql: str, params: dict[str, Any] | tuple[Any, ...] = ()
             ) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # -- the run --------------------------------------------------------------

    def add_chunks(self, chunks: Iterable[tuple[int, str, dict[str, Any], int | None]]) -> None:
        """The plan's chunks: (chunk_no, query_sql, params, estimated_rows)."""
        with self._lock:
            self._db.executemany(
                "INSERT INTO chunk (run_id, chunk_no, query_sql, params, estimated_rows)"
                " VALUES (?, ?, ?, ?, ?)",
                [(self.run_id, no, sql, json.dumps(encode_params(params)), rows)
                 for no, sql, params, rows in chunks])

    def set_snapshot(self, snapshot_id: str | None) -> None:
        self._run("UPDATE run SET snapshot_id = ? WHERE run_id = ?", (snapshot_id, self.run_id))

    def set_state(self, state: str) -> None:
        """STOPPING hands out no more chunks (``dms.request_stop``)."""
        self._run("UPDATE run SET state = ? WHERE run_id = ?", (state, self.run_id))

    @property
    def run_uuid(self) -> str | None:
        rows = self._run("SELECT run_uuid FROM run WHERE run_id = ?", (self.run_id,))
        return rows[0]["run_uuid"] if rows else None

    def records(self) -> list[ChunkRecord]:
        """Every chunk, in chunk order, for progress and the result."""
        rows = self._run(f"SELECT {', '.join(_RECORD_COLUMNS)} FROM chunk WHERE run_id = ?"
                         " ORDER BY chunk_no", (self.run_id,))
        return [ChunkRecord(**{**dict(r), "params": decode_params(json.loads(r["params"]))})
                for r in rows]

    def rejects(self, chunk_no: int) -> list[dict[str, Any]]:
        return [dict(r) for r in self._run(
            "SELECT key_value, sqlstate, message FROM chunk_reject"
            " WHERE run_id = ? AND chunk_no = ? ORDER BY seq", (self.run_id, chunk_no))]

    # -- RunStore: the worker's side ------------------------------------------

    def claim(self, run_id: int) -> ChunkTask | None:
        rows = self._run(_CLAIM, {"run_id": run_id,
                                  "worker": worker_id(threading.current_thread()),
                                  "now": time.monotonic()})
        if not rows:
            return None
        row = rows[0]
        run = self._run("SELECT run_uuid, snapshot_id FROM run WHERE run_id = ?", (run_id,))[0]
        return ChunkTask(run_id, int(row["chunk_no"]), row["query_sql"],
                         decode_params(json.loads(row["params"])), int(row["attempts"]),
                         row["estimated_rows"], run["run_uuid"], run["snapshot_id"])

    def started(self, task: ChunkTask, source_pid: int | None, target_pid: int | None) -> None:
        self._run("UPDATE chunk SET source_pid = ?, target_pid = ?, heartbeat_at = ?"
                  " WHERE run_id = ? AND chunk_no = ?",
                  (source_pid, target_pid, time.monotonic(), task.run_id, task.chunk_no))

    def finish(self, run_id: int, chunk_no: int, rows: int, nbytes: int | None,
               stats: dict[str, int] | None = None) -> None:
        now = time.monotonic()
        self._run("UPDATE chunk SET state = 'DONE', rows = ?, bytes = ?, stats = ?,"
                  " ended_at = ?, heartbeat_at = ?, sqlstate = NULL, last_error = NULL"
                  " WHERE run_id = ? AND chunk_no = ?",
                  (rows, nbytes, json.dumps(stats) if stats is not None else None, now, now,
                   run_id, chunk_no))

    def rejected(self, task: ChunkTask, rejects: list[Any]) -> None:
        # The rows of the chunk's latest attempt replace those of earlier ones.
        with self._lock:
            self._db.execute("DELETE FROM chunk_reject WHERE run_id = ? AND chunk_no = ?",
                             (task.run_id, task.chunk_no))
            self._db.executemany(
                "INSERT INTO chunk_reject (run_id, chunk_no, seq, key_value, sqlstate, message)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(task.run_id, task.chunk_no, seq, r.key, r.sqlstate, r.message)
                 for seq, r in enumerate(rejects, start=1)])

    def fail(self, run_id: int, chunk_no: int, sqlstate: str | None, message: str,
             retry_in: float | None) -> str:
        state = "FAILED" if retry_in is None else "PENDING"
        self._run(_FAIL, {"state": state, "sqlstate": sqlstate, "message": message,
                          "now": time.monotonic(), "retry_in": retry_in, "run_id": run_id,
                          "chunk_no": chunk_no})
        return state

    def wait_hint(self, run_id: int) -> float | None:
        row = self._run(_WAIT, {"run_id": run_id, "now": time.monotonic()})[0]
        if not row["pending"] or row["run_state"] != "RUNNING":
            return None
        return max(0.0, float(row["wait"] or 0.0))

    # -- RunQueue: the driver's side ------------------------------------------

    def reap(self, run_id: int) -> int:
        alive = sorted(set(self.alive()))
        marks = ", ".join("?" * len(alive)) or "NULL"
        with self._lock:
            cursor = self._db.execute(
                "UPDATE chunk SET state = 'PENDING', retry_at = NULL, sqlstate = '57P01',"
                " last_error = 'worker thread ' || worker_pid || ' ended while moving the chunk'"
                f" WHERE run_id = ? AND state = 'RUNNING' AND worker_pid NOT IN ({marks})",
                (run_id, *alive))
            return cursor.rowcount

    def counts(self, run_id: int) -> QueueCounts:
        row = self._run(
            "SELECT (SELECT state FROM run WHERE run_id = :run_id) AS state,"
            " count(*) FILTER (WHERE state = 'PENDING') AS pending,"
            " count(*) FILTER (WHERE state = 'RUNNING') AS running"
            " FROM chunk WHERE run_id = :run_id", {"run_id": run_id})[0]
        return QueueCounts(row["state"], int(row["pending"]), int(row["running"]))

    def readers_open(self, run_id: int) -> int:
        row = self._run(
            "SELECT count(DISTINCT worker_pid) AS n FROM chunk"
            " WHERE run_id = ? AND source_pid IS NOT NULL AND state <> 'PENDING'", (run_id,))[0]
        return int(row["n"])

    def close(self) -> None:
        with self._lock:
            self._db.close()
