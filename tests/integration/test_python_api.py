"""``dms_pkg.execute_query_parallel``: the user guide's Python API on real databases."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from dms_pkg import execute_query_parallel
from dms_pkg.engine.api import ProgressSnapshot
from dms_pkg.errors import DmsError
from dms_pkg.sample_data import checksum, create_empty_orders, create_orders
from tests.integration.conftest import Cluster, DatabaseFactory

ROWS = 150_000


@pytest.fixture(scope="module")
def dbs(cluster: Cluster, databases: DatabaseFactory) -> dict[str, str]:
    source, target = databases.create(), databases.create()
    with psycopg.connect(cluster.dsn(source), autocommit=True) as conn:
        create_orders(conn, ROWS)
    return {"source": cluster.dsn(source), "target": cluster.dsn(target)}


def test_result_fields_and_progress_callback(dbs: dict[str, str]) -> None:
    snapshots: list[ProgressSnapshot] = []
    with psycopg.connect(dbs["source"]) as src, psycopg.connect(dbs["target"]) as dst:
        create_empty_orders(dst)
        dst.commit()
        result = execute_query_parallel(
            src, "SELECT * FROM orders", target_conn=dst, target_schema="public",
            target_table="orders", max_workers=2, chunk_size=10_000,
            progress_callback=snapshots.append,
        )
        assert checksum(dst, "public", "orders") == checksum(src, "public", "orders")
    assert result.total_rows_processed == result.total_rows_successful == ROWS
    assert result.total_rows_failed == 0
    assert result.chunks_total == result.chunks_succeeded >= 15
    assert result.chunks_failed == 0 and result.chunk_errors == []
    assert result.processing_time > 0
    assert (result.path, result.workers) == ("copy_binary", 2)
    # called, more than once, with percentages that never go down and end at 100
    percents = [s.progress_percentage for s in snapshots]
    assert len(percents) >= 2
    assert percents == sorted(percents)
    assert percents[-1] == 100.0
    assert snapshots[-1].total_rows_processed == ROWS
    assert snapshots[-1].estimated_remaining_time == 0.0


def test_transformation_and_failed_chunks_are_reported(dbs: dict[str, str]) -> None:
    def shout(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"id": r["id"], "status": r["status"].upper()} for r in rows]

    with psycopg.connect(dbs["target"], autocommit=True) as dst:
        dst.execute("DROP TABLE IF EXISTS shouted")
        dst.execute("CREATE TABLE shouted (id bigint PRIMARY KEY, status text "
                    "CHECK (status <> 'CANCELLED'))")
    result = execute_query_parallel(
        dbs["source"], "SELECT id, status FROM orders",
        transformation_func=shout, target_conn=dbs["target"], target_schema="public",
        target_table="shouted", max_workers=2, chunks=4, min_rows_for_parallel=0,
    )
    assert result.path == "rows"
    # every real chunk holds a cancelled order, so each fails with the CHECK message
    assert (result.chunks_total, result.chunks_failed) == (5, 4)  # and the NULL-key chunk
    assert result.total_rows_successful == 0
    assert result.total_rows_failed > 0
    assert {e["sqlstate"] for e in result.chunk_errors} == {"23514"}
    assert all(e["attempts"] == 1 for e in result.chunk_errors)
    assert 'violates check constraint "shouted_status_check"' in result.chunk_errors[0]["error"]


def test_without_target_the_rows_come_back(dbs: dict[str, str]) -> None:
    result = execute_query_parallel(
        dbs["source"], "SELECT id, status FROM orders WHERE id <= 1000",
        transformation_func=lambda rows: [r for r in rows if r["status"] == "paid"],
        min_rows_for_parallel=0, max_workers=2, chunks=3,
    )
    with psycopg.connect(dbs["source"]) as src:
        expected = src.execute(
            "SELECT id, status FROM orders WHERE id <= 1000 AND status = 'paid' ORDER BY id"
        ).fetchall()
    assert result.rows is not None
    assert sorted((r["id"], r["status"]) for r in result.rows) == expected


def test_bad_arguments(dbs: dict[str, str]) -> None:
    with pytest.raises(DmsError) as err:
        execute_query_parallel(dbs["source"], "SELECT 1", max_workers=0)
    assert err.value.message == "max_workers must be from 1 to 64, got 0 (from arguments)"
    with pytest.raises(DmsError) as err:
        execute_query_parallel(dbs["source"], "SELECT 1", max_worker=2)
    assert err.value.message == 'unknown parameter "max_worker" in options; did you mean ' \
        '"max_workers"?'
    with pytest.raises(DmsError) as err:
        execute_query_parallel(42, "SELECT 1")
    assert err.value.message.startswith("source_conn must be a psycopg connection")
