"""The worker loop: claim a chunk, move it, record it, repeat (DESIGN §3).

The same loop runs in every kind of worker: a backend running
``CALL dms.work(run_id)`` (started by the coordinator over dblink), a
``dms worker`` process on any host, or a thread of the Python API.  Only
the store and the connections differ.

A failure is classified by SQLSTATE (``retry``): a transient one puts the
chunk back with a backoff delay, unless its retries are used up; any other
fails the chunk at once with the database's SQLSTATE and message.  A server
that cannot be reached (``retry.is_outage``: a restart) is waited for: the
worker pauses for the backoff itself, and retries past ``max_retries`` for up
to ``retry.OUTAGE_WAIT`` seconds.  A worker never stops the run because one
chunk failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from dms_pkg.backends import postgres
from dms_pkg.backends.base import ChunkReader, backend_for, registered
from dms_pkg.backends.endpoint import Endpoint
from dms_pkg.backends.postgres_psql import SourceError
from dms_pkg.db.base import Session
from dms_pkg.db.interrupts import Interrupted
from dms_pkg.engine import retry
from dms_pkg.engine.columns import error_report
from dms_pkg.engine.movers import (
    ConnectionSource,
    Moved,
    Mover,
    RunSpec,
    SnapshotGone,
    Transform,
)
from dms_pkg.engine.store import ChunkTask, RunStore
from dms_pkg.errors import DmsError

# How long an idle worker waits for a chunk in backoff before looking again.
MAX_IDLE_SLEEP = 1.0


@dataclass
class RetryPolicy:
    enabled: bool = True
    max_retries: int = 3
    initial_delay: float = 0.5
    max_delay: float = 30.0

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RetryPolicy:
        def get(name: str, default: Any) -> Any:
            value = config.get(name, default)
            return value["value"] if isinstance(value, dict) else value

        return cls(
            enabled=bool(get("enable_retry", True)),
            max_retries=int(get("max_retries", 3)),
            initial_delay=float(get("retry_initial_delay", 0.5)),
            max_delay=float(get("retry_max_delay", 30.0)),
        )

    def retry_in(
        self, sqlstate: str | None, attempts: int, *, database_error: bool,
        transient: bool | None = None, outage_for: float | None = None,
    ) -> float | None:
        """Seconds until the chunk may run again, or None: fail it now.

        ``transient`` is the source backend's own verdict where it has one;
        otherwise the SQLSTATE's class decides.  ``outage_for`` is how long the
        worker has been unable to reach the server (``retry.is_outage``
        failures in a row): a restart is waited out for ``retry.OUTAGE_WAIT``
        seconds even past ``max_retries``, which counts tries of the chunk, not
        seconds of a server's downtime."""
        worth = retry.is_transient(sqlstate) if transient is None else transient
        if not (self.enabled and database_error and worth):
            return None
        if attempts > self.max_retries and not self.waits_out(outage_for):
            return None
        return retry.backoff(attempts, self.initial_delay, self.max_delay)

    def waits_out(self, outage_for: float | None) -> bool:
        """Whether an outage that has lasted ``outage_for`` seconds is still
        waited for (retries on: ``enable_retry`` and ``max_retries`` > 0)."""
        return (outage_for is not None and self.enabled and self.max_retries > 0
                and outage_for < retry.OUTAGE_WAIT)


@dataclass
class WorkerReport:
    chunks_done: int = 0
    chunks_failed: int = 0
    chunks_retried: int = 0
    rows: int = 0
    stopped_by: str | None = None


@dataclass(frozen=True)
class Login:
    """Who the engine works for, and where unqualified names resolve.

    ``user`` is the login that started the run; loopback connections log in
    as it (the conninfo says so, see ``dms.loopback_conninfo``).  Nothing
    ever switches a session to it afterwards: a session authenticated as
    someone else could be switched back by the SQL it runs.
    """

    user: str | None
    search_path: str | None


def open_connection(
    info: Endpoint, login: Login | None = None, application_name: str | None = None
) -> psycopg.Connection[Any]:
    """Connect; a loopback to this database takes the caller's search_path.

    ``application_name`` names the connection in pg_stat_activity, which is
    how a stop finds and cancels a run's statements.
    """
    extra = {"application_name": application_name} if application_name else {}
    conn = postgres.open_connection(info, **extra)
    if login is not None and login.search_path:
        conn.execute("SELECT pg_catalog.set_config('search_path', %s, false)",
                     [login.search_path])
        conn.commit()
    return conn


class Connections:
    """Opens (and reopens after a broken connection) what a mover needs: target
    connections (PostgreSQL) and one reader of the source, from its backend.

    The source and the target get a connection each, even in one database:
    a chunk reads on one while it writes on the other.
    """

    def __init__(
        self,
        resolve: Callable[[int | None], Endpoint],
        login: Login | None,
        application_name: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.resolve = resolve
        self.login = login
        self.application_name = application_name
        self.options = dict(options or {})
        self._open: dict[tuple[int | None, str], psycopg.Connection[Any]] = {}
        self._readers: dict[int | None, ChunkReader] = {}

    def get(self, conid: int | None, role: str = "target") -> psycopg.Connection[Any]:
        conn = self._open.get((conid, role))
        if conn is None or conn.closed or conn.broken:
            info = self.resolve(conid)
            conn = open_connection(info, self.login if info.is_local else None,
                                   self.application_name)
            self._open[(conid, role)] = conn
        return conn

    def reader(self, conid: int | None) -> ChunkReader:
        reader = self._readers.get(conid)
        if reader is None or not reader.usable():
            if reader is not None:
                reader.close()
            info = self.resolve(conid)
            login = self.login if info.is_local else None
            reader = backend_for(info.dbtyp).reader(
                info, application_name=self.application_name,
                search_path=login.search_path if login else None, options=self.options)
            self._readers[conid] = reader
        return reader

    def close(self) -> None:
        for conn in self._open.values():
            conn.close()
        self._open.clear()
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()


def build_mover(
    spec: RunSpec,
    conns: ConnectionSource,
    store: RunStore,
    *,
    transform: Transform | None = None,
    batch_size: int = 10_000,
    collect: Callable[[int, list[dict[str, Any]]], None] | None = None,
) -> Mover:
    return Mover(spec, conns, on_start=store.started, on_rejects=store.rejected,
                 transform=transform, batch_size=batch_size, collect=collect)


class LazyMover:
    """Builds the mover on first use and again after a connection broke."""

    def __init__(self, factory: Callable[[], Mover]) -> None:
        self.factory = factory
        self._mover: Mover | None = None

    def move(self, task: ChunkTask) -> Moved:
        if self._mover is None:
            self._mover = self.factory()
        return self._mover.move(task)

    def recover(self, broken: bool) -> None:
        if self._mover is not None:
            try:
                self._mover.recover()
            except Exception:  # a dead connection cannot roll back: start afresh
                broken = True
        if broken:
            self._mover = None


def run_worker(
    run_id: int,
    store: RunStore,
    mover: LazyMover,
    policy: RetryPolicy,
    *,
    home: Session | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_chunk: Callable[[], None] = lambda: None,
) -> WorkerReport:
    """Claim and move chunks of ``run_id`` until none is left to claim.

    While a server cannot be reached (``retry.is_outage``) the worker waits out
    its chunk's backoff before it claims again, for up to ``retry.OUTAGE_WAIT``
    seconds: taking the next chunk at once would only fail it the same way,
    spending every chunk's retries on one outage (a MariaDB restart failed a
    whole run in two seconds that way)."""
    report = WorkerReport()
    outage_since: float | None = None  # when this worker's run of outage failures began
    paused_until = 0.0
    while not should_stop():
        pause = paused_until - time.monotonic()
        if pause > 0:
            time.sleep(min(pause, MAX_IDLE_SLEEP))  # a stop is still seen within a second
            continue
        task = store.claim(run_id)
        if task is None:
            wait = store.wait_hint(run_id)
            if wait is None:
                break
            time.sleep(min(max(wait, 0.05), MAX_IDLE_SLEEP))
            continue
        try:
            moved = mover.move(task)
            store.finish(run_id, task.chunk_no, moved.rows, moved.nbytes, moved.stats)
        except SnapshotGone as exc:
            # The run's snapshot ended with its coordinator: reading on would
            # break the run's consistency.  Put the chunk back untouched and
            # stop; resume_run takes a new snapshot.
            if home is not None:
                home.rollback()
            mover.recover(False)
            store.fail(run_id, task.chunk_no, "22023", f"snapshot gone: {exc}", 0.0)
            report.stopped_by = f"snapshot gone: {exc}"
            break
        except Interrupted:
            # This worker's own statement is being cancelled: the chunk goes
            # back to the queue untouched (its connections were dropped, so
            # nothing of it committed), and the worker stops.
            mover.recover(True)
            store.fail(run_id, task.chunk_no, "57014",
                       "the worker was cancelled while moving the chunk", 0.0)
            raise
        except Exception as exc:  # every failure is recorded on its chunk
            sqlstate, message, database_error, broken, transient = _classify(exc)
            if home is not None:
                home.rollback()
            mover.recover(broken)
            now = time.monotonic()
            outage_for: float | None = None
            if database_error and retry.is_outage(sqlstate):
                outage_since = now if outage_since is None else outage_since
                outage_for = now - outage_since
            else:
                outage_since = None
            retry_in = policy.retry_in(sqlstate, task.attempts, database_error=database_error,
                                       transient=transient, outage_for=outage_for)
            state = store.fail(run_id, task.chunk_no, sqlstate, message, retry_in)
            if state == "FAILED":
                report.chunks_failed += 1
            else:
                report.chunks_retried += 1
                if retry_in is not None and policy.waits_out(outage_for):
                    # The server is down: the next chunk would fail the same way.
                    # (Past OUTAGE_WAIT no pause: the chunks fail as fast as their
                    # retries allow, and the run ends for a resume.)
                    paused_until = now + retry_in
        else:
            outage_since = None
            report.chunks_done += 1
            report.rows += moved.rows
        on_chunk()
    return report


def _classify(exc: BaseException) -> tuple[str | None, str, bool, bool, bool | None]:
    """(sqlstate, message, is a database error, the connection is gone, transient:
    the source's own verdict or None)."""
    transient = getattr(exc, "transient", None)  # a source backend's error may know
    verdict = transient if isinstance(transient, bool) else None
    if isinstance(exc, DmsError):
        return exc.sqlstate, exc.message, exc.sqlstate.startswith("08"), False, verdict
    if isinstance(exc, SourceError):  # psql reading the source: no SQLSTATE = no connection
        return exc.sqlstate, str(exc), True, False, None
    if isinstance(exc, psycopg.Error):
        sqlstate, message = error_report(exc)
        broken = isinstance(exc, psycopg.OperationalError) and sqlstate is None
        if broken:
            message = f"connection lost: {str(exc).strip() or type(exc).__name__}"
        return sqlstate, message, True, broken, None
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate is not None:  # plpy.SPIError: an error raised by the local database
        return sqlstate, error_report(exc)[1], True, False, None
    for backend in registered().values():  # another source database's own error
        fault = backend.classify(exc)
        if fault is not None:
            lost = (fault.sqlstate or "").startswith("08")
            return (fault.sqlstate, fault.one_line(with_sqlstate=False), True, lost,
                    fault.transient)
    return None, f"internal error: {type(exc).__name__}: {exc}", False, False, None
