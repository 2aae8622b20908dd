"""Stopping a run: ``CALL dms.stop_run`` and the mapper's ``stop_running_job``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from dms_pkg.backends.base import backend_for
from dms_pkg.engine import connections
from dms_pkg.engine.local import Local


def stop_run(local: Local, run_id: int, notify: Callable[[str], None],
             timeout: float = 60.0) -> str:
    """Stop handing out chunks, cancel running statements (their chunks go back
    to the queue), wait until the run stops; returns its state."""
    session = local.session
    rows = session.query(
        "SELECT chunk_no, source_pid, target_pid, state FROM dms.request_stop($1::bigint)",
        [run_id])
    session.commit()
    state = rows[0]["state"] if rows else None
    if state != "STOPPING":
        notify(f"run {run_id} is {str(state).lower()}: nothing to stop")
        return str(state)
    cancelled = _cancel_statements(local, run_id, rows)
    notify(f"run {run_id}: stopping; cancelled {cancelled} running statement"
           f"{'s' if cancelled != 1 else ''}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = session.query(
            "SELECT r.state, EXISTS (SELECT FROM pg_catalog.pg_stat_activity a"
            " WHERE a.pid = r.coordinator_pid) AS coordinated FROM dms.run r"
            " WHERE r.run_id = $1::bigint", [run_id])[0]
        session.commit()
        if row["state"] != "STOPPING":
            notify(f"run {run_id} is {row['state']}")
            return str(row["state"])
        if not row["coordinated"]:
            # Nobody coordinates the run (it crashed): wait for its last
            # workers, then close it here.
            busy = session.query(
                "SELECT count(*) AS n FROM dms.chunk c WHERE c.run_id = $1::bigint"
                " AND c.state = 'RUNNING' AND dms._worker_alive(c.worker_pid, c.started_at)"
                # this session is not moving a chunk while it stops the run
                " AND c.worker_pid <> pg_catalog.pg_backend_pid()",
                [run_id])[0]["n"]
            if not busy:
                session.query("SELECT dms.reap_chunks($1::bigint)", [run_id])
                state = session.query("SELECT dms.finish_run($1::bigint) AS s",
                                      [run_id])[0]["s"]
                session.commit()
                notify(f"run {run_id} is {state}")
                return str(state)
        time.sleep(0.2)
    notify(f"run {run_id} is still stopping after {timeout:.0f} s; its workers stop "
           "after their current statement")
    return "STOPPING"


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
        handles = [c[column] for c in chunks if c[column]]
        if conid is None or not handles:
            continue  # this server: cancelled above
        info = connections.resolve(session, conid, local.conninfo.conninfo, "stop")
        # A backend pid on a PostgreSQL server, a thread id on MariaDB, ...
        backend = backend_for(info.dbtyp)
        cancelled += sum(int(backend.cancel(info, int(handle))) for handle in handles)
    return cancelled
