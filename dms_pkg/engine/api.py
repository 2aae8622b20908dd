"""``dms_pkg.execute_query_parallel``: the engine from Python, without the plugin.

The user guide's API: give a source connection and query, optionally a
transformation and a target, and get a result with row and chunk counts.
The run uses the same planner, data paths and retry rules as the SQL entry
points; its workers are threads of this process, each with its own
connections (opened from the ones you pass, password included, never
printed), and its queue is a private in-memory SQLite database (``LocalStore``,
the same chunk rows and transitions as ``dms.chunk``) driven by the same
loop as the coordinator's (``drive``) -- to watch a run from SQL or
resume it after a crash, use ``dms.execute_query_parallel`` instead.

Settings come in layers like everywhere else (DESIGN §5): built-in default,
then the environment (``MAPPER_MAX_WORKERS``, ``MAPPER_MIN_ROWS_FOR_PARALLEL``,
...), then the call's own arguments; an argument left ``None`` keeps the
layer below.  ``ParallelProcessor`` (``api_processor``) adds its own layers
and runs through ``run_query`` here: one engine, two spellings.

``progress_callback`` is called from the calling thread about every half
second and once at the end, with a ``ProgressSnapshot``.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from dms_pkg.backends import postgres
from dms_pkg.backends.base import ChunkReader, backend_for
from dms_pkg.backends.endpoint import Endpoint
from dms_pkg.backends.postgres import open_connection
from dms_pkg.db.psycopg_db import PsycopgDatabase
from dms_pkg.engine import columns as cols
from dms_pkg.engine import config as cfg
from dms_pkg.engine import merge
from dms_pkg.engine import target as stage
from dms_pkg.engine.api_connections import conninfo_for
from dms_pkg.engine.api_progress import ProgressCallback, ProgressSnapshot, snapshot_of
from dms_pkg.engine.api_result import ParallelResult, build_result, count_rows
from dms_pkg.engine.drive import drive
from dms_pkg.engine.local_store import LocalStore, worker_id
from dms_pkg.engine.movers import RunSpec
from dms_pkg.engine.planning import (
    choose_path,
    choose_workers,
    merge_spec_of,
    plan_source,
    run_spec,
)
from dms_pkg.engine.transformation import Transform
from dms_pkg.engine.worker import LazyMover, RetryPolicy, build_mover, run_worker
from dms_pkg.errors import INVALID_PARAMETER_VALUE, DmsError

__all__ = ["ParallelResult", "ProgressSnapshot", "execute_query_parallel", "run_query"]

SOURCE, TARGET = 1, 2  # connection keys inside one Python API run
CALLBACK_INTERVAL = 0.5
Layer = tuple[str, Mapping[str, Any]]


def _fingerprint(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
    """Identifies a database: same server start, port and database name."""
    row = conn.execute(
        "SELECT pg_postmaster_start_time(), inet_server_port(), current_setting('port'),"
        " current_database()"
    ).fetchone()
    conn.rollback()
    return tuple(row or ())


def one_transformation(func: Transform | None, logic: Transform | None,
                       names: tuple[str, str] = ("transformation_func", "transformation_logic"),
                       ) -> Transform | None:
    """The transformation, given under either of its two names (the guide's
    ``execute_query_parallel`` calls it ``transformation_func``, the seed's
    generated flows and ``process_mapper_job`` ``transformation_logic``)."""
    if func is not None and logic is not None and func is not logic:
        raise DmsError(
            f"{names[0]} and {names[1]} are two names for one argument; both were given",
            sqlstate=INVALID_PARAMETER_VALUE, hint=f"pass the transformation once, as {names[0]}")
    return func if func is not None else logic


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
    min_rows_for_parallel: int | None = None,
    enable_retry: bool | None = None,
    max_retries: int | None = None,
    enable_progress: bool | None = None,
    progress_callback: ProgressCallback | None = None,
    transformation_logic: Transform | None = None,
    **options: Any,
) -> ParallelResult:
    """Run ``source_sql`` in parallel chunks and load (or return) its rows.

    A setting left ``None`` comes from the environment (``MAPPER_...``) or
    the built-in default.  ``transformation_logic`` is another name for
    ``transformation_func``.  ``options`` take the other run parameters of
    the SQL API: ``path``, ``write_mode``, ``create_target``, ``key``,
    ``strategy``, ``chunks``, ``retry_initial_delay``, ``retry_max_delay``, ...
    """
    transform = one_transformation(transformation_func, transformation_logic)
    cfg.check_keys(options, "options")
    arguments = {
        "enable_parallel": enable_parallel, "max_workers": max_workers, "chunk_size": chunk_size,
        "min_rows_for_parallel": min_rows_for_parallel, "enable_retry": enable_retry,
        "max_retries": max_retries, "enable_progress": enable_progress, **options,
    }
    return run_query(source_conn, source_sql, transform, target_conn, target_schema,
                     target_table, [("arguments", arguments)], progress_callback)


def resolve_settings(layers: Sequence[Layer]) -> cfg.EngineConfig:
    """Environment, then ``layers``; a value of None in a layer means "not given"."""
    given = [(origin, {k: v for k, v in values.items() if v is not None})
             for origin, values in layers]
    return cfg.resolve([("environment", cfg.env_layer(os.environ)), *given])


def run_query(
    source_conn: Any, source_sql: str, transformation: Transform | None, target_conn: Any,
    target_schema: str | None, target_table: str | None, layers: Sequence[Layer],
    progress_callback: ProgressCallback | None,
) -> ParallelResult:
    """The engine behind ``execute_query_parallel`` and ``ParallelProcessor``.

    Everything is checked (settings, connections, query, target) before
    the first write; then the chunks run in worker threads, and the rows of
    failed chunks are counted on the source before the run's snapshot ends.
    """
    started = time.monotonic()
    config = resolve_settings(layers)
    if target_conn is not None and (not target_schema or not target_table):
        raise DmsError("target_schema and target_table are required with a target_conn",
                       sqlstate=INVALID_PARAMETER_VALUE)
    source = conninfo_for(source_conn, "source")
    target = conninfo_for(target_conn, "target") if target_conn is not None else None
    infos = {SOURCE: source, TARGET: target or source}

    backend = backend_for(source.dbtyp)
    with backend.planning(source) as planning:
        plan, query_rows = plan_source(planning, source_sql, config, backend.PARAM_STYLE)
        source_columns = planning.describe(source_sql)
        # Only a PostgreSQL source can be the target's own database.
        source_print = (_fingerprint(planning.session.conn)
                        if isinstance(planning, postgres.Planning)
                        and isinstance(planning.session, PsycopgDatabase) else None)
    path, spec, staging = "rows", None, None
    if target is not None:
        assert target_schema is not None and target_table is not None
        with open_connection(target) as target_conn_:
            same = source_print is not None and _fingerprint(target_conn_) == source_print
            spec, staging = _target_spec(
                PsycopgDatabase(target_conn_), config, source_columns, target_schema,
                target_table, same, transformation is not None, source, target,
            )
            path = spec.path
    if spec is None:  # no target: the rows come back to the caller
        spec = RunSpec(0, "rows", None, "", "", "", tuple(c.name for c in source_columns),
                       SOURCE, TARGET, ledger=False)
    estimated = (query_rows if query_rows is not None
                 else sum(c.estimated_rows or 0 for c in plan.chunks))
    workers, note = choose_workers(config, estimated, len(plan.chunks), None, 0, backend)
    consistency = backend.consistency_note(config.values, workers)

    store = LocalStore(run_uuid=str(uuid.uuid4()))
    store.add_chunks((c.chunk_no, c.query_sql, dict(c.params), c.estimated_rows)
                     for c in plan.chunks)
    collected: dict[int, list[dict[str, Any]]] = {}
    lock = threading.Lock()

    def collect(chunk_no: int, rows: list[dict[str, Any]]) -> None:
        with lock:
            collected[chunk_no] = rows

    policy = RetryPolicy.from_config(config.values)
    # Target connections come from a pool; the source is read by its backend's readers.
    pools = {TARGET: _pool(target, workers)} if target is not None else {}

    def worker() -> None:
        conns = PooledConnections(pools, infos, config.values)
        try:
            mover = LazyMover(lambda: build_mover(
                spec, conns, store, transform=transformation,
                batch_size=min(int(config["chunk_size"]), 10_000),
                collect=collect if target is None else None,
            ))
            run_worker(store.run_id, store, mover, policy)
        finally:
            conns.close()

    crew = ThreadCrew(worker)
    store.alive = crew.alive
    progress = _CallbackProgress(store, started,
                                 progress_callback if config["enable_progress"] else None)
    point = None
    failed_rows: dict[int, int | None] = {}
    errors: list[str] = []
    try:
        if config["snapshot"]:
            # Every chunk reads the source as of this moment.
            point = backend.consistent_point(
                source, tables=[plan.driving_table] if plan.driving_table else [],
                readers=workers, application_name=None, search_path=None,
                options=config.values)
            store.set_snapshot(point.token)
        drive(store, crew, store.run_id, workers, progress, errors, point)
        if crew.failures and any(c.state != "DONE" for c in store.records()):
            # A worker thread died (not a chunk's error: those are on the chunk)
            # and its replacements could not finish the run: say why.
            raise crew.failures[0]
        progress.report(force=True)
        snapshot = point.session if point is not None else None
        failed_rows = _count_failed(
            store, snapshot if isinstance(snapshot, psycopg.Connection) else None, source)
    except BaseException:
        store.set_state("STOPPING")  # the threads still running claim nothing more
        raise
    finally:
        if point is not None:
            point.close()
        for pool in pools.values():
            pool.close()
    if target is not None and all(c.state == "DONE" for c in store.records()):
        _finish_target(target, spec, store, staging, target_schema or "", target_table or "",
                       transformed=transformation is not None)

    result = build_result(
        store.records(), failed_rows, processing_time=time.monotonic() - started, path=path,
        strategy=plan.strategy, workers=workers, parallel_note=note,
        notes=[consistency] if consistency else [],
        refused_reason=plan.refused_reason, settings=config.as_json(),
    )
    if target is None:
        result.rows = [row for no in sorted(collected) for row in collected[no]]
    return result


def _count_failed(store: LocalStore, snapshot: psycopg.Connection[Any] | None,
                  source: Endpoint) -> dict[int, int | None]:
    """Source rows of each failed chunk: in the run's snapshot when there is one."""
    failed = [c for c in store.records() if c.state != "DONE"]
    if not failed or source.dbtyp != "POSTGRESQL":  # others: the estimates stand in
        return {}
    if snapshot is not None and not snapshot.closed and not snapshot.broken:
        return {c.chunk_no: count_rows(snapshot, c) for c in failed}
    try:
        with open_connection(source) as conn:
            return {c.chunk_no: count_rows(conn, c) for c in failed}
    except DmsError:  # the source is gone: the estimates stand in (rows_counted False)
        return {}


class ThreadCrew:
    """The Python API's workers: threads of this process running ``worker``."""

    inline = False

    def __init__(self, worker: Callable[[], None]) -> None:
        self.worker = worker
        self.threads: list[threading.Thread] = []
        self.failures: list[BaseException] = []  # raised to the caller after the run

    def _run(self) -> None:
        try:
            self.worker()
        except BaseException as exc:  # reported by poll and raised after the run
            self.failures.append(exc)

    def start(self, count: int) -> None:
        for _ in range(count):
            thread = threading.Thread(target=self._run, daemon=True,
                                      name=f"dms-worker-{len(self.threads) + 1}")
            self.threads.append(thread)
            thread.start()

    def run_inline(self) -> None:  # never called: inline is False
        self._run()

    def alive(self) -> list[int]:
        # self.threads keeps every Thread object, so no id is reused in the run.
        return [worker_id(t) for t in self.threads if t.is_alive()]

    def poll(self, errors: list[str]) -> int:
        reported = len(errors)
        errors.extend(f"{type(e).__name__}: {e}" for e in self.failures[reported:])
        return sum(1 for t in self.threads if t.is_alive())

    def stop(self, cancel: bool) -> None:
        # The loop ended: the threads end as soon as they find nothing to claim,
        # and the run's connections must not be closed under them.  A thread
        # cannot be cancelled: on a failure the caller marks the run STOPPING,
        # so they take nothing more and end after their chunk.
        if not cancel:
            for thread in self.threads:
                thread.join()


class _CallbackProgress:
    """The caller's ``progress_callback``, about every ``CALLBACK_INTERVAL`` s."""

    def __init__(self, store: LocalStore, started: float,
                 callback: ProgressCallback | None) -> None:
        self.store, self.started, self.callback = store, started, callback
        self.last = 0.0

    def report(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.callback is not None and (force or now - self.last >= CALLBACK_INTERVAL):
            self.last = now
            self.callback(snapshot_of(self.store.records(), self.started))


def _pool(info: Endpoint, size: int) -> ConnectionPool:
    """A pool per database: a worker thread that loses its connection gets a
    fresh one from it (the pool drops the broken one and reconnects)."""
    kwargs = info.connect_kwargs()
    conninfo = kwargs.pop("conninfo")
    return ConnectionPool(conninfo, min_size=1, max_size=size, kwargs=kwargs, open=True,
                          name=f"dms-{info.name}")


class PooledConnections:
    """A worker thread's target connection, checked out of the run's pool, and
    its reader of the source (from the source's backend)."""

    def __init__(self, pools: dict[int, ConnectionPool], infos: dict[int, Endpoint],
                 options: Mapping[str, Any]) -> None:
        self.pools = pools
        self.infos = infos
        self.options = options
        self._held: dict[int, psycopg.Connection[Any]] = {}
        self._reader: ChunkReader | None = None

    def get(self, conid: int | None, role: str = "target") -> psycopg.Connection[Any]:
        key = conid or SOURCE
        conn = self._held.get(key)
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                self.pools[key].putconn(conn)
            conn = self.pools[key].getconn(timeout=60)
            self._held[key] = conn
        return conn

    def reader(self, conid: int | None) -> ChunkReader:
        if self._reader is None or not self._reader.usable():
            if self._reader is not None:
                self._reader.close()
            info = self.infos[SOURCE]
            self._reader = backend_for(info.dbtyp).reader(
                info, application_name=None, search_path=None, options=self.options)
        return self._reader

    def close(self) -> None:
        for key, conn in self._held.items():
            self.pools[key].putconn(conn)
        self._held.clear()
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def _target_spec(
    target_db: PsycopgDatabase, config: cfg.EngineConfig, source_columns: list[cols.SourceColumn],
    schema: str, table: str, same: bool, transformed: bool, source: Endpoint, target: Endpoint,
) -> tuple[RunSpec, str | None]:
    """Check the target and prepare it (staging table, ledger); nothing moves yet."""
    name = cols.table_name(schema, table)
    existing = cols.describe_table(target_db, schema, table)
    if existing is None and config["create_target"] and not transformed:
        cols.create_table(target_db, schema, table, source_columns)
        existing = cols.describe_table(target_db, schema, table)
    target_columns = cols.require_table(existing, schema, table)
    merge_spec = merge_spec_of(config)
    if transformed:
        if merge_spec is not None:
            raise DmsError(
                "merge and a transformation cannot be combined in the Python API",
                sqlstate=INVALID_PARAMETER_VALUE,
                hint="load the transformed rows into a table first, then merge from it")
        # The transformation decides the columns; they are checked on its first rows.
        cmap = cols.ColumnMap(tuple(source_columns), tuple(source_columns_as_target(
            source_columns)))
        path = "rows"
    else:
        cmap = cols.match(source_columns, target_columns, name,
                          merge_spec.managed() if merge_spec else ())
        cols.check_assignable(target_db, cmap, schema, table)
        path = choose_path(config["path"], same, cmap, source, target)
        if merge_spec is not None:
            merge.check_spec(merge_spec, cmap.names, [c.name for c in target_columns], name)
    staging = (stage.create_staging(target_db, schema, table)
               if config["write_mode"] == "truncate" else None)
    stage.ensure_ledger(target_db, "the target database")
    target_db.commit()
    # The same load target as the SQL API's: the table, its staging table, or the
    # merge's stage (planning.run_spec).
    spec = run_spec(path, cmap, schema, table, staging, merge_spec, source, target,
                    source_conid=SOURCE, target_conid=TARGET)
    return spec, staging


def _finish_target(target: Endpoint, spec: RunSpec, store: LocalStore, staging: str | None,
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
