"""``dms watch`` and ``dms status``: runs as people want to see them.

Everything is read from ``dms.run_progress`` -- the same view any SQL
session can query -- so the terminal shows exactly what the database knows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.rows import dict_row
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dms_pkg.errors import UNDEFINED_OBJECT, DmsError

FINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "PARTIAL", "STOPPED"})
_PROGRESS_SQL = (
    "SELECT run_id, label, state, path, workers, chunks_total, chunks_done, chunks_failed,"
    " chunks_running, rows_done, estimated_rows, percent, rows_per_sec,"
    " extract(epoch FROM eta)::float8 AS eta_s, extract(epoch FROM elapsed)::float8 AS elapsed_s,"
    " message, parallel_note, refused_reason, notes FROM dms.run_progress WHERE run_id = %s"
)


def fetch_progress(conn: psycopg.Connection[Any], run_id: int) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_PROGRESS_SQL, [run_id]).fetchone()
    conn.commit()
    if row is None:
        raise DmsError(f"run {run_id} does not exist", sqlstate=UNDEFINED_OBJECT,
                       hint="dms status lists the runs")
    return row


def _detail(row: dict[str, Any]) -> str:
    rate = f"{int(row['rows_per_sec'] or 0):,} rows/s"
    eta = f"ETA {row['eta_s']:.0f}s" if row["eta_s"] is not None else "ETA -"
    failed = f", [red]{row['chunks_failed']} failed[/]" if row["chunks_failed"] else ""
    return (f"{row['chunks_done']}/{row['chunks_total']} chunks{failed}, "
            f"{int(row['rows_done']):,} rows, {rate}, {eta}")


def watch(conn: psycopg.Connection[Any], run_id: int, *, interval: float = 0.5,
          console: Console | None = None,
          going: Callable[[], bool] = lambda: True) -> dict[str, Any]:
    """Show a progress bar until the run reaches a final state, or until ``going()``
    says whoever carries it out has given up; return its last row."""
    console = console or Console()
    row = fetch_progress(conn, run_id)
    for note in row["notes"] or ():
        console.print(f"run {run_id}: note: {note}", markup=False, highlight=False)
    bar = Progress(
        TextColumn("[bold]run {task.fields[run_id]}[/] {task.fields[state]}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    # The task gets the run's progress before the display starts: the first
    # frame of a finished run must not say 0.0%.
    task = bar.add_task("run", total=100.0, run_id=run_id, state=row["state"],
                        detail=_detail(row))
    bar.update(task, completed=float(row["percent"] or 0))
    with bar:
        while True:
            bar.update(task, completed=float(row["percent"] or 0), state=row["state"],
                       detail=_detail(row))
            if row["state"] in FINAL_STATES:
                break
            if not going():  # one last look, then stop waiting for a run nobody runs
                row = fetch_progress(conn, run_id)
                bar.update(task, completed=float(row["percent"] or 0), state=row["state"],
                           detail=_detail(row))
                break
            time.sleep(interval)
            row = fetch_progress(conn, run_id)
    if row["message"]:
        console.print(f"run {run_id} {row['state']}: {row['message']}")
    return row


def watch_json(conn: psycopg.Connection[Any], run_id: int, emit: Callable[[str], None], *,
               interval: float = 0.5, going: Callable[[], bool] = lambda: True
               ) -> dict[str, Any]:
    """``watch`` for programs: a JSON line (docs/json.md, kind "progress") each
    time the run's progress changes; returns the last row, not yet emitted."""
    from dms_pkg import cli_json

    row = fetch_progress(conn, run_id)
    seen: tuple[Any, ...] | None = None
    while row["state"] not in FINAL_STATES and going():
        now = (row["state"], row["chunks_done"], row["chunks_failed"], row["rows_done"])
        if now != seen:
            emit(cli_json.dumps("progress", cli_json.progress(row, final=False), indent=None))
            seen = now
        time.sleep(interval)
        row = fetch_progress(conn, run_id)
    return row


def status_rows(conn: psycopg.Connection[Any], limit: int = 20) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT run_id, label, state, path, workers, percent, rows_done, rows_per_sec,"
            " date_trunc('second', elapsed) AS elapsed,"
            " extract(epoch FROM elapsed)::float8 AS elapsed_s, started_at, message"
            " FROM dms.run_progress ORDER BY run_id DESC LIMIT %s",
            [limit],
        ).fetchall()
    conn.commit()
    return rows


def status_table(conn: psycopg.Connection[Any], limit: int = 20) -> Table:
    rows = status_rows(conn, limit)
    table = Table("run", "what", "state", "path", "workers", "%", "rows", "rows/s", "elapsed",
                  "message")
    for r in rows:
        table.add_row(
            str(r["run_id"]), r["label"], r["state"], r["path"], str(r["workers"]),
            f"{r['percent']}", f"{int(r['rows_done']):,}",
            f"{int(r['rows_per_sec'] or 0):,}",
            "" if r["elapsed"] is None else str(r["elapsed"]),
            (r["message"] or "")[:80],
        )
    return table
