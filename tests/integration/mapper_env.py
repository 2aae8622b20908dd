"""A database with the plugin and source tables, and mapping definitions made
only through the packages' SQL calls, as a DBA would make them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from tests.integration.conftest import Cluster

CUSTOMERS = 20_000

SOURCES = f"""
CREATE SCHEMA IF NOT EXISTS src;
CREATE SCHEMA IF NOT EXISTS dw;
CREATE TABLE src.customer (cust_id integer PRIMARY KEY, name text, segment text);
CREATE TABLE src.credit (cust_id integer PRIMARY KEY, credit_limit numeric(12,2), rating text);
INSERT INTO src.customer
    SELECT g, 'customer ' || g, 'segment ' || (g % 7) FROM generate_series(1, {CUSTOMERS}) g;
INSERT INTO src.credit
    SELECT g, g * 10.5, 'r' || (g % 3) FROM generate_series(1, {CUSTOMERS}) g;
ANALYZE src.customer; ANALYZE src.credit;
"""

# (column, datatype code, key?, query code, value column, combination, SCD type)
DIM_DETAILS = [
    ("CUST_ID", "INTEGER", True, "CUST_Q", "cust_id", None, 1),
    ("NAME", "STRING", False, "CUST_Q", "name", "CUST", 2),
    ("SEGMENT", "STRING", False, "CUST_Q", "segment", "CUST", 1),
    ("CREDIT_LIMIT", "NUMBER", False, "CREDIT_Q", "credit_limit", "CREDIT", 2),
    ("RATING", "STRING", False, "CREDIT_Q", "rating", "CREDIT", 1),
]


@dataclass
class MapperEnv:
    cluster: Cluster
    db: str

    def connect(self, user: str | None = None) -> psycopg.Connection[Any]:
        return psycopg.connect(self.cluster.dsn(self.db, user), autocommit=True)

    def rows(self, text: str, params: list[Any] | None = None,
             user: str | None = None) -> list[dict[str, Any]]:
        with self.connect(user) as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(text, params or [])
            return cur.fetchall() if cur.description else []

    def one(self, text: str, params: list[Any] | None = None) -> Any:
        rows = self.rows(text, params)
        assert len(rows) == 1, rows
        return next(iter(rows[0].values()))

    def run_job(self, mapref: str, params: str = "{}", user: str | None = None) -> int:
        return int(self.one_as(user, "CALL pkgdwjob.run_job(p_mapref => %s, p_params => %s)",
                               [mapref, params]))

    def one_as(self, user: str | None, text: str, params: list[Any]) -> Any:
        rows = self.rows(text, params, user)
        return next(iter(rows[0].values()))


def define_queries(env: MapperEnv) -> None:
    env.rows("SELECT pkgdwmapr.create_update_sql(p_maprsqlcd => 'CUST_Q', p_maprsql => "
             "'SELECT cust_id, name, segment FROM src.customer')")
    env.rows("SELECT pkgdwmapr.create_update_sql(p_maprsqlcd => 'CREDIT_Q', p_maprsql => "
             "'SELECT cust_id, credit_limit, rating FROM src.credit')")


def define_dim(env: MapperEnv, mapref: str, table: str, *, blkprcrows: int = 5000,
               details: list[tuple[Any, ...]] | None = None) -> None:
    """A DIM mapping with two combinations, validated, activated, made a job."""
    env.rows("SELECT pkgdwmapr.create_update_mapping(p_mapref => %s, p_mapdesc => 'Customers',"
             " p_trgschm => 'dw', p_trgtbtyp => 'DIM', p_trgtbnm => %s,"
             " p_blkprcrows => %s)", [mapref, table, blkprcrows])
    for seq, (column, dtype, key, query, value, combination, scd) in enumerate(
            details or DIM_DETAILS, start=1):
        env.rows(
            "SELECT pkgdwmapr.create_update_mapping_detail(p_mapref => %s, p_trgclnm => %s,"
            " p_trgcldtyp => %s, p_trgkeyflg => %s, p_trgkeyseq => %s, p_maplogic => %s,"
            " p_keyclnm => 'cust_id', p_valclnm => %s, p_mapcmbcd => %s, p_excseq => %s,"
            " p_scdtyp => %s)",
            [mapref, column, dtype, "Y" if key else "N", 1 if key else None, query, value,
             combination, seq, scd])
    assert env.rows("SELECT * FROM pkgdwmapr.validate_mapping_details(%s)", [mapref]) == []
    assert env.one("SELECT pkgdwmapr.activate_deactivate_mapping(%s, 'A')", [mapref]) == "A"
    assert env.one("SELECT pkgdwjob.create_update_job(%s)", [mapref]) > 0


def define_fct(env: MapperEnv, mapref: str, query: str, user: str | None = None) -> None:
    """An FCT mapping dw.<mapref> (ID key, AMOUNT) over ``query``, made by ``user``
    (the superuser when None): validated, activated, made a job."""
    def call(text: str, params: list[Any]) -> Any:
        return env.one_as(user, text, params)

    call("SELECT pkgdwmapr.create_update_mapping(p_mapref => %s, p_mapdesc => %s,"
         " p_trgschm => 'dw', p_trgtbtyp => 'FCT', p_trgtbnm => %s, p_blkprcrows => 500)",
         [mapref, f"{mapref} test", mapref.lower()])
    for seq, (column, dtype, key) in enumerate([("ID", "BIGINT", "Y"), ("AMOUNT", "NUMBER", "N")],
                                               start=1):
        call("SELECT pkgdwmapr.create_update_mapping_detail(p_mapref => %s, p_trgclnm => %s,"
             " p_trgcldtyp => %s, p_trgkeyflg => %s, p_trgkeyseq => %s, p_maplogic => %s,"
             " p_keyclnm => 'id', p_valclnm => %s, p_excseq => %s)",
             [mapref, column, dtype, key, 1 if key == "Y" else None, query, column.lower(), seq])
    assert env.rows("SELECT * FROM pkgdwmapr.validate_mapping_details(%s)", [mapref],
                    user) == []
    call("SELECT pkgdwmapr.activate_deactivate_mapping(%s, 'A')", [mapref])
    call("SELECT pkgdwjob.create_update_job(%s)", [mapref])
