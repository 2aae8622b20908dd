"""The engine seen from inside a backend: what the PL/Python bodies call.

Each function takes the ``plpy`` module its body was given (the core never
imports it, DESIGN §2) and builds the small handles the engine works with:
the local database as a ``Session``, the planner's view of it, and the
loopback route a worker uses for COPY into or out of this database.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from psycopg import sql

from dms_pkg.db.base import Session
from dms_pkg.db.plpy_db import PlpyDatabase
from dms_pkg.db.sources import PlpySource
from dms_pkg.engine import connections, stopping
from dms_pkg.engine.coordinator import RunOutcome, coordinate, work
from dms_pkg.engine.local import Local
from dms_pkg.engine.worker import Login
from dms_pkg.errors import INVALID_PARAMETER_VALUE, DmsError
from dms_pkg.security import OPERATOR, require_role

if TYPE_CHECKING:  # planning is imported where a run is planned, not by every worker
    from dms_pkg.engine.planning import PlannedRun

RUN_FAILED = "P0001"


def local_login(plpy: Any, role: str = OPERATOR) -> tuple[Local, Login]:
    session = PlpyDatabase(plpy)
    require_role(session, role)
    row = session.query(
        "SELECT dms.loopback_conninfo() AS conninfo, session_user::text AS login,"
        " pg_catalog.current_setting('search_path') AS search_path"
    )[0]
    local = Local(session, PlpySource(plpy), connections.local(row["conninfo"]),
                  row["search_path"])
    return local, Login(row["login"], row["search_path"])


def parse_params(p_params: Any) -> dict[str, Any]:
    if p_params is None:
        return {}
    value = json.loads(p_params) if isinstance(p_params, str) else p_params
    if not isinstance(value, dict):
        raise DmsError(
            f"p_params must be a JSON object, got {type(value).__name__}",
            sqlstate=INVALID_PARAMETER_VALUE,
            hint="""for example p_params => '{"max_workers": 4}'""",
        )
    return value


def execute(plpy: Any, source_conid: int | None, source_sql: str, target_conid: int | None,
            target_schema: str, target_table: str, p_params: Any) -> int:
    """``CALL dms.execute_query_parallel(...)``: plan, run, wait; raise if not all loaded."""
    from dms_pkg.engine.planning import RunRequest, plan_run

    local, login = local_login(plpy)
    request = RunRequest(source_sql, target_schema, target_table, source_conid, target_conid,
                         parse_params(p_params))
    planned = plan_run(local, request)
    local.session.commit()  # the workers must see the run and its chunks
    notify = plpy.notice if planned.config["enable_progress"] else None
    if notify is not None:
        notify(_start_line(planned.run_id, planned.plan.strategy, len(planned.plan.chunks),
                           planned.workers, planned.spec.path, planned.note,
                           planned.plan.refused_reason))
    _say_notes(plpy, planned)
    if planned.queued:
        _wait_for_turn(plpy, local, planned.run_id)
    outcome = coordinate(local, planned.run_id, planned.workers, login=login, notify=notify)
    _raise_unless_succeeded(outcome)
    return planned.run_id


def _wait_for_turn(plpy: Any, local: Local, run_id: int) -> None:
    """if_busy "queue": wait until the run loading the same target is done."""
    session = local.session
    said = False
    while not session.query("SELECT run_id FROM dms.claim_queued_run($1::bigint)", [run_id]):
        session.commit()
        state = session.query("SELECT state FROM dms.run WHERE run_id = $1::bigint",
                              [run_id])[0]["state"]
        if state != "QUEUED":
            raise DmsError(f"run {run_id} was {state.lower()} while it waited for its turn",
                           sqlstate="55000")
        if not said:
            plpy.notice(f"run {run_id}: waiting for the run loading the same target to end")
            said = True
        time.sleep(1.0)
    session.commit()


def stop(plpy: Any, run_id: int) -> None:
    """``CALL dms.stop_run(run_id)``."""
    local, _ = local_login(plpy)
    stopping.stop_run(local, run_id, plpy.notice)


def submit(plpy: Any, source_conid: int | None, source_sql: str, target_conid: int | None,
           target_schema: str, target_table: str, p_params: Any) -> int:
    """``SELECT dms.submit_query_parallel(...)``: plan and queue; a dispatcher runs it."""
    from dms_pkg.engine.planning import RunRequest, plan_run

    local, _ = local_login(plpy)
    request = RunRequest(source_sql, target_schema, target_table, source_conid, target_conid,
                         parse_params(p_params), queued=True)
    planned = plan_run(local, request)
    _say_notes(plpy, planned)
    return planned.run_id


def _say_notes(plpy: Any, planned: PlannedRun) -> None:
    """The planner's warnings (also in dms.run.notes), whatever enable_progress says:
    they are about the run's effects, not its progress."""
    for note in planned.notes:
        plpy.notice(f"run {planned.run_id}: {note}")


def run_work(plpy: Any, run_id: int) -> None:
    """``CALL dms.work(run_id)``: one worker."""
    local, login = local_login(plpy)
    work(local, run_id, login)


def dispatch(plpy: Any, max_runs: int | None) -> int:
    """``CALL dms.dispatch()``: run queued runs one after another; returns how many."""
    local, _ = local_login(plpy)
    done = 0
    while (max_runs is None or done < max_runs) and _run_next_queued(plpy, local, None):
        done += 1
    return done


def run_queued(plpy: Any, run_id: int) -> None:
    """``CALL dms.run_queued(run_id)``: carry out this queued run now, and wait."""
    local, _ = local_login(plpy)
    outcome = _run_next_queued(plpy, local, run_id)
    if outcome is None:
        state = local.session.query("SELECT state FROM dms.run WHERE run_id = $1::bigint",
                                    [run_id])
        raise DmsError(
            f"run {run_id} is not queued"
            + (f" (it is {state[0]['state']})" if state else " (there is no such run)"),
            sqlstate="55000",
            hint="SELECT * FROM dms.run_progress shows the runs and their states",
        )
    _raise_unless_succeeded(outcome)


def _run_next_queued(plpy: Any, local: Local, run_id: int | None) -> RunOutcome | None:
    session = local.session
    rows = session.query(
        "SELECT run_id, workers_planned, created_by, search_path"
        " FROM dms.claim_queued_run($1::bigint)",
        [run_id],
    )
    session.commit()
    if not rows:
        return None
    row = rows[0]
    # The run goes with the privileges of whoever submitted it, not the
    # dispatcher's (pg_cron runs it as the superuser that scheduled it).
    with acting_as(session, row["created_by"]):
        return coordinate(local, int(row["run_id"]), int(row["workers_planned"]),
                          login=Login(row["created_by"], row["search_path"]),
                          notify=plpy.notice)


@contextmanager
def acting_as(session: Session, login: str) -> Iterator[None]:
    """Run the block as ``login`` when this session is a superuser's that is not
    ``login`` (a dispatcher started by pg_cron); otherwise as the session is."""
    switch = session.query(
        "SELECT session_user::text <> $1::text AS differs,"
        " (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = session_user) AS su",
        [login],
    )[0]
    become = bool(switch["differs"] and switch["su"])
    if become:
        session.execute(sql.SQL("SET SESSION AUTHORIZATION {}").format(
            sql.Identifier(login)).as_string(None))
    try:
        yield
    finally:
        if become:
            session.execute("RESET SESSION AUTHORIZATION")


def resume(plpy: Any, run_id: int) -> None:
    """``CALL dms.resume_run(run_id)``: queue the unfinished chunks again and run them."""
    local, login = local_login(plpy)
    session = local.session
    reopened = session.query("SELECT dms.reopen_run($1::bigint) AS n", [run_id])[0]["n"]
    workers = session.query("SELECT workers_planned FROM dms.run WHERE run_id = $1::bigint",
                            [run_id])[0]["workers_planned"]
    session.commit()
    plpy.notice(f"run {run_id}: resuming with {reopened} chunk{'s' if reopened != 1 else ''} "
                "put back in the queue")
    _raise_unless_succeeded(
        coordinate(local, run_id, int(workers), login=login, notify=plpy.notice))


def _start_line(run_id: int, strategy: str, chunks: int, workers: int, path: str,
                note: str | None, refused: str | None) -> str:
    line = (f"run {run_id}: {chunks} chunk{'s' if chunks != 1 else ''} ({strategy}), "
            f"{workers} worker{'s' if workers != 1 else ''}, path {path}")
    if note:
        line += f"; {note}"
    if refused:
        line += f"; not split: {refused}"
    return line


def _raise_unless_succeeded(outcome: RunOutcome) -> None:
    if outcome.state == "SUCCEEDED":
        return
    raise DmsError(
        f"run {outcome.run_id} {outcome.state}: {outcome.message}",
        sqlstate=RUN_FAILED,
        detail="per-chunk errors: SELECT chunk_no, sqlstate, last_error FROM dms.chunk_progress "
        f"WHERE run_id = {outcome.run_id} AND state = 'FAILED'",
        hint=f"fix the cause and resume with CALL dms.resume_run({outcome.run_id})"
        if outcome.state in ("PARTIAL", "FAILED") else None,
    )
