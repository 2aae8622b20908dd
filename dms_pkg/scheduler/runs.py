"""DBMS_SCHEDULER runs: queueing due jobs, handing them to their owners, the log.

A run goes QUEUED (due by the calendar, or run_job with use_current_session
false) -> CLAIMED (a dispatcher took it and opens a session logged in as the
job's owner: dms.run_as_owner) -> RUNNING (that session, holding the job's
row of dms.sched_job_lock FOR UPDATE) -> SUCCEEDED, FAILED or STOPPED.
RUNNING is never committed: the run's action and its outcome commit
together, so "running" is read from that row lock (dms_pkg.scheduler.jobs.
running_pid), which a crashed session also releases and which nobody else
can take: no dms role may read or lock the table.  A claim whose dispatcher
is gone is recorded FAILED by the next dispatcher.

Queueing due jobs, claiming and abandoning runs are the dispatcher's
(dbms_scheduler.dispatch, dms_admin only): an operator could otherwise claim
another login's run and record it as it liked, or sit on it.
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
# What an abandoned run records: fixed text, never a caller's (the reason the
# owner's session gave, if any, is the dispatcher's WARNING).
NOT_RECORDED = "08006: the job's session did not record the run: "
ABANDONED = NOT_RECORDED + "it could not start the run, or it ended first"
DISPATCHER_GONE = NOT_RECORDED + "the dispatcher that claimed the run ended before it did"
# A run this session claimed: its pid, and a session started before the claim
# (not a later one that got the pid of a dispatcher that ended).
CLAIMED_HERE = ("dispatcher_pid = pg_catalog.pg_backend_pid() AND claimed_at >="
                " (SELECT s.backend_start FROM pg_catalog.pg_stat_activity s"
                " WHERE s.pid = pg_catalog.pg_backend_pid())")


def _job_by_id(ctx: Ctx, job_id: int) -> Job | None:
    rows = ctx.rows(JOB_SELECT + " WHERE job_id = $1::integer", [job_id])
    return Job.of(rows[0]) if rows else None


def _arguments(ctx: Ctx, job: Job) -> list[str | None]:
    values = {int(r["argument_position"]): r["argument_value"] for r in ctx.rows(
        "SELECT argument_position, argument_value FROM dms.sched_job_arg WHERE job_id ="
        " $1::integer", [job.job_id])}
    return [values.get(p) for p in range(1, job.number_of_arguments + 1)]


def _finish(ctx: Ctx, log_id: int, status: str, sqlstate: str | None,
            message: str | None, *, auto_drop: bool = True) -> None:
    """Record a run's outcome and, for a dispatcher's run, the job's counters;
    a job with no run left is completed (and dropped when auto_drop, unless
    ``auto_drop`` is false: a run nobody recorded drops nothing)."""
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
    if job.auto_drop and auto_drop:
        ctx.rows("DELETE FROM dms.sched_job WHERE job_id = $1::integer", [job_id])
        # This run's session holds the lock row (or nobody does: an abandoned run).
        ctx.rows("DELETE FROM dms.sched_job_lock WHERE job_id = $1::integer", [job_id])
        ctx.say(f"job {job.name} dropped after its last run (auto_drop)")
    else:
        ctx.rows("UPDATE dms.sched_job SET enabled = false, completed_at ="
                 " pg_catalog.clock_timestamp() WHERE job_id = $1::integer", [job_id])


def begin(ctx: Ctx, a: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Start a run in this session: a claimed run (log_id) or, with job_name, a
    run_job in the caller's session.  Returns the run, its job and the
    statement to execute (none when the run cannot start, which is then
    recorded).  The job's row of dms.sched_job_lock is locked by the caller,
    dms._sched_begin (plpgsql): a row lock taken here would belong to the
    subtransaction PL/Python runs each statement in, whose id pg_locks no
    longer shows once it ends, so nobody could tell which session runs the job."""
    log_id = a.get("p_log_id")
    if log_id is None:
        job = find(ctx, job_name(a.get("p_job_name"), ctx.login, "run"), lock=False)
        require_arguments(ctx, job, "run")
        log_id = int(ctx.one(
            "INSERT INTO dms.sched_job_run (job_id, owner, job_name, run_kind, status,"
            " req_start_date, actual_start_date, session_id) VALUES ($1::integer, $2, $3,"
            " 'CURRENT_SESSION', 'RUNNING', pg_catalog.clock_timestamp(),"
            " pg_catalog.clock_timestamp(), pg_catalog.pg_backend_pid()) RETURNING log_id",
            [job.job_id, job.name.owner, job.name.name]))
        return [{"log_id": log_id, "job_id": job.job_id, "job_name": job.name.name,
                 "command": actions.command(job.job_type, job.job_action,
                                            _arguments(ctx, job))}]
    rows = ctx.rows("SELECT job_id, owner, job_name FROM dms.sched_job_run WHERE log_id ="
                    " $1::bigint AND status = 'CLAIMED' FOR UPDATE", [log_id])
    if not rows:
        raise DmsError(f"run {log_id} is not waiting to be carried out",
                       sqlstate=OBJECT_NOT_IN_PREREQUISITE_STATE,
                       hint="the dispatcher (dbms_scheduler.dispatch) carries out the queued runs")
    if rows[0]["owner"] != ctx.login:
        raise DmsError(f"run {log_id} of job {rows[0]['job_name']} belongs to "
                       f"{rows[0]['owner']}: only its owner's sessions carry it out",
                       sqlstate=INSUFFICIENT_PRIVILEGE,
                       hint="the dispatcher (dbms_scheduler.dispatch) carries it out as its owner")
    ctx.rows("UPDATE dms.sched_job_run SET status = 'RUNNING', actual_start_date ="
             " pg_catalog.clock_timestamp(), session_id = pg_catalog.pg_backend_pid()"
             " WHERE log_id = $1::bigint", [log_id])
    claimed = _job_by_id(ctx, int(rows[0]["job_id"]))
    if claimed is None:
        _finish(ctx, int(log_id), "FAILED", "42704", "the job was dropped before the run started")
        return [{"log_id": log_id, "job_id": rows[0]["job_id"], "job_name": rows[0]["job_name"],
                 "command": None}]
    return [{"log_id": log_id, "job_id": claimed.job_id, "job_name": claimed.name.name,
             "command": actions.command(claimed.job_type, claimed.job_action,
                                        _arguments(ctx, claimed))}]


def not_started(ctx: Ctx, a: Mapping[str, Any]) -> None:
    """A claimed run this session started whose job another session runs: FAILED."""
    log_id = int(a["p_log_id"])
    rows = ctx.rows("SELECT job_name FROM dms.sched_job_run WHERE log_id = $1::bigint AND status"
                    " = 'RUNNING' AND session_id = pg_catalog.pg_backend_pid()", [log_id])
    if not rows:
        raise DmsError(f"run {log_id} is not running in this session",
                       sqlstate=OBJECT_NOT_IN_PREREQUISITE_STATE)
    _finish(ctx, log_id, "FAILED", OBJECT_IN_USE,
            f"job {rows[0]['job_name']} was still running: this run did not start")


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
    ctx.say(f"job {job.name}: run {log_id} queued; the dispatcher (pg_cron) runs it within a "
            "minute, an administrator's CALL dbms_scheduler.dispatch() at once")


def queue_due(ctx: Ctx, a: Mapping[str, Any]) -> int:
    """Queue a run of every enabled job whose next run has come, and move each on
    to its next date after now (runs missed while nothing dispatched are not
    made up, as in Oracle).  A job still running, or with a run still waiting,
    skips this occurrence."""
    moment, wall = now(ctx), zone(ctx)
    queued = 0
    # The lock rows of jobs dropped while they ran, once their run has ended.
    ctx.rows("DELETE FROM dms.sched_job_lock k WHERE k.job_id IN (SELECT l.job_id FROM"
             " dms.sched_job_lock l WHERE NOT EXISTS (SELECT FROM dms.sched_job j WHERE"
             " j.job_id = l.job_id) FOR UPDATE SKIP LOCKED)")
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
        _abandon(ctx, int(row["log_id"]), DISPATCHER_GONE, "")
    value = ctx.one(
        "UPDATE dms.sched_job_run r SET status = 'CLAIMED', claimed_at ="
        " pg_catalog.clock_timestamp(), dispatcher_pid = pg_catalog.pg_backend_pid()"
        " WHERE r.log_id = (SELECT q.log_id FROM dms.sched_job_run q WHERE q.status = 'QUEUED'"
        " ORDER BY q.log_id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING r.log_id")
    return int(value) if value is not None else None


def _abandon(ctx: Ctx, log_id: int, message: str, claimed_here: str) -> bool:
    """Record a claimed run FAILED with ``message`` (fixed text); its job is
    completed if it has no run left, but never dropped (auto_drop is for runs
    that ran)."""
    rows = ctx.rows("SELECT 1 FROM dms.sched_job_run WHERE log_id = $1::bigint AND status ="
                    " 'CLAIMED'" + claimed_here + " FOR UPDATE SKIP LOCKED", [log_id])
    if not rows:
        return False
    ctx.rows("UPDATE dms.sched_job_run SET actual_start_date = coalesce(actual_start_date,"
             " claimed_at) WHERE log_id = $1::bigint", [log_id])
    _finish(ctx, log_id, "FAILED", "08006", message, auto_drop=False)
    return True


def abandon(ctx: Ctx, a: Mapping[str, Any]) -> bool:
    """After dms.run_as_owner: a run this dispatcher claimed that its owner's
    session did not record (it could not log in, lost its role, or the session
    ended) is recorded FAILED.  Whether it was."""
    return _abandon(ctx, int(a["p_log_id"]), ABANDONED, " AND " + CLAIMED_HERE)
