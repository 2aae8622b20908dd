"""DBMS_SCHEDULER runs: queueing due jobs, handing them to their owners, the log.

A run goes QUEUED (due by the calendar, or run_job with use_current_session
false) -> CLAIMED (a dispatcher took it and opens a session logged in as the
job's owner: dms.run_as_owner) -> RUNNING (that session, holding the job's
advisory lock) -> SUCCEEDED, FAILED or STOPPED.  RUNNING is never committed:
the run's action and its outcome commit together, so "running" is read from
the advisory lock, which a crashed session also releases.  A claim whose
dispatcher is gone is recorded FAILED by the next dispatcher.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dms_pkg.errors import (
    INSUFFICIENT_PRIVILEGE,
    OBJECT_NOT_IN_PREREQUISITE_STATE,
    DmsError,
)
from dms_pkg.scheduler import actions, calendar
from dms_pkg.scheduler.jobs import (
    JOB_SELECT,
    LOCK_CLASS,
    OBJECT_IN_USE,
    Ctx,
    Job,
    as_text,
    find,
    now,
    require_arguments,
    running_pid,
    zone,
)
from dms_pkg.scheduler.names import job_name

FINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def _job_by_id(ctx: Ctx, job_id: int) -> Job | None:
    rows = ctx.rows(JOB_SELECT + " WHERE job_id = $1::integer", [job_id])
    return Job.of(rows[0]) if rows else None


def _arguments(ctx: Ctx, job: Job) -> list[str | None]:
    values = {int(r["argument_position"]): r["argument_value"] for r in ctx.rows(
        "SELECT argument_position, argument_value FROM dms.sched_job_arg WHERE job_id ="
        " $1::integer", [job.job_id])}
    return [values.get(p) for p in range(1, job.number_of_arguments + 1)]


def _lock(ctx: Ctx, job: Job) -> bool:
    return bool(ctx.one("SELECT pg_catalog.pg_try_advisory_xact_lock($1::integer,"
                        " $2::integer) AS ok", [LOCK_CLASS, job.job_id]))


def _finish(ctx: Ctx, log_id: int, status: str, sqlstate: str | None,
            message: str | None) -> None:
    """Record a run's outcome and, for a dispatcher's run, the job's counters;
    a job with no run left is completed (and dropped when auto_drop)."""
    rows = ctx.rows(
        "UPDATE dms.sched_job_run SET status = $2, log_date = pg_catalog.clock_timestamp(),"
        " run_duration = pg_catalog.clock_timestamp() - actual_start_date,"
        " error_code = $3, additional_info = $4 WHERE log_id = $1::bigint"
        " RETURNING job_id, run_kind, job_name", [log_id, status, sqlstate, message])
    if not rows or rows[0]["run_kind"] == "CURRENT_SESSION":
        return  # Oracle counts neither the run nor its failure, nor ends the schedule
    job_id = int(rows[0]["job_id"])
    ctx.rows("UPDATE dms.sched_job j SET run_count = run_count + 1,"
             " failure_count = failure_count + CASE WHEN $2 = 'FAILED' THEN 1 ELSE 0 END,"
             " last_status = $2, last_start_date = r.actual_start_date,"
             " last_run_duration = r.run_duration FROM dms.sched_job_run r"
             " WHERE j.job_id = r.job_id AND r.log_id = $1::bigint", [log_id, status])
    job = _job_by_id(ctx, job_id)
    if job is None or not job.enabled or job.next_run_date is not None or ctx.rows(
            "SELECT 1 FROM dms.sched_job_run WHERE job_id = $1::integer AND status IN"
            " ('QUEUED', 'CLAIMED') AND log_id <> $2::bigint", [job_id, log_id]):
        return
    if job.auto_drop:
        ctx.rows("DELETE FROM dms.sched_job WHERE job_id = $1::integer", [job_id])
        ctx.say(f"job {job.name} dropped after its last run (auto_drop)")
    else:
        ctx.rows("UPDATE dms.sched_job SET enabled = false, completed_at ="
                 " pg_catalog.clock_timestamp() WHERE job_id = $1::integer", [job_id])


def begin(ctx: Ctx, a: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Start a run in this session: a claimed run (log_id) or, with job_name, a
    run_job in the caller's session.  Returns the run and the statement to
    execute (none when the run cannot start, which is then recorded)."""
    log_id = a.get("p_log_id")
    if log_id is None:
        job = find(ctx, job_name(a.get("p_job_name"), ctx.login, "run"), lock=False)
        require_arguments(ctx, job, "run")
        if not _lock(ctx, job):
            raise DmsError(f"job {job.name} is running", sqlstate=OBJECT_IN_USE,
                           hint="wait for it, or stop it with dbms_scheduler.stop_job")
        log_id = int(ctx.one(
            "INSERT INTO dms.sched_job_run (job_id, owner, job_name, run_kind, status,"
            " req_start_date, actual_start_date, session_id) VALUES ($1::integer, $2, $3,"
            " 'CURRENT_SESSION', 'RUNNING', pg_catalog.clock_timestamp(),"
            " pg_catalog.clock_timestamp(), pg_catalog.pg_backend_pid()) RETURNING log_id",
            [job.job_id, job.name.owner, job.name.name]))
        return [{"log_id": log_id, "job_name": job.name.name, "command": actions.command(
            job.job_type, job.job_action, _arguments(ctx, job))}]
    rows = ctx.rows("SELECT job_id, owner, job_name FROM dms.sched_job_run WHERE log_id ="
                    " $1::bigint AND status = 'CLAIMED' FOR UPDATE", [log_id])
    if not rows:
        raise DmsError(f"run {log_id} is not waiting to be carried out",
                       sqlstate=OBJECT_NOT_IN_PREREQUISITE_STATE,
                       hint="CALL dbms_scheduler.dispatch() carries out the queued runs")
    if rows[0]["owner"] != ctx.login:
        raise DmsError(f"run {log_id} of job {rows[0]['job_name']} belongs to "
                       f"{rows[0]['owner']}: only its owner's sessions carry it out",
                       sqlstate=INSUFFICIENT_PRIVILEGE,
                       hint="CALL dbms_scheduler.dispatch() carries it out as its owner")
    ctx.rows("UPDATE dms.sched_job_run SET status = 'RUNNING', actual_start_date ="
             " pg_catalog.clock_timestamp(), session_id = pg_catalog.pg_backend_pid()"
             " WHERE log_id = $1::bigint", [log_id])
    claimed = _job_by_id(ctx, int(rows[0]["job_id"]))
    if claimed is None:
        _finish(ctx, int(log_id), "FAILED", "42704", "the job was dropped before the run started")
        return [{"log_id": log_id, "job_name": rows[0]["job_name"], "command": None}]
    job = claimed
    if not _lock(ctx, job):
        _finish(ctx, int(log_id), "FAILED", OBJECT_IN_USE,
                f"job {job.name} was still running: this run did not start")
        return [{"log_id": log_id, "job_name": rows[0]["job_name"], "command": None}]
    return [{"log_id": log_id, "job_name": job.name.name, "command": actions.command(
        job.job_type, job.job_action, _arguments(ctx, job))}]


def end(ctx: Ctx, a: Mapping[str, Any]) -> None:
    """The outcome of a run this session started (dms._sched_begin)."""
    log_id = int(a["p_log_id"])
    mine = ctx.rows("SELECT 1 FROM dms.sched_job_run WHERE log_id = $1::bigint AND status ="
                    " 'RUNNING' AND session_id = pg_catalog.pg_backend_pid()", [log_id])
    if not mine:
        raise DmsError(f"run {log_id} is not running in this session",
                       sqlstate=OBJECT_NOT_IN_PREREQUISITE_STATE)
    status = str(a.get("p_status"))
    if status not in FINAL:
        raise DmsError(f"a run ends SUCCEEDED, FAILED or STOPPED, not {status!r}",
                       sqlstate="22023")
    sqlstate, message = a.get("p_sqlstate"), a.get("p_message")
    info = f"{sqlstate}: {message}" if status != "SUCCEEDED" and message else None
    _finish(ctx, log_id, status, sqlstate, info)


def queue_run(ctx: Ctx, a: Mapping[str, Any]) -> None:
    """run_job(use_current_session => false): queued for the next dispatch."""
    job = find(ctx, job_name(a.get("p_job_name"), ctx.login, "run"))
    require_arguments(ctx, job, "run")
    assert job.job_id is not None
    if running_pid(ctx, job.job_id) is not None:
        raise DmsError(f"job {job.name} is running", sqlstate=OBJECT_IN_USE,
                       hint="wait for it, or stop it with dbms_scheduler.stop_job")
    log_id = ctx.one("INSERT INTO dms.sched_job_run (job_id, owner, job_name, run_kind, status,"
                     " req_start_date) VALUES ($1::integer, $2, $3, 'RUN_JOB', 'QUEUED',"
                     " pg_catalog.clock_timestamp()) RETURNING log_id",
                     [job.job_id, job.name.owner, job.name.name])
    ctx.say(f"job {job.name}: run {log_id} queued; CALL dbms_scheduler.dispatch() runs it now, "
            "pg_cron within a minute")


def queue_due(ctx: Ctx, a: Mapping[str, Any]) -> int:
    """Queue a run of every enabled job whose next run has come, and move each on
    to its next date after now (runs missed while nothing dispatched are not
    made up, as in Oracle).  A job still running, or with a run still waiting,
    skips this occurrence."""
    moment, wall = now(ctx), zone(ctx)
    queued = 0
    for row in ctx.rows(JOB_SELECT + " WHERE enabled AND next_run_date <="
                        " pg_catalog.clock_timestamp() ORDER BY next_run_date"
                        " FOR UPDATE SKIP LOCKED"):
        job = Job.of(row)
        assert job.job_id is not None and job.next_run_date is not None
        try:
            nxt = (calendar.next_date(job.repeat_interval, job.anchor_date or job.next_run_date,
                                      max(moment, job.next_run_date), wall, job.end_date)
                   if job.repeat_interval else None)
        except DmsError as exc:  # cannot happen for a validated string: stop, say why
            ctx.rows("UPDATE dms.sched_job SET enabled = false, next_run_date = NULL"
                     " WHERE job_id = $1::integer", [job.job_id])
            ctx.say(f"job {job.name} disabled: {exc.message}")
            continue
        busy = running_pid(ctx, job.job_id) is not None or ctx.rows(
            "SELECT 1 FROM dms.sched_job_run WHERE job_id = $1::integer AND status IN"
            " ('QUEUED', 'CLAIMED')", [job.job_id])
        if not busy:
            ctx.rows("INSERT INTO dms.sched_job_run (job_id, owner, job_name, run_kind, status,"
                     " req_start_date) VALUES ($1::integer, $2, $3, 'SCHEDULED', 'QUEUED',"
                     " $4::timestamptz)",
                     [job.job_id, job.name.owner, job.name.name, as_text(job.next_run_date)])
            queued += 1
        ctx.rows("UPDATE dms.sched_job SET next_run_date = $2::timestamptz WHERE job_id ="
                 " $1::integer", [job.job_id, as_text(nxt)])
    return queued


def claim(ctx: Ctx, a: Mapping[str, Any]) -> int | None:
    """The oldest queued run, claimed by this dispatcher; first, claims whose
    dispatcher is gone are recorded FAILED (their owner's session never ran them
    to the end, or it would have recorded the outcome)."""
    for row in ctx.rows(
            "SELECT log_id FROM dms.sched_job_run r WHERE r.status = 'CLAIMED' AND NOT EXISTS"
            " (SELECT FROM pg_catalog.pg_stat_activity s WHERE s.pid = r.dispatcher_pid"
            " AND s.backend_start <= r.claimed_at) FOR UPDATE SKIP LOCKED"):
        abandon(ctx, {"p_log_id": row["log_id"], "p_error": "the dispatcher that claimed the "
                      "run ended before it did", "p_any_dispatcher": True})
    value = ctx.one(
        "UPDATE dms.sched_job_run r SET status = 'CLAIMED', claimed_at ="
        " pg_catalog.clock_timestamp(), dispatcher_pid = pg_catalog.pg_backend_pid()"
        " WHERE r.log_id = (SELECT q.log_id FROM dms.sched_job_run q WHERE q.status = 'QUEUED'"
        " ORDER BY q.log_id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING r.log_id")
    return int(value) if value is not None else None


def abandon(ctx: Ctx, a: Mapping[str, Any]) -> None:
    """After dms.run_as_owner: a run its owner's session did not record (it could
    not log in, lost its role, or the session ended) is recorded FAILED."""
    rows = ctx.rows("SELECT 1 FROM dms.sched_job_run WHERE log_id = $1::bigint AND status ="
                    " 'CLAIMED' AND ($2::boolean OR dispatcher_pid ="
                    " pg_catalog.pg_backend_pid()) FOR UPDATE SKIP LOCKED",
                    [a["p_log_id"], bool(a.get("p_any_dispatcher"))])
    if not rows:
        return
    ctx.rows("UPDATE dms.sched_job_run SET actual_start_date = coalesce(actual_start_date,"
             " claimed_at) WHERE log_id = $1::bigint", [a["p_log_id"]])
    _finish(ctx, int(a["p_log_id"]), "FAILED", "08006",
            f"08006: the job's session did not record the run: {a.get('p_error') or 'it ended'}")
