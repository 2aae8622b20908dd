"""One queue contract, two stores: ``SqlStore`` on the real dms.chunk and the
Python API's ``LocalStore`` in SQLite behave the same, transition by transition.

Each test runs once per store.  The run has three chunks whose bounds are
typed (date, Decimal, UUID) so the round trip of the params is checked too.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
import pytest

from dms_pkg.db.psycopg_db import PsycopgDatabase
from dms_pkg.engine.codec import encode_params
from dms_pkg.engine.local_store import LocalStore, worker_id
from dms_pkg.engine.store import QueueCounts, RunQueue, SqlStore
from tests.integration.conftest import Cluster

PARAMS = [
    {"lo": dt.date(2024, 1, 1), "hi": decimal.Decimal("10.50")},
    {"lo": uuid.UUID("6f1e3c1c-0000-4000-8000-000000000001"), "hi": 7},
    {},
]
QUERIES = [f"SELECT {n} AS chunk" for n in (1, 2, 3)]
ROWS = [100, 200, 300]


@dataclass
class Reject:
    key: str
    sqlstate: str
    message: str


class Harness(Protocol):
    store: RunQueue
    run_id: int

    def stop_run(self) -> None: ...

    def claim_by_gone_worker(self) -> int:
        """A worker claims the next chunk and is gone before it finishes it."""
        ...

    def rejects(self, chunk_no: int) -> list[tuple[str, str, str]]: ...

    def worker_of(self, chunk_no: int) -> int | None: ...


class SqlHarness:
    def __init__(self, cluster: Cluster, db: str) -> None:
        self.cluster, self.db = cluster, db
        self.conn = psycopg.connect(cluster.dsn(db))
        self.store = SqlStore(PsycopgDatabase(self.conn))
        run = {"label": "contract", "source_sql": "SELECT 1", "source_dialect": "postgres",
               "target_schema": "public",
               "target_table": "contract", "path": "rows", "write_mode": "append",
               "strategy": "test", "workers_requested": 1, "workers_planned": 1,
               "state": "RUNNING"}
        chunks = [{"chunk_no": n, "kind": "range", "predicate_sql": "true", "query_sql": q,
                   "params": encode_params(p), "estimated_rows": r}
                  for n, (q, p, r) in enumerate(zip(QUERIES, PARAMS, ROWS, strict=True),
                                                 start=1)]
        self.run_id = int(self.conn.execute(
            "SELECT dms.record_run(%s::jsonb, %s::jsonb)",
            [json.dumps(run), json.dumps(chunks)]).fetchone()[0])  # type: ignore[index]
        self.uuid = str(uuid.uuid4())  # run_uuid is unique across runs
        self.conn.execute("UPDATE dms.run SET run_uuid = %s, snapshot_id = 'snap-1'"
                          " WHERE run_id = %s", [self.uuid, self.run_id])
        self.conn.commit()

    def stop_run(self) -> None:
        self.conn.execute("SELECT dms.set_run_state(%s, 'STOPPING', NULL)", [self.run_id])
        self.conn.commit()

    def claim_by_gone_worker(self) -> int:
        with psycopg.connect(self.cluster.dsn(self.db)) as other:
            pid = other.info.backend_pid
            task = SqlStore(PsycopgDatabase(other)).claim(self.run_id)
        assert task is not None
        deadline = time.monotonic() + 30
        while self.conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                                [pid]).fetchone() != (0,):
            assert time.monotonic() < deadline, "the worker's backend did not end"
            self.conn.rollback()
            time.sleep(0.05)
        self.conn.rollback()
        return task.chunk_no

    def rejects(self, chunk_no: int) -> list[tuple[str, str, str]]:
        rows = self.conn.execute(
            "SELECT key_value, sqlstate, message FROM dms.chunk_reject"
            " WHERE run_id = %s AND chunk_no = %s ORDER BY seq", [self.run_id, chunk_no])
        result = [tuple(r) for r in rows]
        self.conn.rollback()
        return result

    def worker_of(self, chunk_no: int) -> int | None:
        row = self.conn.execute("SELECT worker_pid FROM dms.chunk WHERE run_id = %s"
                                " AND chunk_no = %s", [self.run_id, chunk_no]).fetchone()
        self.conn.rollback()
        return None if row is None else row[0]

    def me(self) -> int:
        return self.conn.info.backend_pid

    def close(self) -> None:
        self.conn.close()


class LocalHarness:
    def __init__(self) -> None:
        self.threads: list[threading.Thread] = [threading.current_thread()]
        self.uuid = str(uuid.uuid4())
        self.store = LocalStore(
            7, run_uuid=self.uuid,
            alive=lambda: [worker_id(t) for t in self.threads if t.is_alive()])
        self.store.add_chunks(zip((1, 2, 3), QUERIES, PARAMS, ROWS, strict=True))
        self.store.set_snapshot("snap-1")
        self.run_id = 7

    def stop_run(self) -> None:
        self.store.set_state("STOPPING")

    def claim_by_gone_worker(self) -> int:
        claimed: list[Any] = []
        thread = threading.Thread(target=lambda: claimed.append(self.store.claim(self.run_id)))
        self.threads.append(thread)  # kept, as ThreadCrew keeps its threads
        thread.start()
        thread.join()
        assert claimed and claimed[0] is not None
        return int(claimed[0].chunk_no)

    def rejects(self, chunk_no: int) -> list[tuple[str, str, str]]:
        return [(r["key_value"], r["sqlstate"], r["message"])
                for r in self.store.rejects(chunk_no)]

    def worker_of(self, chunk_no: int) -> int | None:
        rows = self.store._run("SELECT worker_pid FROM chunk WHERE chunk_no = ?", (chunk_no,))
        return rows[0]["worker_pid"] if rows else None

    def me(self) -> int:
        return worker_id(threading.current_thread())

    def close(self) -> None:
        self.store.close()


@pytest.fixture(params=["dms.chunk", "sqlite"])
def queue(request: pytest.FixtureRequest, cluster: Cluster) -> Iterator[Any]:
    if request.param == "dms.chunk":
        db = request.getfixturevalue("installed_db")
        harness: Any = SqlHarness(cluster, db)
    else:
        harness = LocalHarness()
    yield harness
    harness.close()


def test_claims_go_in_chunk_order_with_their_typed_bounds(queue: Any) -> None:
    store, run_id = queue.store, queue.run_id
    tasks = [store.claim(run_id) for _ in range(4)]
    assert tasks[3] is None
    planned = zip(QUERIES, PARAMS, ROWS, strict=True)
    assert [(t.chunk_no, t.query_sql, t.params, t.attempts, t.estimated_rows)
            for t in tasks[:3]] == [(n, q, p, 1, r) for n, (q, p, r) in enumerate(planned, 1)]
    assert {(t.run_uuid, t.snapshot_id) for t in tasks[:3]} == {(queue.uuid, "snap-1")}
    assert type(tasks[0].params["hi"]) is decimal.Decimal
    assert queue.worker_of(1) == queue.me()
    assert store.counts(run_id) == QueueCounts("RUNNING", 0, 3)


def test_a_retry_waits_its_delay_and_counts_an_attempt(queue: Any) -> None:
    store, run_id = queue.store, queue.run_id
    first = store.claim(run_id)
    assert store.fail(run_id, first.chunk_no, "40001", "serialization failure", 60.0) == "PENDING"
    # Chunk 1 waits a minute: the next claim takes chunk 2, and the hint says how long.
    assert store.claim(run_id).chunk_no == 2
    assert store.claim(run_id).chunk_no == 3
    assert store.claim(run_id) is None
    hint = store.wait_hint(run_id)
    assert hint is not None and 50.0 < hint <= 60.0
    assert store.counts(run_id) == QueueCounts("RUNNING", 1, 2)
    # Retried at once: it comes back with its second attempt.
    assert store.fail(run_id, 2, "08006", "connection lost", 0.0) == "PENDING"
    again = store.claim(run_id)
    assert (again.chunk_no, again.attempts) == (2, 2)


def test_a_failure_without_retry_fails_the_chunk_and_done_chunks_stay_done(queue: Any) -> None:
    store, run_id = queue.store, queue.run_id
    for _ in range(3):
        store.claim(run_id)
    assert store.fail(run_id, 1, "23505", "duplicate key", None) == "FAILED"
    store.finish(run_id, 2, 200, 4096, {"inserted": 200})
    assert store.counts(run_id) == QueueCounts("RUNNING", 0, 1)
    store.finish(run_id, 3, 300, None)
    assert store.counts(run_id) == QueueCounts("RUNNING", 0, 0)
    assert store.wait_hint(run_id) is None  # nothing left to claim: a worker ends
    assert store.claim(run_id) is None


def test_a_run_that_is_not_running_hands_out_nothing(queue: Any) -> None:
    store, run_id = queue.store, queue.run_id
    assert store.claim(run_id).chunk_no == 1
    queue.stop_run()
    assert store.claim(run_id) is None
    assert store.wait_hint(run_id) is None
    assert store.counts(run_id) == QueueCounts("STOPPING", 2, 1)


def test_a_gone_workers_chunk_goes_back_to_the_queue(queue: Any) -> None:
    store, run_id = queue.store, queue.run_id
    gone = queue.claim_by_gone_worker()
    mine = store.claim(run_id)
    assert (gone, mine.chunk_no) == (1, 2)
    assert store.reap(run_id) == 1  # only the gone worker's chunk
    assert store.reap(run_id) == 0
    assert store.counts(run_id) == QueueCounts("RUNNING", 2, 1)
    back = store.claim(run_id)
    assert (back.chunk_no, back.attempts) == (1, 2)


def test_readers_open_counts_workers_with_a_source_handle(queue: Any) -> None:
    store, run_id = queue.store, queue.run_id
    task = store.claim(run_id)
    assert store.readers_open(run_id) == 0
    store.started(task, 4242, 4343)
    assert store.readers_open(run_id) == 1
    store.started(store.claim(run_id), 4242, None)
    assert store.readers_open(run_id) == 1  # the same worker


def test_rejects_of_the_latest_attempt_replace_earlier_ones(queue: Any) -> None:
    store, run_id = queue.store, queue.run_id
    task = store.claim(run_id)
    store.rejected(task, [Reject("1", "23505", "dup"), Reject("2", "23514", "check")])
    store.rejected(task, [Reject("3", "22001", "too long")])
    assert queue.rejects(task.chunk_no) == [("3", "22001", "too long")]
