"""What the runtime needs from a source database: one small protocol, one class per DBMS.

The runtime (planning, the chunk queue, workers, loaders) knows no source
database.  Everything that differs between PostgreSQL, MariaDB/MySQL, SQLite
and Oracle sits behind :class:`SourceBackend`, a class per database
registered by the DMS_DBCONDTLS.DBTYP values it serves -- the way sqlglot
adds a dialect: class attributes and overridable methods, never ``if dbtyp
== ...`` at a call site.  Adding a database is a backend module; nothing in
the runtime, the loaders or the queue changes.

A backend provides:

* **connecting**: an :class:`~dms_pkg.backends.endpoint.Endpoint` from a
  connection row (secrets only from PWDSRC, looked up when connecting) or a
  URL, and redaction of its own connection-string forms;
* **planning** (``planning``): a session on the source for the chunk
  planner (its ``SourceConnection``), the columns a query returns with their
  PostgreSQL types, the row estimate, and notes the run should carry;
* **reading** (``reader``): a :class:`ChunkReader` per worker that yields a
  chunk's rows as PostgreSQL COPY bytes -- the target side only writes them
  into ``COPY ... FROM STDIN`` -- or, for a transformation, as row batches;
* **consistency** (``consistent_point``): one moment every reader of a run
  reads as of (an exported snapshot, an SCN, a read lock while readers start
  their transactions);
* **errors** (``classify``): the database's error as a Fault with a
  PostgreSQL SQLSTATE of the right class, so the runtime's retry rules
  (``engine.retry``, by SQLSTATE class) apply unchanged;
* **cancel**: stop a reader's running statement from another session.

The target of every load is PostgreSQL; only sources have backends.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from dms_pkg.backends.endpoint import Endpoint, LoginGuard
from dms_pkg.db.binds import ParamStyle
from dms_pkg.db.faults import Fault
from dms_pkg.db.sources import SourceConnection
from dms_pkg.engine.columns import SourceColumn
from dms_pkg.errors import FEATURE_NOT_SUPPORTED, DmsError

if TYPE_CHECKING:  # the parser is for planning: a worker never loads it
    from sqlglot import exp

# DBTYP -> backend instance; filled by SourceBackend.__init_subclass__.
_REGISTRY: dict[str, SourceBackend] = {}

# The run's settings carry, under this name, the point in time planning bound
# the chunks to (``ChunkPlan.point``: an Oracle SCN its ROWID ranges were
# measured at), recorded with the origin "planning".  ``consistent_point``
# and ``reader`` find it in their ``options``: a backend whose plans take a
# point returns that one instead of a new one, and its readers read as of it.
PLANNED_POINT = "source_point"


class PlanningSession(Protocol):
    """The source as the coordinator sees it while it plans a run."""

    @property
    def planner(self) -> SourceConnection:
        """What the chunk planner runs its statistics queries on."""
        ...

    def describe(self, query: str) -> list[SourceColumn]:
        """Names and PostgreSQL types of the columns ``query`` returns (no rows read)."""
        ...

    def estimate(self, query: str) -> int | None:
        """The source's estimate of the rows ``query`` returns, filters included."""
        ...

    def notes(self, tree: exp.Query) -> list[str]:
        """What the run should say about the query (side effects, stale statistics)."""
        ...

    def probe(self, sql: str) -> list[tuple[Any, ...]]:
        """Run a rendered query that only reads (a checkpoint's max, say)."""
        ...


@dataclass
class Chunk:
    """One chunk as a reader needs it."""

    query_sql: str  # the chunk query, in the source's dialect, binds in its style
    params: dict[str, Any]
    select_list: str | None = None  # casts over the chunk query (PostgreSQL sources)
    snapshot: str | None = None  # the run's consistent point, as the backend recorded it


# One block of COPY data, as drivers hand it over.
Block = bytes | bytearray | memoryview


class ChunkReader(Protocol):
    """A worker's reader of one source: opened once, used for every chunk it moves."""

    def copy(self, chunk: Chunk, copy_format: str = "text"
             ) -> AbstractContextManager[Iterator[Block]]:
        """Yield the chunk's rows as PostgreSQL COPY data in ``copy_format``
        ("text"; "binary" only where the source is PostgreSQL).

        Leaving the block normally means every row was read and the source
        reported no error (checked before the caller commits the target);
        an error raises, so a partial chunk is never committed.
        """
        ...

    def rows(self, chunk: Chunk, batch_size: int
             ) -> AbstractContextManager[Iterator[list[dict[str, Any]]]]:
        """Yield the chunk's rows as batches of dicts (for a transformation)."""
        ...

    @property
    def handle(self) -> int | None:
        """What ``cancel`` needs to stop this reader's statement (a backend pid, a
        MariaDB thread id), or None."""
        ...

    def usable(self) -> bool:
        """False once its connection broke: the worker opens a new reader."""
        ...

    def reset(self) -> None:
        """After a failed chunk: be ready for the next one."""
        ...

    def close(self) -> None: ...


class SnapshotGone(Exception):
    """The run's point in time can no longer be read as of (its exporter ended, its
    lock was released before this reader began): the chunk waits for a resume,
    which takes a new point."""


@dataclass
class ConsistentPoint:
    """The moment every reader of a run reads as of, held by the coordinator."""

    token: str | None  # recorded on the run: readers pin to it (None: each reads its own)
    description: str  # said on the run: what consistency it got
    # Readers have begun: let go of what only the start needed (a read lock).
    on_started: Callable[[], None] | None = field(default=None, repr=False)
    # The run is over: end what keeps the point readable (an open transaction).
    on_close: Callable[[], None] | None = field(default=None, repr=False)
    # A session reading as of the point, for the coordinator's own reads (a
    # checkpoint's max); None when the backend has none.
    session: Any = field(default=None, repr=False)

    def started(self) -> None:
        if self.on_started is not None:
            hook, self.on_started = self.on_started, None
            hook()

    def close(self) -> None:
        self.started()
        if self.on_close is not None:
            hook, self.on_close = self.on_close, None
            hook()


class SourceBackend:
    """Defaults shared by every source database; one subclass per DBMS."""

    NAME: ClassVar[str] = ""
    LABEL: ClassVar[str] = ""  # how messages name the database: "MariaDB/MySQL"
    DBTYPS: ClassVar[tuple[str, ...]] = ()
    DIALECT: ClassVar[str] = ""  # the chunk planner's dialect (dms_pkg.chunking.dialects)
    # At most this many workers read one source of this kind at once (None: no cap).
    MAX_READERS: ClassVar[int | None] = None
    # Whether workers reading this source can share one exported point in time.
    SHARED_SNAPSHOT: ClassVar[bool] = False
    # How the chunk queries' bind parameters are written for its readers' driver.
    PARAM_STYLE: ClassVar[ParamStyle] = ParamStyle.NAMED

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.NAME:
            instance = cls()
            for dbtyp in cls.DBTYPS:
                _REGISTRY[dbtyp] = instance

    # -- connecting ---------------------------------------------------------------

    def endpoint(self, row: Mapping[str, Any], caller: str | None) -> Endpoint:
        """The connection a DMS_DBCONDTLS row describes (no secret inside); a row
        that names no login logs in as ``caller``."""
        raise NotImplementedError

    def redact(self, text: str) -> str:
        """``text`` (a connection string or URL of this database) safe to print."""
        raise NotImplementedError

    def guard(self, home: Any) -> LoginGuard | None:
        """What checks, once a connection row's session logged in, that its login
        holds no more than the caller (``home``: the caller's session)."""
        return None

    def authorize(self, home: Any, endpoint: Endpoint) -> None:
        """Refuse a caller who may not read ``endpoint`` through the server (say,
        a file the server's OS user would open for it)."""

    def endpoint_from_url(self, url: str) -> Endpoint:
        """An endpoint from a URL of this database (the CLI, the Python API)."""
        raise DmsError(f"{self.NAME} URLs are not accepted yet", sqlstate=FEATURE_NOT_SUPPORTED)

    def endpoint_from_connection(self, conn: Any) -> Endpoint:
        """An endpoint for the database a caller's own driver connection is on."""
        raise DmsError(f"{self.NAME} connections are not accepted yet",
                       sqlstate=FEATURE_NOT_SUPPORTED)

    # URL schemes and driver modules of this database, for the Python API and CLI.
    URL_SCHEMES: ClassVar[tuple[str, ...]] = ()
    DRIVER_MODULES: ClassVar[tuple[str, ...]] = ()

    # -- planning and reading ------------------------------------------------------

    def planning(self, endpoint: Endpoint) -> AbstractContextManager[PlanningSession]:
        raise NotImplementedError

    def reader(self, endpoint: Endpoint, *, application_name: str | None,
               search_path: str | None, options: Mapping[str, Any]) -> ChunkReader:
        """A reader for one worker; ``options`` are the run's settings (say,
        ``copy_reader`` for PostgreSQL)."""
        raise NotImplementedError

    def consistent_point(self, endpoint: Endpoint, *, tables: list[str], readers: int,
                         application_name: str | None, search_path: str | None,
                         options: Mapping[str, Any] | None = None
                         ) -> ConsistentPoint:
        """Take the run's point in time for ``readers`` workers (``options``: the
        run's settings); the default is none (each reader its own).  When
        ``options[PLANNED_POINT]`` is set the chunks are exact only as of that
        point: a backend that plans with one returns it, not a new one."""
        return ConsistentPoint(None, "each worker reads the source as of its own moment")

    def consistency_note(self, options: Mapping[str, Any], workers: int) -> str | None:
        """What the run should say, when it is planned, about how consistent its
        reads will be (a setting that gives up one moment, say); None: nothing."""
        return None

    def checkpoint_value(self, point: ConsistentPoint, query: str, column: str) -> str | None:
        """The largest value of ``column`` over ``query`` as of ``point``, as text
        the next run's filter reads back the same (ISO dates and times)."""
        raise DmsError(
            f"checkpoint columns are not read from {self.NAME} sources yet",
            sqlstate=FEATURE_NOT_SUPPORTED,
            hint="leave checkpoint_column out, or load the source into PostgreSQL first")

    # -- errors and cancel -----------------------------------------------------------

    def classify(self, exc: BaseException) -> Fault | None:
        """The database's report in ``exc`` with a PostgreSQL SQLSTATE of the right
        class (08 connection, 40 rollback, 53 resources, 57 operator, 55P03 lock,
        otherwise the data or SQL error it is), or None when ``exc`` is no error of
        this database."""
        return None

    def cancel(self, endpoint: Endpoint, handle: int) -> bool:
        """Stop the statement ``handle`` (a reader's) runs; True when asked."""
        return False


def backend_for(dbtyp: str) -> SourceBackend:
    """The backend that reads DBTYP ``dbtyp``, or a clear refusal.

    A backend already registered is returned as it is: loading every other
    backend (their drivers, sqlite3, oracledb's wrappers: some 50 ms) is for
    lookups that need them.  (While another thread loads them, a backend may
    be registered before its module is complete: that lookup waits.)"""
    backend = _REGISTRY.get(dbtyp)
    if backend is not None and not _IMPORTING:
        return backend
    _load_builtin()
    backend = _REGISTRY.get(dbtyp)
    if backend is None:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        broken = "; ".join(f"{name}: {why}" for name, why in sorted(_BROKEN.items()))
        raise DmsError(
            f"no source backend reads {dbtyp} databases",
            sqlstate=FEATURE_NOT_SUPPORTED,
            detail=f"backends that could not be loaded: {broken}" if broken else None,
            hint=f"DBTYP values with a backend: {known}",
        )
    return backend


def registered() -> dict[str, SourceBackend]:
    _load_builtin()
    return dict(_REGISTRY)


_LOADED = False
_IMPORTING = False
_BROKEN: dict[str, str] = {}  # backend module -> why it could not be imported
# Pairs of a check batch look backends up from several threads at once: the
# first loads them all while the others wait, so none sees half a registry.
# Re-entrant, because a backend module being imported may look one up.
_LOADING = threading.RLock()


def _load_builtin() -> None:
    """Import every module of this package once: each backend registers itself
    when its class is defined, so adding a database is adding a module."""
    global _LOADED, _IMPORTING
    if _LOADED:  # set only once every module is in
        return
    with _LOADING:
        if _LOADED or _IMPORTING:  # done meanwhile, or a lookup from a module being imported
            return
        _IMPORTING = True
        import dms_pkg.backends as package

        try:
            for module in pkgutil.iter_modules(package.__path__):
                if not module.name.startswith("_"):
                    try:
                        importlib.import_module(f"{package.__name__}.{module.name}")
                    except ImportError as exc:  # a driver not installed: the others work
                        _BROKEN[module.name] = str(exc)
        finally:
            _IMPORTING = False
        _LOADED = True
