"""A picture of a run: its chunks on a timeline, one lane per worker.

``dms report RUN_ID`` reads the run and its chunks (``dms.run_progress``,
``dms.chunk_progress``) and draws, with matplotlib:

* above, one lane per worker (the backend pid that took the chunk last) and
  one bar per chunk from its last attempt's start to its end, coloured by
  state; a retried chunk is hatched and labelled with its attempts, a failed
  one is red and marked with an x; chunks that never started sit in a lane
  of their own at the run's start, as thin grey ticks;
* below, the rows per second over time (each chunk's rows spread over its
  duration).

Written as PNG and SVG (every bar carries the SVG id ``chunk-<no>``), and,
with ``--html``, one self-contained page with the picture and the run's
summary table.  ``--json`` prints the run and its chunks instead (the shape
is in docs/report.md).  matplotlib is an optional dependency (the ``report``
extra); without it the command says how to install it.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dms_pkg.errors import OBJECT_NOT_IN_PREREQUISITE_STATE, UNDEFINED_OBJECT, DmsError

COLOURS = {"DONE": "#2e7d32", "FAILED": "#c62828", "RUNNING": "#f9a825", "PENDING": "#9e9e9e"}
RATE_BINS = 60
WIDTH_IN, HEIGHT_IN, DPI = 12.0, 6.0, 100

RUN_FIELDS = ("run_id", "label", "state", "path", "strategy", "workers", "chunks_total",
              "chunks_done", "chunks_failed", "rows_done", "estimated_rows", "started_at",
              "ended_at", "message")
CHUNK_FIELDS = ("chunk_no", "state", "kind", "lo", "hi", "estimated_rows", "rows", "bytes",
                "attempts", "worker_pid", "started_at", "ended_at", "sqlstate", "last_error")


@dataclass
class RunData:
    run: dict[str, Any]
    chunks: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {"run": _jsonable(self.run), "chunks": [_jsonable(c) for c in self.chunks]}


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dt.datetime | dt.date):
            out[key] = value.isoformat()
        elif isinstance(value, dt.timedelta):
            out[key] = value.total_seconds()
        elif hasattr(value, "as_integer_ratio") and not isinstance(value, int | float):
            out[key] = float(value)  # Decimal
        else:
            out[key] = value
    return out


def load(conn: Any, run_id: int) -> RunData:
    """The run and its chunks, as the progress views show them."""
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        runs = cur.execute(f"SELECT {', '.join(RUN_FIELDS)} FROM dms.run_progress"
                           " WHERE run_id = %s", [run_id]).fetchall()
        if not runs:
            raise DmsError(f"run {run_id} does not exist", sqlstate=UNDEFINED_OBJECT,
                           hint="dms status lists the latest runs")
        chunks = cur.execute(f"SELECT {', '.join(CHUNK_FIELDS)} FROM dms.chunk_progress"
                             " WHERE run_id = %s ORDER BY chunk_no", [run_id]).fetchall()
    conn.rollback()
    return RunData(dict(runs[0]), [dict(c) for c in chunks])


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise DmsError("the run picture needs matplotlib, which is not installed",
                       sqlstate=OBJECT_NOT_IN_PREREQUISITE_STATE,
                       hint="pip install 'dms_pkg[report]' (scripts/setup.sh installs it into "
                       ".venv), or use --json") from None
    matplotlib.use("Agg")  # no screen: files only
    import matplotlib.pyplot as plt

    return plt


@dataclass(frozen=True)
class Picture:
    png: Path
    svg: Path
    bars: int  # one per chunk
    lanes: int


def _seconds(value: dt.datetime | None, origin: dt.datetime) -> float | None:
    return None if value is None else (value - origin).total_seconds()


def draw(data: RunData, out_dir: Path) -> Picture:
    """The run's timeline as ``run-<id>.png`` and ``run-<id>.svg`` in ``out_dir``."""
    plt = _pyplot()
    run, chunks = data.run, data.chunks
    starts = [c["started_at"] for c in chunks if c["started_at"] is not None]
    origin = min([run["started_at"], *starts] if run["started_at"] else starts,
                 default=dt.datetime.now(dt.UTC))
    now = dt.datetime.now(dt.UTC)
    pids = sorted({c["worker_pid"] for c in chunks if c["started_at"] is not None
                   and c["worker_pid"] is not None},
                  key=lambda p: min(c["started_at"] for c in chunks if c["worker_pid"] == p))
    lanes = {pid: i for i, pid in enumerate(pids)}
    waiting_lane = len(lanes)  # chunks that never started
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI,
                                      gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    bars = 0
    end_of_run = 0.0
    spans: list[tuple[float, float, int]] = []
    for c in chunks:
        start = _seconds(c["started_at"], origin)
        finish = _seconds(c["ended_at"] or (now if c["state"] == "RUNNING" else None), origin)
        if start is None:
            lane, start, width = waiting_lane, 0.0, 0.0
        else:
            lane = lanes.get(c["worker_pid"], waiting_lane)
            width = max((finish if finish is not None else start) - start, 0.0)
            end_of_run = max(end_of_run, start + width)
            if c["rows"]:
                spans.append((start, start + width, int(c["rows"])))
        retried = int(c["attempts"] or 0) > 1
        bar = top.barh(lane, max(width, 1e-3), left=start, height=0.7,
                       color=COLOURS.get(c["state"], "#607d8b"), edgecolor="black",
                       linewidth=0.4, hatch="//" if retried else None)
        bar.patches[0].set_gid(f"chunk-{c['chunk_no']}")
        bars += 1
        if retried:
            top.text(start + width / 2, lane, f"x{c['attempts']}", ha="center", va="center",
                     fontsize=7)
        if c["state"] == "FAILED":
            top.plot([start + width], [lane], marker="x", color="black", markersize=8)
    labels = [f"worker {pid}" for pid in pids]
    if any(c["started_at"] is None for c in chunks):
        labels.append("not started")
    top.set_yticks(range(len(labels)))
    top.set_yticklabels(labels)
    top.invert_yaxis()
    top.set_title(f"run {run['run_id']}: {run.get('label') or ''} -- {run['state']}, "
                  f"{run.get('rows_done') or 0:,} rows, {len(chunks)} chunks, "
                  f"{len(pids)} worker{'s' if len(pids) != 1 else ''}")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour) for colour in COLOURS.values()]
    top.legend(handles, list(COLOURS), loc="upper right", fontsize=8)
    _rate(bottom, spans, end_of_run)
    bottom.set_xlabel("seconds since the run started")
    bottom.set_ylabel("rows/s")
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    png, svg = out_dir / f"run-{run['run_id']}.png", out_dir / f"run-{run['run_id']}.svg"
    fig.savefig(png)
    fig.savefig(svg)
    plt.close(fig)
    return Picture(png, svg, bars, len(pids))


def _rate(axis: Any, spans: Sequence[tuple[float, float, int]], end: float) -> None:
    """Rows per second over time: each chunk's rows spread evenly over its duration."""
    if not spans or end <= 0:
        axis.text(0.5, 0.5, "no rows loaded yet", ha="center", va="center",
                  transform=axis.transAxes)
        return
    width = end / RATE_BINS
    rates = [0.0] * RATE_BINS
    for start, finish, rows in spans:
        duration = max(finish - start, 1e-6)
        for i in range(RATE_BINS):
            lo, hi = i * width, (i + 1) * width
            overlap = min(hi, finish) - max(lo, start)
            if overlap > 0:
                rates[i] += rows * overlap / duration / width
    axis.fill_between([i * width for i in range(RATE_BINS)], rates, step="post",
                      color="#1565c0", alpha=0.6)


def write_html(data: RunData, picture: Picture, path: Path) -> Path:
    """One self-contained page: the picture (inline SVG) and the run's summary."""
    run = data.run
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(run.get(k)))}</td></tr>"
                   for k in RUN_FIELDS)
    failed = [c for c in data.chunks if c["state"] == "FAILED"]
    errors = "".join(f"<li>chunk {c['chunk_no']}: [{html.escape(str(c['sqlstate']))}] "
                     f"{html.escape(str(c['last_error']))}</li>" for c in failed)
    svg = picture.svg.read_text()
    svg = svg[svg.index("<svg"):]  # the inline element, without the XML prolog
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>dms run "
            f"{run['run_id']}</title><style>body{{font-family:sans-serif;margin:2em}}"
            "th{text-align:left;padding-right:1em}</style></head><body>"
            f"<h1>dms run {run['run_id']}</h1>{svg}<h2>Summary</h2><table>{rows}</table>"
            + (f"<h2>Failed chunks</h2><ul>{errors}</ul>" if errors else "")
            + "</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    return path


def report_json(data: RunData) -> str:
    buffer = io.StringIO()
    json.dump(data.as_json(), buffer, indent=2, default=str)
    return buffer.getvalue()
