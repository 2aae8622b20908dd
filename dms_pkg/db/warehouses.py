"""Snowflake, BigQuery and Redshift as sides of dms profile, schema-diff and table-compare.

Their drivers are optional extras (``pip install 'dms_pkg[snowflake]'``,
``[bigquery]``, ``[redshift]``), imported only when such a URL is opened; a
missing driver is refused with the command that installs it.  Every source
takes pyformat binds (``%(name)s``); BigQuery's ``@name`` parameters are made
from them here.  Secrets come from the driver's own sources or the
environment (``SNOWFLAKE_PASSWORD``, ``REDSHIFT_PASSWORD``,
``GOOGLE_APPLICATION_CREDENTIALS``), never from a printed URL.

URLs: ``snowflake://user@account/database/schema?warehouse=WH&role=R``,
``bigquery://project/dataset``, ``redshift://user@host:5439/database``.
"""

from __future__ import annotations

import datetime
import decimal
import importlib
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from dms_pkg.db.binds import PYFORMAT_BIND, ParamStyle
from dms_pkg.errors import DmsError

SCHEMES = {"snowflake": ("snowflake", "snowflake.connector"),
           "bigquery": ("bigquery", "google.cloud.bigquery"),
           "redshift": ("redshift", "redshift_connector")}
DRIVER_MISSING = "58P01"  # undefined_file: the driver module is not there


def _driver(scheme: str) -> Any:
    extra, module = SCHEMES[scheme]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DmsError(
            f"{scheme} needs its driver ({module}), which is not installed here",
            sqlstate=DRIVER_MISSING,
            hint=f"pip install 'dms_pkg[{extra}]' in the environment dms runs in") from None


class WarehouseSource:
    style = ParamStyle.PYFORMAT

    def __init__(self, dialect: str, cursor_of: Any, *, bigquery: Any = None) -> None:
        self.dialect = dialect
        self._cursor_of = cursor_of
        self._bigquery = bigquery

    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        if self._bigquery is not None:
            return list(self._bigquery(sql, dict(params or {})))
        with self._cursor_of() as cur:
            cur.execute(sql, dict(params or {}))
            return list(cur.fetchall()) if cur.description else []


def bigquery_sql(sql: str, params: Mapping[str, Any]) -> tuple[str, list[tuple[str, str, Any]]]:
    """pyformat SQL as BigQuery's: ``%(lo0)s`` becomes ``@lo0``, with its type."""
    text = PYFORMAT_BIND.sub(lambda m: f"@{m.group(1)}" if m.group(1) else "%", sql)
    typed = []
    for name in sorted(set(re.findall(r"@(\w+)", text)) & set(params)):
        typed.append((name, _bigquery_type(params[name]), params[name]))
    return text, typed


def _bigquery_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, decimal.Decimal):
        return "BIGNUMERIC"
    if isinstance(value, datetime.datetime):
        return "TIMESTAMP" if value.tzinfo else "DATETIME"
    if isinstance(value, datetime.date):
        return "DATE"
    if isinstance(value, bytes):
        return "BYTES"
    return "STRING"


@contextmanager
def open_warehouse(url: str) -> Iterator[WarehouseSource]:
    parts = urlsplit(url)
    scheme = parts.scheme
    driver = _driver(scheme)
    query = dict(parse_qsl(parts.query))
    path = [unquote(p) for p in parts.path.strip("/").split("/") if p]
    if scheme == "snowflake":
        conn = driver.connect(
            user=unquote(parts.username or ""), account=parts.hostname,
            password=unquote(parts.password) if parts.password else os.environ.get(
                "SNOWFLAKE_PASSWORD"),
            database=path[0] if path else None, schema=path[1] if len(path) > 1 else None,
            warehouse=query.get("warehouse"), role=query.get("role"),
            paramstyle="pyformat")
        try:
            yield WarehouseSource("snowflake", conn.cursor)
        finally:
            conn.close()
    elif scheme == "redshift":
        driver.paramstyle = "pyformat"
        conn = driver.connect(
            host=parts.hostname, port=parts.port or 5439, database=path[0] if path else "dev",
            user=unquote(parts.username or ""),
            password=unquote(parts.password) if parts.password else os.environ.get(
                "REDSHIFT_PASSWORD"))
        try:
            yield WarehouseSource("redshift", conn.cursor)
        finally:
            conn.close()
    else:
        client = driver.Client(project=parts.hostname)

        def run(sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
            text, typed = bigquery_sql(sql, params)
            config = driver.QueryJobConfig(query_parameters=[
                driver.ScalarQueryParameter(n, t, v) for n, t, v in typed],
                default_dataset=f"{parts.hostname}.{path[0]}" if path else None)
            return [tuple(row.values()) for row in client.query(text, job_config=config)]

        try:
            yield WarehouseSource("bigquery", None, bigquery=run)
        finally:
            client.close()
