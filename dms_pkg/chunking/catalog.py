"""Catalog look-ups the planner needs: a table's columns and primary key.

One class per dialect, overriding the SQL (DESIGN §8).  Table and schema
names are passed as bind values, never pasted into the SQL text.
"""

from __future__ import annotations

from typing import ClassVar

from sqlglot import exp

from dms_pkg.chunking.dialects import ChunkDialect, ParamStyle, get_dialect
from dms_pkg.db.sources import SourceConnection
from dms_pkg.errors import UNDEFINED_TABLE, DmsError


class Catalog:
    """Columns and primary key of a table, read from the source's catalog."""

    COLUMNS_SQL: ClassVar[str] = ""
    PRIMARY_KEY_SQL: ClassVar[str] = ""

    def __init__(self, source: SourceConnection, dialect: ChunkDialect) -> None:
        self.source = source
        self.dialect = dialect

    def _params(self, table: exp.Table) -> dict[str, object]:
        schema = table.args.get("db")
        return {
            "dms_schema": self.dialect.normalize(schema) if schema is not None else None,
            "dms_table": self.dialect.normalize(table.this),
        }

    def _sql(self, template: str) -> str:
        marker = {
            ParamStyle.PYFORMAT: "%({})s",
            ParamStyle.NAMED: ":{}",
        }.get(self.source.style)
        if marker is None:  # NUMERIC: $1 = schema, $2 = table
            return template.replace("{dms_schema}", "$1").replace("{dms_table}", "$2")
        return template.replace("{dms_schema}", marker.format("dms_schema")).replace(
            "{dms_table}", marker.format("dms_table")
        )

    def columns(self, table: exp.Table) -> list[str]:
        rows = self.source.fetch(self._sql(self.COLUMNS_SQL), self._params(table))
        if not rows:
            raise DmsError(
                f"table {table.sql(self.dialect.sqlglot)} does not exist on the "
                f"{self.dialect.NAME} source, or it has no columns you may read",
                sqlstate=UNDEFINED_TABLE,
                hint="check the table name, its schema and your privileges",
            )
        return [r[0] for r in rows]

    def primary_key(self, table: exp.Table) -> list[str]:
        return [
            r[0] for r in self.source.fetch(self._sql(self.PRIMARY_KEY_SQL), self._params(table))
        ]


class PostgresCatalog(Catalog):
    # to_regclass resolves an unqualified name through the search_path, as
    # the user's query will; format('%I.%I') quotes exactly as needed.
    _REL = (
        "pg_catalog.to_regclass(CASE WHEN {dms_schema}::text IS NULL"
        " THEN pg_catalog.quote_ident({dms_table}::text)"
        " ELSE pg_catalog.format('%I.%I', {dms_schema}::text, {dms_table}::text) END)"
    )
    COLUMNS_SQL = (
        "SELECT a.attname::text FROM pg_catalog.pg_attribute a"
        f" WHERE a.attrelid = {_REL} AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum"
    )
    PRIMARY_KEY_SQL = (
        "SELECT a.attname::text FROM pg_catalog.pg_index i"
        " JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)"
        f" WHERE i.indrelid = {_REL} AND i.indisprimary"
        " ORDER BY pg_catalog.array_position(i.indkey::int2[], a.attnum)"
    )

    def _sql(self, template: str) -> str:
        # '%I.%I' is format()'s own syntax; under pyformat binds it must be doubled.
        text = super()._sql(template)
        return (
            text.replace("'%I.%I'", "'%%I.%%I'")
            if self.source.style is ParamStyle.PYFORMAT
            else text
        )


class MySQLCatalog(Catalog):
    COLUMNS_SQL = (
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = COALESCE({dms_schema}, DATABASE()) AND table_name = {dms_table}"
        " ORDER BY ordinal_position"
    )
    PRIMARY_KEY_SQL = (
        "SELECT column_name FROM information_schema.key_column_usage"
        " WHERE table_schema = COALESCE({dms_schema}, DATABASE()) AND table_name = {dms_table}"
        " AND constraint_name = 'PRIMARY' ORDER BY ordinal_position"
    )


class SQLiteCatalog(Catalog):
    # pragma_table_info takes the schema ('main' by default) as its second argument.
    COLUMNS_SQL = "SELECT name FROM pragma_table_info({dms_table}, COALESCE({dms_schema}, 'main'))"
    PRIMARY_KEY_SQL = (
        "SELECT name FROM pragma_table_info({dms_table}, COALESCE({dms_schema}, 'main'))"
        " WHERE pk > 0 ORDER BY pk"
    )


class OracleCatalog(Catalog):
    COLUMNS_SQL = (
        "SELECT column_name FROM all_tab_columns"
        " WHERE owner = COALESCE({dms_schema}, SYS_CONTEXT('USERENV', 'CURRENT_SCHEMA'))"
        " AND table_name = {dms_table} ORDER BY column_id"
    )
    PRIMARY_KEY_SQL = (
        "SELECT cc.column_name FROM all_constraints c JOIN all_cons_columns cc"
        " ON cc.owner = c.owner AND cc.constraint_name = c.constraint_name"
        " WHERE c.constraint_type = 'P'"
        " AND c.owner = COALESCE({dms_schema}, SYS_CONTEXT('USERENV', 'CURRENT_SCHEMA'))"
        " AND c.table_name = {dms_table} ORDER BY cc.position"
    )


_CATALOGS: dict[str, type[Catalog]] = {
    "postgres": PostgresCatalog,
    "mysql": MySQLCatalog,
    "sqlite": SQLiteCatalog,
    "oracle": OracleCatalog,
}


def catalog_for(source: SourceConnection) -> Catalog:
    dialect = get_dialect(source.dialect)
    return _CATALOGS[dialect.NAME](source, dialect)
