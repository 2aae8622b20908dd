"""``dms worker``: work on a run from outside the server, on any host.

A queued run (from ``submit_query_parallel``) is started: this process
becomes its coordinator, and the run's worker sessions are opened on the
server as usual.  A running run is joined: this process claims chunks like
any other worker until none is left, and the run's own coordinator finishes
it.  Either way the run's state lives in the database, not here.
"""

from __future__ import annotations

from dataclasses import dataclass

from dms_pkg.backends.endpoint import Endpoint
from dms_pkg.db.psycopg_db import PsycopgDatabase
from dms_pkg.db.sources import PsycopgSource
from dms_pkg.engine.coordinator import coordinate, work
from dms_pkg.engine.local import Local
from dms_pkg.errors import UNDEFINED_OBJECT, DmsError
from dms_pkg.install.installer import connect
from dms_pkg.security import OPERATOR, require_role


@dataclass(frozen=True)
class WorkerOutcome:
    run_id: int
    action: str  # started | joined | nothing
    state: str
    message: str


def run_external_worker(dsn: str, run_id: int, *, notify: object = None) -> WorkerOutcome:
    with connect(dsn) as conn:
        session = PsycopgDatabase(conn)
        require_role(session, OPERATOR)
        rows = session.query("SELECT state FROM dms.run WHERE run_id = $1::bigint", [run_id])
        session.commit()
        if not rows:
            raise DmsError(f"run {run_id} does not exist", sqlstate=UNDEFINED_OBJECT,
                           hint="dms status lists the runs")
        # This process's own login reaches the database again for data
        # sessions: its DSN, and its password if it gave one (kept in memory).
        here = Endpoint(None, "this database", "POSTGRESQL", conn.info.dsn,
                                    password=conn.info.password)
        local = Local(session, PsycopgSource(conn), here)
        state = rows[0]["state"]
        if state == "QUEUED":
            claimed = session.query(
                "SELECT run_id, workers_planned FROM dms.claim_queued_run($1::bigint)", [run_id])
            session.commit()
            if claimed:
                outcome = coordinate(local, run_id, int(claimed[0]["workers_planned"]),
                                     login=None, notify=notify if callable(notify) else None)
                return WorkerOutcome(run_id, "started", outcome.state, outcome.message)
            state = "RUNNING"  # another dispatcher took it a moment ago: join it
        if state in ("RUNNING",):
            work(local, run_id, None)
            final = session.query(
                "SELECT state, coalesce(message, '') AS message FROM dms.run"
                " WHERE run_id = $1::bigint", [run_id])[0]
            session.commit()
            return WorkerOutcome(run_id, "joined", final["state"], final["message"])
        return WorkerOutcome(run_id, "nothing", state, f"run {run_id} is {state}: nothing to do")
