"""ROWID-range chunks wired into planning, one SCN from the plan to every worker,
and a lost SCN as the runtime's SnapshotGone.

The order that makes ROWID chunks exact: planning reads the SCN first, then
the table's extents; the plan records that SCN (``ChunkPlan.point``), the
run's settings carry it (``source_point``, origin "planning"), the run's
consistent point is that SCN (not a new one), and every chunk reads
``AS OF SCN`` it -- so rows in extents allocated after the SCN, which the
ranges do not list, are invisible to every chunk anyway.

A FAKE ORACLE SESSION is used below, and only because no Oracle server can
run on this machine (no server, no container engine).  It answers each
statement the backend sends with rows an Oracle dictionary would return and
records the statements in order, so what is checked is the backend's own
code: the SQL it renders, the order it sends it in, and what it does with
the answers.  The errors it raises are python-oracledb's own exception
objects, built the way the thin driver builds them from a server's reply.
The same path runs against a real server in
tests/integration/test_oracle_source.py when DMS_ORACLE_DSN names one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import oracledb
import pytest
from oracledb import errors as ora_errors

from dms_pkg.backends import oracle
from dms_pkg.backends.base import PLANNED_POINT, Chunk, SnapshotGone, backend_for
from dms_pkg.backends.endpoint import Endpoint
from dms_pkg.backends.oracle import OracleBackend, OracleSource, _Planning, _Reader
from dms_pkg.backends.oracle_rowid import SCHEMA_SQL, extent_ranges_sql
from dms_pkg.backends.oracle_scn import CURRENT_SCN_SQL, FALLBACK_SCN_SQL
from dms_pkg.backends.oracle_types import table_stats_sql
from dms_pkg.chunking.dialects import ParamStyle
from dms_pkg.chunking.planner import RowRangeSource, plan_chunks
from dms_pkg.engine import config as cfg
from dms_pkg.engine.local_store import LocalStore
from dms_pkg.engine.movers import Moved
from dms_pkg.engine.planning import plan_source
from dms_pkg.engine.worker import LazyMover, RetryPolicy, run_worker
from dms_pkg.errors import DmsError

RANGES = [
    ("AAAR1AAEAAAAAIAAA", "AAAR1AAEAAAAAPH/8"),
    ("AAAR1AAEAAAAAQAAA", "AAAR1AAEAAAAAXH/8"),
    ("AAAR1BAEAAAAAYAAA", "AAAR1BAEAAAAAfH/8"),
]
EXTENT_ROWS = [(i, 7301 + i, lo, hi) for i, (lo, hi) in enumerate(RANGES)]
PLANNING_SCN = 55_000
QUERY = "SELECT o.id, o.note FROM orders o"


def ora_error(code: int, text: str) -> oracledb.Error:
    """The exception python-oracledb's thin driver raises for ``ORA-<code>: <text>``."""
    error = ora_errors._Error(f"ORA-{code:05d}: {text}", code=code)
    exc: oracledb.Error = error.exc_type(error)
    return exc


Answer = Sequence[tuple[Any, ...]] | BaseException | Callable[[], Sequence[tuple[Any, ...]]]


@dataclass
class FakeOracle:
    """A fake oracledb connection (see the module docstring for why): ``answers``
    maps a piece of statement text to the rows (or the error) Oracle would
    give; a statement that matches none fails the test."""

    answers: list[tuple[str, Answer]]
    ran: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    closed: bool = False

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    def close(self) -> None:
        self.closed = True

    def is_healthy(self) -> bool:
        return not self.closed

    def answer(self, sql: str) -> Answer:
        for piece, answer in self.answers:
            if piece in sql:
                return answer
        raise AssertionError(f"the fake Oracle has no answer for: {sql}")

    def statements(self, piece: str) -> list[int]:
        """Positions of the statements that contain ``piece``."""
        return [i for i, (sql, _) in enumerate(self.ran) if piece in sql]


class FakeCursor:
    def __init__(self, conn: FakeOracle) -> None:
        self.conn = conn
        self.rows: list[tuple[Any, ...]] = []
        self.description: list[tuple[str]] | None = None
        self.arraysize = 100

    def __enter__(self) -> FakeCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self.conn.ran.append((sql, dict(params or {})))
        answer = self.conn.answer(sql)
        if isinstance(answer, BaseException):
            raise answer
        rows = list(answer() if callable(answer) else answer)
        self.rows = rows
        is_query = sql.lstrip().upper().startswith(("SELECT", "WITH"))
        width = len(rows[0]) if rows else 1
        self.description = [(f"C{i}",) for i in range(width)] if is_query else None

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.rows.pop(0) if self.rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self.rows = self.rows, []
        return rows

    def fetchmany(self, n: int) -> list[tuple[Any, ...]]:
        rows, self.rows = self.rows[:n], self.rows[n:]
        return rows


def dictionary(*, login: str = "DWH", current_schema: str = "DWH",
               primary_key: Sequence[tuple[Any, ...]] = (),
               extents: Answer = EXTENT_ROWS,
               stats: Answer = ((3_000, 30, 30, None),)) -> list[tuple[str, Answer]]:
    """What an Oracle dictionary answers while a query on ORDERS is planned."""
    return [
        ("EXPLAIN PLAN", []),
        ("FROM plan_table WHERE", [(3_000,)]),
        ("DELETE FROM plan_table", []),
        ("FROM all_tab_columns", [("ID",), ("NOTE",)]),
        ("constraint_type = 'P'", list(primary_key)),
        (CURRENT_SCN_SQL, [(PLANNING_SCN,)]),
        (SCHEMA_SQL, [(login, current_schema)]),
        ("_tables t", stats),
        ("_extents e", extents),
        ("min_value", [(1, 3_000, 3_000, 0)]),
    ]


def settings(**given: Any) -> cfg.EngineConfig:
    return cfg.resolve([("p_params", {"chunk_size": 1_000, **given})])


def recorded_options(config: cfg.EngineConfig) -> dict[str, Any]:
    """The run's settings as the coordinator and its workers read them back from
    dms.run.config (recorded as JSON, ``{"value": ..., "from": ...}`` each)."""
    stored = json.loads(json.dumps(config.as_json()))
    return {name: entry["value"] for name, entry in stored.items()}


ENDPOINT = Endpoint(None, "Oracle at h/s", "ORACLE", params={"connect": {}})


# -- planning ---------------------------------------------------------------------


def test_a_plain_table_without_a_key_is_cut_in_rowid_ranges_measured_after_the_scn() -> None:
    conn = FakeOracle(dictionary())
    planning = _Planning(conn)
    assert isinstance(planning.planner, RowRangeSource)
    config = settings()
    plan, rows = plan_source(planning, QUERY, config, ParamStyle.NAMED)

    assert (plan.strategy, rows, plan.point) == ("rowid", 3_000, str(PLANNING_SCN))
    assert [(c.predicate_sql, c.params) for c in plan.chunks] == [
        ("o.ROWID BETWEEN :dms_lo AND :dms_hi", {"dms_lo": lo, "dms_hi": hi})
        for lo, hi in RANGES]
    assert plan.chunks[0].query_sql == (
        "SELECT o.id, o.note FROM orders o WHERE o.ROWID BETWEEN :dms_lo AND :dms_hi")
    # The SCN first, then whose table it is, its statistics and its extents.
    scn, schema = conn.statements(CURRENT_SCN_SQL), conn.statements(SCHEMA_SQL)
    stats, extents = conn.statements("user_tables t"), conn.statements("user_extents e")
    assert len(scn) == 1 and scn[0] < schema[0] < stats[0] < extents[0]
    assert conn.ran[stats[0]] == (table_stats_sql(owner=False), {"dms_table": "ORDERS"})
    expected = extent_ranges_sql("ORDERS", 3_000, 1_000)
    assert conn.ran[extents[0]] == (expected.sql, {"dms_n": 3, "dms_table": "ORDERS"})
    # The plan's SCN is recorded with the run's settings, said to come from planning.
    assert config.as_json()[PLANNED_POINT] == {"value": str(PLANNING_SCN), "from": "planning"}
    assert recorded_options(config)[PLANNED_POINT] == str(PLANNING_SCN)


def test_the_chunk_count_asked_for_sizes_the_extent_groups() -> None:
    conn = FakeOracle(dictionary())
    plan, _ = plan_source(_Planning(conn), QUERY, settings(chunks=5), ParamStyle.NAMED)
    assert plan.strategy == "rowid"
    assert conn.ran[conn.statements("user_extents e")[0]][1]["dms_n"] == 5
    assert extent_ranges_sql("ORDERS", 10**6, 1_000, n_chunks=5).params["dms_n"] == 5


def test_another_schema_is_measured_in_the_dba_views_with_its_owner_bound() -> None:
    # ALTER SESSION SET CURRENT_SCHEMA = SALES: "orders" is SALES.ORDERS, whose
    # extents USER_EXTENTS (the login's own) does not hold.
    conn = FakeOracle(dictionary(login="DWH_READER", current_schema="SALES"))
    plan, _ = plan_source(_Planning(conn), QUERY, settings(), ParamStyle.NAMED)
    assert plan.strategy == "rowid"
    stats = conn.ran[conn.statements("dba_tables t")[0]]
    assert stats == (table_stats_sql(owner=True), {"dms_table": "ORDERS", "dms_owner": "SALES"})
    extents = conn.ran[conn.statements("dba_extents e")[0]]
    assert extents[1] == {"dms_n": 3, "dms_table": "ORDERS", "dms_owner": "SALES"}
    assert not conn.statements("user_extents")


def test_a_qualified_name_of_the_logins_own_schema_uses_the_user_views() -> None:
    conn = FakeOracle(dictionary(login="SALES", current_schema="SALES"))
    plan, _ = plan_source(_Planning(conn), "SELECT o.id FROM sales.orders o", settings(),
                          ParamStyle.NAMED)
    assert plan.strategy == "rowid" and conn.statements("user_extents e")
    assert not conn.statements("dba_")


def test_a_table_never_analyzed_is_counted_as_of_the_planning_scn() -> None:
    conn = FakeOracle([("SELECT COUNT(*) FROM", [(2_500,)]),
                       *dictionary(stats=[(None, None, 8, None)])])
    plan, _ = plan_source(_Planning(conn), QUERY, settings(chunks=None), ParamStyle.NAMED)
    count = conn.ran[conn.statements("SELECT COUNT(*) FROM")[0]]
    assert count == ('SELECT COUNT(*) FROM "ORDERS" AS OF SCN :dms_scn',
                     {"dms_scn": PLANNING_SCN})
    assert plan.strategy == "rowid" and plan.point == str(PLANNING_SCN)


@pytest.mark.parametrize(("stats", "why"), [
    ([], "no table of that name: a view or a synonym"),
    ([(None, None, None, None)], "no table segment: never written, index-organized, clustered"),
])
def test_a_relation_without_table_extents_is_one_chunk_read_at_the_scn(
        stats: list[tuple[Any, ...]], why: str) -> None:
    conn = FakeOracle(dictionary(stats=stats))
    config = settings()
    plan, _ = plan_source(_Planning(conn), QUERY, config, ParamStyle.NAMED)
    assert len(plan.chunks) == 1 and plan.chunks[0].query_sql == QUERY, why
    assert "has no table extents of its own" in " ".join(plan.notes)
    assert not conn.statements("_extents e") and not conn.statements("COUNT(*)")
    # Still one moment: the single chunk reads as of the planning SCN too.
    assert plan.point == str(PLANNING_SCN)
    assert recorded_options(config)[PLANNED_POINT] == str(PLANNING_SCN)


def test_with_a_key_the_plan_keeps_key_chunks_and_takes_no_scn() -> None:
    conn = FakeOracle(dictionary())
    config = settings(key="id", strategy="hash")
    plan, _ = plan_source(_Planning(conn), QUERY, config, ParamStyle.NAMED)
    assert plan.strategy == "hash" and plan.point is None
    assert not conn.statements(CURRENT_SCN_SQL) and not conn.statements("_extents")
    assert PLANNED_POINT not in config.values


def test_a_primary_key_is_the_default_key_and_no_rowid_ranges_are_read() -> None:
    conn = FakeOracle([("constraint_type = 'U'", []), *dictionary(primary_key=[("ID",)])])
    plan = plan_chunks(OracleSource(conn), QUERY, chunk_size=1_000, strategy="auto")
    assert plan.key == "ID" and plan.strategy == "key_range" and plan.point is None
    assert not conn.statements(CURRENT_SCN_SQL)


def test_a_subquery_over_one_table_is_cut_at_the_table_itself() -> None:
    conn = FakeOracle(dictionary())
    plan = plan_chunks(OracleSource(conn), "SELECT d.id FROM (SELECT o.id FROM orders o) d",
                       chunk_size=1_000)
    assert plan.strategy == "rowid" and plan.point == str(PLANNING_SCN)
    assert plan.chunks[0].query_sql == (
        "SELECT d.id FROM (SELECT o.id FROM orders o WHERE o.ROWID BETWEEN :dms_lo AND "
        ":dms_hi) d")


def test_a_set_operation_is_one_chunk_and_takes_no_scn() -> None:
    conn = FakeOracle(dictionary())
    plan = plan_chunks(OracleSource(conn),
                       "SELECT id FROM orders UNION ALL SELECT id FROM orders_old",
                       chunk_size=1_000)
    assert plan.strategy == "single" and plan.point is None and plan.refused_reason
    assert not conn.statements(CURRENT_SCN_SQL)


def test_extents_that_may_not_be_read_give_one_chunk_on_auto_and_refuse_strategy_rowid(
) -> None:
    denied = ora_error(942, "table or view does not exist")
    answers = dictionary(login="DWH_READER", current_schema="SALES", stats=denied)
    plan, _ = plan_source(_Planning(FakeOracle(answers)), QUERY, settings(), ParamStyle.NAMED)
    assert plan.strategy == "single" and plan.point is None
    assert plan.refused_reason is not None
    assert plan.refused_reason.startswith(
        "cannot read the extents of SALES.ORDERS for ROWID chunks: ORA-00942")
    assert "DBA_TABLES, DBA_SEGMENTS, DBA_EXTENTS, DBA_OBJECTS" in plan.refused_reason
    with pytest.raises(DmsError) as err:
        plan_source(_Planning(FakeOracle(answers)), QUERY, settings(strategy="rowid"),
                    ParamStyle.NAMED)
    assert err.value.sqlstate == "42501"


def test_an_scn_that_may_not_be_read_gives_one_chunk_on_auto() -> None:
    answers = [(CURRENT_SCN_SQL, ora_error(942, "table or view does not exist")),
               (FALLBACK_SCN_SQL, ora_error(6550, "PLS-00201: identifier 'DBMS_FLASHBACK' "
                                                  "must be declared")),
               *dictionary()]
    conn = FakeOracle(answers)
    plan, _ = plan_source(_Planning(conn), QUERY, settings(), ParamStyle.NAMED)
    assert plan.strategy == "single" and plan.point is None
    assert plan.refused_reason is not None and "cannot read the Oracle SCN" in plan.refused_reason
    assert not conn.statements("_extents")


def test_another_dictionary_error_is_not_hidden() -> None:
    answers = dictionary(extents=ora_error(904, '"E"."BLOCK_ID": invalid identifier'))
    with pytest.raises(DmsError) as err:
        plan_source(_Planning(FakeOracle(answers)), QUERY, settings(), ParamStyle.NAMED)
    assert err.value.sqlstate == "42703"
    assert err.value.message.startswith("cannot list the extents of DWH.ORDERS: ORA-00904")


def test_planning_alone_may_not_set_the_point() -> None:
    with pytest.raises(DmsError) as err:
        cfg.check_keys({"source_point": "1"})
    assert 'unknown parameter "source_point"' in err.value.message
    with pytest.raises(ValueError, match="is a setting"):
        settings().record_planned("chunk_size", 5)


# -- the run's point in time -------------------------------------------------------


def test_the_runs_consistent_point_is_the_planning_scn(monkeypatch: pytest.MonkeyPatch) -> None:
    config = settings()
    plan_source(_Planning(FakeOracle(dictionary())), QUERY, config, ParamStyle.NAMED)
    session = FakeOracle([])  # any statement on it would fail the test: none is sent
    monkeypatch.setattr(oracle, "_connect", lambda endpoint: session)
    point = backend_for("ORACLE").consistent_point(
        ENDPOINT, tables=["orders"], readers=4, application_name=None, search_path=None,
        options=recorded_options(config))
    assert point.token == str(PLANNING_SCN) and session.ran == []
    assert point.description == (f"every chunk reads AS OF SCN {PLANNING_SCN}, the SCN its "
                                 "ROWID ranges were measured at")
    assert point.session is session
    point.close()
    assert session.closed


def test_without_a_planned_scn_the_point_is_the_current_scn(
        monkeypatch: pytest.MonkeyPatch) -> None:
    session = FakeOracle([(CURRENT_SCN_SQL, [(99_000,)])])
    monkeypatch.setattr(oracle, "_connect", lambda endpoint: session)
    point = backend_for("ORACLE").consistent_point(
        ENDPOINT, tables=[], readers=4, application_name=None, search_path=None,
        options=recorded_options(settings(key="id")))
    assert point.token == "99000" and session.statements(CURRENT_SCN_SQL) == [0]
    assert point.description == "every chunk reads AS OF SCN 99000"


def test_every_reader_reads_the_planned_scn_even_without_a_run_point() -> None:
    config = settings()
    plan, _ = plan_source(_Planning(FakeOracle(dictionary())), QUERY, config, ParamStyle.NAMED)
    reader = backend_for("ORACLE").reader(ENDPOINT, application_name=None, search_path=None,
                                          options=recorded_options(config))
    assert isinstance(reader, _Reader) and reader.planned == PLANNING_SCN
    chunk = plan.chunks[1]
    for snapshot in (str(PLANNING_SCN), None):  # the run's point, or "snapshot": false
        query, params = reader._query(Chunk(chunk.query_sql, chunk.params, snapshot=snapshot))
        assert query == ("SELECT o.id, o.note FROM orders AS OF SCN :dms_scn o "
                         "WHERE o.ROWID BETWEEN :dms_lo AND :dms_hi")
        assert params == {**chunk.params, "dms_scn": PLANNING_SCN}
    with pytest.raises(DmsError) as err:
        reader._query(Chunk(chunk.query_sql, chunk.params, snapshot="99000"))
    assert err.value.message == (
        f"the run's point in time is SCN 99000, but its chunks were planned at SCN "
        f"{PLANNING_SCN}: ROWID ranges hold only at the SCN they were measured at")


def test_snapshot_false_with_rowid_chunks_is_said_when_planned() -> None:
    backend = backend_for("ORACLE")
    config = settings(snapshot=False)
    plan_source(_Planning(FakeOracle(dictionary())), QUERY, config, ParamStyle.NAMED)
    assert backend.consistency_note(config.values, 4) == (
        f"ROWID chunks read AS OF SCN {PLANNING_SCN} even with snapshot false: their ranges "
        "list the table's extents as of that SCN only")
    assert backend.consistency_note(settings().values, 4) is None
    assert backend.consistency_note({**config.values, "snapshot": True}, 4) is None


# -- a lost SCN is SnapshotGone -----------------------------------------------------

LOST = [
    (1555, 'snapshot too old: rollback segment number 9 with name "_SYSSMU9$" too small'),
    (8181, "specified number is not a valid system change number"),
    (1466, "unable to read data - table definition has changed"),
    (8176, "consistent read failure; rollback data not available"),
]
ROWID_CHUNK = Chunk("SELECT o.id FROM orders o WHERE o.ROWID BETWEEN :dms_lo AND :dms_hi",
                    {"dms_lo": RANGES[0][0], "dms_hi": RANGES[0][1]},
                    snapshot=str(PLANNING_SCN))


def reader_on(conn: FakeOracle, planned: int | None = PLANNING_SCN) -> _Reader:
    reader = _Reader(ENDPOINT, 4000, planned)
    reader._conn = conn
    return reader


def read_rows(reader: _Reader, chunk: Chunk) -> list[dict[str, Any]]:
    with reader.rows(chunk, 10) as batches:
        return [row for batch in batches for row in batch]


@pytest.mark.parametrize(("code", "text"), LOST)
def test_each_lost_scn_error_of_a_pinned_read_is_snapshot_gone(code: int, text: str) -> None:
    reader = reader_on(FakeOracle([("AS OF SCN", ora_error(code, text))]))
    with pytest.raises(SnapshotGone) as gone:
        read_rows(reader, ROWID_CHUNK)
    assert str(gone.value) == (
        f"Oracle can no longer read SCN {PLANNING_SCN}: ORA-{code:05d}: {text} (the run's "
        "ROWID chunks were measured at that SCN, so a resume reads at it again: start a new "
        "run, with more UNDO_RETENTION or a chunk key)")
    # The COPY path too: the describe probe is the first statement it sends.
    copier = reader_on(FakeOracle([("AS OF SCN", ora_error(code, text))]))
    with pytest.raises(SnapshotGone), copier.copy(ROWID_CHUNK) as blocks:
        list(blocks)


def test_a_key_chunks_lost_scn_is_snapshot_gone_and_a_resume_takes_a_new_one() -> None:
    reader = reader_on(FakeOracle([("AS OF SCN", ora_error(*LOST[0]))]), planned=None)
    with pytest.raises(SnapshotGone) as gone:
        read_rows(reader, Chunk("SELECT o.id FROM orders o WHERE o.id < :dms_hi",
                                {"dms_hi": 10}, snapshot="77"))
    assert str(gone.value).startswith("Oracle can no longer read SCN 77: ORA-01555:")
    assert str(gone.value).endswith("(a resume reads the chunks left as of a new SCN)")


def test_the_scn_lost_while_rows_stream_is_snapshot_gone() -> None:
    class Streaming(FakeCursor):
        def fetchmany(self, n: int) -> list[tuple[Any, ...]]:
            if self.rows:
                return super().fetchmany(n)
            raise ora_error(*LOST[0])  # after two batches

    conn = FakeOracle([("AS OF SCN", [(1,)] * 15)])
    conn.cursor = lambda: Streaming(conn)  # type: ignore[method-assign]
    with pytest.raises(SnapshotGone):
        read_rows(reader_on(conn), ROWID_CHUNK)


def test_the_same_codes_without_the_runs_scn_and_other_errors_stay_as_they_are() -> None:
    unpinned = reader_on(FakeOracle([("SELECT", ora_error(*LOST[1]))]), planned=None)
    with pytest.raises(oracledb.DatabaseError):  # the user's own AS OF, say
        read_rows(unpinned, Chunk("SELECT id FROM orders AS OF SCN 5", {}))
    other = reader_on(FakeOracle([("AS OF SCN", ora_error(942, "table or view does not exist"))]))
    with pytest.raises(oracledb.DatabaseError) as err:
        read_rows(other, ROWID_CHUNK)
    assert not isinstance(err.value, SnapshotGone)


class _ReadingMover:
    """The part of a worker's mover that matters here: read the chunk through the
    Oracle reader (the target side does not take part in a lost source SCN)."""

    def __init__(self, reader: _Reader) -> None:
        self.reader = reader
        self.recovered: list[bool] = []

    def move(self, task: Any) -> Moved:
        rows = read_rows(self.reader, Chunk(task.query_sql, task.params,
                                            snapshot=task.snapshot_id))
        return Moved(len(rows), None)

    def recover(self, broken: bool) -> None:
        self.recovered.append(broken)


def test_a_worker_puts_the_chunk_back_and_stops_as_for_a_postgresql_snapshot() -> None:
    store = LocalStore()
    store.add_chunks([(1, ROWID_CHUNK.query_sql, dict(ROWID_CHUNK.params), 1_000),
                      (2, ROWID_CHUNK.query_sql, dict(ROWID_CHUNK.params), 1_000)])
    store.set_snapshot(str(PLANNING_SCN))
    mover = _ReadingMover(reader_on(FakeOracle([("AS OF SCN", ora_error(*LOST[0]))])))
    report = run_worker(store.run_id, store, LazyMover(lambda: mover), RetryPolicy())  # type: ignore[arg-type,return-value]
    first, second = store.records()
    assert (first.state, first.sqlstate, first.attempts) == ("PENDING", "22023", 1)
    assert first.last_error is not None
    assert first.last_error.startswith(f"snapshot gone: Oracle can no longer read SCN "
                                       f"{PLANNING_SCN}: ORA-01555: snapshot too old")
    assert (second.state, second.attempts) == ("PENDING", 0)  # the worker stopped
    assert report.stopped_by is not None and report.stopped_by.startswith("snapshot gone:")


def test_rowid_bounds_of_a_view_reads_neither_counts_nor_extents() -> None:
    conn = FakeOracle(dictionary(stats=[]))
    stats = OracleBackend.rowid_bounds(OracleSource(conn), "ORDERS_V", 1_000, scn=9)
    assert (tuple(stats.rowid_ranges), stats.row_count, stats.point) == ((), None, "9")
    assert len(conn.ran) == 1

