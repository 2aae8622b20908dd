"""``--json`` shapes (docs/json.md) that need no server."""

from __future__ import annotations

import datetime
import decimal
import json

import pytest

from dms_pkg import cli_json
from dms_pkg.cli import main


def test_plan_json_is_the_documented_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["plan", "--sql", "SELECT * FROM orders WHERE amount > 5", "--key", "id",
                 "--chunks", "3", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"kind", "version", "strategy", "dialect", "driving_table", "key",
                        "refused_reason", "notes", "chunks"}
    assert (out["kind"], out["version"], out["driving_table"], out["key"]) == (
        "plan", 1, "orders", "id")
    assert [c["chunk_no"] for c in out["chunks"]] == [1, 2, 3]
    for chunk in out["chunks"]:
        assert set(chunk) == {"chunk_no", "kind", "estimated_rows", "lo", "hi", "predicate",
                              "params"}
        assert ":" in chunk["predicate"] and isinstance(chunk["params"], dict)


def test_a_query_that_cannot_be_split_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--sql", "SELECT * FROM orders LIMIT 10", "--key", "id", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["strategy"] == "single" and "LIMIT" in out["refused_reason"]
    assert [c["predicate"] for c in out["chunks"]] == [None]


def test_values_are_json_native() -> None:
    when = datetime.datetime(2026, 12, 2, 8, 1, 2, tzinfo=datetime.UTC)
    body = json.loads(cli_json.dumps("progress", cli_json.progress({
        "run_id": 7, "percent": decimal.Decimal("33.30"), "rows_done": decimal.Decimal("5"),
        "elapsed_s": 1.5, "notes": None, "started_at": when}, final=False)))
    assert body["percent"] == 33.3 and body["rows_done"] == 5
    assert body["notes"] == [] and body["final"] is False
    assert set(body) == {"kind", "version", *cli_json.PROGRESS_FIELDS, "final"}
    assert cli_json.ready({"t": when, "d": datetime.timedelta(seconds=90)}) == {
        "t": "2026-12-02T08:01:02+00:00", "d": 90.0}
