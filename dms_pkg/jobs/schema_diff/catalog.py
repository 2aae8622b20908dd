"""A table's shape read from its database's catalog: columns, keys, indexes.

One query per kind of fact and dialect, with the table's schema and name
bound as parameters (never pasted into the SQL).  Indexes are compared by
their columns, not their names: the same index is called differently in
every database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from dms_pkg.db.binds import ParamStyle
from dms_pkg.db.sources import SourceConnection
from dms_pkg.errors import UNDEFINED_TABLE, DmsError
from dms_pkg.jobs.schema_diff import types


@dataclass(frozen=True)
class Column:
    name: str
    declared: str  # the type as the database spells it
    type: str  # canonical (types.canonical)
    nullable: bool
    default: str | None  # canonical (types.canonical_default)


@dataclass
class TableShape:
    dialect: str
    schema: str | None
    table: str
    columns: list[Column] = field(default_factory=list)
    primary_key: tuple[str, ...] = ()
    unique: set[tuple[str, ...]] = field(default_factory=set)  # unique keys but the PK
    indexes: set[tuple[str, ...]] = field(default_factory=set)  # other indexes

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.table}" if self.schema else self.table


class _Reader:
    # Rows: name, declared type, nullable (bool-ish), default, is_json (bool-ish)
    COLUMNS_SQL: ClassVar[str]
    # Rows: index name, is primary, is unique, column name (NULL: an expression)
    INDEXES_SQL: ClassVar[str]

    def __init__(self, source: SourceConnection) -> None:
        self.source = source

    def _sql(self, template: str) -> str:
        marker = {ParamStyle.PYFORMAT: "%({})s", ParamStyle.NAMED: ":{}"}.get(self.source.style)
        if marker is None:  # NUMERIC: $1 = schema, $2 = table
            return template.replace("{s}", "$1").replace("{t}", "$2")
        text = template.replace("{s}", marker.format("s")).replace("{t}", marker.format("t"))
        if self.source.style is ParamStyle.PYFORMAT:
            text = text.replace("'%I.%I'", "'%%I.%%I'")
        return text

    def read(self, schema: str | None, table: str) -> TableShape:
        params = {"s": schema, "t": table}
        dialect = self.source.dialect
        shape = TableShape(dialect, schema, table)
        for name, declared, nullable, default, is_json in self.source.fetch(
                self._sql(self.COLUMNS_SQL), params):
            shape.columns.append(Column(
                str(name), str(declared),
                types.canonical(str(declared), dialect, is_json=bool(is_json)),
                bool(nullable), types.canonical_default(
                    None if default is None else str(default), dialect)))
        if not shape.columns:
            raise DmsError(
                f"table {shape.label} does not exist on the {dialect} side, or it has no "
                "columns you may read",
                sqlstate=UNDEFINED_TABLE,
                hint="check the table name, its schema and your privileges")
        indexes: dict[str, tuple[bool, bool, list[str | None]]] = {}
        rows = self.source.fetch(self._sql(self.INDEXES_SQL), params) if self.INDEXES_SQL else []
        for index, primary, unique, column in rows:
            entry = indexes.setdefault(str(index), (bool(primary), bool(unique), []))
            entry[2].append(None if column is None else str(column))
        for primary, unique, columns in indexes.values():
            key = tuple(c if c is not None else "(expression)" for c in columns)
            if primary:
                shape.primary_key = key
            elif unique:
                shape.unique.add(key)
            else:
                shape.indexes.add(key)
        return shape


class _Postgres(_Reader):
    _REL = ("pg_catalog.to_regclass(CASE WHEN {s}::text IS NULL"
            " THEN pg_catalog.quote_ident({t}::text)"
            " ELSE pg_catalog.format('%I.%I', {s}::text, {t}::text) END)")
    COLUMNS_SQL = (
        "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod),"
        " NOT a.attnotnull, CASE WHEN a.attidentity <> '' THEN 'nextval(identity)'"
        " ELSE pg_catalog.pg_get_expr(d.adbin, d.adrelid) END, false"
        " FROM pg_catalog.pg_attribute a LEFT JOIN pg_catalog.pg_attrdef d"
        " ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
        f" WHERE a.attrelid = {_REL} AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum")
    INDEXES_SQL = (
        "SELECT i.indexrelid::regclass::text, i.indisprimary, i.indisunique, a.attname::text"
        " FROM pg_catalog.pg_index i"
        " CROSS JOIN LATERAL pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)"
        " LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
        f" WHERE i.indrelid = {_REL} AND k.ord <= i.indnkeyatts"
        " ORDER BY 1, k.ord")


class _MySQL(_Reader):
    # MariaDB keeps JSON as longtext with a json_valid() CHECK: that is a JSON column.
    COLUMNS_SQL = (
        "SELECT c.column_name, c.column_type, c.is_nullable = 'YES',"
        " CASE WHEN c.extra LIKE '%%auto_increment%%' THEN 'nextval(auto_increment)'"
        " ELSE c.column_default END,"
        " EXISTS (SELECT 1 FROM information_schema.check_constraints k"
        "  WHERE k.constraint_schema = c.table_schema AND k.table_name = c.table_name"
        "  AND k.check_clause LIKE CONCAT('%%json_valid(`', c.column_name, '`)%%'))"
        " FROM information_schema.columns c"
        " WHERE c.table_schema = COALESCE({s}, DATABASE()) AND c.table_name = {t}"
        " ORDER BY c.ordinal_position")
    INDEXES_SQL = (
        "SELECT index_name, index_name = 'PRIMARY', non_unique = 0, column_name"
        " FROM information_schema.statistics"
        " WHERE table_schema = COALESCE({s}, DATABASE()) AND table_name = {t}"
        " ORDER BY index_name, seq_in_index")


class _SQLite(_Reader):
    # An INTEGER PRIMARY KEY is the rowid: SQLite numbers it as PostgreSQL's
    # identity columns do.
    COLUMNS_SQL = (
        "SELECT name, type, \"notnull\" = 0 AND pk = 0,"
        " CASE WHEN pk = 1 AND upper(type) = 'INTEGER' AND (SELECT count(*) FROM"
        "  pragma_table_info({t}, COALESCE({s}, 'main')) WHERE pk > 0) = 1"
        "  THEN 'nextval(rowid)' ELSE dflt_value END, 0"
        " FROM pragma_table_info({t}, COALESCE({s}, 'main')) ORDER BY cid")
    INDEXES_SQL = (
        "SELECT 'pk', 1, 1, name FROM pragma_table_info({t}, COALESCE({s}, 'main'))"
        " WHERE pk > 0 AND NOT EXISTS (SELECT 1 FROM pragma_index_list({t},"
        "  COALESCE({s}, 'main')) WHERE origin = 'pk')"
        " UNION ALL SELECT * FROM (SELECT il.name, il.origin = 'pk', il.\"unique\", ii.name"
        " FROM pragma_index_list({t}, COALESCE({s}, 'main')) AS il"
        " JOIN pragma_index_info(il.name, COALESCE({s}, 'main')) AS ii"
        " ORDER BY il.name, ii.seqno)")

    def read(self, schema: str | None, table: str) -> TableShape:
        shape = super().read(schema, table)
        # SQLite's pk order is in the pk column, not in the table's column order.
        rows = self.source.fetch(self._sql(
            "SELECT name FROM pragma_table_info({t}, COALESCE({s}, 'main')) WHERE pk > 0"
            " ORDER BY pk"), {"s": schema, "t": table})
        if rows:
            shape.primary_key = tuple(str(r[0]) for r in rows)
        return shape


class _InformationSchema(_Reader):
    """Snowflake and Redshift: information_schema, the type spelled from its parts."""

    COLUMNS_SQL = (
        "SELECT c.column_name, CASE"
        " WHEN c.character_maximum_length IS NOT NULL"
        "  THEN c.data_type || '(' || c.character_maximum_length || ')'"
        " WHEN c.numeric_scale IS NOT NULL AND c.data_type IN ('NUMBER', 'numeric', 'NUMERIC')"
        "  THEN c.data_type || '(' || c.numeric_precision || ',' || c.numeric_scale || ')'"
        " ELSE c.data_type END, c.is_nullable = 'YES', c.column_default, false"
        " FROM information_schema.columns c"
        " WHERE c.table_schema = COALESCE({s}, CURRENT_SCHEMA()) AND c.table_name = {t}"
        " ORDER BY c.ordinal_position")
    INDEXES_SQL = (
        "SELECT tc.constraint_name, tc.constraint_type = 'PRIMARY KEY',"
        " tc.constraint_type IN ('PRIMARY KEY', 'UNIQUE'), k.column_name"
        " FROM information_schema.table_constraints tc"
        " JOIN information_schema.key_column_usage k"
        " ON k.constraint_name = tc.constraint_name AND k.table_schema = tc.table_schema"
        " AND k.table_name = tc.table_name"
        " WHERE tc.table_schema = COALESCE({s}, CURRENT_SCHEMA()) AND tc.table_name = {t}"
        " AND tc.constraint_type IN ('PRIMARY KEY', 'UNIQUE')"
        " ORDER BY tc.constraint_name, k.ordinal_position")


class _Snowflake(_InformationSchema):
    # Snowflake's information_schema has no key_column_usage: its (unenforced)
    # keys come from SHOW, read back through RESULT_SCAN.
    INDEXES_SQL = ""

    def read(self, schema: str | None, table: str) -> TableShape:
        shape = super().read(schema, table)
        name = ".".join('"' + p.replace('"', '""') + '"' for p in (schema, table) if p)
        self.source.fetch(f"SHOW PRIMARY KEYS IN TABLE {name.replace('%', '%%')}", {})
        rows = self.source.fetch(
            'SELECT "column_name", "key_sequence" FROM TABLE(RESULT_SCAN(LAST_QUERY_ID()))'
            ' ORDER BY "key_sequence"', {})
        shape.primary_key = tuple(str(r[0]) for r in rows)
        return shape


class _BigQuery(_Reader):
    """BigQuery: the dataset's INFORMATION_SCHEMA (the dataset is the schema)."""

    COLUMNS_SQL = (
        "SELECT column_name, data_type, is_nullable = 'YES', column_default, false"
        " FROM INFORMATION_SCHEMA.COLUMNS WHERE table_name = {t}"
        " AND ({s} IS NULL OR table_schema = {s}) ORDER BY ordinal_position")
    INDEXES_SQL = (
        "SELECT tc.constraint_name, tc.constraint_type = 'PRIMARY KEY', true, k.column_name"
        " FROM INFORMATION_SCHEMA.TABLE_CONSTRAINTS tc"
        " JOIN INFORMATION_SCHEMA.KEY_COLUMN_USAGE k ON k.constraint_name = tc.constraint_name"
        " WHERE tc.table_name = {t} AND tc.constraint_type = 'PRIMARY KEY'"
        " ORDER BY tc.constraint_name, k.ordinal_position")


_READERS: dict[str, type[_Reader]] = {"postgres": _Postgres, "mysql": _MySQL,
                                       "sqlite": _SQLite, "redshift": _InformationSchema,
                                       "snowflake": _Snowflake, "bigquery": _BigQuery}


def read(source: SourceConnection, schema: str | None, table: str) -> TableShape:
    reader = _READERS.get(source.dialect)
    if reader is None:
        raise DmsError(f"schema-diff does not read {source.dialect} catalogs yet",
                       sqlstate="0A000", hint="PostgreSQL, MariaDB/MySQL and SQLite are read")
    return reader(source).read(schema, table)
