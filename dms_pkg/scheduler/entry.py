"""DBMS_SCHEDULER seen from SQL: one table of entry points.

Every PL/Python function and procedure of dbms_scheduler (and the dms._sched_*
helpers the plpgsql procedures call) has the same body (plpy/scheduler.py),
which calls ``call(plpy, entry, args)`` with its own name and its arguments.
All of them are SECURITY DEFINER with a fixed search_path; the table says
which role the caller needs, checked before anything else, and the login
(session_user) every job name is resolved against.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dms_pkg.db.plpy_db import PlpyDatabase
from dms_pkg.scheduler import jobs, runs
from dms_pkg.scheduler.jobs import Ctx
from dms_pkg.security import ADMIN, OPERATOR, VIEWER, require_role

Entry = Callable[[Ctx, Mapping[str, Any]], Any]

ENTRIES: dict[str, tuple[str, Entry]] = {
    "dbms_scheduler.create_job": (OPERATOR, jobs.create_job),
    "dbms_scheduler.set_job_argument_value": (OPERATOR, jobs.set_job_argument_value),
    "dbms_scheduler.set_attribute": (OPERATOR, jobs.set_attribute),
    "dbms_scheduler.set_attribute_null": (OPERATOR, jobs.set_attribute_null),
    "dbms_scheduler.enable": (OPERATOR, jobs.enable),
    "dbms_scheduler.disable": (OPERATOR, jobs.disable),
    "dbms_scheduler.drop_job": (OPERATOR, jobs.drop_job),
    "dbms_scheduler.stop_job": (OPERATOR, jobs.stop_job),
    "dbms_scheduler.evaluate_calendar_string": (VIEWER, jobs.evaluate_calendar_string),
    # Internal: what the plpgsql procedures run_job and sched_carry_out call
    # (a login's own jobs only)...
    "dms._sched_start": (OPERATOR, runs.begin),
    "dms._sched_not_started": (OPERATOR, runs.not_started),
    "dms._sched_end": (OPERATOR, runs.end),
    "dms._sched_queue_run": (OPERATOR, runs.queue_run),
    # ... and the dispatcher's, which hand out and record every login's runs:
    # administrators only (dbms_scheduler.dispatch is too).
    "dms._sched_queue_due": (ADMIN, runs.queue_due),
    "dms._sched_claim": (ADMIN, runs.claim),
    "dms._sched_abandon": (ADMIN, runs.abandon),
}


def call(plpy: Any, entry: str, args: Mapping[str, Any]) -> Any:
    """Run one entry point for the calling session."""
    role, run = ENTRIES[entry]
    db = PlpyDatabase(plpy)
    require_role(db, role)
    login = str(db.query("SELECT session_user::text AS login")[0]["login"])
    return run(Ctx(db, login, plpy.notice), args)
