"""The coordinator: see a recorded run through, whatever happens to its workers.

It runs in the session that called ``CALL dms.execute_query_parallel(...)``
(or ``run_queued``, ``resume_run``, the dispatcher, ``dms worker``):

1. exports a snapshot of the source and keeps it open, so every chunk reads
   the source as of one moment;
2. with one worker, moves the chunks itself; with more, starts that many
   dblink sessions running ``CALL dms.work(run_id)`` on this database;
3. every poll: puts chunks of dead workers back in the queue, starts new
   workers while chunks wait and workers are missing, reports progress --
   the loop of ``drive``, which the Python API runs too;
4. when no chunk is left pending or running: swaps a staging table in
   (truncate-and-load), forgets the run's ledger rows, and sets the final
   state from the chunks.

Every step commits, so the run is visible -- and resumable -- from anywhere.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dms_pkg.backends.base import ConsistentPoint, backend_for
from dms_pkg.backends.endpoint import Endpoint
from dms_pkg.db import faults
from dms_pkg.db.base import Session
from dms_pkg.db.interrupts import Interrupted
from dms_pkg.db.psycopg_db import PsycopgDatabase
from dms_pkg.engine import connections
from dms_pkg.engine import target as stage
from dms_pkg.engine.drive import drive
from dms_pkg.engine.local import Local
from dms_pkg.engine.movers import RunSpec
from dms_pkg.engine.store import SqlStore
from dms_pkg.engine.worker import (
    Connections,
    LazyMover,
    Login,
    RetryPolicy,
    build_mover,
    open_connection,
    run_worker,
)
from dms_pkg.errors import UNDEFINED_OBJECT, DmsError

PROGRESS_INTERVAL = 5.0


@dataclass
class RunOutcome:
    run_id: int
    state: str
    message: str
    worker_errors: list[str] = field(default_factory=list)


@dataclass
class RunInfo:
    spec: RunSpec
    config: dict[str, Any]
    run_uuid: str
    target_schema: str
    staging_table: str | None


def load_run(home: Session, run_id: int) -> RunInfo:
    rows = home.query(
        "SELECT spec::text AS spec, config::text AS config, search_path, run_uuid::text AS uuid,"
        " target_schema, staging_table FROM dms.run WHERE run_id = $1::bigint",
        [run_id],
    )
    if not rows:
        raise DmsError(f"run {run_id} does not exist", sqlstate=UNDEFINED_OBJECT,
                       hint="SELECT * FROM dms.run_progress lists the runs")
    row = rows[0]
    spec = RunSpec.from_json(run_id, json.loads(row["spec"]), row["search_path"])
    return RunInfo(spec, json.loads(row["config"]), row["uuid"], row["target_schema"],
                   row["staging_table"])


def _setting(config: dict[str, Any], name: str, default: Any) -> Any:
    value = config.get(name, default)
    return value["value"] if isinstance(value, dict) else value


def resolver(local: Local) -> Callable[[int | None], Endpoint]:
    def resolve(conid: int | None) -> Endpoint:
        return connections.resolve(local.session, conid, local.conninfo.conninfo,
                                   "source or target")
    return resolve


def work(local: Local, run_id: int, login: Login | None,
         on_chunk: Callable[[], None] = lambda: None) -> None:
    """One worker's whole life: ``CALL dms.work(run_id)`` and ``dms worker``."""
    home = local.session
    run = load_run(home, run_id)
    if run.spec.search_path:
        # Resolve the source query's names as the caller who planned it did.
        home.query("SELECT pg_catalog.set_config('search_path', $1::text, false)",
                   [run.spec.search_path])
    home.commit()
    store = SqlStore(home)
    # The run's settings go to the source backend's reader (copy_reader, ...).
    options = {name: _setting(run.config, name, None) for name in run.config}
    conns = Connections(resolver(local), login, f"dms worker run {run_id} data", options)
    try:
        mover = LazyMover(lambda: build_mover(run.spec, conns, store))
        run_worker(run_id, store, mover, RetryPolicy.from_config(run.config), home=home,
                   on_chunk=on_chunk)
    finally:
        conns.close()


def coordinate(
    local: Local,
    run_id: int,
    workers: int,
    *,
    login: Login | None,
    notify: Callable[[str], None] | None = None,
    booted: list[str] | None = None,
) -> RunOutcome:
    """See ``run_id`` through with ``workers`` sessions and set its final state.

    ``booted``: worker sessions opened while the run was planned
    (``server.boot_workers``), which take the run before any new one is opened."""
    home = local.session
    progress = _Progress(home, run_id, notify)
    errors: list[str] = []
    point: ConsistentPoint | None = None
    crew = SessionCrew(local, run_id, login, progress, booted)
    try:
        run = load_run(home, run_id)
        home.commit()
        if run.staging_table:
            _align_staging(local, run, login, notify)
        if _setting(run.config, "snapshot", True):
            point = _take_point(local, run, login, workers)
        drive(SqlStore(home), crew, run_id, workers, progress, errors, point)
        _finalize(local, run, login)
    except (Exception, Interrupted) as exc:
        # Leave no run "RUNNING" behind a coordinator that gave up (or whose
        # statement was cancelled); the chunks keep their state, so the run
        # can be resumed.
        home.rollback()
        cause = exc.error if isinstance(exc, Interrupted) else exc
        home.query(
            "SELECT dms.set_run_state($1::bigint, 'FAILED', $2::text)",
            [run_id, f"the coordinator stopped: {faults.describe(cause)}"],
        )
        home.commit()
        if isinstance(exc, Interrupted):
            raise  # the caller's statement is being cancelled: say so as it came
        raise _stopped(run_id, exc) from None
    finally:
        try:
            crew.forget_booted()
        finally:  # the exported snapshot's session is closed whatever happened above
            if point is not None:
                point.close()
    state = str(home.query("SELECT dms.finish_run($1::bigint) AS state", [run_id])[0]["state"])
    if errors and state != "SUCCEEDED":
        home.query(
            "SELECT dms.set_run_state($1::bigint, $2::text,"
            " (SELECT message FROM dms.run WHERE run_id = $1::bigint)"
            " || '; a worker ended with an error: ' || $3::text)",
            [run_id, state, errors[0]],
        )
    message = str(home.query("SELECT message FROM dms.run WHERE run_id = $1::bigint",
                             [run_id])[0]["message"])
    home.commit()
    progress.report(force=True)
    return RunOutcome(run_id, state, message, errors)


def _stopped(run_id: int, exc: Exception) -> Exception:
    """What the caller of a run whose coordinator gave up gets: the run and the
    database's report (SQLSTATE, DETAIL, HINT kept), and how to go on."""
    if isinstance(exc, DmsError):
        return exc
    fault = faults.fault_of(exc)
    if fault is None:
        return exc  # a bug: keep its traceback
    resume = f"fix the cause and resume with CALL dms.resume_run({run_id})"
    return DmsError(
        f"run {run_id} FAILED: the coordinator stopped: {fault.message}",
        sqlstate=fault.sqlstate or "XX000", detail=fault.detail,
        hint=f"{fault.hint}; {resume}" if fault.hint else resume,
    )


class _Progress:
    def __init__(self, home: Session, run_id: int, notify: Callable[[str], None] | None) -> None:
        self.home, self.run_id, self.notify = home, run_id, notify
        self.last = time.monotonic()

    def report(self, force: bool = False) -> None:
        if self.notify is None:
            return
        now = time.monotonic()
        if force or now - self.last >= PROGRESS_INTERVAL:
            self.last = now
            line = progress_line(self.home, self.run_id)
            self.home.commit()
            if line:
                self.notify(line)


def _take_point(local: Local, run: RunInfo, login: Login | None, workers: int
                ) -> ConsistentPoint:
    """Take the run's point in time on its source (the backend's way: an exported
    snapshot, an SCN, a read lock while the readers start) and record it."""
    info = resolver(local)(run.spec.source_conid)
    backend = backend_for(info.dbtyp)
    recorded = local.session.query(
        "SELECT source_sql, source_dialect, driving_table FROM dms.run"
        " WHERE run_id = $1::bigint", [run.spec.run_id])[0]
    point = backend.consistent_point(
        info, tables=[recorded["driving_table"]] if recorded["driving_table"] else [],
        readers=workers, application_name=f"dms coordinator run {run.spec.run_id} snapshot",
        search_path=login.search_path if login is not None and info.is_local else None,
        options={name: _setting(run.config, name, None) for name in run.config})
    try:
        local.session.query("SELECT dms.set_snapshot($1::bigint, $2::text)",
                            [run.spec.run_id, point.token])
        column = _setting(run.config, "checkpoint_column", None)
        if column:
            # The checkpoint moves to the largest value this run reads: read it
            # as of the run's own point, so rows committed later are left for
            # the next run.  The parsed statement runs, never the recorded text.
            from dms_pkg.engine.source_query import runnable  # the parser: not for workers

            query = runnable(recorded["source_sql"], recorded["source_dialect"])
            local.session.query("SELECT dms.set_checkpoint_value($1::bigint, $2::text)",
                                [run.spec.run_id, backend.checkpoint_value(point, query,
                                                                           str(column))])
        local.session.commit()
    except BaseException:
        point.close()
        raise
    return point


def _align_staging(local: Local, run: RunInfo, login: Login | None,
                   notify: Callable[[str], None] | None) -> None:
    """Truncate-and-load: the staging table takes the target's current constraints
    before chunks load into it (a resume after the target's CHECK was dropped)."""
    info = resolver(local)(run.spec.target_conid)
    conn = open_connection(info, login if info.is_local else None,
                           f"dms coordinator run {run.spec.run_id} staging")
    try:
        target = PsycopgDatabase(conn)
        if not stage.staging_exists(target, run.target_schema, str(run.staging_table)):
            return
        changed = stage.align_staging(target, run.target_schema,
                                      _bare_table(local.session, run.spec.run_id),
                                      str(run.staging_table))
        conn.commit()
    finally:
        conn.close()
    local.session.commit()
    if changed and notify is not None:
        notify(f"run {run.spec.run_id}: the staging table follows the target's constraints "
               "now: " + ", ".join(changed))


class SessionCrew:
    """The coordinator's workers: dblink sessions running ``CALL dms.work(run_id)``
    on this database, or -- with one worker -- this session itself."""

    inline = True

    def __init__(self, local: Local, run_id: int, login: Login | None,
                 progress: _Progress, booted: list[str] | None = None) -> None:
        self.local, self.run_id, self.login, self.progress = local, run_id, login, progress
        self.sessions: list[str] = []
        self.booted = list(booted or [])

    def start(self, count: int) -> None:
        home = self.local.session
        names: list[str] = []
        if self.booted:
            # Sessions that loaded the worker's code while the run was planned.
            # They stay in ``booted`` until adopt_workers returns: if it raises
            # (the run was stopped meanwhile, or the statement cancelled),
            # forget_booted still closes them instead of leaving them open
            # for the rest of this backend's life.  Those it did not adopt it
            # closed itself.
            take = self.booted[:count]
            names = list(home.query("SELECT dms.adopt_workers($1::bigint, $2::text[]) AS names",
                                    [self.run_id, take])[0]["names"] or [])
            self.booted = self.booted[count:]
            self.sessions += names
            home.commit()
        if len(names) < count:
            self.sessions += home.query(
                "SELECT dms.start_workers($1::bigint, $2::int) AS names",
                [self.run_id, count - len(names)])[0]["names"]
            home.commit()

    def forget_booted(self) -> None:
        """Close booted sessions no start took (the run ended, or failed, first)."""
        if self.booted:
            home = self.local.session
            home.rollback()
            home.query("SELECT dms.stop_workers($1::text[], true)", [self.booted])
            home.commit()
            self.booted = []

    def run_inline(self) -> None:
        work(self.local, self.run_id, self.login, on_chunk=self.progress.report)

    def poll(self, errors: list[str]) -> int:
        """The worker sessions still busy; the others are closed, their errors kept."""
        if not self.sessions:
            return 0
        home = self.local.session
        alive: list[str] = []
        ended: list[str] = []
        for row in home.query("SELECT name, busy, error FROM dms.poll_workers($1::text[])",
                              [self.sessions]):
            (alive if row["busy"] else ended).append(row["name"])
            if row["error"]:
                # The session's error text as libpq gives it: ERROR/DETAIL/HINT lines
                # and a CONTEXT with the PL/Python traceback, which users need not read.
                errors.append(faults.from_server_text(str(row["error"])).one_line())
        if ended:
            home.query("SELECT dms.stop_workers($1::text[], false)", [ended])
        home.commit()
        self.sessions = alive
        return len(alive)

    def stop(self, cancel: bool) -> None:
        # Sessions still listed when the loop ends are cancelled either way.
        if self.sessions:
            home = self.local.session
            home.query("SELECT dms.stop_workers($1::text[], true)", [self.sessions])
            home.commit()
            self.sessions = []


def _finalize(local: Local, run: RunInfo, login: Login | None) -> None:
    """All chunks done: swap the staging table in, prune old ledger rows."""
    home = local.session
    counts = home.query(
        "SELECT count(*) FILTER (WHERE state <> 'DONE') AS open FROM dms.chunk"
        " WHERE run_id = $1::bigint", [run.spec.run_id])[0]
    home.commit()
    if counts["open"]:
        return
    info = resolver(local)(run.spec.target_conid)
    conn = open_connection(info, login if info.is_local else None,
                           f"dms coordinator run {run.spec.run_id} finish")
    try:
        target = PsycopgDatabase(conn)
        if run.staging_table and stage.staging_exists(target, run.target_schema,
                                                     run.staging_table):
            table = _bare_table(home, run.spec.run_id)
            stage.swap_in(target, run.target_schema, table, run.staging_table,
                          run.spec.columns)
        if run.spec.ledger:
            stage.prune_ledger(target)
        conn.commit()
    finally:
        conn.close()
    home.query("SELECT dms.set_finalized($1::bigint)", [run.spec.run_id])
    home.commit()


def _bare_table(home: Session, run_id: int) -> str:
    return str(home.query("SELECT target_table FROM dms.run WHERE run_id = $1::bigint",
                          [run_id])[0]["target_table"])


def progress_line(home: Session, run_id: int) -> str | None:
    rows = home.query(
        "SELECT state, percent, chunks_done, chunks_failed, chunks_total, rows_done,"
        " rows_per_sec, extract(epoch FROM eta)::float8 AS eta_s"
        " FROM dms.run_progress WHERE run_id = $1::bigint",
        [run_id],
    )
    if not rows:
        return None
    r = rows[0]
    eta = f", ETA {r['eta_s']:.0f} s" if r["eta_s"] is not None else ""
    rate = f", {int(r['rows_per_sec']):,} rows/s" if r["rows_per_sec"] is not None else ""
    failed = f", {r['chunks_failed']} failed" if r["chunks_failed"] else ""
    return (
        f"run {run_id} {r['state']}: {r['percent']}% ({r['chunks_done']}/{r['chunks_total']} "
        f"chunks{failed}, {int(r['rows_done']):,} rows{rate}{eta})"
    )
