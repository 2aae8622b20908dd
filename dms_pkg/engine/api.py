"""``dms_pkg.execute_query_parallel``: the engine from Python, without the plugin.

The user guide's API: give a source connection and query, optionally a
transformation and a target, and get a result with row and chunk counts.
The run uses the same planner, data paths and retry rules as the SQL entry
points; its workers are threads of this process, each with its own
connections (opened from the ones you pass, password included, never
printed), and its queue is kept in memory -- to watch a run from SQL or
resume it after a crash, use ``dms.execute_query_parallel`` instead.

``progress_callback`` is called from the calling thread about every half
second and once at the end, with a ``ProgressSnapshot``.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import IsolationLevel
from psycopg_pool import ConnectionPool

from dms_pkg.db.psycopg_db import PsycopgDatabase
from dms_pkg.db.sources import PsycopgSource
from dms_pkg.engine import columns as cols
from dms_pkg.engine import config as cfg
from dms_pkg.engine import target as stage
from dms_pkg.engine.connections import ConnInfo, open_connection
from dms_pkg.engine.movers import RunSpec, Transform
from dms_pkg.engine.planning import choose_path, choose_workers, plan_source
from dms_pkg.engine.psql_reader import SourceSession
from dms_pkg.engine.store import ChunkRecord, MemoryStore
from dms_pkg.engine.worker import LazyMover, RetryPolicy, build_mover, run_worker
from dms_pkg.errors import INVALID_PARAMETER_VALUE, DmsError

SOURCE, TARGET = 1, 2  # connection keys inside one Python API run
CALLBACK_INTERVAL = 0.5


@dataclass(frozen=True)
class ProgressSnapshot:
    progress_percentage: float
    total_rows_processed: int
    chunks_done: int
    chunks_failed: int
    chunks_total: int
    elapsed_time: float
    rows_per_second: float
    estimated_remaining_time: float | None


@dataclass
class ParallelResult:
    total_rows_processed: int = 0
    total_rows_successful: int = 0
    total_rows_failed: int = 0
    chunks_total: int = 0
    chunks_succeeded: int = 0
    chunks_failed: int = 0
    chunk_errors: list[dict[str, Any]] = field(default_factory=list)
    processing_time: float = 0.0
    path: str = ""
    strategy: str = ""
    workers: int = 0
    parallel_note: str | None = None
    refused_reason: str | None = None
    rows: list[dict[str, Any]] | None = None  # the rows, when no target was given

    @property
    def success(self) -> bool:
        return self.chunks_failed == 0


def _conninfo(conn: Any, role: str) -> ConnInfo:
    if isinstance(conn, psycopg.Connection):
        return ConnInfo(None, role, "POSTGRESQL", conn.info.dsn, password=conn.info.password)
    if isinstance(conn, str):
        return ConnInfo(None, role, "POSTGRESQL", conn)
    raise DmsError(
        f"{role}_conn must be a psycopg connection or a PostgreSQL connection string, "
        f"got {type(conn).__name__}",
        sqlstate=INVALID_PARAMETER_VALUE,
        hint="pass psycopg.connect(...) or 'host=... dbname=...'",
    )


def _fingerprint(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
    """Identifies a database: same server start, port and database name."""
    row = conn.execute(
        "SELECT pg_postmaster_start_time(), inet_server_port(), current_setting('port'),"
        " current_database()"
    ).fetchone()
    conn.rollback()
    return tuple(row or ())


def execute_query_parallel(
    source_conn: Any,
    source_sql: str,
    transformation_func: Transform | None = None,
    target_conn: Any = None,
    target_schema: str | None = None,
    target_table: str | None = None,
    enable_parallel: bool | None = None,
    max_workers: int | None = None,
    chunk_size: int | None = None,
    min_rows_for_parallel: int | None = 100000,
    enable_retry: bool | None = None,
    max_retries: int | None = None,
    enable_progress: bool | None = None,
    progress_callback: Callable[[ProgressSnapshot], None] | None = None,
    **options: Any,
) -> ParallelResult:
    """Run ``source_sql`` in parallel chunks and load (or return) its rows.

    ``options`` take the other run parameters of the SQL API: ``path``,
    ``write_mode``, ``create_target``, ``key``, ``strategy``, ``chunks``,
    ``retry_initial_delay``, ``retry_max_delay``.
    """
    started = time.monotonic()
    cfg.check_keys(options, "options")
    arguments = {
        "enable_parallel": enable_parallel, "max_workers": max_workers, "chunk_size": chunk_size,
        "min_rows_for_parallel": min_rows_for_parallel, "enable_retry": enable_retry,
        "max_retries": max_retries, "enable_progress": enable_progress, **options,
    }
    config = cfg.resolve([("environment", cfg.env_layer(os.environ)), ("arguments", arguments)])
    if target_conn is not None and (not target_schema or not target_table):
        raise DmsError("target_schema and target_table are required with a target_conn",
                       sqlstate=INVALID_PARAMETER_VALUE)
    source = _conninfo(source_conn, "source")
    target = _conninfo(target_conn, "target") if target_conn is not None else None
    infos = {SOURCE: source, TARGET: target or source}

    with open_connection(source) as planning_conn:
        plan, query_rows = plan_source(PsycopgDatabase(planning_conn),
                                       PsycopgSource(planning_conn), source_sql, config)
        source_columns = cols.describe_query(PsycopgDatabase(planning_conn), source_sql)
        source_print = _fingerprint(planning_conn)
    path, spec, staging = "rows", None, None
    if target is not None:
        assert target_schema is not None and target_table is not None
        with open_connection(target) as target_conn_:
            same = _fingerprint(target_conn_) == source_print
            spec, staging = _target_spec(
                PsycopgDatabase(target_conn_), config, source_columns, target_schema,
                target_table, same, transformation_func is not None, source, target,
            )
            path = spec.path
    if spec is None:  # no target: the rows come back to the caller
        spec = RunSpec(0, "rows", None, "", "", "", tuple(c.name for c in source_columns),
                       SOURCE, TARGET, ledger=False)
    estimated = (query_rows if query_rows is not None
                 else sum(c.estimated_rows or 0 for c in plan.chunks))
    workers, note = choose_workers(config, estimated, len(plan.chunks), None, 0)

    store = MemoryStore([
        ChunkRecord(c.chunk_no, c.query_sql, dict(c.params), c.estimated_rows)
        for c in plan.chunks
    ], run_uuid=str(uuid.uuid4()))
    collected: dict[int, list[dict[str, Any]]] = {}
    lock = threading.Lock()

    def collect(chunk_no: int, rows: list[dict[str, Any]]) -> None:
        with lock:
            collected[chunk_no] = rows

    policy = RetryPolicy.from_config(config.values)
    failures: list[BaseException] = []

    pools = {key: _pool(info, workers) for key, info in infos.items()}

    def worker() -> None:
        conns = PooledConnections(pools, infos)
        try:
            mover = LazyMover(lambda: build_mover(
                spec, conns, store, transform=transformation_func,
                batch_size=min(int(config["chunk_size"]), 10_000),
                collect=collect if target is None else None,
                copy_reader=config["copy_reader"],
            ))
            run_worker(0, store, mover, policy)
        except BaseException as exc:  # reported after the join
            failures.append(exc)
        finally:
            conns.close()

    threads = [threading.Thread(target=worker, name=f"dms-worker-{i + 1}", daemon=True)
               for i in range(workers)]
    snapshot = None
    try:
        if config["snapshot"]:
            # Every chunk reads the source as of this moment.
            snapshot = open_connection(source)
            snapshot.isolation_level = IsolationLevel.REPEATABLE_READ
            snapshot.read_only = True
            row = snapshot.execute("SELECT pg_catalog.pg_export_snapshot()").fetchone()
            store.snapshot_id = row[0] if row else None
        for thread in threads:
            thread.start()
        _wait(threads, store, started, progress_callback if config["enable_progress"] else None)
    finally:
        if snapshot is not None:
            snapshot.close()
        for pool in pools.values():
            pool.close()
    if failures:
        raise failures[0]
    if target is not None and all(c.state == "DONE" for c in store.records()):
        _finish_target(target, spec, store, staging, target_schema or "", target_table or "",
                       transformed=transformation_func is not None)

    result = _result(store, started, path, plan.strategy, workers, note, plan.refused_reason)
    if target is None:
        result.rows = [row for no in sorted(collected) for row in collected[no]]
    return result


def _wait(threads: list[threading.Thread], store: MemoryStore, started: float,
          progress_callback: Callable[[ProgressSnapshot], None] | None) -> None:
    while any(t.is_alive() for t in threads):
        for thread in threads:
            thread.join(timeout=CALLBACK_INTERVAL / len(threads))
        if progress_callback is not None:
            progress_callback(_snapshot(store, started))
    if progress_callback is not None:
        progress_callback(_snapshot(store, started))


def _pool(info: ConnInfo, size: int) -> ConnectionPool:
    """A pool per database: a worker thread that loses its connection gets a
    fresh one from it (the pool drops the broken one and reconnects)."""
    kwargs = info.connect_kwargs()
    conninfo = kwargs.pop("conninfo")
    return ConnectionPool(conninfo, min_size=1, max_size=size, kwargs=kwargs, open=True,
                          name=f"dms-{info.name}")


class PooledConnections:
    """A worker thread's connections, checked out of the run's pools."""

    def __init__(self, pools: dict[int, ConnectionPool], infos: dict[int, ConnInfo]) -> None:
        self.pools = pools
        self.infos = infos
        self._held: dict[int, psycopg.Connection[Any]] = {}

    def get(self, conid: int | None, role: str = "target") -> psycopg.Connection[Any]:
        key = conid or SOURCE
        conn = self._held.get(key)
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                self.pools[key].putconn(conn)
            conn = self.pools[key].getconn(timeout=60)
            self._held[key] = conn
        return conn

    def session(self, conid: int | None) -> SourceSession:
        return SourceSession(self.infos[conid or SOURCE], None, None)

    def close(self) -> None:
        for key, conn in self._held.items():
            self.pools[key].putconn(conn)
        self._held.clear()


def _target_spec(
    target_db: PsycopgDatabase, config: cfg.EngineConfig, source_columns: list[cols.SourceColumn],
    schema: str, table: str, same: bool, transformed: bool, source: ConnInfo, target: ConnInfo,
) -> tuple[RunSpec, str | None]:
    """Check the target and prepare it (staging table, ledger); nothing moves yet."""
    name = cols.table_name(schema, table)
    existing = cols.describe_table(target_db, schema, table)
    if existing is None and config["create_target"] and not transformed:
        cols.create_table(target_db, schema, table, source_columns)
        existing = cols.describe_table(target_db, schema, table)
    target_columns = cols.require_table(existing, schema, table)
    if transformed:
        # The transformation decides the columns; they are checked on its first rows.
        cmap = cols.ColumnMap(tuple(source_columns), tuple(source_columns_as_target(
            source_columns)))
        path = "rows"
    else:
        cmap = cols.match(source_columns, target_columns, name)
        cols.check_assignable(target_db, cmap, schema, table)
        path = choose_path(config["path"], same, cmap, source, target)
    staging = (stage.create_staging(target_db, schema, table)
               if config["write_mode"] == "truncate" else None)
    stage.ensure_ledger(target_db, "the target database")
    target_db.commit()
    load_table = cols.table_name(schema, staging) if staging else name
    spec = RunSpec(0, path, cols.select_list(cmap),
                   cols.insert_columns(cmap, schema, staging or table), name, load_table,
                   tuple(cmap.names), SOURCE, TARGET)
    return spec, staging


def _finish_target(target: ConnInfo, spec: RunSpec, store: MemoryStore, staging: str | None,
                   schema: str, table: str, *, transformed: bool) -> None:
    """Every chunk loaded: swap the staging table in, prune old ledger rows."""
    with open_connection(target) as conn:
        session = PsycopgDatabase(conn)
        if staging:
            # A transformation chose its own columns: move every one there is.
            columns = None if transformed else spec.columns
            stage.swap_in(session, schema, table, staging, columns)
        if spec.ledger and store.run_uuid:
            stage.prune_ledger(session)
        conn.commit()


def source_columns_as_target(source: list[cols.SourceColumn]) -> list[cols.TargetColumn]:
    return [cols.TargetColumn(c.name, c.type_oid, c.type_name, False, False, False)
            for c in source]


def _snapshot(store: MemoryStore, started: float) -> ProgressSnapshot:
    chunks = store.records()
    done = [c for c in chunks if c.state == "DONE"]
    failed = [c for c in chunks if c.state == "FAILED"]
    weights = [max(c.estimated_rows or 0, 1) for c in chunks]
    finished = sum(max(c.estimated_rows or 0, 1) for c in chunks if c.state in ("DONE", "FAILED"))
    fraction = finished / sum(weights) if weights else 1.0
    elapsed = time.monotonic() - started
    rows = sum(c.rows or 0 for c in done)
    remaining = elapsed * (1 - fraction) / fraction if 0 < fraction < 1 else (
        0.0 if fraction >= 1 else None)
    return ProgressSnapshot(
        progress_percentage=round(100 * fraction, 1), total_rows_processed=rows,
        chunks_done=len(done), chunks_failed=len(failed), chunks_total=len(chunks),
        elapsed_time=elapsed, rows_per_second=rows / elapsed if elapsed > 0 else 0.0,
        estimated_remaining_time=remaining,
    )


def _result(store: MemoryStore, started: float, path: str, strategy: str, workers: int,
            note: str | None, refused: str | None) -> ParallelResult:
    chunks = store.records()
    done = [c for c in chunks if c.state == "DONE"]
    failed = [c for c in chunks if c.state != "DONE"]
    successful = sum(c.rows or 0 for c in done)
    lost = sum(c.estimated_rows or 0 for c in failed)
    return ParallelResult(
        total_rows_processed=successful + lost,
        total_rows_successful=successful,
        total_rows_failed=lost,
        chunks_total=len(chunks),
        chunks_succeeded=len(done),
        chunks_failed=len(failed),
        chunk_errors=[
            {"chunk_no": c.chunk_no, "sqlstate": c.sqlstate, "error": c.last_error,
             "attempts": c.attempts}
            for c in failed
        ],
        processing_time=time.monotonic() - started,
        path=path, strategy=strategy, workers=workers, parallel_note=note,
        refused_reason=refused,
    )
