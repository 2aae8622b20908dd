"""A first load goes straight into an empty target guarded by a unique index (issue 12, item 2).

The same DIM mapping is loaded into two targets: one empty (the chunks insert
straight into it), one holding a row of a key the source does not have (the
chunks go through the stage, as every load did before).  Both must end up
with the same rows -- row hashes, flags, versions -- and the same job log
counts, on the first load and on a reload.  A key the source returns twice is
refused as the staged path refuses it; a target without the guarding index
is loaded through the stage; an append with only_new into a table whose
primary key is the business key goes straight in too.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import psycopg
import pytest

from tests.integration.conftest import Cluster, DatabaseFactory
from tests.integration.mapper_env import (
    CUSTOMERS,
    DIM_DETAILS,
    SOURCES,
    MapperEnv,
    define_dim,
    define_queries,
)

PARALLEL = json.dumps({"max_workers": 4, "min_rows_for_parallel": 0})
# The credit query has rows for even keys only: the odd keys keep the
# row hash the customer combination's insert computed, carried columns NULL.
DETAILS = [(c, t, k, "CREDIT_EVEN_Q" if q == "CREDIT_Q" else q, v, m, s)
           for c, t, k, q, v, m, s in DIM_DETAILS]
ROW = ("cust_id, name, segment, credit_limit, rating, rwhkey, curflg, todt IS NULL AS open,"
       " fromdt IS NULL AS no_from")
NOTE = "first load: chunks insert straight into the target (empty, guarded by unique index {})"


@pytest.fixture(scope="module")
def env(cluster: Cluster, databases: DatabaseFactory) -> MapperEnv:
    environment = MapperEnv(cluster, databases.create(installed=True))
    with environment.connect() as conn:
        conn.execute(SOURCES)
    define_queries(environment)
    environment.rows("SELECT pkgdwmapr.create_update_sql(p_maprsqlcd => 'CREDIT_EVEN_Q',"
                     " p_maprsql => 'SELECT cust_id, credit_limit, rating FROM src.credit"
                     " WHERE cust_id %% 2 = 0')")
    return environment


def joblog(env: MapperEnv, prcid: int) -> dict[str, Any]:
    (row,) = env.rows("SELECT srcrows, trgrows, errrows, status FROM dms.dms_joblog"
                      " WHERE prcid = %s", [prcid])
    return row


def runs(env: MapperEnv, prcid: int) -> list[dict[str, Any]]:
    return env.rows("SELECT r.run_id, r.mapcmbcd, r.notes, r.spec->'merge'->>'direct' AS direct,"
                    " (SELECT jsonb_agg(c.stats ORDER BY c.chunk_no) FROM dms.chunk c"
                    "  WHERE c.run_id = r.run_id) AS stats,"
                    " (SELECT jsonb_agg(c.rows ORDER BY c.chunk_no) FROM dms.chunk c"
                    "  WHERE c.run_id = r.run_id) AS rows"
                    " FROM dms.run r WHERE r.prcid = %s ORDER BY r.run_id", [prcid])


def first_load_notes(run: dict[str, Any]) -> list[str]:
    return [n for n in run["notes"] if n.startswith("first load")]


def content(env: MapperEnv, table: str) -> Counter[tuple[Any, ...]]:
    return Counter(tuple(r.values()) for r in env.rows(
        f"SELECT {ROW} FROM dw.{table} WHERE cust_id > 0"))


def test_a_first_dim_load_goes_straight_in_and_writes_what_the_stage_writes(
        env: MapperEnv) -> None:
    define_dim(env, "DIM_DIRECT", "dim_direct", details=DETAILS)
    define_dim(env, "DIM_STAGED", "dim_staged", details=DETAILS)
    with env.connect() as conn:  # not empty: the staged path, as before
        conn.execute("INSERT INTO dw.dim_staged (cust_id, name, rwhkey, curflg)"
                     " VALUES (-1, 'elsewhere', 'x', 'Y')")
    direct = env.run_job("DIM_DIRECT", PARALLEL)
    staged = env.run_job("DIM_STAGED", PARALLEL)

    customers, credits = runs(env, direct)
    assert first_load_notes(customers) == [NOTE.format("dim_direct_cur_uk")]
    assert customers["direct"] is not None and len(customers["rows"]) >= 4
    # Every chunk inserted its rows, counted as the staged path counts them.
    assert customers["stats"] == [{"inserted": n} for n in customers["rows"]]
    assert sum(customers["rows"]) == CUSTOMERS
    # The second combination finds the target filled: staged, no note.
    assert first_load_notes(credits) == [] and credits["direct"] is None
    for run in runs(env, staged):
        assert first_load_notes(run) == [] and run["direct"] is None
    expected = {"srcrows": 2 * CUSTOMERS, "trgrows": CUSTOMERS, "errrows": 0,
                "status": "PC"}
    assert joblog(env, direct) == joblog(env, staged) == expected
    assert content(env, "dim_direct") == content(env, "dim_staged")
    assert sum(content(env, "dim_direct").values()) == CUSTOMERS
    # Odd keys: only the direct insert wrote them (hash with the credit columns NULL).
    assert env.one("SELECT count(*) FROM dw.dim_direct WHERE cust_id %% 2 = 1"
                   " AND credit_limit IS NULL AND rwhkey IS NOT NULL") == CUSTOMERS // 2
    assert env.one("SELECT count(*) FROM dw.dim_direct d JOIN dw.dim_staged s USING (cust_id)"
                   " WHERE d.rwhkey IS DISTINCT FROM s.rwhkey") == 0
    checksum = ("SELECT md5(string_agg(ROW(cust_id, name, segment, credit_limit, rating)::text,"
                " ',' ORDER BY cust_id)) FROM dw.{} WHERE cust_id > 0 AND curflg = 'Y'")
    assert env.one(checksum.format("dim_direct")) == env.one(checksum.format("dim_staged"))

    # A reload (the target holds rows now: staged) versions as always.
    with env.connect() as conn:
        conn.execute("UPDATE src.customer SET name = name || ' (renamed)'"
                     " WHERE cust_id BETWEEN 1 AND 100")  # SCD2: expired + new version
        conn.execute("UPDATE src.customer SET segment = 'moved'"
                     " WHERE cust_id BETWEEN 101 AND 150")  # SCD1: updated in place
        conn.execute("UPDATE src.credit SET credit_limit = credit_limit + 1"
                     " WHERE cust_id BETWEEN 151 AND 170")  # SCD2 on 10 even keys
        conn.execute(f"INSERT INTO src.customer SELECT g, 'customer ' || g, 'new'"
                     f" FROM generate_series({CUSTOMERS + 1}, {CUSTOMERS + 30}) g")
    again = env.run_job("DIM_DIRECT", PARALLEL)
    again_staged = env.run_job("DIM_STAGED", PARALLEL)
    for run in runs(env, again) + runs(env, again_staged):
        assert first_load_notes(run) == [] and run["direct"] is None
    expected = {"srcrows": 2 * (CUSTOMERS + 30),
                "trgrows": 2 * 100 + 50 + 2 * 10 + 30, "errrows": 0, "status": "PC"}
    assert joblog(env, again) == joblog(env, again_staged) == expected
    assert content(env, "dim_direct") == content(env, "dim_staged")
    versions = env.rows("SELECT cust_id, count(*) AS n, count(*) FILTER (WHERE curflg = 'Y')"
                        " AS cur FROM dw.dim_direct WHERE cust_id IN (1, 101, 152, 20001)"
                        " GROUP BY cust_id ORDER BY cust_id")
    assert versions == [{"cust_id": 1, "n": 2, "cur": 1}, {"cust_id": 101, "n": 1, "cur": 1},
                        {"cust_id": 152, "n": 2, "cur": 1}, {"cust_id": 20001, "n": 1, "cur": 1}]


def define_one(env: MapperEnv, mapref: str, table: str, query: str) -> None:
    """A DIM of one combination (id key, amount SCD2) over ``query``."""
    env.rows("SELECT pkgdwmapr.create_update_sql(p_maprsqlcd => %s, p_maprsql => %s)",
             [f"{mapref}_Q", query])
    define_dim(env, mapref, table, blkprcrows=1000, details=[
        ("CUST_ID", "INTEGER", True, f"{mapref}_Q", "cust_id", None, 1),
        ("AMOUNT", "NUMBER", False, f"{mapref}_Q", "amount", "A", 2)])


def test_a_key_twice_on_a_first_load_is_refused_as_the_staged_path_refuses_it(
        env: MapperEnv) -> None:
    with env.connect() as conn:
        conn.execute("CREATE TABLE src.twice (cust_id integer NOT NULL, amount numeric)")
        conn.execute("INSERT INTO src.twice SELECT g, g FROM generate_series(1, 4000) g")
        conn.execute("INSERT INTO src.twice VALUES (1234, 1), (1234, 2)")
    define_one(env, "DIM_TWICE", "dim_twice", "SELECT cust_id, amount FROM src.twice")
    with pytest.raises(psycopg.errors.RaiseException) as err:
        env.run_job("DIM_TWICE", PARALLEL)
    assert "[21000] the source returns business key (1234) more than once" in str(
        err.value.diag.message_primary)
    prcid = env.one("SELECT max(prcid) FROM dms.dms_prclog WHERE mapref = 'DIM_TWICE'")
    (run,) = runs(env, prcid)
    assert first_load_notes(run) == [NOTE.format("dim_twice_cur_uk")]
    rejects = env.rows("SELECT x.chunk_no, x.key_value, x.sqlstate, x.message"
                       " FROM dms.chunk_reject x WHERE x.run_id = %s", [run["run_id"]])
    assert [(r["key_value"], r["sqlstate"], r["message"]) for r in rejects] == [
        ("1234", "21000", "the source returns this key 3 times")]
    assert env.rows("SELECT keyvalue, sqlstate FROM dms.dms_joberr WHERE prcid = %s",
                    [prcid]) == [{"keyvalue": "1234", "sqlstate": "21000"}]
    # Nothing of the refused chunk is in the target; every other chunk is, once.
    (state,) = env.rows("SELECT state FROM dms.chunk WHERE run_id = %s AND chunk_no = %s",
                        [run["run_id"], rejects[0]["chunk_no"]])
    assert state["state"] != "DONE"
    assert env.one("SELECT count(*) FROM dw.dim_twice WHERE cust_id = 1234") == 0
    done = env.one("SELECT coalesce(sum(rows), 0) FROM dms.chunk WHERE run_id = %s"
                   " AND state = 'DONE'", [run["run_id"]])
    assert 0 < done < 4000
    assert env.one("SELECT count(*) FROM dw.dim_twice") == done
    assert env.one("SELECT count(DISTINCT cust_id) FROM dw.dim_twice") == done


def test_a_key_inserted_meanwhile_is_merged_through_the_stage(env: MapperEnv) -> None:
    """The target was empty at planning, a row of the key arrived since: the guard
    refuses the chunk's direct insert and the chunk is merged through the stage."""
    with env.connect() as conn:
        conn.execute("CREATE TABLE src.late (cust_id integer NOT NULL, amount numeric)")
        conn.execute("INSERT INTO src.late SELECT g, g FROM generate_series(1, 3000) g")
        # Whoever inserts key 77 while the run plans: here a trigger on the run's
        # record, after the planner found the target empty.
        conn.execute("CREATE FUNCTION public.sneak_in() RETURNS trigger LANGUAGE plpgsql"
                     " AS $$BEGIN IF NEW.target_table = 'dim_late' THEN INSERT INTO"
                     " dw.dim_late (cust_id, amount, rwhkey, curflg) VALUES (77, -1, 'x', 'Y');"
                     " END IF; RETURN NEW; END$$")
    define_one(env, "DIM_LATE", "dim_late", "SELECT cust_id, amount FROM src.late")
    with env.connect() as conn:
        conn.execute("CREATE TRIGGER sneak_in AFTER INSERT ON dms.run FOR EACH ROW"
                     " EXECUTE FUNCTION public.sneak_in()")
    try:
        prcid = env.run_job("DIM_LATE", PARALLEL)
    finally:
        with env.connect() as conn:
            conn.execute("DROP TRIGGER sneak_in ON dms.run")
    (run,) = runs(env, prcid)
    assert first_load_notes(run) == [NOTE.format("dim_late_cur_uk")]
    # Key 77 changed (SCD2): expired and versioned; every other key inserted once.
    assert joblog(env, prcid) == {"srcrows": 3000, "trgrows": 3001, "errrows": 0,
                                  "status": "PC"}
    assert env.rows("SELECT amount, curflg FROM dw.dim_late WHERE cust_id = 77"
                    " ORDER BY curflg") == [{"amount": -1, "curflg": "N"},
                                            {"amount": 77, "curflg": "Y"}]
    assert env.one("SELECT count(*) FROM dw.dim_late WHERE curflg = 'Y'") == 3000
    # The chunk of key 77 went through the stage (updated/expired counted), the others not.
    staged = [s for s in run["stats"] if set(s) != {"inserted"}]
    assert len(staged) == 1 and staged[0]["expired"] == 1, run["stats"]


def test_a_target_without_the_guarding_index_is_loaded_through_the_stage(
        env: MapperEnv) -> None:
    define_one(env, "DIM_NOIX", "dim_noix", "SELECT cust_id, credit_limit AS amount"
               " FROM src.credit")
    with env.connect() as conn:
        conn.execute("DROP INDEX dw.dim_noix_cur_uk")
    prcid = env.run_job("DIM_NOIX", PARALLEL)
    (run,) = runs(env, prcid)
    assert first_load_notes(run) == [] and run["direct"] is None
    assert joblog(env, prcid) == {"srcrows": CUSTOMERS, "trgrows": CUSTOMERS, "errrows": 0,
                                  "status": "PC"}
    assert env.one("SELECT count(DISTINCT cust_id) FROM dw.dim_noix WHERE curflg = 'Y'"
                   ) == CUSTOMERS


@pytest.mark.parametrize("unique", [True, False])
def test_an_append_of_new_keys_goes_straight_in_when_the_key_is_unique(
        env: MapperEnv, unique: bool) -> None:
    table = f"app_{'uk' if unique else 'plain'}"
    with env.connect() as conn:
        conn.execute(f"CREATE TABLE dw.{table} (cust_id integer NOT NULL"
                     f"{' PRIMARY KEY' if unique else ''}, name text, rwhkey text,"
                     " created timestamptz)")
    merge = {"kind": "append", "keys": ["cust_id"], "only_new": True, "hash_column": "rwhkey",
             "created_column": "created"}
    settings = json.dumps({"merge": merge, "max_workers": 2, "min_rows_for_parallel": 0,
                           "chunk_size": 5000})
    run_id = env.one("CALL dms.execute_query_parallel(NULL,"
                     " 'SELECT cust_id, name FROM src.customer WHERE cust_id <= 20000', NULL,"
                     " 'dw', %s, %s::jsonb)", [table, settings])
    (run,) = env.rows("SELECT state, notes, spec->'merge'->>'direct' AS direct FROM dms.run"
                      " WHERE run_id = %s", [run_id])
    assert run["state"] == "SUCCEEDED"
    notes = [n for n in run["notes"] if n.startswith("first load")]
    assert notes == ([NOTE.format(f"{table}_pkey")] if unique else [])
    assert (run["direct"] is not None) == unique
    assert env.one(f"SELECT count(*) FROM dw.{table} WHERE rwhkey ="
                   " md5(ROW(name)::text) AND created IS NOT NULL") == 20000
    stats = env.rows("SELECT stats FROM dms.chunk WHERE run_id = %s", [run_id])
    assert sum(s["stats"]["inserted"] for s in stats) == 20000


def test_a_reload_merges_only_the_chunks_with_changes_under_a_hostile_key_name(
        env: MapperEnv) -> None:
    """The scd statements take the changed rows' key slice as $1 and $2: a key
    column named like a bind marker (a %, a $1) is only a name, and a chunk
    where nothing changed writes nothing."""
    key = 'k%s $1 %(x)s'
    k = psycopg.sql.Identifier(key).as_string(None)
    with env.connect() as conn:
        conn.execute(f"CREATE TABLE src.given AS SELECT cust_id AS {k}, name FROM src.customer")
        conn.execute(f"CREATE TABLE dw.given ({k} integer NOT NULL, name text, curflg char(1),"
                     " fromdt timestamptz, todt timestamptz, rwhkey text)")
    merge = {"kind": "scd", "keys": [key], "scd2": ["name"], "hash_column": "rwhkey",
             "current_column": "curflg", "valid_from_column": "fromdt",
             "valid_to_column": "todt"}
    settings = json.dumps({"merge": merge, "max_workers": 2, "min_rows_for_parallel": 0,
                           "chunk_size": 5000})
    call = ("CALL dms.execute_query_parallel(NULL, 'SELECT * FROM src.given', NULL, 'dw',"
            " 'given', %s::jsonb)")
    first = env.one(call, [settings])
    with env.connect() as conn:  # 300 changed keys, all in the first chunk's slice
        conn.execute(psycopg.sql.SQL("UPDATE src.given SET name = name || ' moved'"
                                     " WHERE {} <= 300").format(psycopg.sql.Identifier(key)))
    again = env.one(call, [settings])
    states = env.rows("SELECT run_id, state FROM dms.run WHERE run_id IN (%s, %s)"
                      " ORDER BY run_id", [first, again])
    assert [r["state"] for r in states] == ["SUCCEEDED", "SUCCEEDED"]
    stats = [r["stats"] for r in env.rows(
        "SELECT stats FROM dms.chunk WHERE run_id = %s AND rows > 0", [again])]
    assert len(stats) >= 4  # 20,000 rows in chunks of 5,000
    assert sorted((s["expired"], s["updated"], s["inserted"]) for s in stats) == (
        [(0, 0, 0)] * (len(stats) - 1) + [(300, 0, 300)])
    # The test's own statements are pyformat (with no parameters): its % doubled.
    q = psycopg.sql.Identifier(key).as_string(None).replace("%", "%%")
    assert env.one(f"SELECT count(*) FROM dw.given WHERE curflg = 'N' AND todt IS NOT NULL"
                   f" AND {q} <= 300") == 300
    assert env.one(
        f"SELECT count(*) FROM (SELECT {q}, name FROM src.given EXCEPT"
        f" SELECT {q}, name FROM dw.given WHERE curflg = 'Y') AS d") == 0
    assert env.one("SELECT count(*) FROM dw.given WHERE curflg = 'Y'") == env.one(
        "SELECT count(*) FROM src.given")
