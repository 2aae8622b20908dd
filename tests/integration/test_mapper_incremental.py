"""Incremental and SCD loads that lose nothing and rewrite no history (issue 15).

Each test defines its mapping through the packages' SQL calls (as the
superuser that installed the plugin, an administrator), and runs the job as
a LOGIN role that is only a member of dms_operator, with the grants docs/
mapper.md lists.  Outcomes are checked against the sources: counts and
content checksums (dms_pkg.sample_data.checksum), exact versions of a
dimension, and the DMS_JOBLOG / DMS_JOBERR rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dms_pkg.engine import merge
from dms_pkg.sample_data import checksum
from tests.integration.conftest import Cluster, DatabaseFactory
from tests.integration.mapper_env import MapperEnv

PARALLEL = json.dumps({"max_workers": 4, "min_rows_for_parallel": 0})
SERIAL = json.dumps({"max_workers": 1})


@pytest.fixture(scope="module")
def env(cluster: Cluster, databases: DatabaseFactory) -> MapperEnv:
    environment = MapperEnv(cluster, databases.create(installed=True))
    with environment.connect() as conn:
        conn.execute("CREATE SCHEMA src; CREATE SCHEMA dw")
    return environment


@pytest.fixture
def operator(env: MapperEnv, login_role: Callable[[str | None], str]) -> Iterator[str]:
    """A login that is only a member of dms_operator, with the grants a job run needs
    (SELECT on the sources; SELECT, INSERT, UPDATE on the targets; their sequences)."""
    name = login_role("dms_operator")
    yield name
    with env.connect() as conn:  # its grants here go before the login does
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))


def grant(env: MapperEnv, operator: str) -> None:
    who = sql.Identifier(operator)
    with env.connect() as conn:
        for statement in (
                "GRANT USAGE ON SCHEMA src, dw TO {}",
                "GRANT SELECT ON ALL TABLES IN SCHEMA src TO {}",
                "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA dw TO {}",
                "GRANT USAGE ON ALL SEQUENCES IN SCHEMA dw TO {}"):
            conn.execute(sql.SQL(statement).format(who))


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str
    query: str  # the detail's MAPLOGIC (SQL)
    key: bool = False
    combination: str | None = None
    scd: int = 1


def define(env: MapperEnv, mapref: str, kind: str, columns: Sequence[Column], *,
           checkpoint: str | None = None, blkprcrows: int = 1000) -> None:
    """A mapping made a job, only through the packages' SQL calls."""
    env.rows("SELECT pkgdwmapr.create_update_mapping(p_mapref => %s, p_mapdesc => %s,"
             " p_trgschm => 'dw', p_trgtbtyp => %s, p_trgtbnm => %s, p_blkprcrows => %s,"
             " p_chkpntstrtgy => %s, p_chkpntclnm => %s)",
             [mapref, f"{mapref} test", kind, mapref.lower(), blkprcrows,
              "KEY" if checkpoint else "NONE", checkpoint])
    key = next(c.name.lower() for c in columns if c.key)
    for seq, column in enumerate(columns, start=1):
        env.rows("SELECT pkgdwmapr.create_update_mapping_detail(p_mapref => %s,"
                 " p_trgclnm => %s, p_trgcldtyp => %s, p_trgkeyflg => %s, p_trgkeyseq => %s,"
                 " p_maplogic => %s, p_keyclnm => %s, p_valclnm => %s, p_mapcmbcd => %s,"
                 " p_excseq => %s, p_scdtyp => %s)",
                 [mapref, column.name, column.dtype, "Y" if column.key else "N",
                  1 if column.key else None, column.query, key, column.name.lower(),
                  column.combination, seq, column.scd])
    assert env.rows("SELECT * FROM pkgdwmapr.validate_mapping_details(%s)", [mapref]) == []
    assert env.one("SELECT pkgdwmapr.activate_deactivate_mapping(%s, 'A')", [mapref]) == "A"
    assert env.one("SELECT pkgdwjob.create_update_job(%s)", [mapref]) > 0


def joblog(env: MapperEnv, prcid: int) -> dict[str, Any]:
    rows = env.rows("SELECT srcrows, trgrows, errrows, status FROM dms.dms_joblog"
                    " WHERE prcid = %s", [prcid])
    assert len(rows) == 1, rows
    return rows[0]


def same_content(env: MapperEnv, source: str, target: str, columns: str) -> None:
    """Source and target hold the same rows: count and content checksum."""
    with env.connect() as conn:
        conn.execute(sql.SQL("CREATE OR REPLACE VIEW dw.{} AS SELECT {} FROM dw.{}").format(
            sql.Identifier(f"v_{target}"), sql.SQL(columns), sql.Identifier(target)))
        assert checksum(conn, "dw", f"v_{target}") == checksum(conn, "src", source)


def checkpoint_of(env: MapperEnv, mapref: str) -> Any:
    return env.one("SELECT chkpntval FROM dms.dms_job WHERE mapref = %s AND curflg = 'Y'",
                   [mapref])


# -- item 1: a KEY checkpoint on a column with ties -------------------------------------

EVENTS = "SELECT event_id, event_ts, amount FROM src.events"
EVENT_COLUMNS = [Column("EVENT_ID", "BIGINT", EVENTS, key=True),
                 Column("EVENT_TS", "TIMESTAMP", EVENTS), Column("AMOUNT", "MONEY", EVENTS)]


def test_a_key_checkpoint_on_a_column_with_ties_loads_every_row_exactly_once(
        env: MapperEnv, operator: str) -> None:
    with env.connect() as conn:
        conn.execute("CREATE TABLE src.events (event_id bigint PRIMARY KEY,"
                     " event_ts timestamp NOT NULL, amount numeric(12,2) NOT NULL)")
        # Ten events per minute: the last minute of the load has ten rows.
        conn.execute("INSERT INTO src.events SELECT g, timestamp '2026-01-01 00:00'"
                     " + ((g - 1) / 10) * interval '1 minute', g / 4.0"
                     " FROM generate_series(1, 3000) g")
        conn.execute("ANALYZE src.events")
    define(env, "FCT_EVENTS", "FCT", EVENT_COLUMNS, checkpoint="EVENT_TS")
    grant(env, operator)
    last = "2026-01-01 04:59:00"  # minute 299: events 2991..3000

    first = env.run_job("FCT_EVENTS", PARALLEL, user=operator)
    assert joblog(env, first) == {"srcrows": 3000, "trgrows": 3000, "errrows": 0,
                                  "status": "PC"}
    assert checkpoint_of(env, "FCT_EVENTS").replace("T", " ") == last

    # Late rows of the last minute loaded (event_ts = the checkpoint), and later ones.
    with env.connect() as conn:
        conn.execute("INSERT INTO src.events SELECT g, %s::timestamp, 1 FROM"
                     " generate_series(3001, 3005) g", [last])
        conn.execute("INSERT INTO src.events SELECT g, %s::timestamp + (g - 3005)"
                     " * interval '1 second', 2 FROM generate_series(3006, 3025) g", [last])
    second = env.run_job("FCT_EVENTS", PARALLEL, user=operator)
    # Read: the ten rows at the checkpoint again (not loaded twice), and the 25 new.
    assert joblog(env, second) == {"srcrows": 35, "trgrows": 25, "errrows": 0, "status": "PC"}
    same_content(env, "events", "fct_events", "event_id, event_ts, amount")
    assert env.one("SELECT count(*) - count(DISTINCT event_id) FROM dw.fct_events") == 0
    assert checkpoint_of(env, "FCT_EVENTS").replace("T", " ") == "2026-01-01 04:59:20"

    third = env.run_job("FCT_EVENTS", PARALLEL, user=operator)  # nothing new
    assert joblog(env, third) == {"srcrows": 1, "trgrows": 0, "errrows": 0, "status": "PC"}
    same_content(env, "events", "fct_events", "event_id, event_ts, amount")


def test_rows_with_a_null_checkpoint_value_are_not_lost(env: MapperEnv, operator: str) -> None:
    with env.connect() as conn:
        conn.execute("CREATE TABLE src.visits (visit_id bigint PRIMARY KEY, seen_at timestamp,"
                     " amount numeric(12,2) NOT NULL)")
        conn.execute("INSERT INTO src.visits SELECT g, CASE WHEN g % 100 = 0 THEN NULL ELSE"
                     " timestamp '2026-01-01' + g * interval '1 second' END, g"
                     " FROM generate_series(1, 1000) g")
    columns = [Column("VISIT_ID", "BIGINT", "SELECT visit_id, seen_at, amount FROM src.visits",
                      key=True),
               Column("SEEN_AT", "TIMESTAMP", "SELECT visit_id, seen_at, amount FROM src.visits"),
               Column("AMOUNT", "MONEY", "SELECT visit_id, seen_at, amount FROM src.visits")]
    define(env, "FCT_VISITS", "FCT", columns, checkpoint="SEEN_AT")
    grant(env, operator)
    first = env.run_job("FCT_VISITS", SERIAL, user=operator)
    assert joblog(env, first)["trgrows"] == 1000
    with env.connect() as conn:  # a row not yet stamped arrives, and a stamped one
        conn.execute("INSERT INTO src.visits VALUES (1001, NULL, 1), (1002, '2026-02-01', 2)")
    second = env.run_job("FCT_VISITS", SERIAL, user=operator)
    # Read: the row at the checkpoint, the 10 + 1 NULL ones (every run), the new one.
    assert joblog(env, second) == {"srcrows": 13, "trgrows": 2, "errrows": 0, "status": "PC"}
    same_content(env, "visits", "fct_visits", "visit_id, seen_at, amount")


# -- item 2: SCD2 history is never rewritten in place ---------------------------------------

CUSTOMERS = "SELECT cust_id, name, segment FROM src.customer"
CREDITS = "SELECT cust_id, credit_limit, rating FROM src.credit"
DIM_COLUMNS = [
    Column("CUST_ID", "INTEGER", CUSTOMERS, key=True),
    Column("NAME", "STRING", CUSTOMERS, combination="CUST", scd=2),
    Column("SEGMENT", "STRING", CUSTOMERS, combination="CUST", scd=1),
    Column("CREDIT_LIMIT", "NUMBER", CREDITS, combination="CREDIT", scd=2),
    Column("RATING", "STRING", CREDITS, combination="CREDIT", scd=1),
]


def versions(env: MapperEnv, table: str) -> dict[int, list[dict[str, Any]]]:
    by_key: dict[int, list[dict[str, Any]]] = {}
    for row in env.rows(f"SELECT cust_id, name, segment, credit_limit, rating, curflg, fromdt,"
                        f" todt, skey FROM dw.{table} ORDER BY cust_id, skey"):
        by_key.setdefault(row.pop("cust_id"), []).append(row)
    return by_key


def test_a_value_arriving_where_a_combination_had_none_makes_a_new_version(
        env: MapperEnv, operator: str) -> None:
    with env.connect() as conn:
        conn.execute("CREATE TABLE src.customer (cust_id integer PRIMARY KEY, name text,"
                     " segment text)")
        conn.execute("CREATE TABLE src.credit (cust_id integer PRIMARY KEY,"
                     " credit_limit numeric(12,2), rating text)")
        conn.execute("INSERT INTO src.customer SELECT g, 'customer ' || g, 's' || (g % 3)"
                     " FROM generate_series(1, 20) g")
        # Customers 11..20 have no credit record yet: their CREDIT columns load NULL.
        conn.execute("INSERT INTO src.credit SELECT g, g * 100, 'A' FROM generate_series(1, 10) g")
    define(env, "DIM_CREDIT", "DIM", DIM_COLUMNS)
    grant(env, operator)
    first = env.run_job("DIM_CREDIT", PARALLEL, user=operator)
    assert joblog(env, first) == {"srcrows": 40, "trgrows": 20, "errrows": 0, "status": "PC"}
    before = versions(env, "dim_credit")
    assert all(len(v) == 1 and v[0]["credit_limit"] is None for k, v in before.items() if k > 10)

    with env.connect() as conn:
        # 11..15: a credit record arrives (SCD2 credit_limit NULL -> value);
        # 1..3: the credit record goes away (the opposite change);
        # 16, 17: only the SCD1 column gets a value.
        conn.execute("INSERT INTO src.credit SELECT g, g * 100, 'B' FROM generate_series(11, 15) g")
        conn.execute("DELETE FROM src.credit WHERE cust_id <= 3")
        conn.execute("INSERT INTO src.credit VALUES (16, NULL, 'C'), (17, NULL, 'C')")
    second = env.run_job("DIM_CREDIT", PARALLEL, user=operator)
    # Expired + new version for 1..3 and 11..15 (2 rows each), 16 and 17 in place.
    assert joblog(env, second) == {"srcrows": 40, "trgrows": 18, "errrows": 0, "status": "PC"}
    after = versions(env, "dim_credit")
    for key in [*range(1, 4), *range(11, 16)]:
        old, new = after[key]
        assert old["skey"] == before[key][0]["skey"]  # the old version, kept as it was ...
        assert {k: old[k] for k in ("credit_limit", "rating", "fromdt")} == {
            k: before[key][0][k] for k in ("credit_limit", "rating", "fromdt")}
        assert (old["curflg"], new["curflg"], new["todt"]) == ("N", "Y", None)
        assert old["todt"] == new["fromdt"] > old["fromdt"]  # ... expired when the new began
        assert new["credit_limit"] == (None if key <= 3 else key * 100)
        assert new["rating"] == (None if key <= 3 else "B")
        assert (new["name"], new["segment"]) == (old["name"], old["segment"])  # carried over
    for key in (16, 17):
        (row,) = after[key]  # SCD1: the same version, updated in place
        assert (row["skey"], row["fromdt"], row["curflg"]) == (
            before[key][0]["skey"], before[key][0]["fromdt"], "Y")
        assert (row["credit_limit"], row["rating"]) == (None, "C")
    for key in [*range(4, 11), *range(18, 21)]:
        assert after[key] == before[key]
    mismatches = env.one(
        "SELECT count(*) FROM ((SELECT c.cust_id, c.name, c.segment, k.credit_limit, k.rating"
        " FROM src.customer c LEFT JOIN src.credit k USING (cust_id)) EXCEPT ALL"
        " (SELECT cust_id, name, segment, credit_limit, rating FROM dw.dim_credit"
        " WHERE curflg = 'Y')) AS d")
    assert mismatches == 0

    # A row changed in place by both combinations of one run is one row written.
    with env.connect() as conn:
        conn.execute("UPDATE src.customer SET segment = 'moved' WHERE cust_id = 5")
        conn.execute("UPDATE src.credit SET rating = 'Z' WHERE cust_id = 5")
    third = env.run_job("DIM_CREDIT", PARALLEL, user=operator)
    assert joblog(env, third) == {"srcrows": 40, "trgrows": 1, "errrows": 0, "status": "PC"}
    (row,) = versions(env, "dim_credit")[5]
    assert (row["segment"], row["rating"], row["skey"]) == ("moved", "Z", after[5][0]["skey"])
    # Only the second combination can meet a version this process wrote: the
    # first one's chunks have no statement that completes such a version.
    labels = [[label for label, _ in r["statements"]] for r in env.rows(
        "SELECT r.spec->'merge'->'statements' AS statements FROM dms.run r"
        " WHERE r.prcid = %s ORDER BY r.run_id", [third])]
    assert labels == [["expired", "updated", "inserted"],
                      ["expired", "updated", "completed", "inserted"]]


# -- item 3: one business key twice in one load ---------------------------------------------

@pytest.mark.parametrize("kind", ["FCT", "NRM", "DIM"])
def test_a_business_key_twice_in_one_load_is_refused_and_named(
        env: MapperEnv, operator: str, kind: str) -> None:
    source = f"dup_{kind.lower()}"
    query = f"SELECT id, amount FROM src.{source}"
    with env.connect() as conn:
        conn.execute(sql.SQL("CREATE TABLE src.{} (id bigint NOT NULL, amount numeric NOT NULL)")
                     .format(sql.Identifier(source)))
        conn.execute(sql.SQL("INSERT INTO src.{} SELECT g, g FROM generate_series(1, 3000) g")
                     .format(sql.Identifier(source)))
        conn.execute(sql.SQL("INSERT INTO src.{} VALUES (1234, 1), (2500, 7)").format(
            sql.Identifier(source)))
    mapref = f"{kind}_DUP"
    define(env, mapref, kind, [Column("ID", "BIGINT", query, key=True),
                               Column("AMOUNT", "NUMBER", query)])
    grant(env, operator)
    with pytest.raises(psycopg.errors.RaiseException) as err:
        env.run_job(mapref, PARALLEL, user=operator)
    assert "[21000] the source returns business key (1234) more than once" in str(
        err.value.diag.message_primary)
    prcid = env.one("SELECT max(prcid) FROM dms.dms_prclog WHERE mapref = %s", [mapref])
    refused = env.rows("SELECT keyvalue, sqlstate, dberrmsg FROM dms.dms_joberr"
                       " WHERE prcid = %s ORDER BY keyvalue", [prcid])
    assert refused == [{"keyvalue": key, "sqlstate": "21000",
                        "dberrmsg": "the source returns this key 2 times"}
                       for key in ("1234", "2500")]
    log = joblog(env, prcid)
    assert (log["status"], log["errrows"]) == ("FL", 2)
    table = sql.Identifier("dw", mapref.lower())
    with env.connect() as conn:  # the chunks with a key twice loaded nothing
        assert conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE id IN (1234, 2500)").format(
            table)).fetchone() == (0,)
    # The source fixed, a rerun loads what is missing, each key once.
    with env.connect() as conn:
        conn.execute(sql.SQL("DELETE FROM src.{} WHERE (id, amount) IN ((1234, 1), (2500, 7))")
                     .format(sql.Identifier(source)))
    again = env.run_job(mapref, PARALLEL, user=operator)
    assert joblog(env, again)["status"] == "PC"
    same_content(env, source, mapref.lower(), "id, amount")


def test_a_reload_with_a_key_twice_is_refused_as_a_first_load_is(
        env: MapperEnv, operator: str) -> None:
    # A reload of a same-database DIM reads each chunk once, without the stage
    # (merge.fused); a key twice -- one copy as the target has it, one changed,
    # which classifying alone would not see -- is refused all the same, and the
    # chunk changes nothing.
    query = "SELECT id, amount FROM src.dup_reload"
    with env.connect() as conn:
        conn.execute("CREATE TABLE src.dup_reload (id bigint NOT NULL, amount numeric NOT NULL)")
        conn.execute("INSERT INTO src.dup_reload SELECT g, g FROM generate_series(1, 3000) g")
    define(env, "DIM_DUP_RELOAD", "DIM", [Column("ID", "BIGINT", query, key=True),
                                          Column("AMOUNT", "NUMBER", query, scd=2)])
    grant(env, operator)
    first = env.run_job("DIM_DUP_RELOAD", PARALLEL, user=operator)
    assert joblog(env, first)["status"] == "PC"
    loaded = env.rows("SELECT id, amount, curflg, skey FROM dw.dim_dup_reload ORDER BY skey")
    with env.connect() as conn:
        conn.execute("INSERT INTO src.dup_reload VALUES (1234, 99)")
        conn.execute("UPDATE src.dup_reload SET amount = -1 WHERE id IN (7, 1235)")
    with pytest.raises(psycopg.errors.RaiseException) as err:
        env.run_job("DIM_DUP_RELOAD", PARALLEL, user=operator)
    assert "[21000] the source returns business key (1234) more than once" in str(
        err.value.diag.message_primary)
    prcid = env.one("SELECT max(prcid) FROM dms.dms_prclog WHERE mapref = 'DIM_DUP_RELOAD'")
    assert env.one("SELECT bool_and(r.spec->'merge' ? 'fused') FROM dms.run r"
                   " WHERE r.prcid = %s", [prcid]) is True
    assert env.rows("SELECT keyvalue, sqlstate, dberrmsg FROM dms.dms_joberr"
                    " WHERE prcid = %s", [prcid]) == [
        {"keyvalue": "1234", "sqlstate": "21000",
         "dberrmsg": "the source returns this key 2 times"}]
    # The chunk of keys 1001-2000 (blkprcrows 1000) changed nothing, its
    # changed key 1235 included; the other chunks merged (key 7 versioned).
    after = env.rows("SELECT id, amount, curflg, skey FROM dw.dim_dup_reload ORDER BY skey")
    assert [r for r in after if 1001 <= r["id"] <= 2000] == [
        r for r in loaded if 1001 <= r["id"] <= 2000]
    assert [(r["amount"], r["curflg"]) for r in after if r["id"] == 7] == [
        (7, "N"), (-1, "Y")]
    assert len(after) == len(loaded) + 1


def index_scans(env: MapperEnv, table: str, at_least: int) -> int:
    """The target's index scans so far, once at least ``at_least`` (a session's
    counts reach the shared statistics when it goes idle or ends; up to 15 s)."""
    deadline = time.monotonic() + 15
    while True:
        scans = int(env.one("SELECT coalesce(idx_scan, 0) FROM pg_stat_user_tables"
                            " WHERE schemaname = 'dw' AND relname = %s", [table]))
        if scans >= at_least or time.monotonic() > deadline:
            return scans
        time.sleep(0.2)


def test_a_reload_looks_up_the_few_changed_keys_in_the_key_index(
        env: MapperEnv, operator: str) -> None:
    # Statements 1-3 of a reload act on the classified keys only: 200 of 20,000
    # here.  Told that the key slice classifying just read is cached
    # (random_page_cost 1.1 for the chunk), PostgreSQL looks each key up in the
    # current-version index instead of hashing the whole slice three times;
    # each lookup is an index scan in pg_stat_user_tables.
    query = "SELECT id, amount, note FROM src.probe"
    with env.connect() as conn:
        conn.execute("CREATE TABLE src.probe (id bigint PRIMARY KEY, amount numeric NOT NULL,"
                     " note text NOT NULL)")
        conn.execute("INSERT INTO src.probe SELECT g, g, 'n' || g"
                     " FROM generate_series(1, 20000) g")
    define(env, "DIM_PROBE", "DIM", [Column("ID", "BIGINT", query, key=True),
                                     Column("AMOUNT", "NUMBER", query, scd=2),
                                     Column("NOTE", "STRING", query)],
           blkprcrows=50000)
    grant(env, operator)
    assert joblog(env, env.run_job("DIM_PROBE", SERIAL, user=operator))["status"] == "PC"
    with env.connect() as conn:
        conn.execute("ANALYZE dw.dim_probe")
        conn.execute("UPDATE src.probe SET amount = -amount WHERE id % 200 = 0")
        conn.execute("UPDATE src.probe SET note = 'changed' WHERE id % 200 = 100")
    before = index_scans(env, "dim_probe", 0)
    reload = env.run_job("DIM_PROBE", SERIAL, user=operator)
    # 100 expired + 100 new versions, 100 updated in place.
    assert joblog(env, reload) == {"srcrows": 20000, "trgrows": 300, "errrows": 0,
                                   "status": "PC"}
    # Hashing the slice is one index scan a statement; looking up is one a key
    # (the expiry, the update and the insert's check each look up their 100).
    assert index_scans(env, "dim_probe", before + 300) - before >= 300
    assert env.one("SELECT count(*) FROM ((SELECT id, amount, note FROM src.probe EXCEPT ALL"
                   " SELECT id, amount, note FROM dw.dim_probe WHERE curflg = 'Y') UNION ALL"
                   " (SELECT id, amount, note FROM dw.dim_probe WHERE curflg = 'Y' EXCEPT ALL"
                   " SELECT id, amount, note FROM src.probe)) AS d") == 0


@pytest.mark.parametrize("keys", [[1, 2, 3], [1, 2, 2, 3], [None, 1, None], [None, 1, 2],
                                  [None], [], [5, 5, None, None]])
def test_the_counted_key_check_finds_what_grouping_every_key_finds(
        env: MapperEnv, keys: list[int | None]) -> None:
    # The check groups the staged keys only when counts say one repeats
    # (merge._twice); two NULL keys repeat for GROUP BY, one does not.
    spec = merge.MergeSpec.from_json({"kind": "append", "keys": ["k"], "only_new": True})
    check = merge.plan(spec, "dw", "t", ["k", "v"], {"k": "bigint", "v": "text"}).check
    assert check is not None and "count(DISTINCT" in check
    with env.connect() as conn:
        conn.execute("CREATE TEMP TABLE dms_stage (k bigint, v text)")
        for key in keys:
            conn.execute("INSERT INTO dms_stage VALUES (%s, 'x')", [key])
        found = conn.execute(check).fetchall()
    repeated = {key for key in keys if keys.count(key) > 1}
    if repeated:
        assert len(found) == 1 and found[0][0] in repeated, found
    else:
        assert found == []


def booting_sessions(env: MapperEnv, login: str) -> int:
    """Worker sessions of ``login`` opened ahead of a run (dms.boot_workers)."""
    return int(env.one("SELECT count(*) FROM pg_stat_activity WHERE usename = %s"
                       " AND application_name = 'dms worker booting'", [login]))


def test_a_job_call_that_fails_leaves_no_worker_session_open(
        env: MapperEnv, operator: str, login_role: Callable[[str | None], str]) -> None:
    # A job entry opens its workers' sessions before it reads the job
    # (mapper.head_start); when the call then fails they are closed, and a
    # viewer (who may see the packages but not run a job) opens none.
    with env.connect(operator) as conn:
        for _ in range(3):  # a session that keeps calling does not pile them up
            with pytest.raises(psycopg.errors.UndefinedObject) as err:
                conn.execute("CALL pkgdwjob.run_job(p_mapref => 'NO_SUCH_JOB',"
                             " p_params => '{\"max_workers\": 3}')")
            assert err.value.diag.message_primary == "dms: mapping NO_SUCH_JOB has no job"
        assert conn.execute("SELECT 1").fetchone() == (1,)  # the session goes on
        deadline = time.monotonic() + 10  # closing ends the backends; they exit apace
        while booting_sessions(env, operator) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert booting_sessions(env, operator) == 0
    stranger = login_role("dms_viewer")
    with env.connect(stranger) as conn, pytest.raises(psycopg.Error) as refused:
        conn.execute("CALL pkgdwjob.run_job(p_mapref => 'NO_SUCH_JOB',"
                     " p_params => '{\"max_workers\": 3}')")
    assert refused.value.diag.message_primary == "permission denied for procedure run_job"
    assert booting_sessions(env, stranger) == 0


# -- more of the same families ---------------------------------------------------------------

@pytest.mark.parametrize("kind", ["FCT", "DIM"])
def test_a_null_business_key_is_refused_not_loaded_again_by_every_run(
        env: MapperEnv, operator: str, kind: str) -> None:
    source = f"nullkey_{kind.lower()}"
    query = f"SELECT id, amount FROM src.{source}"
    with env.connect() as conn:
        conn.execute(sql.SQL("CREATE TABLE src.{} (id bigint, amount numeric NOT NULL)")
                     .format(sql.Identifier(source)))
        conn.execute(sql.SQL("INSERT INTO src.{} SELECT g, g FROM generate_series(1, 100) g")
                     .format(sql.Identifier(source)))
        conn.execute(sql.SQL("INSERT INTO src.{} VALUES (NULL, 5)").format(
            sql.Identifier(source)))
    mapref = f"{kind}_NULLKEY"
    define(env, mapref, kind, [Column("ID", "BIGINT", query, key=True),
                               Column("AMOUNT", "NUMBER", query)])
    grant(env, operator)
    for _ in range(2):  # before: each run inserted the NULL key once more
        with pytest.raises(psycopg.errors.RaiseException):
            env.run_job(mapref, SERIAL, user=operator)
    prcid = env.one("SELECT max(prcid) FROM dms.dms_prclog WHERE mapref = %s", [mapref])
    assert env.rows("SELECT keyvalue, sqlstate FROM dms.dms_joberr WHERE prcid = %s",
                    [prcid]) == [{"keyvalue": "NULL", "sqlstate": "23502"}]
    with env.connect() as conn:
        assert conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE id IS NULL").format(
            sql.Identifier("dw", mapref.lower()))).fetchone() == (0,)


def test_every_combination_of_a_run_loads_the_same_keys(env: MapperEnv, operator: str) -> None:
    """A key that arrives while a run goes (after the first combination read the
    source, before the second did) is left for the next run, which loads it
    whole: it does not get a version with the first combination's columns
    empty, versioned again the next time."""
    with env.connect() as conn:
        conn.execute("CREATE TABLE src.member (cust_id integer PRIMARY KEY, name text,"
                     " segment text)")
        conn.execute("CREATE TABLE src.member_credit (cust_id integer PRIMARY KEY,"
                     " credit_limit numeric(12,2), rating text)")
        conn.execute("INSERT INTO src.member SELECT g, 'member ' || g, 's' FROM"
                     " generate_series(1, 20) g")
        conn.execute("INSERT INTO src.member_credit SELECT g, g, 'A' FROM"
                     " generate_series(1, 20) g")
        # Member 22 arrives during the first combination's read: this function is
        # called by it (in a worker's data session, not while the run is planned),
        # and commits with its chunk; the read's snapshot is older.
        conn.execute("CREATE TABLE src.arrival (armed boolean)")
        conn.execute("""
            CREATE FUNCTION src.arrive() RETURNS boolean LANGUAGE plpgsql VOLATILE
            SECURITY DEFINER SET search_path = pg_catalog AS $$
            BEGIN
                IF pg_catalog.current_setting('application_name') LIKE 'dms worker %'
                   AND EXISTS (SELECT FROM src.arrival) THEN
                    DELETE FROM src.arrival;
                    INSERT INTO src.member VALUES (22, 'member 22', 's');
                    INSERT INTO src.member_credit VALUES (22, 22, 'A');
                END IF;
                RETURN true;
            END $$""")
    members = "SELECT cust_id, name, segment FROM src.member WHERE src.arrive()"
    credits = "SELECT cust_id, credit_limit, rating FROM src.member_credit"
    define(env, "DIM_MEMBER", "DIM", [
        Column("CUST_ID", "INTEGER", members, key=True),
        Column("NAME", "STRING", members, combination="CUST", scd=2),
        Column("SEGMENT", "STRING", members, combination="CUST"),
        Column("CREDIT_LIMIT", "NUMBER", credits, combination="CREDIT", scd=2),
        Column("RATING", "STRING", credits, combination="CREDIT")], checkpoint="CUST_ID")
    grant(env, operator)
    first = env.run_job("DIM_MEMBER", SERIAL, user=operator)
    assert joblog(env, first)["trgrows"] == 20 and checkpoint_of(env, "DIM_MEMBER") == "20"

    with env.connect() as conn:  # member 21 is there before the run, 22 arrives during it
        conn.execute("INSERT INTO src.member VALUES (21, 'member 21', 's')")
        conn.execute("INSERT INTO src.member_credit VALUES (21, 21, 'A')")
        conn.execute("INSERT INTO src.arrival VALUES (true)")
    second = env.run_job("DIM_MEMBER", SERIAL, user=operator)
    assert env.one("SELECT count(*) FROM src.member WHERE cust_id = 22") == 1  # it arrived
    # Each combination read 20 (the checkpoint) and 21: 21 is new, its version made
    # by CUST and completed by CREDIT; 22 is not loaded yet.
    assert joblog(env, second) == {"srcrows": 4, "trgrows": 1, "errrows": 0, "status": "PC"}
    assert env.one("SELECT count(*) FROM dw.dim_member WHERE cust_id = 22") == 0
    assert checkpoint_of(env, "DIM_MEMBER") == "21"

    third = env.run_job("DIM_MEMBER", SERIAL, user=operator)
    assert joblog(env, third) == {"srcrows": 4, "trgrows": 1, "errrows": 0, "status": "PC"}
    assert env.rows("SELECT cust_id, name, credit_limit, curflg FROM dw.dim_member"
                    " WHERE cust_id > 20 ORDER BY cust_id") == [
        {"cust_id": key, "name": f"member {key}", "credit_limit": key, "curflg": "Y"}
        for key in (21, 22)]
    assert checkpoint_of(env, "DIM_MEMBER") == "22"


def test_a_session_with_another_datestyle_rewrites_no_history(
        env: MapperEnv, operator: str) -> None:
    """The job's start time goes into the merge statements that worker sessions
    run: written in the caller's DateStyle (day first) and read in theirs
    (month first), it was another date, and versions of earlier runs were
    completed in place as if this run had made them."""
    with env.connect() as conn:
        conn.execute("CREATE TABLE src.person (cust_id integer PRIMARY KEY, name text,"
                     " segment text)")
        conn.execute("CREATE TABLE src.person_credit (cust_id integer PRIMARY KEY,"
                     " credit_limit numeric(12,2), rating text)")
        conn.execute("INSERT INTO src.person SELECT g, 'person ' || g, 's' FROM"
                     " generate_series(1, 2000) g")
        conn.execute("INSERT INTO src.person_credit SELECT g, g, 'A' FROM"
                     " generate_series(1, 2000) g")
    people = "SELECT cust_id, name, segment FROM src.person"
    credits = "SELECT cust_id, credit_limit, rating FROM src.person_credit"
    define(env, "DIM_PERSON", "DIM", [
        Column("CUST_ID", "INTEGER", people, key=True),
        Column("NAME", "STRING", people, combination="CUST", scd=2),
        Column("SEGMENT", "STRING", people, combination="CUST"),
        Column("CREDIT_LIMIT", "NUMBER", credits, combination="CREDIT", scd=2),
        Column("RATING", "STRING", credits, combination="CREDIT")], blkprcrows=500)
    grant(env, operator)
    env.run_job("DIM_PERSON", PARALLEL, user=operator)
    before = versions(env, "dim_person")
    with env.connect() as conn:  # keys 1..100: an SCD2 change in both combinations
        conn.execute("UPDATE src.person SET name = name || ' (new)' WHERE cust_id <= 100")
        conn.execute("UPDATE src.person_credit SET credit_limit = 0 WHERE cust_id <= 100")
    with psycopg.connect(env.cluster.dsn(env.db, operator), autocommit=True,
                         options="-c DateStyle=SQL,DMY") as conn:
        row = conn.execute("CALL pkgdwjob.run_job(p_mapref => 'DIM_PERSON', p_params => %s)",
                           [PARALLEL]).fetchone()
    assert row is not None
    assert joblog(env, row[0]) == {"srcrows": 4000, "trgrows": 200, "errrows": 0,
                                   "status": "PC"}
    after = versions(env, "dim_person")
    for key in range(1, 101):  # one new version per key, the old one kept as it was
        old, new = after[key]
        assert old == {**before[key][0], "curflg": "N", "todt": new["fromdt"]}
        assert (new["name"], new["credit_limit"], new["curflg"]) == (
            f"person {key} (new)", 0, "Y")
    assert all(after[key] == before[key] for key in range(101, 2001))


def test_a_checkpoint_is_read_back_whatever_the_datestyle(
        env: MapperEnv, operator: str) -> None:
    """The checkpoint is kept as ISO 8601: written as 11/03/2026 (day first) and
    read after the database's DateStyle became month first, it was 3 November,
    and the rows between were never loaded."""
    with env.connect() as conn:
        conn.execute("CREATE TABLE src.orders (order_id bigint PRIMARY KEY,"
                     " placed timestamp NOT NULL, amount numeric(12,2) NOT NULL)")
        conn.execute("INSERT INTO src.orders SELECT g, timestamp '2026-03-11 12:00'"
                     " - g * interval '1 hour', g FROM generate_series(1, 100) g")
    query = "SELECT order_id, placed, amount FROM src.orders"
    define(env, "FCT_ORDERS", "FCT", [Column("ORDER_ID", "BIGINT", query, key=True),
                                      Column("PLACED", "TIMESTAMP", query),
                                      Column("AMOUNT", "MONEY", query)], checkpoint="PLACED")
    grant(env, operator)
    database = sql.Identifier(env.db)
    try:
        with env.connect() as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} SET DateStyle = 'SQL, DMY'").format(database))
        env.run_job("FCT_ORDERS", SERIAL, user=operator)
        with env.connect() as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} SET DateStyle = 'ISO, MDY'").format(database))
            conn.execute("INSERT INTO src.orders SELECT g, timestamp '2026-06-01'"
                         " + g * interval '1 hour', g FROM generate_series(101, 150) g")
        second = env.run_job("FCT_ORDERS", SERIAL, user=operator)
    finally:
        with env.connect() as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} RESET DateStyle").format(database))
    assert checkpoint_of(env, "FCT_ORDERS") == "2026-06-07T06:00:00"
    assert joblog(env, second) == {"srcrows": 51, "trgrows": 50, "errrows": 0, "status": "PC"}
    same_content(env, "orders", "fct_orders", "order_id, placed, amount")


def test_a_historical_period_given_day_first_loads_that_period(
        env: MapperEnv, operator: str) -> None:
    """p_strtdt / p_enddt from a session whose DateStyle puts the day first were
    compared as text (10/02 "before" 15/01) and handed to the workers as
    15/01/2026, which they read month first."""
    with env.connect() as conn:
        conn.execute("CREATE TABLE src.daily (id bigint PRIMARY KEY, day date NOT NULL,"
                     " amount numeric(12,2) NOT NULL)")
        conn.execute("INSERT INTO src.daily SELECT g, date '2026-01-01' + g % 60, g"
                     " FROM generate_series(1, 3000) g")
        conn.execute("CREATE TABLE src.daily_period AS SELECT * FROM src.daily"
                     " WHERE day BETWEEN '2026-01-15' AND '2026-02-10'")
    query = ("SELECT id, day, amount FROM src.daily WHERE day BETWEEN"
             " coalesce(DWT_PARAM1::date, DATE '1900-01-01') AND"
             " coalesce(DWT_PARAM2::date, DATE '9999-12-31')")
    define(env, "FCT_DAILY", "FCT", [Column("ID", "BIGINT", query, key=True),
                                     Column("DAY", "DATE", query),
                                     Column("AMOUNT", "MONEY", query)])
    grant(env, operator)
    with psycopg.connect(env.cluster.dsn(env.db, operator), autocommit=True,
                         options="-c DateStyle=SQL,DMY") as conn:
        row = conn.execute("CALL pkgdwprc.process_historical_data(p_mapref => 'FCT_DAILY',"
                           " p_strtdt => '15/01/2026', p_enddt => '10/02/2026',"
                           " p_prcid => NULL)").fetchone()
    assert row is not None
    assert env.rows("SELECT prctyp, param1, param2 FROM dms.dms_prclog WHERE prcid = %s",
                    [row[0]]) == [{"prctyp": "HISTORY", "param1": "2026-01-15",
                                   "param2": "2026-02-10"}]
    same_content(env, "daily_period", "fct_daily", "id, day, amount")


def test_a_new_checkpoint_column_does_not_inherit_the_old_ones_value(
        env: MapperEnv, operator: str) -> None:
    with env.connect() as conn:
        conn.execute("CREATE TABLE src.batch_events (event_id bigint PRIMARY KEY,"
                     " batch_no integer NOT NULL, amount numeric(12,2) NOT NULL)")
        conn.execute("INSERT INTO src.batch_events SELECT g, g / 100, g FROM"
                     " generate_series(1, 1000) g")
    query = "SELECT event_id, batch_no, amount FROM src.batch_events"
    columns = [Column("EVENT_ID", "BIGINT", query, key=True), Column("BATCH_NO", "INTEGER", query),
               Column("AMOUNT", "MONEY", query)]
    define(env, "FCT_BATCH", "FCT", columns, checkpoint="EVENT_ID")
    grant(env, operator)
    env.run_job("FCT_BATCH", SERIAL, user=operator)
    assert checkpoint_of(env, "FCT_BATCH") == "1000"
    # The administrator moves the checkpoint to the batch number; batch 11 arrives.
    env.rows("SELECT pkgdwmapr.create_update_mapping(p_mapref => 'FCT_BATCH', p_mapdesc =>"
             " 'FCT_BATCH test', p_trgschm => 'dw', p_trgtbtyp => 'FCT', p_trgtbnm =>"
             " 'fct_batch', p_blkprcrows => 1000, p_chkpntstrtgy => 'KEY',"
             " p_chkpntclnm => 'BATCH_NO')")
    assert env.rows("SELECT * FROM pkgdwmapr.validate_mapping_details('FCT_BATCH')") == []
    env.rows("SELECT pkgdwmapr.activate_deactivate_mapping('FCT_BATCH', 'A')")
    env.rows("SELECT pkgdwjob.create_update_job('FCT_BATCH')")
    assert checkpoint_of(env, "FCT_BATCH") is None  # event id 1000 is no batch number
    with env.connect() as conn:
        conn.execute("INSERT INTO src.batch_events SELECT g, 11, g FROM"
                     " generate_series(1001, 1100) g")
    second = env.run_job("FCT_BATCH", SERIAL, user=operator)
    assert joblog(env, second) == {"srcrows": 1100, "trgrows": 100, "errrows": 0,
                                   "status": "PC"}
    assert checkpoint_of(env, "FCT_BATCH") == "11"
    same_content(env, "batch_events", "fct_batch", "event_id, batch_no, amount")
