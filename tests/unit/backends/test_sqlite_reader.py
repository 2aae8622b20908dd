"""SQLiteReader on real files: chunks, one state of the file, busy files, cancel, memory.

No PostgreSQL here: the COPY text is checked line by line (the integration
test loads it into PostgreSQL).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

from dms_pkg.backends import sqlite as lite
from dms_pkg.chunking.plan import ChunkPlan
from dms_pkg.chunking.planner import plan_chunks
from dms_pkg.engine.columns import SourceColumn
from dms_pkg.errors import DmsError
from tests.unit.backends.sqlite_files import make_db

QUERY = "SELECT id, k, v, b FROM t"
DDL = "CREATE TABLE t (id INTEGER PRIMARY KEY, k INTEGER, v TEXT, b BLOB)"


def rows(n: int) -> list[tuple[int, int | None, str, bytes]]:
    return [(i, None if i % 11 == 0 else i % 97, f"v{i}\tx", bytes([i % 256, 0]))
            for i in range(1, n + 1)]


def lines(reader: lite.SQLiteReader, sql: str, params: dict[str, object] | None = None,
          columns: list[SourceColumn] | None = None) -> list[bytes]:
    with reader.stream(sql, params, columns) as blocks:
        return b"".join(blocks).splitlines()


def chunked(reader: lite.SQLiteReader, plan: ChunkPlan,
            columns: list[SourceColumn]) -> Counter[bytes]:
    seen: Counter[bytes] = Counter()
    for chunk in plan.chunks:
        seen.update(lines(reader, chunk.query_sql, dict(chunk.params), columns))
    return seen


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return make_db(tmp_path / "t.sqlite", DDL, rows(5000), table="t")


def test_many_chunks_through_one_reader_give_every_row_exactly_once(db: Path) -> None:
    with lite.SQLiteReader(db) as reader:
        columns = reader.describe(QUERY)
        whole = Counter(lines(reader, QUERY, None, columns))
        assert sum(whole.values()) == 5000 and len(whole) == 5000
        # k has NULLs and ties; id is the primary key
        for key, n in (("k", 7), (None, 9)):
            plan = plan_chunks(reader.source(), QUERY, key=key, n_chunks=n)
            assert len(plan.chunks) >= 5, plan
            assert chunked(reader, plan, columns) == whole
    assert b"1\t1\tv1\\tx\t\\\\x0100" in whole


def _change_every_chunk(path: Path, *, timeout: float = 5.0) -> None:
    """Insert, update and delete rows across the whole key range, and commit."""
    writer = sqlite3.connect(path, timeout=timeout)
    try:
        writer.execute("INSERT INTO t VALUES (100000, 1, 'new', x'00')")
        writer.execute("UPDATE t SET v = 'changed' WHERE id % 10 = 3")
        writer.execute("DELETE FROM t WHERE id % 10 = 7")
        writer.commit()
    finally:
        writer.close()


def test_wal_a_commit_between_two_chunks_is_not_seen_by_the_later_chunks(tmp_path: Path
                                                                         ) -> None:
    path = make_db(tmp_path / "wal.sqlite", DDL, rows(3000), table="t", journal="wal")
    with lite.SQLiteReader(path) as reader:
        columns = reader.describe(QUERY)
        before = Counter(lines(reader, QUERY, None, columns))
        plan = plan_chunks(reader.source(), QUERY, n_chunks=6)
        first, rest = plan.chunks[0], plan.chunks[1:]
        seen = Counter(lines(reader, first.query_sql, dict(first.params), columns))
        _change_every_chunk(path)  # WAL: the writer commits beside the reader
        for chunk in rest:
            seen.update(lines(reader, chunk.query_sql, dict(chunk.params), columns))
        assert seen == before
    with lite.SQLiteReader(path) as later:
        after = Counter(lines(later, QUERY, None, columns))
    assert sum(after.values()) == 3000 + 1 - 300 and after != before


def test_rollback_journal_a_writer_cannot_commit_while_the_reader_is_open(tmp_path: Path
                                                                          ) -> None:
    path = make_db(tmp_path / "journal.sqlite", DDL, rows(3000), table="t", journal="delete")
    with lite.SQLiteReader(path) as reader:
        columns = reader.describe(QUERY)
        before = Counter(lines(reader, QUERY, None, columns))
        plan = plan_chunks(reader.source(), QUERY, n_chunks=6)
        seen = Counter(lines(reader, plan.chunks[0].query_sql, dict(plan.chunks[0].params),
                             columns))
        with pytest.raises(sqlite3.OperationalError) as err:
            _change_every_chunk(path, timeout=0.1)
        assert lite.classify(err.value) == ("55P03", "database is locked", True)
        for chunk in plan.chunks[1:]:
            seen.update(lines(reader, chunk.query_sql, dict(chunk.params), columns))
        assert seen == before
    _change_every_chunk(path, timeout=0.1)  # the reader has let go
    with lite.SQLiteReader(path) as later:
        assert sum(Counter(lines(later, QUERY, None, columns)).values()) == 3000 + 1 - 300


def test_a_file_a_writer_holds_is_busy_and_worth_a_retry(db: Path) -> None:
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(lite.SQLiteSourceError) as err:
            lite.SQLiteReader(db, busy_timeout=0.05)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert (err.value.sqlstate, err.value.message, err.value.transient) == (
        "55P03", f"SQLite file {db} is locked by another connection (database is locked)", True)
    assert err.value.hint is not None and "WAL mode" in err.value.hint
    assert lite.classify(err.value) == ("55P03", err.value.message, True)
    with lite.SQLiteReader(db) as reader:  # free again
        assert len(lines(reader, QUERY)) == 5000


def test_cancel_interrupts_the_running_chunk_as_a_stop(db: Path) -> None:
    endless = ("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "
               "SELECT count(*) FROM n")
    failure: list[BaseException] = []
    with lite.SQLiteReader(db) as reader:
        columns = [SourceColumn("count", 0, "bigint")]

        def run() -> None:
            try:
                lines(reader, endless, None, columns)
            except BaseException as exc:
                failure.append(exc)

        worker = threading.Thread(target=run)
        worker.start()
        while worker.is_alive():  # interrupt() only reaches a statement that is running
            reader.cancel()
            worker.join(0.01)
        assert len(failure) == 1
        assert lite.classify(failure[0]) == ("57014", "interrupted", False)
        assert len(lines(reader, QUERY, None, reader.describe(QUERY))) == 5000  # still usable


def test_errors_in_a_chunk_query_are_classified_with_sqlites_message(db: Path) -> None:
    with lite.SQLiteReader(db) as reader:
        cases: list[tuple[str, dict[str, object] | None, str, str]] = [
            ("SELECT id FROM nope", None, "42P01", "no such table: nope"),
            ("SELECT id FROM t WHERE", None, "42601", "incomplete input"),
            ("SELECT id FROM t WHERE id < :dms_hi", {}, "42P02",
             "You did not supply a value for binding parameter :dms_hi."),
        ]
        columns = [SourceColumn("id", 0, "bigint")]
        for sql, params, code, message in cases:
            with pytest.raises(DmsError) as err:
                lines(reader, sql, params, columns)
            assert lite.classify(err.value) == (code, message, False)
        with pytest.raises(DmsError) as err:
            lines(reader, "SELECT id, v FROM t", None, columns)
        assert (err.value.sqlstate, err.value.message) == (
            "42804", "the SQLite query returns 2 columns but 1 were described")
        reader.close()
        with pytest.raises(DmsError) as err:
            lines(reader, QUERY)
        assert err.value.message == f"the reader of SQLite file {db} is closed"


def test_wide_rows_come_in_blocks_near_the_block_size(tmp_path: Path) -> None:
    blob = 100_000
    path = make_db(tmp_path / "wide.sqlite", "CREATE TABLE w (id INTEGER PRIMARY KEY, b BLOB)",
                   [(i, bytes([i % 256]) * blob) for i in range(300)], table="w")
    block_bytes = 1 << 20
    line = 2 * blob + 10  # hex doubles a blob
    with lite.SQLiteReader(path, block_bytes=block_bytes) as reader:
        with reader.stream("SELECT id, b FROM w") as blocks:
            sizes = [len(block) for block in blocks]
        assert reader.rows == 300
    # a first batch of 16 rows measures them; every later block is near block_bytes
    assert sum(sizes) > 300 * 2 * blob
    assert sizes[0] == pytest.approx(16 * line, rel=0.01)
    assert max(sizes[1:]) <= block_bytes + line, sizes


# A fresh interpreter, so that its memory is the reader's alone.  Its peak
# RSS (VmHWM) is reset to the current RSS just before the stream, and read
# after it.  The table's COPY text is ~96 MB, its rows as Python objects far more.
_MEASURE = r"""
import json, sys
from dms_pkg.backends.sqlite import SQLiteReader

def status(field):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))

reader = SQLiteReader(sys.argv[1])
columns = reader.describe("SELECT * FROM big")
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # VmHWM := VmRSS
before = status("VmRSS")
lines = size = total = 0
with reader.stream("SELECT * FROM big", columns=columns) as blocks:
    for block in blocks:
        lines += block.count(b"\n")
        size += len(block)
        total += sum(int(row.split(b"\t", 1)[0]) for row in block.splitlines())
print(json.dumps({"rows": lines, "bytes": size, "id_sum": total, "rss_kib": before,
                  "growth_kib": status("VmHWM") - before, "rows_read": reader.rows}))
"""


def test_a_million_rows_go_through_the_reader_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.sqlite"
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript("""
            CREATE TABLE big (id INTEGER PRIMARY KEY, n INTEGER, r REAL, t TEXT, b BLOB);
            WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 1000000)
            INSERT INTO big SELECT i, i * 7, i / 3.0,
                printf('row %d with some text %08d and a tail', i, i), randomblob(8) FROM s;""")
    result = subprocess.run([sys.executable, "-c", _MEASURE, str(path)], check=True,
                            capture_output=True, text=True, cwd=Path(__file__).parents[3])
    measured = json.loads(result.stdout)
    print(f"1M rows through SQLiteReader: {measured}")
    assert measured["rows"] == measured["rows_read"] == 1_000_000
    assert measured["id_sum"] == 1_000_000 * 1_000_001 // 2
    assert measured["bytes"] > 90_000_000
    # Holding the rows or the text would cost hundreds of MiB; one batch is a few.
    assert measured["growth_kib"] < 32 * 1024, measured
