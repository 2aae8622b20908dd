"""The coordinator: fan a recorded run out to worker sessions and see it finish.

It runs in the session that called ``CALL dms.execute_query_parallel(...)``
(or in a dispatcher).  With one worker it simply runs the worker loop
itself; with more it starts that many dblink sessions running
``CALL dms.work(run_id)`` on this database, polls them, reports progress as
NOTICEs, and when all have ended sets the run's final state from its chunks.
Every step commits, so the run is visible -- and resumable -- from anywhere.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dms_pkg.db.base import Session
from dms_pkg.engine.local import Local
from dms_pkg.engine.movers import RunSpec
from dms_pkg.engine.store import SqlStore
from dms_pkg.engine.worker import (
    Connections,
    LazyMover,
    Login,
    RetryPolicy,
    build_mover,
    run_worker,
)
from dms_pkg.errors import UNDEFINED_OBJECT, DmsError

POLL_INTERVAL = 0.2
PROGRESS_INTERVAL = 5.0


@dataclass
class RunOutcome:
    run_id: int
    state: str
    message: str
    worker_errors: list[str] = field(default_factory=list)


def load_spec(home: Session, run_id: int) -> tuple[RunSpec, dict[str, Any]]:
    rows = home.query(
        "SELECT spec::text AS spec, config::text AS config, search_path"
        " FROM dms.run WHERE run_id = $1",
        [run_id],
    )
    if not rows:
        raise DmsError(f"run {run_id} does not exist", sqlstate=UNDEFINED_OBJECT,
                       hint="SELECT * FROM dms.run_progress lists the runs")
    row = rows[0]
    return (RunSpec.from_json(run_id, json.loads(row["spec"]), row["search_path"]),
            json.loads(row["config"]))


def work(local: Local, run_id: int, login: Login | None, on_chunk: Callable[[], None] = lambda: None
         ) -> None:
    """One worker's whole life: ``CALL dms.work(run_id)`` and ``dms worker``."""
    from dms_pkg.engine import connections

    home = local.session
    spec, config = load_spec(home, run_id)
    if spec.search_path:
        # Resolve the source query's names as the caller who planned it did.
        home.query("SELECT pg_catalog.set_config('search_path', $1::text, false)",
                   [spec.search_path])
    home.commit()

    def resolve(conid: int | None) -> connections.ConnInfo:
        return connections.resolve(home, conid, local.conninfo.conninfo, "source or target")

    conns = Connections(resolve, login)
    try:
        mover = LazyMover(lambda: build_mover(spec, home, conns))
        run_worker(run_id, SqlStore(home), mover, RetryPolicy.from_config(config), home=home,
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
) -> RunOutcome:
    """Run the chunks of ``run_id`` with ``workers`` sessions and finish the run."""
    home = local.session
    last_report = [time.monotonic()]

    def report(force: bool = False) -> None:
        if notify is None:
            return
        now = time.monotonic()
        if force or now - last_report[0] >= PROGRESS_INTERVAL:
            last_report[0] = now
            line = progress_line(home, run_id)
            home.commit()
            if line:
                notify(line)

    errors: list[str] = []
    try:
        _run_workers(local, run_id, workers, login, report, errors)
    except Exception as exc:
        # Leave no run "RUNNING" behind a coordinator that gave up; the
        # chunks keep their state, so the run can be resumed.
        home.rollback()
        home.query(
            "SELECT dms.set_run_state($1::bigint, 'FAILED', $2::text)",
            [run_id, f"the coordinator stopped: {type(exc).__name__}: {exc}"],
        )
        home.commit()
        raise
    state = str(home.query("SELECT dms.finish_run($1::bigint) AS state", [run_id])[0]["state"])
    if errors and state != "SUCCEEDED":
        home.query(
            "SELECT dms.set_run_state($1::bigint, $2::text,"
            " (SELECT message FROM dms.run WHERE run_id = $1::bigint)"
            " || '; a worker ended with an error: ' || $3::text)",
            [run_id, state, errors[0]],
        )
    message = str(home.query("SELECT message FROM dms.run WHERE run_id = $1", [run_id])[0][
        "message"])
    home.commit()
    report(force=True)
    return RunOutcome(run_id, state, message, errors)


def _run_workers(local: Local, run_id: int, workers: int, login: Login | None,
                 report: Callable[[], None], errors: list[str]) -> None:
    home = local.session
    if workers <= 1:
        work(local, run_id, login, on_chunk=report)
        return
    names: list[str] = home.query(
        "SELECT dms.start_workers($1::bigint, $2::int) AS names", [run_id, workers]
    )[0]["names"]
    home.commit()
    finished: set[str] = set()
    try:
        while len(finished) < len(names):
            time.sleep(POLL_INTERVAL)
            pending = [n for n in names if n not in finished]
            for row in home.query(
                "SELECT name, busy, error FROM dms.poll_workers($1::text[])", [pending]
            ):
                if not row["busy"]:
                    finished.add(row["name"])
                    if row["error"]:
                        errors.append(row["error"])
            home.commit()
            report()
    finally:
        home.query("SELECT dms.stop_workers($1::text[], $2::boolean)",
                   [names, len(finished) < len(names)])
        home.commit()


def progress_line(home: Session, run_id: int) -> str | None:
    rows = home.query(
        "SELECT state, percent, chunks_done, chunks_failed, chunks_total, rows_done,"
        " rows_per_sec, extract(epoch FROM eta)::float8 AS eta_s"
        " FROM dms.run_progress WHERE run_id = $1",
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
