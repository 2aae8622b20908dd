"""Keep a PostgreSQL backend interruptible while it waits on other connections.

Inside the server the engine runs Python that waits on sockets and pipes
(psycopg connections, a psql process).  The backend only reacts to a cancel,
a ``pg_terminate_backend`` or a ProcSignalBarrier (which ``DROP DATABASE``
anywhere in the cluster waits for) when it reaches CHECK_FOR_INTERRUPTS, and
a backend blocked in libpq or ``os.read`` never does: it would ignore
``pg_terminate_backend`` and hang ``DROP DATABASE`` for as long as it waits
(for instance while its data statement waits on a lock).

So every wait here is cut into slices of ``SLICE`` seconds, and between
slices the *hook* runs: inside a backend, a trivial statement through
``plpy``, whose executor checks for interrupts -- a pending terminate ends
the process there, a cancel or statement timeout raises, and a barrier is
absorbed.  Outside a backend (the CLI, the Python API) there is no hook and
waits are psycopg's own.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections.abc import Callable, Generator
from typing import Any

import psycopg

SLICE = 0.1  # seconds between two interrupt checks of a waiting backend

_hook: Callable[[], None] | None = None


class Interrupted(BaseException):
    """The backend was told to stop (cancel, statement timeout) while it waited.

    A BaseException, so that no ``except Exception`` on the way up mistakes it
    for a failed chunk and carries on: the statement is being cancelled.
    ``error`` is the database's own error, re-raised at the top.
    """

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def install(plpy: Any) -> None:
    """Check for interrupts through ``plpy`` from now on in this process."""
    global _hook
    plan = plpy.prepare("SELECT 1")

    def hook() -> None:
        try:
            plpy.execute(plan)
        except Exception as exc:  # plpy.SPIError: cancel, statement timeout
            raise Interrupted(exc) from None

    _hook = hook


def check() -> None:
    """Raise :class:`Interrupted` if this backend was told to stop (no-op outside one).

    Only the backend's own thread may call plpy: a worker thread (the checks
    run their pairs on threads) waits without the check."""
    if _hook is not None and threading.current_thread() is threading.main_thread():
        _hook()


def active() -> bool:
    return _hook is not None


def _checked(gen: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
    """``gen`` (a psycopg wait generator), with an interrupt check whenever the
    waiting function reports "not ready yet" (every ``SLICE`` seconds)."""
    try:
        state = next(gen)
        while True:
            ready = yield state
            if not ready:
                check()
            state = gen.send(ready)
    except StopIteration as done:
        return done.value


class InterruptibleConnection(psycopg.Connection[Any]):
    """A psycopg connection whose waits let the backend it runs in be interrupted."""

    def wait(self, gen: Any, interval: float = SLICE, timeout: float | None = None) -> Any:
        if _hook is None:
            return super().wait(gen, interval, timeout)
        try:
            return super().wait(_checked(gen), min(interval, SLICE), timeout)
        except Interrupted:
            # Leave nothing running on the other side: cancel its statement,
            # then drop the connection (its transaction rolls back).
            # (Already gone, or not answering: closing is enough.)
            with contextlib.suppress(Exception):
                self.cancel_safe(timeout=2.0)
            self.pgconn.finish()
            raise


def read(fd: int, size: int) -> bytes:
    """``os.read`` that checks for interrupts while nothing arrives."""
    if _hook is None:
        return os.read(fd, size)
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    while not poller.poll(int(SLICE * 1000)):
        check()
    return os.read(fd, size)
