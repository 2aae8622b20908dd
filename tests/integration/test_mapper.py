"""Mapper jobs end to end, only through the packages' SQL calls (issue 7).

A DIM with two combinations (SCD2 and SCD1 columns in each) is defined,
made a job, run, its sources changed (10 % of keys) and extended, and run
again; the same mapping into a second table runs with 4 workers instead of 1
and must give the same content.  Then a FCT with a KEY checkpoint, a failing
combination whose refused rows land in DMS_JOBERR, and the schedules.
"""

from __future__ import annotations

import json
from collections import Counter
from itertools import pairwise
from typing import Any

import psycopg
import pytest

from tests.integration.conftest import Cluster, DatabaseFactory
from tests.integration.mapper_env import (
    CUSTOMERS,
    SOURCES,
    MapperEnv,
    define_dim,
    define_queries,
)

CHANGED = CUSTOMERS // 10  # 10 % of the keys change ...
NEW_KEYS = 500  # ... and new ones arrive
SERIAL = json.dumps({"max_workers": 1})
PARALLEL = json.dumps({"max_workers": 4, "min_rows_for_parallel": 0})
CONTENT = "cust_id, name, segment, credit_limit, rating, rwhkey, curflg"


@pytest.fixture(scope="module")
def env(cluster: Cluster, databases: DatabaseFactory) -> MapperEnv:
    environment = MapperEnv(cluster, databases.create(installed=True))
    with environment.connect() as conn:
        conn.execute(SOURCES)
    define_queries(environment)
    return environment


def change_sources(env: MapperEnv) -> dict[str, set[int]]:
    """10 % of the keys change, in five kinds; returns the keys of each kind."""
    changed = [k for k in range(1, CUSTOMERS + 1) if k % 10 == 0]
    assert len(changed) == CHANGED
    kinds: dict[str, set[int]] = {"name": set(), "segment": set(), "limit": set(),
                                  "rating": set(), "name+limit": set()}
    for i, key in enumerate(changed):
        kinds[list(kinds)[i % 5]].add(key)
    with env.connect() as conn:
        for kind, keys in kinds.items():
            ids = sorted(keys)
            if "name" in kind:
                conn.execute("UPDATE src.customer SET name = name || ' (renamed)'"
                             " WHERE cust_id = ANY(%s)", [ids])
            if kind == "segment":
                conn.execute("UPDATE src.customer SET segment = 'moved' WHERE cust_id = ANY(%s)",
                             [ids])
            if "limit" in kind:
                conn.execute("UPDATE src.credit SET credit_limit = credit_limit + 1"
                             " WHERE cust_id = ANY(%s)", [ids])
            if kind == "rating":
                conn.execute("UPDATE src.credit SET rating = 'downgraded' WHERE cust_id = ANY(%s)",
                             [ids])
        new = [CUSTOMERS + 1, CUSTOMERS + NEW_KEYS]
        conn.execute("INSERT INTO src.customer SELECT g, 'customer ' || g, 'new' FROM"
                     " generate_series(%s::int, %s::int) g", new)
        conn.execute("INSERT INTO src.credit SELECT g, 1000, 'r0' FROM"
                     " generate_series(%s::int, %s::int) g", new)
    return kinds


def joblog(env: MapperEnv, prcid: int) -> dict[str, Any]:
    rows = env.rows("SELECT srcrows, trgrows, errrows, status, msg FROM dms.dms_joblog"
                    " WHERE prcid = %s", [prcid])
    assert len(rows) == 1, rows  # one summary row per run
    return rows[0]


def snapshot(env: MapperEnv, table: str) -> dict[int, list[dict[str, Any]]]:
    by_key: dict[int, list[dict[str, Any]]] = {}
    for row in env.rows(f"SELECT skey, {CONTENT}, fromdt, todt, recupdt FROM dw.{table}"
                        " ORDER BY cust_id, skey"):
        by_key.setdefault(row["cust_id"], []).append(row)
    return by_key


def content(env: MapperEnv, table: str) -> Counter[tuple[Any, ...]]:
    """The target's rows without surrogate keys and timestamps."""
    return Counter(tuple(r.values()) for r in env.rows(f"SELECT {CONTENT} FROM dw.{table}"))


def current_matches_source(env: MapperEnv, table: str) -> None:
    mismatches = env.one(
        "SELECT count(*) FROM ((SELECT c.cust_id, c.name, c.segment, k.credit_limit, k.rating"
        " FROM src.customer c LEFT JOIN src.credit k USING (cust_id)) EXCEPT ALL"
        f" (SELECT cust_id, name, segment, credit_limit, rating FROM dw.{table}"
        " WHERE curflg = 'Y')) AS d")
    extra = env.one(f"SELECT count(*) FROM dw.{table} WHERE curflg = 'Y'") - env.one(
        "SELECT count(*) FROM src.customer")
    assert (mismatches, extra) == (0, 0)


def test_dim_with_two_combinations_scd2_and_scd1_one_and_four_workers(env: MapperEnv) -> None:
    define_dim(env, "DIM_CUSTOMER", "dim_customer")
    define_dim(env, "DIM_CUSTOMER_P", "dim_customer_p")

    # The job flow is readable and names both combinations and their SCD types.
    dwlogic = env.one("SELECT dwlogic FROM dms.dms_jobflw WHERE mapref = 'DIM_CUSTOMER'"
                      " AND curflg = 'Y'")
    assert "code='CUST'" in dwlogic and "code='CREDIT'" in dwlogic
    assert "scd2=['credit_limit']" in dwlogic and "scd1=['rating']" in dwlogic
    assert "LEFT JOIN" in dwlogic  # the combination joins its queries on the key

    first = env.run_job("DIM_CUSTOMER", SERIAL)
    first_p = env.run_job("DIM_CUSTOMER_P", PARALLEL)
    for prcid in (first, first_p):
        assert joblog(env, prcid) == {"srcrows": 2 * CUSTOMERS, "trgrows": CUSTOMERS,
                                      "errrows": 0, "status": "PC", "msg": None}
    workers = env.rows("SELECT r.workers_planned, count(c.*) AS chunks FROM dms.run r"
                       " JOIN dms.chunk c USING (run_id) WHERE r.prcid = %s"
                       " GROUP BY r.run_id ORDER BY r.run_id", [first_p])
    assert len(workers) == 2  # one engine run per combination, each with 4 workers
    assert all(w["workers_planned"] == 4 and w["chunks"] >= 4 for w in workers), workers
    current_matches_source(env, "dim_customer")
    before = snapshot(env, "dim_customer")

    kinds = change_sources(env)
    second = env.run_job("DIM_CUSTOMER", SERIAL)
    second_p = env.run_job("DIM_CUSTOMER_P", PARALLEL)

    # TRGROWS: an SCD2 change writes two rows (expired + new version), an SCD1
    # change one (updated in place), a new key one.
    scd2 = len(kinds["name"]) + len(kinds["limit"]) + len(kinds["name+limit"])
    scd1 = len(kinds["segment"]) + len(kinds["rating"])
    expected = {"srcrows": 2 * (CUSTOMERS + NEW_KEYS), "trgrows": 2 * scd2 + scd1 + NEW_KEYS,
                "errrows": 0, "status": "PC", "msg": None}
    assert joblog(env, second) == expected
    assert joblog(env, second_p) == expected

    after = snapshot(env, "dim_customer")
    current_matches_source(env, "dim_customer")
    for key in kinds["name"] | kinds["limit"] | kinds["name+limit"]:
        old, new = after[key]  # exactly one expired and one current version
        assert (old["curflg"], new["curflg"]) == ("N", "Y")
        assert old["skey"] == before[key][0]["skey"] and old["todt"] is not None
        assert {k: old[k] for k in ("name", "segment", "credit_limit", "rating")} == {
            k: before[key][0][k] for k in ("name", "segment", "credit_limit", "rating")}
    for key in kinds["segment"] | kinds["rating"]:
        (row,) = after[key]  # updated in place: same row, new values
        assert row["skey"] == before[key][0]["skey"] and row["curflg"] == "Y"
        assert row["rwhkey"] != before[key][0]["rwhkey"]
    unchanged = set(before) - set().union(*kinds.values())
    assert len(unchanged) == CUSTOMERS - CHANGED
    for key in unchanged:
        assert after[key] == before[key]  # not touched: not even recupdt
    for key in range(CUSTOMERS + 1, CUSTOMERS + NEW_KEYS + 1):
        assert [r["curflg"] for r in after[key]] == ["Y"]

    # 1 worker and 4 workers: the same target, surrogate keys and times aside.
    assert content(env, "dim_customer") == content(env, "dim_customer_p")

    # A third run with nothing changed reads everything and writes nothing.
    third = env.run_job("DIM_CUSTOMER", SERIAL)
    assert joblog(env, third)["trgrows"] == 0
    assert snapshot(env, "dim_customer") == after
    statuses = env.rows("SELECT status, count(*) AS n FROM dms.dms_prclog WHERE mapref ="
                        " 'DIM_CUSTOMER' GROUP BY status")
    assert statuses == [{"status": "PC", "n": 3}]


def define_fct(env: MapperEnv, mapref: str, table: str, value_type: str = "MONEY",
               checkpoint: bool = True, source: str = "src.sales") -> None:
    env.rows("SELECT pkgdwmapr.create_update_mapping(p_mapref => %s, p_mapdesc => 'Sales',"
             " p_trgschm => 'dw', p_trgtbtyp => 'FCT', p_trgtbnm => %s, p_blkprcrows => 2000,"
             " p_chkpntstrtgy => %s, p_chkpntclnm => %s)",
             [mapref, table, "KEY" if checkpoint else "NONE", "SALE_ID" if checkpoint else None])
    query = f"SELECT sale_id, cust_id, amount, note FROM {source}"
    for seq, (column, dtype, key, value) in enumerate([
            ("SALE_ID", "BIGINT", True, "sale_id"), ("CUST_ID", "INTEGER", False, "cust_id"),
            ("AMOUNT", value_type, False, "amount"), ("NOTE", "VARCHAR30", False, "note")],
            start=1):
        env.rows("SELECT pkgdwmapr.create_update_mapping_detail(p_mapref => %s,"
                 " p_trgclnm => %s, p_trgcldtyp => %s, p_trgkeyflg => %s, p_trgkeyseq => %s,"
                 " p_maplogic => %s, p_keyclnm => 'sale_id', p_valclnm => %s, p_excseq => %s)",
                 [mapref, column, dtype, "Y" if key else "N", 1 if key else None, query, value,
                  seq])
    assert env.rows("SELECT * FROM pkgdwmapr.validate_mapping_details(%s)", [mapref]) == []
    env.rows("SELECT pkgdwmapr.activate_deactivate_mapping(%s, 'A')", [mapref])
    env.rows("SELECT pkgdwjob.create_update_job(%s)", [mapref])


def test_fct_with_a_key_checkpoint_loads_only_new_rows(env: MapperEnv) -> None:
    with env.connect() as conn:
        conn.execute("CREATE TABLE src.sales (sale_id bigint PRIMARY KEY, cust_id int,"
                     " amount numeric(12,2), note text)")
        conn.execute("INSERT INTO src.sales SELECT g, g % 100, g / 4.0, 'sale ' || g"
                     " FROM generate_series(1, 10000) g")
    define_fct(env, "FCT_SALES", "fct_sales")
    first = env.run_job("FCT_SALES", PARALLEL)
    assert joblog(env, first) == {"srcrows": 10000, "trgrows": 10000, "errrows": 0,
                                  "status": "PC", "msg": None}
    assert env.one("SELECT chkpntval FROM dms.dms_job WHERE mapref = 'FCT_SALES'"
                   " AND curflg = 'Y'") == "10000"
    with env.connect() as conn:
        conn.execute("INSERT INTO src.sales SELECT g, g % 100, g / 4.0, 'sale ' || g"
                     " FROM generate_series(10001, 15000) g")
        # As autovacuum would by the next nightly run.  (With statistics older
        # than the new rows, the server's estimate of them is ~0 and the run is
        # one chunk: see the note on incremental loads in docs/mapper.md.)
        conn.execute("ANALYZE src.sales")
    second = env.run_job("FCT_SALES", PARALLEL)
    # Read from the checkpoint on: sale 10000 again (not loaded twice), and the new ones.
    assert joblog(env, second) == {"srcrows": 5001, "trgrows": 5000, "errrows": 0,
                                   "status": "PC", "msg": None}
    # The checkpoint filter is in the driving query: the planner cut the 5,000
    # new rows into chunks of about 2,000, instead of cutting the whole table
    # (which leaves every new row in its last chunk: no parallelism).
    sizes = [r["rows"] for r in env.rows(
        "SELECT c.rows FROM dms.chunk c JOIN dms.run r USING (run_id) WHERE r.prcid = %s"
        " ORDER BY c.chunk_no", [second])]
    assert sum(sizes) == 5001 and max(sizes) <= 2600, sizes
    assert env.one("SELECT chkpntval FROM dms.dms_job WHERE mapref = 'FCT_SALES'"
                   " AND curflg = 'Y'") == "15000"
    assert env.rows("SELECT count(*) AS n, count(DISTINCT sale_id) AS keys,"
                    " sum(amount) AS total FROM dw.fct_sales") == env.rows(
        "SELECT count(*) AS n, count(DISTINCT sale_id) AS keys, sum(amount) AS total"
        " FROM src.sales")
    third = env.run_job("FCT_SALES", PARALLEL)  # nothing new: the last row read, none loaded
    assert (joblog(env, third)["srcrows"], joblog(env, third)["trgrows"]) == (1, 0)
    assert env.one("SELECT chkpntval FROM dms.dms_job WHERE mapref = 'FCT_SALES'"
                   " AND curflg = 'Y'") == "15000"


def test_a_failed_combination_fails_the_run_and_lists_the_refused_rows(env: MapperEnv) -> None:
    with env.connect() as conn:
        conn.execute("CREATE TABLE src.sales_bad (sale_id bigint PRIMARY KEY, cust_id int,"
                     " amount numeric(12,2), note text)")
        conn.execute("INSERT INTO src.sales_bad SELECT g, g % 100, g, CASE WHEN g % 1000 = 7"
                     " THEN repeat('x', 40) ELSE 'ok' END FROM generate_series(1, 5000) g")
    define_fct(env, "FCT_BAD", "fct_bad", source="src.sales_bad")
    # Two workers for three chunks: one worker refuses rows in its second chunk too.
    two = json.dumps({"max_workers": 2, "min_rows_for_parallel": 0})
    with pytest.raises(psycopg.errors.RaiseException) as err:
        env.run_job("FCT_BAD", two)
    prcid = env.one("SELECT max(prcid) FROM dms.dms_prclog WHERE mapref = 'FCT_BAD'")
    message = err.value.diag.message_primary or ""
    assert message.startswith(f"dms: job FCT_BAD failed (process {prcid}): combination "
                              "(default): run ")
    assert "value too long for type character varying(30)" in message
    log = env.rows("SELECT status, msg FROM dms.dms_prclog WHERE prcid = %s", [prcid])[0]
    assert log["status"] == "FL" and message.endswith(log["msg"])
    summary = joblog(env, prcid)
    assert summary["status"] == "FL" and summary["errrows"] == 5
    refused = env.rows("SELECT keyvalue, sqlstate, dberrmsg FROM dms.dms_joberr"
                       " WHERE prcid = %s ORDER BY keyvalue::int", [prcid])
    assert [r["keyvalue"] for r in refused] == ["7", "1007", "2007", "3007", "4007"]
    assert {r["sqlstate"] for r in refused} == {"22001"}
    assert all("character varying(30)" in r["dberrmsg"] for r in refused)
    # Nothing reported as success: no checkpoint moved, the chunks with a refused row
    # are not in the target.
    assert env.one("SELECT chkpntval FROM dms.dms_job WHERE mapref = 'FCT_BAD'"
                   " AND curflg = 'Y'") is None
    assert env.one("SELECT count(*) FROM dw.fct_bad WHERE sale_id %% 1000 = 7") == 0
    assert summary["trgrows"] == env.one("SELECT count(*) FROM dw.fct_bad")

    # Fixed and run again: what is missing is loaded, nothing twice.
    with env.connect() as conn:
        conn.execute("UPDATE src.sales_bad SET note = 'fixed' WHERE length(note) > 30")
    again = env.run_job("FCT_BAD", two)
    assert joblog(env, again)["status"] == "PC"
    assert env.rows("SELECT count(*) AS n, count(DISTINCT sale_id) AS keys FROM dw.fct_bad"
                    ) == [{"n": 5000, "keys": 5000}]
    assert env.one("SELECT chkpntval FROM dms.dms_job WHERE mapref = 'FCT_BAD'"
                   " AND curflg = 'Y'") == "5000"


def test_schedules_fortnightly_dates_are_two_weeks_apart(env: MapperEnv) -> None:
    jobschid = env.one("SELECT pkgdwprc.create_job_schedule(p_mapref => 'DIM_CUSTOMER',"
                       " p_frqcd => 'FN', p_frqdd => 'MON', p_frqhh => 2, p_frqmi => 30)")
    assert jobschid > 0
    dates = [r["next_run_dates"] for r in env.rows(
        "SELECT pkgdwprc.next_run_dates('DIM_CUSTOMER', 4)")]
    assert len(dates) == 4
    assert [(b - a).days for a, b in pairwise(dates)] == [14, 14, 14]
    assert all((d.weekday(), d.hour, d.minute) == (0, 2, 30) for d in
               (x.astimezone(dates[0].tzinfo) for x in dates))
    stored = env.one("SELECT nxtrundt FROM dms.dms_jobsch WHERE mapref = 'DIM_CUSTOMER'"
                     " AND curflg = 'Y'")
    assert stored == dates[0]
