"""DBMS_SCHEDULER jobs: define, change, enable, disable, drop, stop.

Every function here runs inside a SECURITY DEFINER entry point (the caller's
role already checked) and acts on the caller's own jobs only: a job name is
resolved against ``session_user``, and another owner's job is refused.
Everything is validated before anything is written, so a refused call
leaves the tables as they were.  Values are always bound; the only SQL text
built from input is the job's own statement (dms_pkg.scheduler.actions),
which only its owner's session ever runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dms_pkg.db.base import Database
from dms_pkg.errors import (
    DUPLICATE_OBJECT,
    FEATURE_NOT_SUPPORTED,
    INVALID_PARAMETER_VALUE,
    OBJECT_NOT_IN_PREREQUISITE_STATE,
    UNDEFINED_OBJECT,
    DmsError,
)
from dms_pkg.scheduler import actions, calendar
from dms_pkg.scheduler.names import JobName, job_name, job_names, procedure_name

OBJECT_IN_USE = "55006"
MAX_ARGUMENTS = 255
UNSUPPORTED_TYPES = ("EXECUTABLE", "CHAIN", "EXTERNAL_SCRIPT", "SQL_SCRIPT", "BACKUP_SCRIPT")
COMMIT_SEMANTICS = ("STOP_ON_FIRST_ERROR", "TRANSACTIONAL", "ABSORB_ERRORS")
LIST_HINT = "SELECT job_name FROM dbms_scheduler.user_scheduler_jobs lists your jobs"


@dataclass
class Ctx:
    db: Database
    login: str
    say: Callable[[str], None]

    def rows(self, text: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        return self.db.query(text, params or [])

    def one(self, text: str, params: list[Any] | None = None) -> Any:
        rows = self.rows(text, params)
        return next(iter(rows[0].values())) if rows else None


def _iso(column: str) -> str:
    # JSON renders a timestamptz as ISO 8601 whatever the session's DateStyle.
    return f"pg_catalog.to_jsonb({column}) #>> '{{}}' AS {column}"


JOB_SELECT = ("SELECT job_id, owner, job_name, job_type, job_action, number_of_arguments,"
              " repeat_interval, enabled, auto_drop, comments, "
              + ", ".join(_iso(c) for c in ("start_date", "anchor_date", "end_date",
                                            "next_run_date"))
              + " FROM dms.sched_job")


def parse_time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    text = str(value).strip()
    if len(text) >= 3 and text[-3] in "+-" and text[-2:].isdigit():
        text += ":00"  # PostgreSQL writes +01 for a whole-hour offset
    return datetime.fromisoformat(text)


def as_text(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def now(ctx: Ctx) -> datetime:
    found = parse_time(ctx.one("SELECT pg_catalog.to_jsonb(pg_catalog.clock_timestamp())"
                               " #>> '{}' AS now"))
    assert found is not None
    return found


def zone(ctx: Ctx) -> str:
    """The database's time zone: the TimeZone sessions start with, not a SET in
    this one (pg_cron's dispatcher must read calendars on the same clock)."""
    return str(ctx.one("SELECT reset_val FROM pg_catalog.pg_settings WHERE name = 'TimeZone'"))


def timestamp(ctx: Ctx, value: Any) -> datetime | None:
    """A timestamptz argument as PostgreSQL reads it (any input it accepts)."""
    if value is None:
        return None
    return parse_time(ctx.one("SELECT pg_catalog.to_jsonb(($1::text)::timestamptz) #>> '{}'"
                              " AS t", [str(value)]))


@dataclass
class Job:
    job_id: int | None
    name: JobName
    job_type: str
    job_action: str
    number_of_arguments: int = 0
    start_date: datetime | None = None
    anchor_date: datetime | None = None
    repeat_interval: str | None = None
    end_date: datetime | None = None
    enabled: bool = False
    auto_drop: bool = True
    comments: str | None = None
    next_run_date: datetime | None = None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Job:
        return cls(int(row["job_id"]), JobName(str(row["owner"]), str(row["job_name"])),
                   str(row["job_type"]), str(row["job_action"]),
                   int(row["number_of_arguments"]), parse_time(row["start_date"]),
                   parse_time(row["anchor_date"]), row["repeat_interval"],
                   parse_time(row["end_date"]), bool(row["enabled"]), bool(row["auto_drop"]),
                   row["comments"], parse_time(row["next_run_date"]))


def find(ctx: Ctx, name: JobName, *, lock: bool = True) -> Job:
    rows = ctx.rows(JOB_SELECT + " WHERE owner = $1 AND job_name = $2"
                    + (" FOR UPDATE" if lock else ""), [name.owner, name.name])
    if not rows:
        raise DmsError(f"job {name} does not exist", sqlstate=UNDEFINED_OBJECT, hint=LIST_HINT)
    return Job.of(rows[0])


# The backend whose transaction holds a job's row of dms.sched_job_lock: the
# row's xmax is the locking transaction, and the backend running that
# transaction holds the ExclusiveLock on its id.  (A lock from a transaction
# that has ended leaves its id in xmax, but nobody holds it any more.)  Only
# dms._sched_begin locks these rows, and no dms role may read or lock the
# table, so nobody can make a job look running -- nor keep it from running,
# as anyone could with an advisory lock, whose keys are public.
RUNNING_PID = ("SELECT l.pid FROM dms.sched_job_lock k JOIN pg_catalog.pg_locks l"
               " ON l.locktype = 'transactionid' AND l.transactionid = k.xmax"
               " AND l.mode = 'ExclusiveLock' AND l.granted WHERE k.job_id = $1::integer")


def running_pid(ctx: Ctx, job_id: int) -> int | None:
    """The backend running the job now (holding its row of dms.sched_job_lock), if any."""
    pid = ctx.one(RUNNING_PID, [job_id])
    return int(pid) if pid is not None else None


def _bad(message: str, hint: str | None = None,
         sqlstate: str = INVALID_PARAMETER_VALUE) -> DmsError:
    return DmsError(message, sqlstate=sqlstate, hint=hint)


def _upper(value: Any) -> str:
    return str(value or "").strip().upper()


# -- validation ----------------------------------------------------------------------

def validate(job: Job) -> None:
    """Refuse a job that could not run, naming what to fix."""
    if job.job_type in UNSUPPORTED_TYPES:
        raise _bad(f"job_type {job.job_type} is not supported",
                   "jobs run SQL in the database: PLSQL_BLOCK or STORED_PROCEDURE",
                   FEATURE_NOT_SUPPORTED)
    if job.job_type not in actions.JOB_TYPES:
        raise _bad(f"job_type must be PLSQL_BLOCK or STORED_PROCEDURE, got {job.job_type!r}",
                   "PLSQL_BLOCK runs SQL or a BEGIN ... END; block, STORED_PROCEDURE calls a "
                   "procedure with the job's arguments")
    if not job.job_action.strip():
        raise _bad("job_action must be given", "the SQL or block to run, or a procedure name")
    if job.job_type == actions.STORED_PROCEDURE:
        procedure_name(job.job_action)
    if not 0 <= job.number_of_arguments <= MAX_ARGUMENTS:
        raise _bad(f"number_of_arguments must be 0..{MAX_ARGUMENTS}, got "
                   f"{job.number_of_arguments}", "one per parameter of the procedure")
    if job.job_type == actions.PLSQL_BLOCK and job.number_of_arguments:
        raise _bad(f"a PLSQL_BLOCK job takes no arguments (number_of_arguments "
                   f"{job.number_of_arguments})",
                   "use job_type => 'STORED_PROCEDURE' to pass arguments")
    if job.repeat_interval is not None:
        calendar.parse(job.repeat_interval)
    if job.start_date and job.end_date and job.end_date < job.start_date:
        raise _bad("end_date is before start_date", "give an end_date after the start_date")


def missing_argument(ctx: Ctx, job: Job) -> int | None:
    """The first argument position of the job that has no value, if any."""
    if not job.number_of_arguments or job.job_id is None:
        return 1 if job.number_of_arguments else None
    have = {int(r["argument_position"]) for r in ctx.rows(
        "SELECT argument_position FROM dms.sched_job_arg WHERE job_id = $1", [job.job_id])}
    return next((p for p in range(1, job.number_of_arguments + 1) if p not in have), None)


def require_arguments(ctx: Ctx, job: Job, doing: str) -> None:
    position = missing_argument(ctx, job)
    if position is not None:
        raise _bad(f"job {job.name} cannot be {doing}: argument {position} has no value",
                   f"set it with CALL dbms_scheduler.set_job_argument_value('{job.name}', "
                   f"{position}, '...')", OBJECT_NOT_IN_PREREQUISITE_STATE)


def schedule(ctx: Ctx, job: Job) -> None:
    """Enable: anchor the calendar and compute the first run (Oracle: the first
    match on or after the later of start_date and now)."""
    moment = now(ctx)
    job.anchor_date = job.start_date or job.anchor_date or moment
    spec = calendar.parse(job.repeat_interval) if job.repeat_interval else None
    first = calendar.first_date(spec, job.anchor_date, moment, zone(ctx), job.end_date)
    if first is None:
        raise _bad(f"job {job.name} would never run: its end_date has passed or no date of its "
                   "repeat_interval falls before it", "change end_date or repeat_interval")
    job.next_run_date = first
    job.enabled = True


# -- create / change -----------------------------------------------------------------

def create_job(ctx: Ctx, a: Mapping[str, Any]) -> None:
    name = job_name(a.get("job_name"), ctx.login, "create")
    job_class = a.get("job_class")
    if job_class is not None and _upper(job_class) != "DEFAULT_JOB_CLASS":
        raise _bad(f"job_class {job_class} is not supported: every job is in DEFAULT_JOB_CLASS",
                   "leave job_class out", FEATURE_NOT_SUPPORTED)
    for what in ("credential_name", "destination_name"):
        if a.get(what) is not None:
            raise _bad(f"{what} is not supported: a job runs on this database as the login "
                       "that created it", f"leave {what} out", FEATURE_NOT_SUPPORTED)
    job = Job(None, name, _upper(a.get("job_type")), str(a.get("job_action") or ""),
              int(a.get("number_of_arguments") or 0), timestamp(ctx, a.get("start_date")),
              None, _interval(a.get("repeat_interval")), timestamp(ctx, a.get("end_date")),
              False, True if a.get("auto_drop") is None else bool(a["auto_drop"]),
              a.get("comments"))
    validate(job)
    if ctx.rows("SELECT 1 FROM dms.sched_job WHERE owner = $1 AND job_name = $2",
                [name.owner, name.name]):
        raise _bad(f"job {name} already exists",
                   "drop it with dbms_scheduler.drop_job, or choose another name",
                   DUPLICATE_OBJECT)
    if a.get("enabled"):
        require_arguments(ctx, job, "enabled")
        schedule(ctx, job)
    job.job_id = int(ctx.one(
        "INSERT INTO dms.sched_job (owner, job_name, job_type, job_action, number_of_arguments,"
        " start_date, anchor_date, repeat_interval, end_date, enabled, auto_drop, comments,"
        " next_run_date) VALUES ($1, $2, $3, $4, $5::integer, $6::timestamptz,"
        " $7::timestamptz, $8, $9::timestamptz, $10::boolean, $11::boolean, $12,"
        " $13::timestamptz) RETURNING job_id",
        [name.owner, name.name, job.job_type, job.job_action, job.number_of_arguments,
         as_text(job.start_date), as_text(job.anchor_date), job.repeat_interval,
         as_text(job.end_date), job.enabled, job.auto_drop, job.comments,
         as_text(job.next_run_date)]))
    # The row a run of the job locks (dms_pkg.scheduler.runs).
    ctx.rows("INSERT INTO dms.sched_job_lock (job_id) VALUES ($1::integer)"
             " ON CONFLICT (job_id) DO NOTHING", [job.job_id])
    ctx.say(f"job {name} created" + (f", next run {as_text(job.next_run_date)}"
                                     if job.enabled else " (disabled)"))


def _interval(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def save(ctx: Ctx, job: Job) -> None:
    ctx.rows("UPDATE dms.sched_job SET job_type = $2, job_action = $3,"
             " number_of_arguments = $4::integer, start_date = $5::timestamptz,"
             " anchor_date = $6::timestamptz, repeat_interval = $7, end_date = $8::timestamptz,"
             " enabled = $9::boolean, auto_drop = $10::boolean, comments = $11,"
             " next_run_date = $12::timestamptz,"
             " completed_at = CASE WHEN $9::boolean THEN NULL ELSE completed_at END,"
             " updated_at = pg_catalog.now() WHERE job_id = $1::integer",
             [job.job_id, job.job_type, job.job_action, job.number_of_arguments,
              as_text(job.start_date), as_text(job.anchor_date), job.repeat_interval,
              as_text(job.end_date), job.enabled, job.auto_drop, job.comments,
              as_text(job.next_run_date)])


def set_job_argument_value(ctx: Ctx, a: Mapping[str, Any]) -> None:
    job = find(ctx, job_name(a.get("job_name"), ctx.login, "change"))
    position = a.get("argument_position")
    if job.job_type == actions.PLSQL_BLOCK:
        raise _bad(f"job {job.name} is a PLSQL_BLOCK job: it takes no arguments",
                   "use job_type => 'STORED_PROCEDURE' to pass arguments")
    if position is None or not 1 <= int(position) <= job.number_of_arguments:
        raise _bad(f"argument_position {position} is out of range: job {job.name} has "
                   f"{job.number_of_arguments} argument"
                   f"{'' if job.number_of_arguments == 1 else 's'}",
                   f"give 1..{job.number_of_arguments}, or change number_of_arguments with "
                   "dbms_scheduler.set_attribute")
    ctx.rows("INSERT INTO dms.sched_job_arg (job_id, argument_position, argument_value)"
             " VALUES ($1::integer, $2::integer, $3) ON CONFLICT (job_id, argument_position)"
             " DO UPDATE SET argument_value = EXCLUDED.argument_value",
             [job.job_id, int(position), a.get("argument_value")])


ATTRIBUTES = ("job_action", "job_type", "number_of_arguments", "start_date", "repeat_interval",
              "end_date", "auto_drop", "comments")
NULLABLE = ("start_date", "repeat_interval", "end_date", "comments")
BOOLEANS = {"TRUE": True, "T": True, "YES": True, "Y": True, "1": True,
            "FALSE": False, "F": False, "NO": False, "N": False, "0": False}


def _attribute(value: Any) -> str:
    attribute = str(value or "").strip().lower()
    if attribute not in ATTRIBUTES:
        raise _bad(f"unknown attribute {value!r}",
                   "supported attributes: " + ", ".join(ATTRIBUTES))
    return attribute


def set_attribute(ctx: Ctx, a: Mapping[str, Any]) -> None:
    """Change one attribute (value as text; the typed overloads pass theirs as text)."""
    attribute = _attribute(a.get("attribute"))
    job = find(ctx, job_name(a.get("name"), ctx.login, "change"))
    value = a.get("value")
    if value is None and attribute not in NULLABLE:
        raise _bad(f"attribute {attribute} cannot be NULL", f"give a value for {attribute}")
    if attribute == "auto_drop":
        flag = BOOLEANS.get(_upper(value))
        if flag is None:
            raise _bad(f"attribute auto_drop takes TRUE or FALSE, got {value!r}")
        job.auto_drop = flag
    elif attribute == "number_of_arguments":
        text = str(value).strip()
        if not text.lstrip("-").isdigit():
            raise _bad(f"attribute number_of_arguments takes a whole number, got {value!r}")
        job.number_of_arguments = int(text)
    elif attribute in ("start_date", "end_date"):
        setattr(job, attribute, timestamp(ctx, value))
        if attribute == "start_date":
            job.anchor_date = job.start_date
    elif attribute == "job_type":
        job.job_type = _upper(value)
    elif attribute == "repeat_interval":
        job.repeat_interval = _interval(value)
    else:
        setattr(job, attribute, value)
    validate(job)
    if job.enabled:  # an enabled job is checked and rescheduled as if enabled again
        require_arguments(ctx, job, "enabled")
        if attribute in ("start_date", "repeat_interval", "end_date"):
            schedule(ctx, job)
    save(ctx, job)
    ctx.rows("DELETE FROM dms.sched_job_arg WHERE job_id = $1::integer"
             " AND argument_position > $2::integer", [job.job_id, job.number_of_arguments])


def set_attribute_null(ctx: Ctx, a: Mapping[str, Any]) -> None:
    set_attribute(ctx, {"name": a.get("name"), "attribute": a.get("attribute"), "value": None})


# -- enable / disable / drop / stop ----------------------------------------------------

def _each(ctx: Ctx, names: list[JobName], semantics: Any,
          act: Callable[[Job], None], verb: str, *, lock: bool = True) -> None:
    """Apply ``act`` to each named job.  STOP_ON_FIRST_ERROR and TRANSACTIONAL
    both change nothing when one fails (one transaction); ABSORB_ERRORS skips the
    failing ones with a warning."""
    mode = _upper(semantics) or "STOP_ON_FIRST_ERROR"
    if mode not in COMMIT_SEMANTICS:
        raise _bad(f"commit_semantics must be one of {', '.join(COMMIT_SEMANTICS)}, got "
                   f"{semantics!r}", "leave it out: STOP_ON_FIRST_ERROR")
    for name in names:
        try:
            act(find(ctx, name, lock=lock))
        except DmsError as exc:
            if mode != "ABSORB_ERRORS":
                raise
            ctx.say(f"job {name} not {verb}: {exc.message}")


def enable(ctx: Ctx, a: Mapping[str, Any]) -> None:
    def act(job: Job) -> None:
        validate(job)
        require_arguments(ctx, job, "enabled")
        schedule(ctx, job)
        save(ctx, job)

    _each(ctx, job_names(a.get("name"), ctx.login, "enable"), a.get("commit_semantics"), act,
          "enabled")


def disable(ctx: Ctx, a: Mapping[str, Any]) -> None:
    def act(job: Job) -> None:
        assert job.job_id is not None
        if running_pid(ctx, job.job_id) is not None and not a.get("force"):
            raise _bad(f"job {job.name} is running", "wait for it, stop it with "
                       "dbms_scheduler.stop_job, or disable it with force => true (the run "
                       "goes on)", OBJECT_IN_USE)
        job.enabled, job.next_run_date = False, None
        save(ctx, job)

    _each(ctx, job_names(a.get("name"), ctx.login, "disable"), a.get("commit_semantics"), act,
          "disabled")


def drop_job(ctx: Ctx, a: Mapping[str, Any]) -> None:
    if a.get("defer"):
        raise _bad("drop_job with defer => true is not supported",
                   "wait for the job to end (or stop it), then drop it", FEATURE_NOT_SUPPORTED)

    def act(job: Job) -> None:
        assert job.job_id is not None
        pid = running_pid(ctx, job.job_id)
        if pid is not None:
            if not a.get("force"):
                raise _bad(f"job {job.name} is running", "stop it with dbms_scheduler.stop_job "
                           "first, or drop it with force => true", OBJECT_IN_USE)
            ctx.one("SELECT pg_catalog.pg_cancel_backend($1::integer)", [pid])
        # Runs waiting for the dispatcher go with the job; the log of past runs stays.
        ctx.rows("DELETE FROM dms.sched_job_run WHERE job_id = $1::integer AND status = 'QUEUED'",
                 [job.job_id])
        # Its row of dms.sched_job_lock stays (a run being stopped holds it; the
        # job must not wait for it): the dispatcher sweeps it away later.
        ctx.rows("DELETE FROM dms.sched_job WHERE job_id = $1::integer", [job.job_id])

    _each(ctx, job_names(a.get("job_name"), ctx.login, "drop"), a.get("commit_semantics"), act,
          "dropped")


FORCE_WAIT_SECONDS = 5.0


def _ends(ctx: Ctx, job_id: int, seconds: float) -> bool:
    """Wait up to ``seconds`` for the job's run to end; whether it did."""
    for _ in range(int(seconds * 10)):
        if running_pid(ctx, job_id) is None:
            return True
        ctx.one("SELECT pg_catalog.pg_sleep(0.1)")
    return running_pid(ctx, job_id) is None


def stop_job(ctx: Ctx, a: Mapping[str, Any]) -> None:
    """Cancel the running job's statement: the session that runs it records the
    run STOPPED.  With force, a session still running it after a few seconds
    is ended."""
    def act(job: Job) -> None:
        assert job.job_id is not None
        pid = running_pid(ctx, job.job_id)
        if pid is None:
            raise _bad(f"job {job.name} is not running",
                       "dbms_scheduler.user_scheduler_jobs shows its state",
                       OBJECT_NOT_IN_PREREQUISITE_STATE)
        ctx.one("SELECT pg_catalog.pg_cancel_backend($1::integer)", [pid])
        if a.get("force") and not _ends(ctx, job.job_id, FORCE_WAIT_SECONDS):
            # The cancel was not enough (a statement that ignores it): end the
            # session.  Its run is then recorded FAILED by its dispatcher.
            ctx.one("SELECT pg_catalog.pg_terminate_backend($1::integer)", [pid])
            ctx.say(f"job {job.name}: session {pid} ended")
            return
        ctx.say(f"job {job.name}: stop requested (session {pid})")

    # Not locked: the run being stopped records its end on the job's row.
    _each(ctx, job_names(a.get("job_name"), ctx.login, "stop"), a.get("commit_semantics"), act,
          "stopped", lock=False)


def evaluate_calendar_string(ctx: Ctx, a: Mapping[str, Any]) -> dict[str, Any]:
    """Oracle's EVALUATE_CALENDAR_STRING: the next date after return_date_after."""
    moment = now(ctx)
    start = timestamp(ctx, a.get("start_date")) or moment
    after = timestamp(ctx, a.get("return_date_after")) or moment
    found = calendar.next_date(calendar.parse(a.get("calendar_string")), start, after, zone(ctx))
    return {"next_run_date": as_text(found)}
