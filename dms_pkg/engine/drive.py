"""The one loop that sees a run's chunks through, whoever its workers are.

The coordinator (``CALL dms.execute_query_parallel``, ``dms run``,
``resume_run``, the dispatcher) and the Python API drive a run the same way;
only the store (``SqlStore`` on ``dms.chunk``, ``LocalStore`` in SQLite) and
the crew (dblink sessions running ``CALL dms.work``, or threads of this
process) differ:

1. every poll, chunks of workers that are gone go back to the queue;
2. while chunks wait and workers are missing, more are started -- up to
   ``RESTARTS_PER_WORKER`` replacements per planned worker, past which the
   run ends with those chunks pending, for a resume;
3. a point in time that holds only while the readers start (MariaDB's read
   lock) is let go once every worker has its reader open, no chunk waits any
   more, or ``READERS_OPEN_TIMEOUT`` has passed;
4. the loop ends when no chunk is pending or running -- or, with nothing
   running and no worker left, when the run was stopped or the workers keep
   dying.
"""

from __future__ import annotations

import time
from typing import Protocol

from dms_pkg.backends.base import ConsistentPoint
from dms_pkg.engine.store import QueueCounts, RunQueue

POLL_INTERVAL = 0.1  # each poll is 3 small queries
# Once every chunk has been claimed the run ends with its last chunk: polls
# come faster then, so the end is seen within 20 ms, for at most one chunk's time.
TAIL_POLL_INTERVAL = 0.02
RESTARTS_PER_WORKER = 3
READERS_OPEN_TIMEOUT = 60.0


class Crew(Protocol):
    """How a run's workers are started and watched."""

    # One worker runs in the driving session itself (the coordinator's own
    # backend) rather than beside it.
    inline: bool

    def start(self, count: int) -> None: ...

    def run_inline(self) -> None:
        """Be the run's one worker, here, until no chunk is left to claim."""
        ...

    def poll(self, errors: list[str]) -> int:
        """How many workers still run; errors of the ones that ended are added."""
        ...

    def stop(self, cancel: bool) -> None:
        """Close the workers still running: the loop ended (they are about to
        end by themselves) or failed (``cancel``: do not wait for them)."""
        ...


class Progress(Protocol):
    def report(self, force: bool = False) -> None: ...


def drive(queue: RunQueue, crew: Crew, run_id: int, workers: int, progress: Progress,
          errors: list[str], point: ConsistentPoint | None = None) -> None:
    """Keep ``workers`` workers on ``run_id`` until no chunk is pending or running."""
    budget = RESTARTS_PER_WORKER * workers  # replacements, beyond the first start
    first = True
    opening = time.monotonic()
    if point is not None and workers <= 1:
        point.started()  # one reader: its own transaction is the run's moment
    ended = False
    try:
        while True:
            if queue.reap(run_id):
                progress.report(force=True)
            counts = queue.counts(run_id)
            alive = crew.poll(errors)
            if point is not None and point.on_started is not None and _readers_open(
                    queue, run_id, workers, counts, time.monotonic() - opening):
                point.started()
            wanted = max(workers, 1) - alive
            if counts.state == "RUNNING" and counts.pending and wanted > 0:
                n = wanted if first else min(wanted, budget)
                budget -= 0 if first else n
                first = False
                if n > 0 and workers <= 1 and crew.inline:
                    crew.run_inline()
                    continue  # this session was the worker: look again
                if n > 0:
                    crew.start(n)
                    alive += n
            if not counts.pending and not counts.running:
                break
            if not alive and not counts.running and (
                    counts.state != "RUNNING" or budget <= 0):
                break  # stopped, or workers keep dying: what is left waits for a resume
            progress.report()
            time.sleep(POLL_INTERVAL if counts.pending else TAIL_POLL_INTERVAL)
        ended = True
    finally:
        crew.stop(cancel=not ended)


def _readers_open(queue: RunQueue, run_id: int, workers: int, counts: QueueCounts,
                  waited: float) -> bool:
    if not counts.pending or waited >= READERS_OPEN_TIMEOUT:
        return True
    return queue.readers_open(run_id) >= workers
