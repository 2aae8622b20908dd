"""One psql per worker (``PsqlSession``): many chunks through one process and one
snapshot import, errors with their SQLSTATE, and a fresh process after a failure.

Real psql, real server; the COPY output is compared with the one-shot reader's
(``copy_out``, one psql per chunk), which the engine used before and still uses
for statements psql would rewrite.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from dms_pkg.backends import postgres
from dms_pkg.backends.base import Chunk
from dms_pkg.backends.postgres_psql import (
    PsqlSession,
    SnapshotImportError,
    SourceError,
    SourceSession,
    copy_out,
    find_psql,
    streamable,
)
from tests.integration.conftest import Cluster, DatabaseFactory, wait_for

CHUNK_1 = "COPY (SELECT * FROM t WHERE id <= 500 ORDER BY id) TO STDOUT (FORMAT binary)"
CHUNK_2 = "COPY (SELECT * FROM t WHERE id > 500 ORDER BY id) TO STDOUT (FORMAT text)"
ALL_IDS = "COPY (SELECT count(*), sum(id) FROM t) TO STDOUT"


@pytest.fixture(scope="module")
def source(cluster: Cluster, databases: DatabaseFactory) -> str:
    name = databases.create()
    with psycopg.connect(cluster.dsn(name), autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, note text, at timestamptz)")
        conn.execute("INSERT INTO t SELECT g, repeat(chr(65 + g % 26), g % 40) || E'\\t\\\\x',"
                     " '2026-01-01'::timestamptz + g * interval '1 minute'"
                     " FROM generate_series(1, 1000) g")
    return cluster.dsn(name)


@pytest.fixture
def session(source: str) -> Iterator[tuple[PsqlSession, SourceSession]]:
    psql = find_psql()
    assert psql is not None, "psql is part of the server packages the project installs"
    how = SourceSession(postgres.local(source), None, "dms test psql session")
    one = PsqlSession(psql, how)
    yield one, how
    one.close()


@pytest.fixture
def snapshot(source: str) -> Iterator[tuple[str, psycopg.Connection[Any]]]:
    conn = psycopg.connect(source)
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    row = conn.execute("SELECT pg_export_snapshot()").fetchone()
    assert row is not None
    yield str(row[0]), conn
    conn.close()


def read(one: PsqlSession, statement: str, snapshot: str | None) -> bytes:
    with one.copy(statement, snapshot) as feed:
        return b"".join(feed)


def one_shot(how: SourceSession, statement: str, snapshot: str | None) -> bytes:
    psql = find_psql()
    assert psql is not None
    with copy_out(psql, how, statement, snapshot) as feed:
        return b"".join(feed)


def test_chunks_of_one_snapshot_share_one_process_and_see_the_same_moment(
        session: tuple[PsqlSession, SourceSession], snapshot: tuple[str, Any], source: str
) -> None:
    one, how = session
    token, _ = snapshot
    first = read(one, CHUNK_1, token)
    pid = one.backend_pid
    assert pid is not None
    # Rows committed after the snapshot are not the run's: no chunk may see them.
    with psycopg.connect(source, autocommit=True) as other:
        other.execute("INSERT INTO t VALUES (5000, 'late', now())")
    try:
        second = read(one, CHUNK_2, token)
        counted = read(one, ALL_IDS, token)
        assert one.backend_pid == pid  # the same process and login served every chunk
        assert first == one_shot(how, CHUNK_1, token)
        assert second == one_shot(how, CHUNK_2, token)
        assert counted == b"1000\t500500\n"
        assert read(one, ALL_IDS, None) == b"1001\t505500\n"  # no snapshot: now
    finally:
        with psycopg.connect(source, autocommit=True) as other:
            other.execute("DELETE FROM t WHERE id = 5000")
    with psycopg.connect(source, autocommit=True) as other:
        row = other.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name ="
                            " 'dms test psql session'").fetchone()
    assert row == (1,)


def test_a_failing_chunk_reports_its_sqlstate_and_the_next_chunk_gets_a_new_process(
        session: tuple[PsqlSession, SourceSession], snapshot: tuple[str, Any]) -> None:
    one, _ = session
    token, _ = snapshot
    read(one, ALL_IDS, token)
    before = one.backend_pid
    with pytest.raises(SourceError) as failed:
        read(one, "COPY (SELECT id / (id - 700) FROM t ORDER BY id) TO STDOUT", token)
    assert failed.value.sqlstate == "22012"
    assert str(failed.value) == "division by zero"
    assert one.backend_pid is None
    assert read(one, ALL_IDS, token) == b"1000\t500500\n"
    assert one.backend_pid not in (None, before)


def test_a_snapshot_that_cannot_be_imported_is_told_apart(
        session: tuple[PsqlSession, SourceSession]) -> None:
    one, _ = session
    with pytest.raises(SnapshotImportError) as failed:
        read(one, ALL_IDS, "00000003-0000001B-1")
    assert failed.value.sqlstate == "22023"
    assert read(one, ALL_IDS, None) == b"1000\t500500\n"


def test_a_failed_import_never_leaves_the_worker_waiting(
        session: tuple[PsqlSession, SourceSession]) -> None:
    """psql ends before it opens the FIFO; its stdout's hang-up can come a moment
    before the process can be reaped.  That race once left a worker waiting for
    the FIFO forever (seen once in CI).  Fifty failed imports in a row, each
    told apart, none waiting."""
    one, _ = session
    for _ in range(50):
        with pytest.raises(SnapshotImportError):
            read(one, ALL_IDS, "00000003-0000001B-1")
        assert one.backend_pid is None
    assert read(one, ALL_IDS, None) == b"1000\t500500\n"


def test_a_chunk_statement_larger_than_a_pipe_is_read_not_waited_for(
        session: tuple[PsqlSession, SourceSession], snapshot: tuple[str, Any]) -> None:
    """A statement longer than the pipe to psql's stdin (64 KiB): psql opens the
    FIFO (``\\o``) before it has read the whole statement, so the FIFO must
    already have its reader, or psql waits for one while the worker waits for
    psql to take the rest of the statement -- forever, and deaf to a cancel.
    Run in a thread: a hang fails the test instead of stopping the suite."""
    one, _ = session
    excluded = ", ".join(str(-n) for n in range(1, 40001))  # ~270 KB of SQL
    statement = f"COPY (SELECT count(*), sum(id) FROM t WHERE id NOT IN ({excluded})) TO STDOUT"
    assert len(statement) > 4 * 65536
    results: list[bytes] = []
    for snap in (None, snapshot[0]):
        worker = threading.Thread(target=lambda s=snap: results.append(read(one, statement, s)),
                                  daemon=True)
        worker.start()
        worker.join(60)
        if worker.is_alive():
            one.close()  # kills psql, which unblocks the thread
            worker.join(10)
            pytest.fail("the worker waited for psql and psql for the FIFO's reader")
    assert results == [b"1000\t500500\n", b"1000\t500500\n"]


def test_a_chunk_left_before_its_first_row_does_not_leave_its_query_running(
        session: tuple[PsqlSession, SourceSession], source: str) -> None:
    """A worker that gives up on a chunk (cancelled, or its target failed) while
    the source query is still working towards its first row: killing psql
    alone would leave that query running -- holding its snapshot and locks --
    until it next writes to the dead client.  psql is asked to cancel it."""
    one, _ = session
    slow = "COPY (SELECT pg_catalog.pg_sleep(60), 1) TO STDOUT"

    def state(pid: int) -> str:
        with psycopg.connect(source, autocommit=True) as conn:
            row = conn.execute("SELECT state FROM pg_stat_activity WHERE pid = %s",
                               [pid]).fetchone()
        return str(row[0]) if row else "gone"

    pids: list[int] = []
    with pytest.raises(RuntimeError), one.copy(slow, None):
        assert one.backend_pid is not None
        pids.append(one.backend_pid)
        wait_for(lambda: state(pids[0]) == "active", timeout=10, what="the chunk's query to run")
        raise RuntimeError("the worker gives up on this chunk")
    wait_for(lambda: state(pids[0]) != "active", timeout=10,
             what="the abandoned chunk's query to be cancelled")
    assert read(one, ALL_IDS, None) == b"1000\t500500\n"


def test_fifo_folders_of_a_terminated_worker_are_removed_by_the_next_one(
        session: tuple[PsqlSession, SourceSession]) -> None:
    """A worker backend terminated with FATAL runs no cleanup: its psql folder
    (a FIFO in /tmp) stays.  Folders are named after their process, and a
    session that starts psql removes those of processes that are gone -- not
    those of live ones."""
    one, _ = session
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no process has now
    stale = tempfile.mkdtemp(prefix=f"dms-psql-{dead.pid}-")
    os.mkfifo(os.path.join(stale, "copy"), 0o600)
    live = tempfile.mkdtemp(prefix=f"dms-psql-{os.getpid()}-")
    try:
        assert read(one, ALL_IDS, None) == b"1000\t500500\n"
        assert not os.path.exists(stale)
        assert os.path.isdir(live)
    finally:
        shutil.rmtree(stale, ignore_errors=True)
        shutil.rmtree(live, ignore_errors=True)


def test_a_chunk_left_midway_ends_its_process_and_nothing_of_it_leaks_into_the_next(
        session: tuple[PsqlSession, SourceSession], snapshot: tuple[str, Any]) -> None:
    one, _ = session
    token, _ = snapshot
    big = "COPY (SELECT g, repeat('x', 200) FROM generate_series(1, 200000) g) TO STDOUT"
    with pytest.raises(RuntimeError), one.copy(big, token) as feed:
        next(iter(feed))
        raise RuntimeError("the target refused the chunk")
    assert one.backend_pid is None
    assert read(one, ALL_IDS, token) == b"1000\t500500\n"


def test_a_source_session_killed_between_chunks_fails_the_next_chunk_only(
        session: tuple[PsqlSession, SourceSession], snapshot: tuple[str, Any],
        source: str) -> None:
    one, _ = session
    token, _ = snapshot
    read(one, ALL_IDS, token)
    with psycopg.connect(source, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [one.backend_pid])
    with pytest.raises(SourceError):
        read(one, ALL_IDS, token)
    assert read(one, ALL_IDS, token) == b"1000\t500500\n"


def test_statements_psql_would_rewrite_go_through_a_one_shot_psql(source: str) -> None:
    reader = postgres.Reader(postgres.local(source), application_name="dms test reader",
                             search_path=None)
    try:
        # Outside quotes, a colon before a name is a psql variable when psql
        # reads its stdin (DBNAME is one of psql's own): streamed, this slice
        # bound would become the database's name.  It must reach the server as
        # written.
        query = ("SELECT (ARRAY[id, id + 1, id + 2])[2:DBNAME] AS s, note"
                 " FROM (SELECT id, note, 3 AS dbname FROM t WHERE id = 26) AS q")
        assert not streamable(f"COPY ({query}) TO STDOUT")
        chunk = Chunk(query, {}, snapshot=None)
        with reader.copy(chunk, "text") as feed:
            assert b"".join(feed) == b"{27,28}\tAAAAAAAAAAAAAAAAAAAAAAAAAA\\t\\\\x\n"
    finally:
        reader.close()


BIG = "COPY (SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g) TO STDOUT"
DEFAULT_PIPE = 1 << 16


@pytest.mark.parametrize("reader", ["session", "one-shot"])
def test_a_worker_behind_psql_reads_more_than_a_default_pipe_at_once(
        session: tuple[PsqlSession, SourceSession], reader: str) -> None:
    # The worker is held back (as a slow target holds it back) until psql has
    # written its ~4 MB; a pipe of the default 64 KiB would hand the rest over
    # at most 64 KiB per read, the widened one hands a whole BLOCK over.
    one, how = session
    psql = find_psql()
    assert psql is not None
    opened = one.copy(BIG, None) if reader == "session" else copy_out(psql, how, BIG, None)
    with opened as feed:
        blocks = iter(feed)
        first = next(blocks)
        threading.Event().wait(1.0)
        rest = list(blocks)
    data = first + b"".join(rest)
    assert data.count(b"\n") == 20000
    assert data.endswith(b"20000\t" + b"x" * 200 + b"\n")
    assert max(len(b) for b in rest) > DEFAULT_PIPE
