"""The data paths of DESIGN §3: how one chunk gets from source to target.

* ``SameDbMover`` -- source and target in one database: one
  ``INSERT INTO target SELECT ... FROM (<chunk query>) AS dms_q``; no row
  leaves the server.  When that database is the engine's own, the insert
  runs in the worker's transaction and commits together with the chunk's
  DONE mark.
* ``CopyMover`` -- PostgreSQL to PostgreSQL: ``COPY (<chunk query>) TO
  STDOUT`` on the source streamed block by block into ``COPY target FROM
  STDIN``; Python only hands bytes on (binary format when every target type
  is built in, text otherwise).
* ``RowsMover`` -- rows are fetched in batches, passed through the
  transformation function when there is one, and written with COPY.
  Memory is one batch.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from dms_pkg.db.base import Session
from dms_pkg.db.binds import escape_pyformat, pyformat_to_numeric
from dms_pkg.engine.store import ChunkTask

Transform = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


@dataclass(frozen=True)
class RunSpec:
    """What ``dms.run.spec`` tells a worker."""

    run_id: int
    path: str
    select_list: str
    insert_target: str  # "schema"."table" ("a", "b")
    target_table: str  # "schema"."table"
    columns: tuple[str, ...]
    source_conid: int | None
    target_conid: int | None
    search_path: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "select_list": self.select_list,
            "insert_target": self.insert_target,
            "target_table": self.target_table,
            "columns": list(self.columns),
            "source_conid": self.source_conid,
            "target_conid": self.target_conid,
        }

    @classmethod
    def from_json(cls, run_id: int, spec: dict[str, Any], search_path: str | None) -> RunSpec:
        return cls(
            run_id=run_id,
            path=spec["path"],
            select_list=spec["select_list"],
            insert_target=spec["insert_target"],
            target_table=spec["target_table"],
            columns=tuple(spec["columns"]),
            source_conid=spec["source_conid"],
            target_conid=spec["target_conid"],
            search_path=search_path,
        )


class Mover(Protocol):
    def move(self, task: ChunkTask) -> tuple[int, int | None]:
        """Load the chunk; return (rows, bytes).  Commits the target, except
        when the target is the worker's own session (then the caller's
        finish commits both together)."""
        ...

    def recover(self) -> None:
        """After a failure: roll back what is open so the next chunk starts clean."""
        ...


def _bindable(statement: str, params: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """psycopg reads ``%`` markers only when it is given parameters: a chunk
    without binds (a single chunk, say) is sent as plain SQL, ``%%`` undone."""
    if params:
        return statement, params
    return pyformat_to_numeric(statement, []), None


def _end(conn: psycopg.Connection[Any] | None) -> None:
    if conn is not None and not conn.closed and not conn.broken:
        conn.rollback()


class SameDbMover:
    def __init__(self, spec: RunSpec, session: Session, *, own_session: bool) -> None:
        self.spec = spec
        self.session = session
        self.own_session = own_session  # True: the caller commits (with the DONE mark)

    def move(self, task: ChunkTask) -> tuple[int, int | None]:
        query = pyformat_to_numeric(task.query_sql, list(task.params))
        statement = (
            f"INSERT INTO {self.spec.insert_target} SELECT {self.spec.select_list} "
            f"FROM ({query}) AS dms_q"
        )
        rows = self.session.execute(statement, list(task.params.values()))
        if not self.own_session:
            self.session.commit()
        return rows, None

    def recover(self) -> None:
        if not self.own_session:
            self.session.rollback()


class CopyMover:
    def __init__(
        self, spec: RunSpec, source: psycopg.Connection[Any], target: psycopg.Connection[Any],
        *, binary: bool,
    ) -> None:
        self.spec = spec
        self.source = source
        self.target = target
        fmt = "binary" if binary else "text"
        self._out = (
            f"COPY (SELECT {escape_pyformat(spec.select_list)} FROM ({{query}}) AS dms_q) "
            f"TO STDOUT (FORMAT {fmt})"
        )
        self._in = f"COPY {spec.insert_target} FROM STDIN (FORMAT {fmt})"

    def move(self, task: ChunkTask) -> tuple[int, int | None]:
        nbytes = 0
        out_sql, params = _bindable(self._out.replace("{query}", task.query_sql), task.params)
        with self.source.cursor() as src, self.target.cursor() as tgt:
            # The target COPY is opened first and closed last: if the source
            # fails mid-stream, leaving the inner block with an exception makes
            # psycopg abort the target COPY, so no partial chunk is kept.
            with tgt.copy(self._in) as sink, src.copy(out_sql.encode(), params) as feed:
                for block in feed:
                    sink.write(block)
                    nbytes += len(block)
            rows = tgt.rowcount
        self.target.commit()
        self.source.rollback()  # read-only: end the snapshot
        return rows, nbytes

    def recover(self) -> None:
        _end(self.target)
        _end(self.source)


class RowsMover:
    """Fetch, transform, write.  ``target`` None collects the rows instead."""

    def __init__(
        self,
        spec: RunSpec,
        source: psycopg.Connection[Any],
        target: psycopg.Connection[Any] | None,
        *,
        transform: Transform | None,
        batch_size: int,
        collect: Callable[[int, list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.spec = spec
        self.source = source
        self.target = target
        self.transform = transform
        self.batch_size = batch_size
        self.collect = collect
        # Without a transformation the query already casts to the target types.
        self._select = (
            f"SELECT {escape_pyformat(spec.select_list)} FROM ({{query}}) AS dms_q"
            if transform is None
            else "{query}"
        )

    def move(self, task: ChunkTask) -> tuple[int, int | None]:
        written = 0
        query, params = _bindable(self._select.replace("{query}", task.query_sql), task.params)
        collected: list[dict[str, Any]] = []
        with ExitStack() as stack:
            src = stack.enter_context(
                self.source.cursor(name=f"dms_chunk_{task.chunk_no}", row_factory=dict_row)
            )
            src.itersize = self.batch_size
            src.execute(query.encode(), params)
            # Entered last, so it is left first: an error aborts the COPY and
            # the target keeps nothing of this chunk.
            sink: psycopg.Copy | None = None
            columns: list[str] = []
            while batch := src.fetchmany(self.batch_size):
                rows = self.transform(batch) if self.transform else batch
                if self.target is None:
                    collected.extend(rows)
                    written += len(rows)
                    continue
                if sink is None and rows:
                    columns = list(rows[0])
                    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                        sql.SQL(self.spec.target_table),
                        sql.SQL(", ").join(sql.Identifier(c) for c in columns),
                    )
                    cursor = stack.enter_context(self.target.cursor())
                    sink = stack.enter_context(cursor.copy(statement))
                for row in rows:
                    assert sink is not None
                    sink.write_row([row.get(c) for c in columns])
                    written += 1
        if self.target is not None:
            self.target.commit()
        self.source.rollback()
        if self.collect is not None:
            self.collect(task.chunk_no, collected)
        return written, None

    def recover(self) -> None:
        _end(self.target)
        _end(self.source)
