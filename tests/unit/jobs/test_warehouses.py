"""BigQuery, Snowflake and Redshift: the profile, catalog and checksum SQL as rendered.

No warehouse can be reached from here: these tests stop at the SQL (and at
the refusal when a driver is missing); ``test_a_real_warehouse`` runs the
queries when a URL is given in DMS_TEST_WAREHOUSE_URL, and is skipped otherwise.
"""

from __future__ import annotations

import decimal
import os

import pytest

from dms_pkg.db.binds import ParamStyle
from dms_pkg.db.warehouses import DRIVER_MISSING, bigquery_sql
from dms_pkg.errors import DmsError
from dms_pkg.jobs.compare import normalize
from dms_pkg.jobs.profile.metrics import scan_one
from dms_pkg.jobs.schema_diff import catalog
from dms_pkg.jobs.schema_diff.catalog import Column
from dms_pkg.jobs.schema_diff.types import canonical

COLS = [Column("id", "INT64", "BIGINT", False, None), Column("name", "STRING", "TEXT", True, None)]


def test_profile_scan_per_warehouse() -> None:
    assert scan_one("bigquery", "sales", "orders", COLS).sql == (
        "SELECT COUNT(*), COUNT(`id`), COUNT(DISTINCT `id`), MIN(`id`), MAX(`id`),"
        " AVG(CAST(`id` AS FLOAT64)), STDDEV_SAMP(CAST(`id` AS FLOAT64)), COUNT(`name`),"
        " COUNT(DISTINCT `name`), MIN(`name`), MAX(`name`), MIN(LENGTH(`name`)),"
        " AVG(CAST(LENGTH(`name`) AS FLOAT64)), MAX(LENGTH(`name`)) FROM `sales`.`orders`")
    assert scan_one("snowflake", "SALES", "ORDERS", COLS).sql.startswith(
        'SELECT COUNT(*), COUNT("id"), COUNT(DISTINCT "id"), MIN("id"), MAX("id"),'
        ' AVG(CAST("id" AS DOUBLE))')
    assert scan_one("redshift", "sales", "orders", COLS).sql.endswith(
        'MAX(LENGTH("name")) FROM "sales"."orders"')


@pytest.mark.parametrize(("type_text", "dialect", "spelled"), [
    ("INT64", "bigquery", "BIGINT"), ("STRING", "bigquery", "TEXT"),
    ("NUMERIC(12, 2)", "bigquery", "DECIMAL(12, 2)"), ("DATETIME", "bigquery", "TIMESTAMP"),
    ("TIMESTAMP", "bigquery", "TIMESTAMPTZ"), ("NUMBER(12,2)", "snowflake", "DECIMAL(12, 2)"),
    ("TIMESTAMP_NTZ", "snowflake", "TIMESTAMP"), ("FLOAT", "snowflake", "DOUBLE PRECISION"),
    ("character varying(20)", "redshift", "VARCHAR(20)"), ("integer", "redshift", "INT"),
])
def test_warehouse_types_have_the_one_spelling(type_text: str, dialect: str,
                                               spelled: str) -> None:
    assert canonical(type_text, dialect) == spelled


@pytest.mark.parametrize(("dialect", "hash_sql", "sum_sql"), [
    ("snowflake", "BITAND(MD5_NUMBER_LOWER64(t), 1152921504606846975)",
     "TO_VARCHAR(COALESCE(SUM(h), 0))"),
    ("bigquery", "CAST(CONCAT('0x', SUBSTR(TO_HEX(MD5(t)), 18, 15)) AS INT64)",
     "CAST(COALESCE(SUM(CAST(h AS BIGNUMERIC)), 0) AS STRING)"),
    ("redshift", "STRTOL(SUBSTRING(MD5(t), 18, 15), 16)",
     "COALESCE(SUM((h)::numeric(38,0)), 0)::varchar"),
])
def test_checksums_per_warehouse_are_the_same_60_bits(dialect: str, hash_sql: str,
                                                      sum_sql: str) -> None:
    """Every dialect keeps the low 60 bits of the row text's MD5: what Snowflake's
    MD5_NUMBER_LOWER64 gives, masked, and PostgreSQL's last 15 hex digits."""
    assert normalize.hash_sql("t", dialect) == hash_sql
    assert normalize.sum_sql("h", dialect) == sum_sql
    assert normalize.hash_sql("t", "postgres") == (
        "('x' || substr(md5(t), 18, 15))::bit(60)::bigint")


def test_values_are_normalised_alike_per_warehouse() -> None:
    amount = Column("amount", "NUMERIC(12,2)", "DECIMAL(12, 2)", True, None)
    made = Column("made", "TIMESTAMP", "TIMESTAMPTZ", True, None)
    assert normalize.value_sql(amount, amount, "bigquery") == (
        "FORMAT('%.2f', CAST(`amount` AS BIGNUMERIC))")
    assert normalize.value_sql(amount, amount, "snowflake") == (
        'TO_VARCHAR(ROUND("amount", 2)::NUMBER(38,2))')
    assert normalize.value_sql(made, made, "bigquery") == (
        "FORMAT_TIMESTAMP('%Y-%m-%d %H:%M:%E3S', `made`, 'UTC')")
    assert normalize.value_sql(made, made, "snowflake") == (
        "TO_VARCHAR(CONVERT_TIMEZONE('UTC', \"made\"), 'YYYY-MM-DD HH24:MI:SS.FF3')")
    assert normalize.value_sql(made, made, "redshift") == (
        "to_char(convert_timezone('UTC', \"made\"), 'YYYY-MM-DD HH24:MI:SS.MS')")
    assert normalize.row_text_sql([(amount, None)], "bigquery") == (
        "CONCAT(COALESCE(FORMAT('%.2f', CAST(`amount` AS BIGNUMERIC)), 'n'))")


class _Rendering:
    """Only what the catalog reader needs to render its SQL: no database."""

    style = ParamStyle.PYFORMAT

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect


@pytest.mark.parametrize("dialect", ["snowflake", "redshift", "bigquery"])
def test_catalog_queries_bind_the_names(dialect: str) -> None:
    reader = catalog._READERS[dialect](_Rendering(dialect))  # type: ignore[arg-type]
    columns = reader._sql(reader.COLUMNS_SQL)
    assert "%(t)s" in columns and "%(s)s" in columns and "orders" not in columns
    assert "INFORMATION_SCHEMA" in columns.upper()


def test_bigquery_parameters_are_typed() -> None:
    text, typed = bigquery_sql("SELECT 1 WHERE k >= %(lo0)s AND k < %(hi0)s AND x LIKE '%%'",
                               {"lo0": 5, "hi0": decimal.Decimal("7.5")})
    assert text == "SELECT 1 WHERE k >= @lo0 AND k < @hi0 AND x LIKE '%'"
    assert typed == [("hi0", "BIGNUMERIC", decimal.Decimal("7.5")), ("lo0", "INT64", 5)]


@pytest.mark.parametrize(("url", "extra"), [
    ("snowflake://me@acme/db/public?warehouse=wh", "snowflake"),
    ("bigquery://my-project/sales", "bigquery"), ("redshift://me@host:5439/dev", "redshift")])
def test_a_warehouse_without_its_driver_is_refused_with_the_install_command(
        url: str, extra: str) -> None:
    from dms_pkg.db.sources import open_source

    with pytest.raises(DmsError) as err, open_source(url):
        pass
    assert err.value.sqlstate == DRIVER_MISSING
    assert err.value.hint == f"pip install 'dms_pkg[{extra}]' in the environment dms runs in"


def test_a_real_warehouse() -> None:
    url = os.environ.get("DMS_TEST_WAREHOUSE_URL")
    if not url:
        pytest.skip("no Snowflake, BigQuery or Redshift account is reachable from here "
                    "(set DMS_TEST_WAREHOUSE_URL and DMS_TEST_WAREHOUSE_TABLE to run it)")
    from dms_pkg.db.sources import open_source
    from dms_pkg.jobs.profile import metrics

    schema, _, table = os.environ["DMS_TEST_WAREHOUSE_TABLE"].rpartition(".")
    with open_source(url) as source:
        shape = catalog.read(source, schema or None, table)
        plan = metrics.scan_one(source.dialect, schema or None, table, shape.columns)
        rows, profiles = metrics.read_scan_one(plan, source.fetch(plan.sql, {})[0],
                                               shape.columns)
    assert rows >= 0 and len(profiles) == len(shape.columns)
