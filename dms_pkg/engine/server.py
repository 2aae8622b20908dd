"""The engine seen from inside a backend: what the PL/Python bodies call.

Each function takes the ``plpy`` module its body was given (the core never
imports it, DESIGN §2) and builds the small handles the engine works with:
the local database as a ``Session``, the planner's view of it, and the
loopback route a worker uses for COPY into or out of this database.
"""

from __future__ import annotations

import json
import time
from typing import Any

from psycopg import sql

from dms_pkg.db.plpy_db import PlpyDatabase
from dms_pkg.db.sources import PlpySource
from dms_pkg.engine import connections
from dms_pkg.engine.coordinator import RunOutcome, coordinate, work
from dms_pkg.engine.local import Local
from dms_pkg.engine.worker import Login
from dms_pkg.errors import INVALID_PARAMETER_VALUE, DmsError
from dms_pkg.security import OPERATOR, require_role

RUN_FAILED = "P0001"


def _local(plpy: Any) -> tuple[Local, Login]:
    session = PlpyDatabase(plpy)
    require_role(session, OPERATOR)
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

    local, login = _local(plpy)
    request = RunRequest(source_sql, target_schema, target_table, source_conid, target_conid,
                         parse_params(p_params))
    planned = plan_run(local, request)
    local.session.commit()  # the workers must see the run and its chunks
    notify = plpy.notice if planned.config["enable_progress"] else None
    if notify is not None:
        notify(_start_line(planned.run_id, planned.plan.strategy, len(planned.plan.chunks),
                           planned.workers, planned.spec.path, planned.note,
                           planned.plan.refused_reason))
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


def stop(plpy: Any, run_id: int, timeout: float = 60.0) -> None:
    """``CALL dms.stop_run(run_id)``: stop handing out chunks, cancel running
    statements (their chunks go back to the queue), wait until the run stops."""
    local, _ = _local(plpy)
    session = local.session
    rows = session.query(
        "SELECT chunk_no, source_pid, target_pid, state FROM dms.request_stop($1::bigint)",
        [run_id])
    session.commit()
    state = rows[0]["state"] if rows else None
    if state not in ("STOPPING",):
        plpy.notice(f"run {run_id} is {str(state).lower()}: nothing to stop")
        return
    cancelled = _cancel_statements(local, run_id, rows)
    plpy.notice(f"run {run_id}: stopping; cancelled {cancelled} running statement"
                f"{'s' if cancelled != 1 else ''}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = session.query(
            "SELECT r.state, EXISTS (SELECT FROM pg_catalog.pg_stat_activity a"
            " WHERE a.pid = r.coordinator_pid) AS coordinated FROM dms.run r"
            " WHERE r.run_id = $1::bigint", [run_id])[0]
        session.commit()
        if row["state"] != "STOPPING":
            plpy.notice(f"run {run_id} is {row['state']}")
            return
        if not row["coordinated"]:
            # Nobody coordinates the run (it crashed): wait for its last
            # workers, then close it here.
            busy = session.query(
                "SELECT count(*) AS n FROM dms.chunk c JOIN pg_catalog.pg_stat_activity a"
                " ON a.pid = c.worker_pid WHERE c.run_id = $1::bigint AND c.state = 'RUNNING'",
                [run_id])[0]["n"]
            if not busy:
                session.query("SELECT dms.reap_chunks($1::bigint)", [run_id])
                state = session.query("SELECT dms.finish_run($1::bigint) AS s",
                                      [run_id])[0]["s"]
                session.commit()
                plpy.notice(f"run {run_id} is {state}")
                return
        time.sleep(0.2)
    plpy.notice(f"run {run_id} is still stopping after {timeout:.0f} s; its workers stop "
                "after their current statement")


def _cancel_statements(local: Local, run_id: int, chunks: list[dict[str, Any]]) -> int:
    """Cancel the run's statements: on this server by name, elsewhere by pid."""
    session = local.session
    cancelled = int(session.query("SELECT dms.cancel_run_statements($1::bigint) AS n",
                                  [run_id])[0]["n"])
    spec = session.query(
        "SELECT (spec->>'source_conid')::bigint AS source, (spec->>'target_conid')::bigint"
        " AS target FROM dms.run WHERE run_id = $1::bigint", [run_id])[0]
    session.commit()
    for conid, column in ((spec["source"], "source_pid"), (spec["target"], "target_pid")):
        pids = [c[column] for c in chunks if c[column]]
        if conid is None or not pids:
            continue  # this server: cancelled above
        info = connections.resolve(session, conid, local.conninfo.conninfo, "stop")
        try:
            with connections.connect(info, autocommit=True) as conn:
                for pid in pids:
                    row = conn.execute("SELECT pg_catalog.pg_cancel_backend(%s)", [pid]).fetchone()
                    cancelled += int(bool(row and row[0]))
        except DmsError:
            pass  # unreachable server: its workers stop after their statement
    return cancelled


def submit(plpy: Any, source_conid: int | None, source_sql: str, target_conid: int | None,
           target_schema: str, target_table: str, p_params: Any) -> int:
    """``SELECT dms.submit_query_parallel(...)``: plan and queue; a dispatcher runs it."""
    from dms_pkg.engine.planning import RunRequest, plan_run

    local, _ = _local(plpy)
    request = RunRequest(source_sql, target_schema, target_table, source_conid, target_conid,
                         parse_params(p_params), queued=True)
    return plan_run(local, request).run_id


def run_work(plpy: Any, run_id: int) -> None:
    """``CALL dms.work(run_id)``: one worker."""
    local, login = _local(plpy)
    work(local, run_id, login)


def dispatch(plpy: Any, max_runs: int | None) -> int:
    """``CALL dms.dispatch()``: run queued runs one after another; returns how many."""
    local, _ = _local(plpy)
    done = 0
    while (max_runs is None or done < max_runs) and _run_next_queued(plpy, local, None):
        done += 1
    return done


def run_queued(plpy: Any, run_id: int) -> None:
    """``CALL dms.run_queued(run_id)``: carry out this queued run now, and wait."""
    local, _ = _local(plpy)
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
    switch = session.query(
        "SELECT session_user::text <> $1::text AS differs,"
        " (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = session_user) AS su",
        [row["created_by"]],
    )[0]
    become = bool(switch["differs"] and switch["su"])
    if become:
        session.execute(sql.SQL("SET SESSION AUTHORIZATION {}").format(
            sql.Identifier(row["created_by"])).as_string(None))
    try:
        return coordinate(local, int(row["run_id"]), int(row["workers_planned"]),
                          login=Login(row["created_by"], row["search_path"]),
                          notify=plpy.notice)
    finally:
        if become:
            session.execute("RESET SESSION AUTHORIZATION")


def resume(plpy: Any, run_id: int) -> None:
    """``CALL dms.resume_run(run_id)``: queue the unfinished chunks again and run them."""
    local, login = _local(plpy)
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
