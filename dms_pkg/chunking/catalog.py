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

# Chunk dialect name -> catalog class; filled by Catalog.__init_subclass__.
_CATALOGS: dict[str, type[Catalog]] = {}


class Catalog:
    """Columns, primary key and unique keys of a table, read from the source's catalog.

    Each subclass names the chunk dialect it serves in ``DIALECT`` and is
    registered under it when defined -- here, or in a source backend's module.
    """

    DIALECT: ClassVar[str] = ""
    COLUMNS_SQL: ClassVar[str] = ""
    PRIMARY_KEY_SQL: ClassVar[str] = ""
    # Rows (index name, column name or NULL for an expression, column is NOT NULL)
    # of every unique, non-partial index, in index then column order.
    UNIQUE_KEYS_SQL: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.DIALECT:
            _CATALOGS[cls.DIALECT] = cls

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

    # One row: the relation's kind (PostgreSQL's relkind); empty where the
    # dialect has no such notion.
    RELATION_KIND_SQL: ClassVar[str] = ""

    def relation_kind(self, table: exp.Table) -> str | None:
        """PostgreSQL's relkind (``r`` table, ``p`` partitioned, ``v`` view, ...),
        or None: it says whether the relation has a ctid and takes TABLESAMPLE."""
        if not self.RELATION_KIND_SQL:
            return None
        rows = self.source.fetch(self._sql(self.RELATION_KIND_SQL), self._params(table))
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    def primary_key(self, table: exp.Table) -> list[str]:
        return [
            r[0] for r in self.source.fetch(self._sql(self.PRIMARY_KEY_SQL), self._params(table))
        ]

    def unique_keys(self, table: exp.Table) -> list[list[str]]:
        """Column lists that identify a row: the primary key and every unique
        index on plain NOT NULL columns (a NULL repeats under a unique index,
        so it would not make ORDER BY deterministic)."""
        keys: list[list[str]] = []
        primary = self.primary_key(table)
        if primary:
            keys.append(primary)
        groups: dict[str, list[tuple[str | None, bool]]] = {}
        for name, column, not_null in self.source.fetch(
            self._sql(self.UNIQUE_KEYS_SQL), self._params(table)
        ):
            groups.setdefault(str(name), []).append((column, bool(not_null)))
        for parts in groups.values():
            if all(column is not None and not_null for column, not_null in parts):
                keys.append([str(column) for column, _ in parts])
        return keys


class PostgresCatalog(Catalog):
    DIALECT = "postgres"
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
    RELATION_KIND_SQL = f"SELECT c.relkind::text FROM pg_catalog.pg_class c WHERE c.oid = {_REL}"
    # Expression indexes are left out whole (indexprs): their plain columns
    # alone are not unique.
    UNIQUE_KEYS_SQL = (
        "SELECT i.indexrelid::regclass::text, a.attname::text, a.attnotnull"
        " FROM pg_catalog.pg_index i"
        " CROSS JOIN LATERAL pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)"
        " LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
        f" WHERE i.indrelid = {_REL} AND i.indisunique AND i.indpred IS NULL"
        " AND i.indexprs IS NULL AND k.ord <= i.indnkeyatts"
        " ORDER BY 1, k.ord"
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
    DIALECT = "mysql"
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
    # column_name is NULL for a functional key part (MySQL 8).
    UNIQUE_KEYS_SQL = (
        "SELECT s.index_name, s.column_name, c.is_nullable = 'NO'"
        " FROM information_schema.statistics s LEFT JOIN information_schema.columns c"
        " ON c.table_schema = s.table_schema AND c.table_name = s.table_name"
        " AND c.column_name = s.column_name"
        " WHERE s.table_schema = COALESCE({dms_schema}, DATABASE()) AND s.table_name = {dms_table}"
        " AND s.non_unique = 0 ORDER BY s.index_name, s.seq_in_index"
    )


class OracleCatalog(Catalog):
    DIALECT = "oracle"
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
    UNIQUE_KEYS_SQL = (
        "SELECT c.constraint_name, cc.column_name, CASE tc.nullable WHEN 'N' THEN 1 ELSE 0 END"
        " FROM all_constraints c JOIN all_cons_columns cc"
        " ON cc.owner = c.owner AND cc.constraint_name = c.constraint_name"
        " JOIN all_tab_columns tc ON tc.owner = c.owner AND tc.table_name = c.table_name"
        " AND tc.column_name = cc.column_name"
        " WHERE c.constraint_type = 'U'"
        " AND c.owner = COALESCE({dms_schema}, SYS_CONTEXT('USERENV', 'CURRENT_SCHEMA'))"
        " AND c.table_name = {dms_table} ORDER BY c.constraint_name, cc.position"
    )


def catalog_for(source: SourceConnection) -> Catalog:
    dialect = get_dialect(source.dialect)  # loads the backends' dialects and catalogs
    return _CATALOGS[dialect.NAME](source, dialect)
