"""The engine seen from inside a backend: what the PL/Python bodies call.

Each function takes the ``plpy`` module its body was given (the core never
imports it, DESIGN §2) and builds the small handles the engine works with:
the local database as a ``Session``, the planner's view of it, and the
loopback route a worker uses for COPY into or out of this database.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dms_pkg.backends import postgres
from dms_pkg.db import interrupts
from dms_pkg.db.base import Session
from dms_pkg.db.plpy_db import PlpyDatabase
from dms_pkg.db.sources import PlpySource
from dms_pkg.engine import booting, stopping
from dms_pkg.engine.config import parse_params
from dms_pkg.engine.coordinator import RunOutcome, coordinate, work
from dms_pkg.engine.local import Local
from dms_pkg.engine.worker import Login
from dms_pkg.errors import DmsError
from dms_pkg.security import OPERATOR, require_role

if TYPE_CHECKING:  # planning is imported where a run is planned, not by every worker
    from dms_pkg.engine.planning import PlannedRun

RUN_FAILED = "P0001"


def local_login(plpy: Any, role: str = OPERATOR) -> tuple[Local, Login]:
    session = PlpyDatabase(plpy)
    require_role(session, role)
    interrupts.install(plpy)  # waits on other connections stay interruptible
    row = session.query(
        "SELECT dms.loopback_conninfo() AS conninfo, session_user::text AS login,"
        " pg_catalog.current_setting('search_path') AS search_path"
    )[0]
    local = Local(session, PlpySource(plpy), postgres.local(row["conninfo"]),
                  row["search_path"])
    return local, Login(row["login"], row["search_path"])


def execute(plpy: Any, source_conid: int | None, source_sql: str, target_conid: int | None,
            target_schema: str, target_table: str, p_params: Any,
            booted: Sequence[str] | None = None) -> int:
    """``CALL dms.execute_query_parallel(...)``: plan, run, wait; raise if not all loaded.

    The workers' sessions are opened first and load their code while the
    run is planned (``booting``): by the procedure's body before it imports
    this module (``booted``, ``booting.head_start``), or else here."""
    try:
        local, login = local_login(plpy)
        params = parse_params(p_params)
    except BaseException:
        booting.close_quietly(PlpyDatabase(plpy), list(booted or ()))
        raise
    booted = list(booted) if booted is not None else booting.boot(local.session, params)
    try:
        from dms_pkg.engine.planning import RunRequest, plan_run

        request = RunRequest(source_sql, target_schema, target_table, source_conid,
                             target_conid, params)
        planned = plan_run(local, request)
        local.session.commit()  # the workers must see the run and its chunks
        booted = booting.fit(local.session, booted, planned.workers, queued=planned.queued)
    except BaseException:
        booting.close(local.session, booted)
        raise
    notify = plpy.notice if planned.config["enable_progress"] else None
    if notify is not None:
        notify(_start_line(planned.run_id, planned.plan.strategy, len(planned.plan.chunks),
                           planned.workers, planned.spec.path, planned.note,
                           planned.plan.refused_reason))
    _say_notes(plpy, planned)
    if planned.queued:
        _wait_for_turn(plpy, local, planned.run_id)
    outcome = coordinate(local, planned.run_id, planned.workers, login=login, notify=notify,
                         booted=booted)
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
    """``CALL dms.dispatch()``: run queued runs one after another; returns how many.

    Each run goes as the login that queued it.  The dispatcher's own login
    (pg_cron's job owner, often a superuser) never runs another login's SQL:
    such a run is carried out in a session logged in as its owner
    (``dms.run_as_owner``), and the dispatcher only waits for it.
    """
    local, login = local_login(plpy)
    session = local.session
    done = 0
    tried: list[int] = []
    while max_runs is None or done < max_runs:
        rows = session.query("SELECT run_id, created_by FROM dms.next_queued_run($1::bigint[])",
                             [tried])
        session.commit()
        if not rows:
            break
        run_id, owner = int(rows[0]["run_id"]), str(rows[0]["created_by"])
        tried.append(run_id)
        if owner == login.user:
            if _run_next_queued(plpy, local, run_id) is None:
                continue  # another dispatcher took it a moment ago
        else:
            _hand_over(plpy, local, "run", run_id, owner)
        done += 1
    return done


def _hand_over(plpy: Any, local: Local, kind: str, run_id: int, owner: str) -> str | None:
    """Carry out ``run_id`` in a session of its owner's; a run its owner's session
    could not even start is failed here with the reason, so it is not retried forever."""
    session = local.session
    plpy.notice(f"run {run_id}: carried out as {owner}, who "
                f"{'queued' if kind == 'run' else 'started'} it")
    error = session.query("SELECT dms.run_as_owner($1::text, $2::bigint) AS error",
                          [kind, run_id])[0]["error"]
    session.commit()
    if error and kind == "run":
        state = session.query("SELECT state FROM dms.run WHERE run_id = $1::bigint",
                              [run_id])[0]["state"]
        if state == "QUEUED" and not str(error).endswith(WAITING_SUFFIX):
            session.query("SELECT dms.set_run_state($1::bigint, 'FAILED', $2::text)",
                          [run_id, f"could not be started as {owner}: {error}"])
            session.commit()
    if error:
        plpy.notice(f"run {run_id}: {error}")
    return str(error) if error else None


WAITING_SUFFIX = "waits for the run loading the same target"


def run_queued(plpy: Any, run_id: int) -> None:
    """``CALL dms.run_queued(run_id)``: carry out this queued run now, and wait.

    A run someone else queued is carried out as them, in their own session."""
    local, login = local_login(plpy)
    session = local.session
    rows = session.query("SELECT state, created_by FROM dms.run WHERE run_id = $1::bigint",
                         [run_id])
    session.commit()
    if rows and rows[0]["state"] == "QUEUED" and rows[0]["created_by"] != login.user:
        _hand_over(plpy, local, "run", run_id, str(rows[0]["created_by"]))
        _raise_unless_succeeded(_outcome(session, run_id))
        return
    outcome = _run_next_queued(plpy, local, run_id)
    if outcome is None:
        state = session.query("SELECT state, dms._queued_run_ready(run_id) AS ready"
                              " FROM dms.run WHERE run_id = $1::bigint", [run_id])
        if state and state[0]["state"] == "QUEUED" and not state[0]["ready"]:
            raise DmsError(f"run {run_id} {WAITING_SUFFIX}", sqlstate="55006",
                           hint="it starts when that run ends: the dispatcher takes it then")
        raise DmsError(
            f"run {run_id} is not queued"
            + (f" (it is {state[0]['state']})" if state else " (there is no such run)"),
            sqlstate="55000",
            hint="SELECT * FROM dms.run_progress shows the runs and their states",
        )
    _raise_unless_succeeded(outcome)


def _outcome(session: Session, run_id: int) -> RunOutcome:
    row = session.query("SELECT state, coalesce(message, '') AS message FROM dms.run"
                        " WHERE run_id = $1::bigint", [run_id])[0]
    session.commit()
    return RunOutcome(run_id, str(row["state"]), str(row["message"]))


def _run_next_queued(plpy: Any, local: Local, run_id: int | None) -> RunOutcome | None:
    """Claim a queued run of this session's login and coordinate it here."""
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
    return coordinate(local, int(row["run_id"]), int(row["workers_planned"]),
                      login=Login(row["created_by"], row["search_path"]), notify=plpy.notice)


def resume(plpy: Any, run_id: int) -> None:
    """``CALL dms.resume_run(run_id)``: queue the unfinished chunks again and run them.

    Another login's run resumes as that login, in a session of its own."""
    local, login = local_login(plpy)
    session = local.session
    owner = session.query("SELECT created_by FROM dms.run WHERE run_id = $1::bigint", [run_id])
    session.commit()
    if owner and owner[0]["created_by"] != login.user:
        error = _hand_over(plpy, local, "resume", run_id, str(owner[0]["created_by"]))
        outcome = _outcome(session, run_id)
        if error and outcome.state == "SUCCEEDED":
            outcome = RunOutcome(run_id, "FAILED", error)
        _raise_unless_succeeded(outcome)
        return
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
