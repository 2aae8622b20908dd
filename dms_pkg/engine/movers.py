"""The data paths of DESIGN §3: how one chunk gets from source to target, exactly once.

Every path ends the same way: the chunk's rows and its row in the target's
chunk ledger (``dms_ledger.chunk_ledger``) commit in one target transaction.
Before loading, the ledger is asked whether the chunk already committed --
a retry after a lost acknowledgement, a resumed run, a worker that died
after committing -- and then the chunk is only marked done.  Two workers
racing on one chunk cannot both commit: the ledger's primary key stops the
second, and its rows roll back with it.

Reads are pinned to the run's exported snapshot when there is one
(``SET TRANSACTION SNAPSHOT`` in a REPEATABLE READ transaction), so every
chunk sees the source as it was when the run started.

* ``same_db`` -- source and target in one database: one
  ``INSERT INTO target SELECT ... FROM (<chunk query>) AS dms_q``; no row
  leaves the server.

The source side of every other path is the source backend's reader
(``dms_pkg.backends``): it yields the chunk as PostgreSQL COPY data, or as
row batches for a transformation; the mover only writes into the target.
* ``copy_binary`` / ``copy_text`` -- PostgreSQL to PostgreSQL: ``COPY (<chunk
  query>) TO STDOUT`` on the source streamed block by block into ``COPY target
  FROM STDIN``; Python only hands bytes on.
* ``rows`` -- fetched in batches, passed through the transformation function
  when there is one, written with COPY.  Memory is one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from psycopg import IsolationLevel, sql

from dms_pkg.backends.base import Chunk, ChunkReader
from dms_pkg.backends.base import SnapshotGone as SnapshotGone  # the worker catches it here
from dms_pkg.backends.postgres import bindable, chunk_select, end, pin
from dms_pkg.db.binds import escape_pyformat
from dms_pkg.engine import merge as merge_mod
from dms_pkg.engine.merge import MergePlan
from dms_pkg.engine.store import ChunkTask
from dms_pkg.engine.transformation import Transform as Transform  # worker.py imports it here
from dms_pkg.engine.transformation import apply, check_columns

UNIQUE_VIOLATION = "23505"
LEDGER = "dms_ledger.chunk_ledger"


@dataclass(frozen=True)
class RunSpec:
    """What ``dms.run.spec`` tells a worker."""

    run_id: int
    path: str
    select_list: str | None  # casts over the chunk query, or None: the query as it is
    insert_target: str  # "schema"."table" ("a", "b") of load_table
    target_table: str  # "schema"."table": the run's target
    load_table: str  # "schema"."table" the chunks load into: the target, or its staging table
    columns: tuple[str, ...]
    source_conid: int | None
    target_conid: int | None
    search_path: str | None = None
    ledger: bool = True
    merge: dict[str, Any] | None = None  # a MergePlan: stage, then merge with SQL
    merge_keys: tuple[str, ...] = ()  # the business key, to name refused rows

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "select_list": self.select_list,
            "insert_target": self.insert_target,
            "target_table": self.target_table,
            "load_table": self.load_table,
            "columns": list(self.columns),
            "source_conid": self.source_conid,
            "target_conid": self.target_conid,
            "ledger": self.ledger,
            "merge": self.merge,
            "merge_keys": list(self.merge_keys),
        }

    @classmethod
    def from_json(cls, run_id: int, spec: dict[str, Any], search_path: str | None) -> RunSpec:
        return cls(
            run_id=run_id,
            path=spec["path"],
            select_list=spec.get("select_list"),
            insert_target=spec["insert_target"],
            target_table=spec["target_table"],
            load_table=spec["load_table"],
            columns=tuple(spec["columns"]),
            source_conid=spec["source_conid"],
            target_conid=spec["target_conid"],
            search_path=search_path,
            ledger=bool(spec.get("ledger", True)),
            merge=spec.get("merge"),
            merge_keys=tuple(spec.get("merge_keys") or ()),
        )


@dataclass(frozen=True)
class Moved:
    rows: int
    nbytes: int | None
    already: bool = False  # found in the ledger: committed by an earlier attempt
    stats: dict[str, int] | None = None  # merge counts: inserted, updated, expired


@dataclass(frozen=True)
class Reject:
    """A staged row the target refused, for the error log."""

    key: str
    sqlstate: str | None
    message: str


MAX_REJECTS = 1000  # rows a failed chunk reports at most
# SQLSTATE classes of errors a single row can cause: cardinality (a key twice),
# data exception (bad value), integrity constraint violation.
ROW_ERROR_CLASSES = frozenset({"21", "22", "23"})


class DuplicateKey(psycopg.errors.CardinalityViolation):
    """The source returned one business key twice in a chunk: the merge would be ambiguous.

    Raised by us, not the server: its SQLSTATE is the class's (21000)."""

    def __init__(self, key: Sequence[Any]) -> None:
        super().__init__(f"the source returns business key ({_show_key(key)}) more than once")


def _run(target: psycopg.Connection[Any], statement: str,
         params: list[str | None] | None) -> int:
    """Rows one merge statement wrote.  Parameters go as $1, $2 (the statement is
    not pyformat: a quoted name may hold a %), each time planned with the
    values (prepare=False: a generic plan would not know them)."""
    if params is None:
        return max(target.execute(statement).rowcount, 0)
    with psycopg.RawCursor(target) as cursor:
        cursor.execute(statement, params, prepare=False)
        return max(cursor.rowcount, 0)


def _for_transaction(target: psycopg.Connection[Any], name: str, value: float, *,
                     at_least: bool) -> None:
    """Setting ``name`` at least (or at most) ``value``, in the setting's own unit
    (``pg_settings.unit``: work_mem in kB), for the open transaction only; the
    server's own when it already is."""
    target.execute(_AT_LEAST if at_least else _AT_MOST, [str(value), name, value])


_SET_LOCALLY = ("SELECT pg_catalog.set_config(name, %s, true) FROM pg_catalog.pg_settings"
                " WHERE name = %s AND setting::float8 ")
_AT_LEAST = _SET_LOCALLY + "< %s"
_AT_MOST = _SET_LOCALLY + "> %s"


def _show_key(values: Sequence[Any]) -> str:
    return ", ".join("NULL" if v is None else str(v) for v in values)


class ConnectionSource(Protocol):
    """Hands a mover its target connections and its source reader, by connection id;
    a broken one is replaced."""

    def get(self, conid: int | None, role: str = "target") -> psycopg.Connection[Any]:
        """The PostgreSQL connection that plays ``role`` on ``conid`` (the target)."""
        ...

    def reader(self, conid: int | None) -> ChunkReader:
        """The source backend's reader of ``conid``: one per worker, kept open."""
        ...

    def close(self) -> None: ...


# Called when a chunk starts, with the backend pids of the source and target
# connections, so that stop_run and the reaper can cancel them.
OnStart = Callable[[ChunkTask, int | None, int | None], None]
# Called with the rows of a chunk the target refused.
OnRejects = Callable[[ChunkTask, list["Reject"]], None]





class Mover:
    """Moves chunks of one run along its path."""

    def __init__(
        self,
        spec: RunSpec,
        conns: ConnectionSource,
        *,
        on_start: OnStart | None = None,
        on_rejects: OnRejects | None = None,
        transform: Transform | None = None,
        batch_size: int = 10_000,
        collect: Callable[[int, list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.spec = spec
        self.conns = conns
        self.on_start = on_start
        self.on_rejects = on_rejects
        self.transform = transform
        self.batch_size = batch_size
        self.collect = collect
        self.merge = MergePlan.from_json(spec.merge) if spec.merge else None
        self._opened: list[psycopg.Connection[Any]] = []

    # -- the shared protocol -------------------------------------------------

    def move(self, task: ChunkTask) -> Moved:
        if self.collect is not None:  # no target: the rows go back to the caller
            rows, _ = self._rows(self._reader(), None, task)
            return Moved(rows, None)
        target = self._conn(self.spec.target_conid)
        if self.spec.ledger:
            committed = self._ledger_rows(target, task)
            if committed is not None:
                return Moved(committed, None, already=True)
        reader = self._source()
        if self.on_start is not None:
            self.on_start(task, reader.handle if reader else None, target.info.backend_pid)
        try:
            direct = self._direct(target, task)
            stats: dict[str, int] | None
            fused = None if direct is not None else self._fused(target, task)
            if direct is not None:
                rows, nbytes, stats = direct, None, {"inserted": direct}
            elif fused is not None:
                (rows, stats), nbytes = fused, None
            else:
                rows, nbytes = self._load(reader, target, task)
                stats = self._merge(target) if self.merge else None
            self._write_ledger(target, task, rows)
            target.commit()
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.table_name == "chunk_ledger":
                # Another attempt committed this chunk first; ours rolled back.
                end(target)
                committed = self._ledger_rows(target, task)
                if committed is not None:
                    return Moved(committed, None, already=True)
            self._report_rejects(exc, task)
            raise
        except psycopg.Error as exc:
            if (exc.diag.sqlstate or exc.sqlstate or "")[:2] in ROW_ERROR_CLASSES:
                self._report_rejects(exc, task)
            raise
        return Moved(rows, nbytes, stats=stats)

    def recover(self) -> None:
        for conn in self._opened:
            end(conn)
        if self.spec.path != "same_db":
            self.conns.reader(self.spec.source_conid).reset()

    def _conn(self, conid: int | None, role: str = "target") -> psycopg.Connection[Any]:
        conn = self.conns.get(conid, role)
        if conn not in self._opened:
            self._opened.append(conn)
        return conn

    def _reader(self) -> ChunkReader:
        return self.conns.reader(self.spec.source_conid)

    def _source(self) -> ChunkReader | None:
        """The source's reader, when the path reads through one (all but same_db)."""
        return None if self.spec.path == "same_db" else self._reader()

    def _chunk(self, task: ChunkTask, *, casts: bool = True) -> Chunk:
        return Chunk(task.query_sql, task.params,
                     select_list=self.spec.select_list if casts else None,
                     snapshot=task.snapshot_id)

    def _load(self, reader: ChunkReader | None, target: psycopg.Connection[Any],
              task: ChunkTask) -> tuple[int, int | None]:
        """Write the chunk into the load table in an open target transaction."""
        if self.spec.path == "same_db":
            return self._same_db(target, task)
        assert reader is not None
        if self.spec.path in ("copy_binary", "copy_text"):
            return self._copy(reader, target, task)
        return self._rows(reader, target, task)

    def _begin_target(self, target: psycopg.Connection[Any]) -> None:
        end(target)
        target.isolation_level = IsolationLevel.READ_COMMITTED
        target.read_only = False
        self._prepare_stage(target)

    def _prepare_stage(self, target: psycopg.Connection[Any]) -> None:
        if self.merge is not None:
            for statement in self.merge.prepare:
                target.execute(statement)

    def _merge(self, target: psycopg.Connection[Any]) -> dict[str, int]:
        """Merge the staged chunk into the target; counts per statement."""
        assert self.merge is not None
        if self.merge.check:
            twice = target.execute(self.merge.check).fetchone()
            if twice is not None:
                raise DuplicateKey(twice)
        return self._statements(target, self._classify(target))

    def _statements(self, target: psycopg.Connection[Any], bounds: list[str | None] | None
                    ) -> dict[str, int]:
        assert self.merge is not None
        stats = {label: 0 for label, _ in self.merge.statements}
        if bounds == []:  # nothing new or changed: every statement would do nothing
            return stats
        if self.merge.classify:  # scd plans, the fused ones included
            # Classifying just read the target's key slice, so the statements'
            # lookups of the few classified keys hit cached pages; at the default
            # random_page_cost PostgreSQL hashed the whole slice (92K rows of the
            # benchmark's dimension) three times for 9.7K keys instead of probing
            # the key index: 107-137 ms a statement against 64-70 ms.  At 1.1 it
            # still hashes when a third of the slice changed, where both cost the same.
            _for_transaction(target, "random_page_cost", merge_mod.CACHED_PAGE_COST,
                             at_least=False)
        for label, statement in self.merge.statements:
            stats[label] += _run(target, statement, bounds)
        return stats

    def _around_chunk(self, statement: str, task: ChunkTask
                      ) -> tuple[str, dict[str, Any] | None]:
        """``statement`` (direct, fused) with the chunk's query where ``CHUNK``
        stands, and its parameters."""
        head, _, tail = statement.partition(merge_mod.CHUNK)
        return bindable(
            f"{escape_pyformat(head)}{chunk_select(self._chunk(task))}{escape_pyformat(tail)}",
            task.params)

    def _fused(self, target: psycopg.Connection[Any], task: ChunkTask
               ) -> tuple[int, dict[str, int]] | None:
        """A same-database scd chunk read once (merge.fused) and merged, in an open
        target transaction: its rows read and the merge's counts; None when the
        run has no fused statement.  A key the source returns twice is refused
        as the stage's check refuses it."""
        if self.merge is None or not self.merge.fused or self.spec.path != "same_db":
            return None
        pin(target, task.snapshot_id, read_only=False)
        self._prepare_stage(target)  # the classified rows' table
        query, params = self._around_chunk(self.merge.fused, task)
        # The CTE holds the whole chunk (97K rows of the benchmark's dimension
        # are ~10 MB): under the default 4 MB of work_mem it went to a temp
        # file, and the fused chunk was no faster than the staged one (565 vs
        # 572 ms a chunk, 4 runs each).  With 64 MB for this transaction only
        # (never less than the server gives): 447-536 ms against 543-678.
        _for_transaction(target, "work_mem", merge_mod.FUSED_WORK_MEM_KB, at_least=True)
        row = target.execute(query.encode(), params).fetchone()
        assert row is not None
        keys = len(self.spec.merge_keys)
        if row[1]:
            raise DuplicateKey(row[2:2 + keys])
        low, high, kept = row[2 + keys:]
        return int(row[0]), self._statements(target, [low, high] if kept else [])

    def _classify(self, target: psycopg.Connection[Any]) -> list[str | None] | None:
        """Keep the staged rows the statements can act on; return the statements'
        parameters (None: they take none; [] when no row was kept)."""
        assert self.merge is not None
        for statement in self.merge.classify:
            target.execute(statement)
        if not self.merge.bounds:
            return None
        row = target.execute(self.merge.bounds).fetchone()
        if row is None or not row[2]:
            return []
        return [row[0], row[1]]

    def _direct(self, target: psycopg.Connection[Any], task: ChunkTask) -> int | None:
        """A first load's chunk inserted straight into the target (merge.direct), in
        an open target transaction: its rows, or None when the chunk is to go
        through the stage -- the run has no direct statement, or the guarding
        unique index refused a key (the source returns it twice, or somebody
        else inserted it since planning), and the stage's check and merge are
        to say and do what they always do."""
        if self.merge is None or not self.merge.direct or self.spec.path != "same_db":
            return None
        pin(target, task.snapshot_id, read_only=False)
        query, params = self._around_chunk(self.merge.direct, task)
        try:
            return max(target.execute(query.encode(), params).rowcount, 0)
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name != self.merge.guard:
                raise
        end(target)  # the chunk's transaction; the stage's path pins a new one
        return None

    def _report_rejects(self, exc: Exception, task: ChunkTask) -> None:
        """A chunk the target refused: find the rows it refuses, for the error log."""
        if self.merge is None or self.on_rejects is None:
            return
        target = self._conn(self.spec.target_conid)
        try:
            self.on_rejects(task, self._find_rejects(target, task))
        except Exception:
            end(target)

    def _find_rejects(self, target: psycopg.Connection[Any], task: ChunkTask
                      ) -> list[Reject]:
        """Load the chunk again and merge it in halves, down to single rows, each
        under a savepoint; everything is rolled back afterwards."""
        assert self.merge is not None
        reader = self._source()
        staged, _ = self._load(reader, target, task)
        keys = sql.SQL(", ").join(sql.Identifier(k) for k in self.spec.merge_keys)
        rejects: list[Reject] = []
        if self.spec.merge_keys:
            twice = sql.SQL(
                "SELECT {}, count(*) FROM {} GROUP BY {} HAVING count(*) > 1 LIMIT {}"
            ).format(keys, sql.Identifier("pg_temp", merge_mod.STAGE), keys,
                     sql.Literal(MAX_REJECTS))
            for row in target.execute(twice).fetchall():
                rejects.append(Reject(_show_key(row[:-1]), merge_mod.CARDINALITY_VIOLATION,
                                      f"the source returns this key {row[-1]} times"))
        # The stage's row numbers go on from chunk to chunk in one session (ON
        # COMMIT DELETE ROWS keeps the identity's position): bisect the range
        # this chunk's rows really have.
        bounds = target.execute(sql.SQL("SELECT min(dms_rn), max(dms_rn) FROM {}").format(
            sql.Identifier("pg_temp", merge_mod.STAGE))).fetchone()
        pending: list[tuple[int, int]] = []
        values: list[str | None] | None = None
        if not rejects and staged and bounds is not None and bounds[0] is not None:
            # Classified once, against the target as it is: each half merged
            # below touches only its own keys, so the others' rows stay valid
            # (and within the key slice of them all).
            values = self._classify(target)
            if values != []:
                pending = [(int(bounds[0]), int(bounds[1]))]
        while pending and len(rejects) < MAX_REJECTS:
            lo, hi = pending.pop()
            try:
                with target.transaction():  # a savepoint
                    self._merge_rows(target, lo, hi, values)
            except psycopg.Error as exc:
                if lo < hi:
                    middle = (lo + hi) // 2
                    pending += [(middle + 1, hi), (lo, middle)]
                else:
                    rejects.append(Reject(self._key_of(target, lo), exc.diag.sqlstate,
                                          exc.diag.message_primary or str(exc)))
        target.rollback()
        return rejects

    def _merge_rows(self, target: psycopg.Connection[Any], lo: int, hi: int,
                    values: list[str | None] | None) -> None:
        assert self.merge is not None
        for _label, statement in self.merge.statements:
            _run(target, merge_mod.restrict(statement, lo, hi), values)

    def _key_of(self, target: psycopg.Connection[Any], rn: int) -> str:
        if not self.spec.merge_keys:
            return f"staged row {rn}"
        row = target.execute(sql.SQL("SELECT {} FROM {} WHERE dms_rn = %s").format(
            sql.SQL(", ").join(sql.Identifier(k) for k in self.spec.merge_keys),
            sql.Identifier("pg_temp", merge_mod.STAGE)), [rn]).fetchone()
        return _show_key(row) if row else "?"

    def _ledger_rows(self, target: psycopg.Connection[Any], task: ChunkTask) -> int | None:
        """Rows of the chunk if the ledger says it committed (read committed, fresh)."""
        end(target)
        target.isolation_level = IsolationLevel.READ_COMMITTED
        row = target.execute(
            f"SELECT rows FROM {LEDGER} WHERE run_uuid = %s AND chunk_no = %s",
            [task.run_uuid, task.chunk_no],
        ).fetchone()
        target.rollback()
        return None if row is None else int(row[0])

    def _write_ledger(self, target: psycopg.Connection[Any], task: ChunkTask, rows: int) -> None:
        if self.spec.ledger:
            target.execute(
                f"INSERT INTO {LEDGER} (run_uuid, chunk_no, rows) VALUES (%s, %s, %s)",
                [task.run_uuid, task.chunk_no, rows],
            )

    # -- the paths -------------------------------------------------------------

    def _same_db(self, conn: psycopg.Connection[Any], task: ChunkTask
                 ) -> tuple[int, int | None]:
        pin(conn, task.snapshot_id, read_only=False)
        self._prepare_stage(conn)
        query, params = bindable(
            f"INSERT INTO {escape_pyformat(self.spec.insert_target)} "
            f"{chunk_select(self._chunk(task))}", task.params)
        return max(conn.execute(query.encode(), params).rowcount, 0), None

    def _copy(self, reader: ChunkReader, target: psycopg.Connection[Any], task: ChunkTask
              ) -> tuple[int, int | None]:
        """The reader's COPY data written block by block into the target's COPY."""
        fmt = "binary" if self.spec.path == "copy_binary" else "text"
        self._begin_target(target)
        nbytes = 0
        with target.cursor() as tgt:
            # The target COPY is opened first and closed last: if the source
            # fails mid-stream, leaving the inner block with an exception makes
            # psycopg abort the target COPY, so no partial chunk is kept.
            with tgt.copy(f"COPY {self.spec.insert_target} FROM STDIN (FORMAT {fmt})"
                          ) as sink, reader.copy(self._chunk(task), fmt) as feed:
                for block in feed:
                    sink.write(block)
                    nbytes += len(block)
            return tgt.rowcount, nbytes

    def _rows(self, reader: ChunkReader, target: psycopg.Connection[Any] | None,
              task: ChunkTask) -> tuple[int, int | None]:
        # A transformation gets the source's own rows and types.
        chunk = self._chunk(task, casts=self.transform is None)
        if target is not None:
            self._begin_target(target)
        written = 0
        collected: list[dict[str, Any]] = []
        with ExitStack() as stack:
            batches = stack.enter_context(reader.rows(chunk, self.batch_size))
            # Entered last, so it is left first: an error aborts the COPY and
            # the target keeps nothing of this chunk.
            sink: psycopg.Copy | None = None
            columns: list[str] = []
            for batch in batches:
                rows: Sequence[Mapping[str, Any]] = batch
                if self.transform is not None:
                    rows = apply(self.transform, batch, task.chunk_no)
                if target is None:
                    collected.extend(r if isinstance(r, dict) else dict(r) for r in rows)
                    written += len(rows)
                    continue
                if sink is None and rows:
                    columns = list(rows[0])
                    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                        sql.SQL(self.spec.load_table),
                        sql.SQL(", ").join(sql.Identifier(c) for c in columns),
                    )
                    cursor = stack.enter_context(target.cursor())
                    sink = stack.enter_context(cursor.copy(statement))
                if self.transform is not None:
                    check_columns(rows, columns, task.chunk_no)
                for row in rows:
                    assert sink is not None
                    sink.write_row([row.get(c) for c in columns])
                    written += 1
        if target is None and self.collect is not None:
            self.collect(task.chunk_no, collected)
        return written, None
