"""Progress of a Python API run: snapshots, the guide's ProgressTracker and its
logging callback.

A run computes a ``ProgressSnapshot`` from its queue about every half
second and once at the end, and hands it to ``progress_callback``.  A
``ProgressTracker`` is such a callback that keeps the latest snapshot, learns
the run's real chunk count, and passes snapshots on to its own callback at
most every ``update_interval`` seconds (the final one always).
``create_progress_callback(name)`` makes a callback that reports each
snapshot as one line.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from dms_pkg.engine.store import ChunkRecord

LOGGER = logging.getLogger("dms_pkg.progress")


@dataclass(frozen=True)
class ProgressSnapshot:
    """Where a run is: chunks finished, rows loaded, speed and time left."""

    progress_percentage: float  # chunks finished, weighted by their estimated rows
    total_rows_processed: int  # rows of the chunks loaded so far
    chunks_done: int
    chunks_failed: int
    chunks_total: int
    elapsed_time: float  # seconds since the call started
    rows_per_second: float
    estimated_remaining_time: float | None  # seconds; None until something finished

    # The names the user guide's ProgressTracker callbacks read.
    @property
    def total_chunks(self) -> int:
        return self.chunks_total

    @property
    def completed_chunks(self) -> int:
        return self.chunks_done

    @property
    def failed_chunks(self) -> int:
        return self.chunks_failed

    @property
    def chunks_in_progress(self) -> int:
        """Chunks not finished yet (running, waiting to run or to be retried)."""
        return self.chunks_total - self.chunks_done - self.chunks_failed

    @property
    def finished(self) -> bool:
        return self.chunks_in_progress == 0


ProgressCallback = Callable[[ProgressSnapshot], None]


def snapshot_of(chunks: list[ChunkRecord], started: float) -> ProgressSnapshot:
    """The snapshot of a queue, ``started`` being the run's ``time.monotonic()``."""
    done = [c for c in chunks if c.state == "DONE"]
    failed = [c for c in chunks if c.state == "FAILED"]
    weights = [max(c.estimated_rows or 0, 1) for c in chunks]
    finished = sum(max(c.estimated_rows or 0, 1) for c in chunks if c.state in ("DONE", "FAILED"))
    fraction = finished / sum(weights) if weights else 1.0
    elapsed = time.monotonic() - started
    rows = sum(c.rows or 0 for c in done)
    remaining = elapsed * (1 - fraction) / fraction if 0 < fraction < 1 else (
        0.0 if fraction >= 1 else None)
    return ProgressSnapshot(
        # 100.0 only when every chunk finished: a small chunk still running
        # must not round the figure up to "done".
        progress_percentage=(100.0 if len(done) + len(failed) == len(chunks)
                             else min(99.9, round(100 * fraction, 1))),
        total_rows_processed=rows,
        chunks_done=len(done), chunks_failed=len(failed), chunks_total=len(chunks),
        elapsed_time=elapsed, rows_per_second=rows / elapsed if elapsed > 0 else 0.0,
        estimated_remaining_time=remaining,
    )


class ProgressTracker:
    """Follows a run: pass it as ``progress_tracker`` to ``ParallelProcessor`` (or as
    ``progress_callback`` to ``execute_query_parallel``).

    ``total_chunks`` is a first guess; the run sets it to its real chunk
    count with its first snapshot.  ``callback`` gets a snapshot at most every
    ``update_interval`` seconds, and always the last one.  An exception in the
    callback is logged (``dms_pkg.progress``) and does not stop the run.
    """

    def __init__(self, total_chunks: int = 0, callback: ProgressCallback | None = None,
                 update_interval: float = 1.0) -> None:
        self.total_chunks = total_chunks
        self.callback = callback
        self.update_interval = update_interval
        self._latest: ProgressSnapshot | None = None
        self._last_call: float | None = None
        self._lock = threading.Lock()

    def __call__(self, snapshot: ProgressSnapshot) -> None:
        self.update(snapshot)

    def update(self, snapshot: ProgressSnapshot) -> None:
        """Take the run's latest snapshot (called by the run)."""
        now = time.monotonic()
        with self._lock:
            self._latest = snapshot
            self.total_chunks = snapshot.chunks_total
            due = (snapshot.finished or self._last_call is None
                   or now - self._last_call >= self.update_interval)
            if due:
                self._last_call = now
        if due and self.callback is not None:
            try:
                self.callback(snapshot)
            except Exception:
                LOGGER.warning("progress callback %r failed", self.callback, exc_info=True)

    def get_snapshot(self) -> ProgressSnapshot | None:
        """The latest snapshot, or None before the run started."""
        with self._lock:
            return self._latest


def progress_line(name: str, snapshot: ProgressSnapshot) -> str:
    """``name: 45.0% (9/20 chunks, 900,000 rows, 410,000 rows/s, 2.2 s elapsed, ETA 3 s)``."""
    parts = [f"{snapshot.chunks_done}/{snapshot.chunks_total} chunks"]
    if snapshot.chunks_failed:
        parts.append(f"{snapshot.chunks_failed} failed")
    parts += [f"{snapshot.total_rows_processed:,} rows",
              f"{snapshot.rows_per_second:,.0f} rows/s",
              f"{snapshot.elapsed_time:.1f} s elapsed"]
    if snapshot.estimated_remaining_time is not None and not snapshot.finished:
        parts.append(f"ETA {snapshot.estimated_remaining_time:,.0f} s")
    return f"{name}: {snapshot.progress_percentage:.1f}% ({', '.join(parts)})"


def create_progress_callback(job_name: str = "Parallel Processing",
                             logger: logging.Logger | None = None) -> ProgressCallback:
    """A callback that reports each snapshot as one line naming ``job_name``.

    The line goes to ``logger`` (default ``dms_pkg.progress``) at INFO when
    that logger shows INFO messages, and is printed otherwise: with logging
    not set up, progress must still be seen.
    """
    log = logger or LOGGER

    def callback(snapshot: ProgressSnapshot) -> None:
        line = progress_line(job_name, snapshot)
        if log.isEnabledFor(logging.INFO) and log.hasHandlers():
            log.info(line)
        else:
            print(line, flush=True)

    return callback
