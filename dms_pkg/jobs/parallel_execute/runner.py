"""run_task, resume_task and stop_task: a task's chunks through the chunk runtime.

The coordinator is the session that called ``run_task`` (Oracle's call
waits too).  With ``parallel_level`` 0 or 1 it works the chunks itself;
with more it opens that many sessions back to this database, logged in as
the caller, each running ``CALL dms.pe_work(task, n)``, and waits for them.
A worker claims an UNASSIGNED chunk (FOR UPDATE SKIP LOCKED, committed),
runs the statement for the chunk's range and marks the chunk PROCESSED in
the same transaction -- so a chunk's work is committed once or not at all --
or, when the statement fails, rolls it back and marks the chunk
PROCESSED_WITH_ERROR with the SQLSTATE and message.  A chunk whose worker
died stays ASSIGNED; the task then ends CRASHED and ``resume_task`` runs it
again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from dms_pkg.db.faults import fault_of, from_server_text
from dms_pkg.db.plpy_db import PlpyDatabase
from dms_pkg.errors import DmsError
from dms_pkg.jobs.parallel_execute.errors import INVALID_STATE_FOR_RESUME
from dms_pkg.security import OPERATOR, require_role

if TYPE_CHECKING:  # the parser is loaded by the coordinator only, not by every worker
    from dms_pkg.jobs.parallel_execute.statement import ChunkStatement

QUERY_CANCELED = "57014"
POLL_INTERVAL = 0.1
PROGRESS_INTERVAL = 5.0  # seconds between two progress NOTICEs of run_task
DEFAULT_PARALLEL_LEVEL = 4  # parallel_level => NULL: Oracle's "default parallelism"
MAX_PARALLEL_LEVEL = 64
STOP_WAIT = 60.0  # how long stop_task waits for the task's chunks to be let go
BIGINT_MAX = 2**63 - 1


@dataclass
class _Task:
    task_id: int
    chunk_type: str
    run_sql: str
    run_mode: str
    xid_horizon: int | None
    job_prefix: str


class _ChunkRunner:
    """Runs the task's statement for one chunk, as a plan prepared once."""

    def __init__(self, plpy: Any, task: _Task) -> None:
        self.plpy, self.task = plpy, task
        self.rowid = task.chunk_type == "ROWID_RANGE"
        self.plans: dict[str, Any] = {}
        self.block: ChunkStatement | None = None
        if task.run_mode == "block":
            from dms_pkg.jobs.parallel_execute.statement import ChunkStatement

            self.block = ChunkStatement(task.run_sql, task.run_mode)
        if self.rowid:
            self.plans["tid"] = plpy.prepare(task.run_sql, ["tid", "tid", "integer"])
            self.fresh = plpy.prepare(
                "SELECT (pg_catalog.pg_current_xact_id()::text::bigint - $1)::integer AS d",
                ["bigint"])

    def run(self, chunk: dict[str, Any]) -> None:
        plpy = self.plpy
        if self.rowid:
            # How many transactions began since the task first ran: row versions
            # younger than that were written by the task and are not touched again.
            fresh = plpy.execute(self.fresh, [self.task.xid_horizon])[0]["d"]
            plpy.execute(self.plans["tid"], [chunk["start_rowid"], chunk["end_rowid"], fresh])
            return
        start, end = chunk["start_id"], chunk["end_id"]
        if self.block is not None:
            plpy.execute(self.block.render_block(start, end))
            return
        kind = "bigint" if _integral(start) and _integral(end) else "numeric"
        plan = self.plans.get(kind)
        if plan is None:
            plan = self.plans[kind] = plpy.prepare(self.task.run_sql, [kind, kind])
        if kind == "bigint":
            plpy.execute(plan, [int(start), int(end)])
        else:
            plpy.execute(plan, [start, end])


def _integral(value: Any) -> bool:
    number = Decimal(str(value))
    return number == number.to_integral_value() and abs(number) <= BIGINT_MAX


def work(plpy: Any, task_id: int, worker_no: int,
         on_chunk: Callable[[], None] = lambda: None) -> int:
    """``CALL dms.pe_work(task, n)``: one worker's loop; returns the chunks it ran."""
    db = PlpyDatabase(plpy)
    require_role(db, OPERATOR)
    row = db.query("SELECT * FROM dms.pe_worker_task($1::bigint)", [task_id])[0]
    db.commit()
    task = _Task(task_id, row["chunk_type"], row["run_sql"], row["run_mode"],
                 row["xid_horizon"], row["job_prefix"])
    runner = _ChunkRunner(plpy, task)
    job_name = f"{task.job_prefix}_{worker_no}"
    done = 0
    while True:
        rows = db.query("SELECT * FROM dms.pe_claim($1::bigint, $2::text)", [task_id, job_name])
        db.commit()
        if not rows:
            return done
        chunk = rows[0]
        try:
            runner.run(chunk)
        except Exception as exc:  # the chunk failed; the worker goes on with the next one
            db.rollback()
            fault = fault_of(exc)
            code = fault.sqlstate if fault else "XX000"
            message = fault.message if fault else f"{type(exc).__name__}: {exc}"
            stopped = code == QUERY_CANCELED and _stop_requested(db, task_id)
            db.query("SELECT dms.pe_end_chunk($1::bigint, $2::bigint, $3::integer, $4::text,"
                     " $5::text)",
                     [task_id, chunk["chunk_id"], 0 if stopped else 3,
                      None if stopped else code, None if stopped else message])
            db.commit()
            on_chunk()
            continue
        db.query("SELECT dms.pe_end_chunk($1::bigint, $2::bigint, 2, NULL, NULL)",
                 [task_id, chunk["chunk_id"]])
        db.commit()
        done += 1
        on_chunk()


def _stop_requested(db: PlpyDatabase, task_id: int) -> bool:
    rows = db.query("SELECT stop_requested FROM dms.pe_worker_task($1::bigint)", [task_id])
    return bool(rows and rows[0]["stop_requested"])


def run(plpy: Any, task_name: str, settings: dict[str, Any], *, resume: bool,
        force: bool = False) -> None:
    """``run_task`` (resume False) and ``resume_task``: run the task's chunks and wait."""
    db = PlpyDatabase(plpy)
    require_role(db, OPERATOR)
    state = db.query("SELECT * FROM dms.pe_task_state(session_user, $1::text, false)",
                     [task_name])[0]
    from dms_pkg.jobs.parallel_execute.statement import prepare

    sql_stmt = settings.get("sql_stmt")
    resumable = state["status"] in (8, 9) or (state["status"] == 6 and force)
    if resume and resumable and sql_stmt is None and not state["has_statement"]:
        raise INVALID_STATE_FOR_RESUME.error(
            f"task {task_name} has not run a statement: there is none to resume it with",
            hint="give it: CALL dbms_parallel_execute.resume_task(task_name => ..., "
                 "sql_stmt => ..., language_flag => 1, force => ...)")
    if sql_stmt is not None or not resume:
        chunk_type = str(state["chunk_type"])
        statement = prepare(str(sql_stmt or ""), chunk_type)
        _check_runs(plpy, statement, chunk_type)
        settings = {**settings, "run_sql": statement.sql, "run_mode": statement.mode}
    # The workers resolve the statement's names with this session's search_path.
    settings["search_path"] = db.query(
        "SELECT pg_catalog.current_setting('search_path') AS p")[0]["p"]
    level = settings.get("parallel_level")
    if level is not None and not 0 <= int(level) <= MAX_PARALLEL_LEVEL:
        raise DmsError(f"parallel_level must be from 0 to {MAX_PARALLEL_LEVEL}, not {level}",
                       sqlstate="22023",
                       hint="0 or 1 runs the chunks in this session; NULL takes "
                            f"{DEFAULT_PARALLEL_LEVEL}")
    begun = db.query("SELECT * FROM dms.pe_begin_run($1::text, $2::boolean, $3::boolean,"
                     " $4::jsonb)", [task_name, resume, force, _json(settings)])[0]
    db.commit()
    task_id = int(begun["task_id"])
    if resume:
        plpy.notice(f"task {task_name}: resuming, {begun['reopened']} chunk"
                    f"{'s' if begun['reopened'] != 1 else ''} put back in the queue")
    started = time.monotonic()
    workers = _workers(db, begun["parallel_level"], int(begun["open_chunks"]))
    errors: list[str] = []
    progress = _Progress(plpy, db, task_name)
    try:
        if workers <= 1:
            work(plpy, task_id, 1, on_chunk=progress.report)
        else:
            _drive(plpy, db, task_id, workers, errors, progress)
    except BaseException:
        db.rollback()
        db.query("SELECT dms.pe_request_stop(session_user, $1::text, false)", [task_name])
        db.query("SELECT * FROM dms.pe_finish_run($1::bigint)", [task_id])
        db.commit()
        raise
    final = db.query("SELECT * FROM dms.pe_finish_run($1::bigint)", [task_id])[0]
    db.commit()
    names = ("CREATED", "CHUNKING", "CHUNKING_FAILED", "NO_CHUNKS", "CHUNKED", "PROCESSING",
             "FINISHED", "FINISHED_WITH_ERROR", "CRASHED")
    line = (f"task {task_name}: {names[int(final['status']) - 1]}: {final['message']} "
            f"({workers} worker{'s' if workers != 1 else ''}, "
            f"{time.monotonic() - started:.1f} s)")
    if errors:
        line += f"; a worker ended with an error: {errors[0]}"
    plpy.notice(line)


def _check_runs(plpy: Any, statement: ChunkStatement, chunk_type: str) -> None:
    """Prepare the statement once before anything is written: a typo, an unknown
    table or column is refused here, with the database's own words."""
    if statement.mode == "block":
        return  # a DO block is only checked when it runs
    types = ["tid", "tid", "integer"] if chunk_type == "ROWID_RANGE" else ["bigint", "bigint"]
    try:
        with plpy.subtransaction():
            plpy.prepare(statement.sql, types)
    except plpy.SPIError as exc:
        fault = fault_of(exc)
        raise DmsError(f"sql_stmt cannot run: {fault.message if fault else exc}",
                       sqlstate=fault.sqlstate if fault and fault.sqlstate else "42601",
                       detail=f"each chunk would run: {statement.sql}",
                       hint="fix the statement; the task was not changed") from None


def _json(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if v is not None}


def _workers(db: PlpyDatabase, level: Any, open_chunks: int) -> int:
    wanted = DEFAULT_PARALLEL_LEVEL if level is None else int(level)
    headroom = int(db.query("SELECT dms.connection_headroom() AS n")[0]["n"])
    db.commit()
    # No more workers than chunks, and leave a few connections for everyone else.
    return max(1, min(wanted, open_chunks, max(1, headroom - 2)))


class _Progress:
    """A NOTICE every PROGRESS_INTERVAL seconds while the task runs."""

    def __init__(self, plpy: Any, db: PlpyDatabase, task_name: str) -> None:
        self.plpy, self.db, self.task_name = plpy, db, task_name
        self.last = time.monotonic()

    def report(self) -> None:
        if time.monotonic() - self.last < PROGRESS_INTERVAL:
            return
        self.last = time.monotonic()
        row = self.db.query(
            "SELECT count(*) AS total, count(*) FILTER (WHERE status = 'PROCESSED') AS done,"
            " count(*) FILTER (WHERE status = 'PROCESSED_WITH_ERROR') AS failed"
            " FROM dbms_parallel_execute.user_parallel_execute_chunks WHERE task_name = $1::text",
            [self.task_name])[0]
        self.db.commit()
        self.plpy.notice(f"task {self.task_name}: {row['done']}/{row['total']} chunks "
                         f"processed, {row['failed']} with error")


def _drive(plpy: Any, db: PlpyDatabase, task_id: int, workers: int,
           errors: list[str], progress: _Progress) -> None:
    sessions: list[str] = db.query(
        "SELECT dms.pe_start_workers($1::bigint, 1, $2::integer) AS names",
        [task_id, workers])[0]["names"]
    db.commit()
    try:
        while sessions:
            alive: list[str] = []
            ended: list[str] = []
            for row in db.query("SELECT name, busy, error FROM dms.poll_workers($1::text[])",
                                [sessions]):
                (alive if row["busy"] else ended).append(row["name"])
                if row["error"]:
                    errors.append(from_server_text(str(row["error"])).one_line())
            if ended:
                db.query("SELECT dms.stop_workers($1::text[], false)", [ended])
            db.commit()
            sessions = alive
            progress.report()
            if sessions:
                # pg_sleep, not time.sleep: a cancel of run_task is seen at once.
                plpy.execute(f"SELECT pg_catalog.pg_sleep({POLL_INTERVAL})")
    finally:
        if sessions:
            db.query("SELECT dms.stop_workers($1::text[], true)", [sessions])
            db.commit()


def stop(plpy: Any, owner: str | None, task_name: str, admin: bool) -> None:
    """``stop_task``: no more chunks are handed out; chunks being processed are
    cancelled (their work rolls back, they go back to UNASSIGNED); waits until
    the task's workers have let go, so the task can be resumed at once."""
    db = PlpyDatabase(plpy)
    running = db.query("SELECT dms.pe_request_stop($1::text, $2::text, $3::boolean) AS n",
                       [owner, task_name, admin])[0]["n"]
    db.commit()  # first the stop, seen by the workers, then the cancel
    if running >= 0:
        db.query("SELECT dms.pe_cancel_chunks($1::text, $2::text, $3::boolean)",
                 [owner, task_name, admin])
        db.commit()
    if running < 0:
        plpy.notice(f"task {task_name} is not running: nothing to stop")
        return
    deadline = time.monotonic() + STOP_WAIT
    while time.monotonic() < deadline:
        state = db.query("SELECT status, running FROM dms.pe_task_state($1::text, $2::text,"
                         " $3::boolean)", [owner, task_name, admin])[0]
        db.commit()
        if not state["running"] and state["status"] != 6:
            plpy.notice(f"task {task_name} stopped: resume it with resume_task")
            return
        plpy.execute(f"SELECT pg_catalog.pg_sleep({POLL_INTERVAL})")
    raise DmsError(f"task {task_name} did not stop within {STOP_WAIT:.0f} s",
                   sqlstate="57014",
                   hint="its workers still run a statement that ignores cancels; "
                        "SELECT * FROM dbms_parallel_execute.user_parallel_execute_chunks "
                        "shows the chunks still ASSIGNED")
