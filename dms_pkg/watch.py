"""``dms watch`` and ``dms status``: runs as people want to see them.

Everything is read from ``dms.run_progress`` -- the same view any SQL
session can query -- so the terminal shows exactly what the database knows.
"""

from __future__ import annotations

import time
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
    " message, parallel_note, refused_reason FROM dms.run_progress WHERE run_id = %s"
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
          console: Console | None = None) -> dict[str, Any]:
    """Show a progress bar until the run reaches a final state; return its last row."""
    console = console or Console()
    row = fetch_progress(conn, run_id)
    with Progress(
        TextColumn("[bold]run {task.fields[run_id]}[/] {task.fields[state]}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("run", total=100.0, run_id=run_id, state=row["state"],
                            detail=_detail(row))
        while True:
            bar.update(task, completed=float(row["percent"] or 0), state=row["state"],
                       detail=_detail(row))
            if row["state"] in FINAL_STATES:
                break
            time.sleep(interval)
            row = fetch_progress(conn, run_id)
    if row["message"]:
        console.print(f"run {run_id} {row['state']}: {row['message']}")
    return row


def status_table(conn: psycopg.Connection[Any], limit: int = 20) -> Table:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT run_id, label, state, path, workers, percent, rows_done, rows_per_sec,"
            " date_trunc('second', elapsed) AS elapsed, started_at, message"
            " FROM dms.run_progress ORDER BY run_id DESC LIMIT %s",
            [limit],
        ).fetchall()
    conn.commit()
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
