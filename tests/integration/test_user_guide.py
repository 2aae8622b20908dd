"""The user guide's code, as our users copy it, against real databases (issue 15).

"User Guide: Parallel Processing for Mapper Module" (the seed project's
docs) shows Quick Start Option 1 and Option 2, Examples 1-3 and a
"Handling Failures" snippet.  Each is quoted below verbatim, except that
``backend.modules.mapper[.parallel_query_executor]`` is now ``dms_pkg``, and
run with ``exec`` so that every example keeps its own ``execute_job``.
Example 2 reads a global ``session_params``: it is this module's.

Each test checks what the example does to the data (row counts and content
checksums of source and target) and what it returns or prints.

The guide's "Configuration" section has users set the MAPPER_* environment
variables; the tests do (``guide_environment``), with a parallel threshold
that makes tables of 60,000 rows split, so the examples run in parallel here.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dms_pkg import execute_query_parallel
from dms_pkg.sample_data import CHECKSUM_SQL, checksum, create_empty_orders, create_orders
from tests.integration.conftest import Cluster, DatabaseFactory

ROWS = 60_000
session_params: dict[str, Any] = {"batch_id": 20260115}  # Example 2's global

OPTION_1 = '''
from dms_pkg import execute_query_parallel

def execute_job(metadata_conn, source_conn, target_conn, session_params):
    # Your source SQL query
    source_sql = """
        SELECT * FROM large_source_table 
        WHERE load_date >= CURRENT_DATE - INTERVAL '30 days'
        ORDER BY id
    """
    
    # Execute in parallel
    result = execute_query_parallel(
        source_conn=source_conn,
        source_sql=source_sql,
        target_conn=target_conn,
        target_schema="target_schema",
        target_table="target_table"
    )
    
    # Check results
    print(f"Processed {result.total_rows_processed:,} rows")
    print(f"Successful: {result.total_rows_successful:,}")
    print(f"Failed: {result.total_rows_failed:,}")
    
    return {
        "status": "SUCCESS",
        "rows_processed": result.total_rows_processed
    }
'''  # noqa: W291, W293 -- the guide's own whitespace

OPTION_2 = '''
from dms_pkg import (
    ParallelProcessor,
    RetryHandler,
    RetryConfig,
    ProgressTracker,
    create_progress_callback
)

def execute_job(metadata_conn, source_conn, target_conn, session_params):
    # Configure retry
    retry_handler = RetryHandler(RetryConfig(max_retries=3))
    
    # Configure progress tracking
    progress_tracker = ProgressTracker(
        total_chunks=10,  # Will be calculated automatically
        callback=create_progress_callback("My Job")
    )
    
    # Create processor
    processor = ParallelProcessor(
        max_workers=4,
        chunk_size=50000,
        retry_handler=retry_handler,
        progress_tracker=progress_tracker
    )
    
    # Execute
    result = processor.process_mapper_job(
        source_conn=source_conn,
        source_sql="SELECT * FROM large_table ORDER BY id",
        target_conn=target_conn,
        target_schema="target_schema",
        target_table="target_table"
    )
    
    return {"status": "SUCCESS", "rows": result.total_rows_processed}
'''  # noqa: W293

EXAMPLE_1 = '''
from dms_pkg import execute_query_parallel

def execute_job(metadata_conn, source_conn, target_conn, session_params):
    result = execute_query_parallel(
        source_conn=source_conn,
        source_sql="SELECT * FROM orders WHERE order_date >= '2024-01-01' ORDER BY order_id",
        target_conn=target_conn,
        target_schema="dw",
        target_table="fact_orders"
    )
    
    return {
        "status": "SUCCESS" if result.total_rows_failed == 0 else "PARTIAL",
        "rows_processed": result.total_rows_processed,
        "rows_successful": result.total_rows_successful,
        "rows_failed": result.total_rows_failed
    }
'''  # noqa: W293

EXAMPLE_2 = '''
from datetime import datetime
from dms_pkg import execute_query_parallel

def transform_order_data(rows):
    """Add processing metadata to each row"""
    transformed = []
    process_time = datetime.now()
    
    for row in rows:
        new_row = dict(row)
        new_row['processed_at'] = process_time
        new_row['process_batch_id'] = session_params.get('batch_id')
        transformed.append(new_row)
    
    return transformed

def execute_job(metadata_conn, source_conn, target_conn, session_params):
    result = execute_query_parallel(
        source_conn=source_conn,
        source_sql="SELECT * FROM orders ORDER BY order_id",
        transformation_func=transform_order_data,
        target_conn=target_conn,
        target_schema="dw",
        target_table="fact_orders"
    )
    
    return {"status": "SUCCESS", "rows": result.total_rows_processed}
'''  # noqa: W293

EXAMPLE_3 = '''
from dms_pkg import (
    execute_query_parallel,
    RetryHandler,
    RetryConfig
)

def execute_job(metadata_conn, source_conn, target_conn, session_params):
    # Custom retry configuration for unreliable network
    retry_handler = RetryHandler(RetryConfig(
        max_retries=5,
        initial_delay=2.0,
        max_delay=120.0
    ))
    
    result = execute_query_parallel(
        source_conn=source_conn,
        source_sql="SELECT * FROM remote_table ORDER BY id",
        target_conn=target_conn,
        target_schema="target",
        target_table="table",
        max_workers=2,  # Conservative for unreliable network
        chunk_size=25000,  # Smaller chunks for network issues
        enable_retry=True,
        max_retries=5
    )
    
    return {"status": "SUCCESS", "rows": result.total_rows_processed}
'''  # noqa: W293

# "Handling Failures", without its first line (``result = execute_query_parallel(...)``,
# a literal ellipsis): the test binds ``result``.
HANDLING_FAILURES = '''
if result.total_rows_failed > 0:
    print(f"Warning: {result.total_rows_failed:,} rows failed")
    print(f"Failed chunks: {result.chunks_failed}")
    
    # Check individual chunk errors
    for error in result.chunk_errors:
        print(f"Chunk {error['chunk_id']}: {error['error']}")

if result.chunks_failed > 0:
    print(f"Error: {result.chunks_failed} chunks failed completely")
'''  # noqa: W293

ORDERS = ("order_id bigint PRIMARY KEY, order_date date NOT NULL, customer_id integer NOT NULL,"
          " amount numeric(12,2) NOT NULL, status text")
BAD_ORDER = 4242  # the order a CHECK of one target refuses


def run_guide(code: str, name: str, **names: Any) -> dict[str, Any]:
    """Execute one of the guide's snippets in a namespace of its own."""
    namespace: dict[str, Any] = dict(names)
    exec(compile(code, f"<user guide: {name}>", "exec"), namespace)
    return namespace


def query_checksum(conn: psycopg.Connection[Any], query: str) -> tuple[int, int]:
    """sample_data.checksum of a query's rows instead of a table's."""
    row = conn.execute(sql.SQL(CHECKSUM_SQL).format(sql.SQL(f"({query})"))).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


@pytest.fixture(autouse=True)
def guide_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guide's "Environment Variables", with a threshold for 60,000-row tables."""
    for name, value in {"MAPPER_PARALLEL_ENABLED": "true", "MAPPER_MAX_WORKERS": "4",
                        "MAPPER_CHUNK_SIZE": "20000", "MAPPER_MIN_ROWS_FOR_PARALLEL": "10000",
                        "MAPPER_PARALLEL_RETRY_ENABLED": "true",
                        "MAPPER_PARALLEL_MAX_RETRIES": "3",
                        "MAPPER_PARALLEL_PROGRESS_ENABLED": "true"}.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def source(cluster: Cluster, databases: DatabaseFactory) -> str:
    """The tables the examples read."""
    dsn = cluster.dsn(databases.create())
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE large_source_table (id bigint PRIMARY KEY, load_date date"
                     " NOT NULL, amount numeric(12,2) NOT NULL, note text)")
        # one row in ten is older than 30 days
        conn.execute("INSERT INTO large_source_table SELECT g, CURRENT_DATE - CASE WHEN"
                     " g %% 10 = 0 THEN 31 + g %% 300 ELSE g %% 31 END,"
                     " (g %% 100000) / 100.0, CASE WHEN g %% 7 <> 0 THEN 'note ' || md5(g::text)"
                     " END FROM generate_series(1, %s) g", [ROWS])
        create_orders(conn, ROWS, table="large_table")
        create_orders(conn, ROWS, table="remote_table")
        conn.execute(f"CREATE TABLE orders ({ORDERS})")
        # 2023 and 2024-2025 orders
        conn.execute("INSERT INTO orders SELECT g, date '2023-12-01' + g %% 500,"
                     " 1 + g %% 997, (g %% 50000) / 100.0,"
                     " (ARRAY['new','paid','shipped',NULL])[1 + g %% 4]"
                     " FROM generate_series(1, %s) g", [ROWS])
        conn.execute("ANALYZE")
    return dsn


@pytest.fixture
def target(cluster: Cluster, databases: DatabaseFactory) -> Any:
    """A fresh target database per example: ``target(ddl...)`` runs its DDL."""

    def make(*ddl: str) -> str:
        dsn = cluster.dsn(databases.create())
        with psycopg.connect(dsn, autocommit=True) as conn:
            for statement in ddl:
                conn.execute(statement)
        return dsn

    return make


def test_quick_start_option_1(source: str, target: Any,
                              capsys: pytest.CaptureFixture[str]) -> None:
    dst_dsn = target("CREATE SCHEMA target_schema",
                     "CREATE TABLE target_schema.target_table (id bigint PRIMARY KEY,"
                     " load_date date NOT NULL, amount numeric(12,2) NOT NULL, note text)")
    guide = run_guide(OPTION_1, "Quick Start, Option 1")
    with psycopg.connect(source) as src, psycopg.connect(dst_dsn) as dst:
        returned = guide["execute_job"](None, src, dst, session_params)
        wanted = query_checksum(src, "SELECT * FROM large_source_table WHERE load_date >="
                                " CURRENT_DATE - INTERVAL '30 days'")
        assert checksum(dst, "target_schema", "target_table") == wanted
    rows = wanted[0]
    assert 0.85 * ROWS < rows < ROWS  # the filter kept most, not all
    assert returned == {"status": "SUCCESS", "rows_processed": rows}
    assert capsys.readouterr().out.splitlines() == [
        f"Processed {rows:,} rows", f"Successful: {rows:,}", "Failed: 0"]


def test_quick_start_option_2(source: str, target: Any,
                              capsys: pytest.CaptureFixture[str]) -> None:
    dst_dsn = target("CREATE SCHEMA target_schema")
    with psycopg.connect(dst_dsn, autocommit=True) as dst:
        create_empty_orders(dst, schema="target_schema", table="target_table")
    guide = run_guide(OPTION_2, "Quick Start, Option 2")
    with psycopg.connect(source) as src, psycopg.connect(dst_dsn) as dst:
        returned = guide["execute_job"](None, src, dst, session_params)
        assert checksum(dst, "target_schema", "target_table") == checksum(
            src, "public", "large_table")
    assert returned == {"status": "SUCCESS", "rows": ROWS}
    # create_progress_callback("My Job") printed the progress; the last line is the
    # end, of a run split in chunks of 50,000 rows
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(line.startswith("My Job: ") for line in lines)
    end = re.match(r"My Job: 100\.0% \((\d+)/(\d+) chunks, 60,000 rows, ", lines[-1])
    assert end is not None and end[1] == end[2] and int(end[1]) >= 2


def test_example_1_simple_parallel_load(source: str, target: Any) -> None:
    dst_dsn = target("CREATE SCHEMA dw", f"CREATE TABLE dw.fact_orders ({ORDERS})")
    guide = run_guide(EXAMPLE_1, "Example 1")
    query = "SELECT * FROM orders WHERE order_date >= '2024-01-01'"
    with psycopg.connect(source) as src, psycopg.connect(dst_dsn) as dst:
        returned = guide["execute_job"](None, src, dst, session_params)
        wanted = query_checksum(src, query)
        assert checksum(dst, "dw", "fact_orders") == wanted
    assert 0 < wanted[0] < ROWS
    assert returned == {"status": "SUCCESS", "rows_processed": wanted[0],
                        "rows_successful": wanted[0], "rows_failed": 0}


def test_example_1_partial_and_handling_failures(source: str, target: Any,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """One order breaks a CHECK of the target: its chunk fails, the rest loads, and the
    rows reported failed are exactly the rows that did not arrive."""
    dst_dsn = target("CREATE SCHEMA dw", f"CREATE TABLE dw.fact_orders ({ORDERS},"
                     f" CONSTRAINT no_bad_order CHECK (order_id <> {BAD_ORDER}))")
    guide = run_guide(EXAMPLE_1, "Example 1")
    query = "SELECT * FROM orders WHERE order_date >= '2024-01-01'"
    with psycopg.connect(source) as src, psycopg.connect(dst_dsn) as dst:
        returned = guide["execute_job"](None, src, dst, session_params)
        wanted = {r[0] for r in src.execute(f"SELECT order_id FROM ({query}) q").fetchall()}
        loaded = {r[0] for r in dst.execute("SELECT order_id FROM dw.fact_orders").fetchall()}
        assert loaded < wanted and BAD_ORDER in wanted - loaded
        assert checksum(dst, "dw", "fact_orders") == query_checksum(
            src, f"{query} AND order_id NOT IN ({', '.join(map(str, wanted - loaded))})")
    missing = len(wanted - loaded)
    assert returned == {"status": "PARTIAL", "rows_processed": len(wanted),
                        "rows_successful": len(loaded), "rows_failed": missing}

    # the guide's "Handling Failures" on the same run
    with psycopg.connect(dst_dsn, autocommit=True) as dst:
        dst.execute("TRUNCATE dw.fact_orders")
    result = execute_query_parallel(
        source_conn=source, source_sql=query + " ORDER BY order_id", target_conn=dst_dsn,
        target_schema="dw", target_table="fact_orders")
    capsys.readouterr()
    run_guide(HANDLING_FAILURES, "Handling Failures", result=result)
    [error] = result.chunk_errors
    assert capsys.readouterr().out.splitlines() == [
        f"Warning: {missing:,} rows failed", "Failed chunks: 1",
        f"Chunk {error['chunk_id']}: {error['error']}", "Error: 1 chunks failed completely"]
    assert error["error"].startswith('new row for relation "fact_orders" violates check '
                                     'constraint "no_bad_order"')


def test_example_2_with_transformation(source: str, target: Any) -> None:
    dst_dsn = target("CREATE SCHEMA dw", f"CREATE TABLE dw.fact_orders ({ORDERS},"
                     " processed_at timestamp NOT NULL, process_batch_id integer NOT NULL)")
    guide = run_guide(EXAMPLE_2, "Example 2", session_params=session_params)
    with psycopg.connect(source) as src, psycopg.connect(dst_dsn) as dst:
        returned = guide["execute_job"](None, src, dst, session_params)
        assert query_checksum(dst, "SELECT order_id, order_date, customer_id, amount, status"
                              " FROM dw.fact_orders") == checksum(src, "public", "orders")
        stamps = dst.execute("SELECT count(*) FILTER (WHERE processed_at IS NULL),"
                             " min(process_batch_id), max(process_batch_id)"
                             " FROM dw.fact_orders").fetchone()
    assert returned == {"status": "SUCCESS", "rows": ROWS}
    assert stamps == (0, session_params["batch_id"], session_params["batch_id"])


def test_example_3_custom_configuration(source: str, target: Any) -> None:
    dst_dsn = target("CREATE SCHEMA target")
    with psycopg.connect(dst_dsn, autocommit=True) as dst:
        create_empty_orders(dst, schema="target", table="table")  # a reserved word
    guide = run_guide(EXAMPLE_3, "Example 3")
    with psycopg.connect(source) as src, psycopg.connect(dst_dsn) as dst:
        returned = guide["execute_job"](None, src, dst, session_params)
        assert checksum(dst, "target", "table") == checksum(src, "public", "remote_table")
    assert returned == {"status": "SUCCESS", "rows": ROWS}
