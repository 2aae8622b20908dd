"""schema-diff without a server: type and default spellings, pair lines."""

from __future__ import annotations

import pytest

from dms_pkg.errors import DmsError
from dms_pkg.jobs.schema_diff.catalog import Column, TableShape
from dms_pkg.jobs.schema_diff.diff import compare
from dms_pkg.jobs.schema_diff.pairs import parse_dbs, parse_pair
from dms_pkg.jobs.schema_diff.types import canonical, canonical_default

SAME = [
    [("integer", "postgres"), ("int(11)", "mysql"), ("INTEGER", "sqlite"), ("int4", "postgres")],
    [("character varying(20)", "postgres"), ("varchar(20)", "mysql"), ("VARCHAR(20)", "sqlite")],
    [("timestamp without time zone", "postgres"), ("datetime", "mysql"),
     ("TIMESTAMP", "sqlite")],
    [("timestamp with time zone", "postgres"), ("timestamp", "mysql")],
    [("boolean", "postgres"), ("tinyint(1)", "mysql"), ("BOOLEAN", "sqlite")],
    [("numeric(12,2)", "postgres"), ("decimal(12,2)", "mysql"), ("DECIMAL(12,2)", "sqlite")],
    [("text", "postgres"), ("longtext", "mysql"), ("TEXT", "sqlite"), ("CLOB", "sqlite")],
    [("double precision", "postgres"), ("double", "mysql"), ("REAL", "sqlite")],
    [("bytea", "postgres"), ("blob", "mysql"), ("BLOB", "sqlite")],
    [("bigint", "postgres"), ("bigint(20)", "mysql"), ("int(10) unsigned", "mysql")],
]


@pytest.mark.parametrize("group", SAME, ids=[g[0][0] for g in SAME])
def test_equivalent_types_have_one_spelling(group: list[tuple[str, str]]) -> None:
    assert len({canonical(t, d) for t, d in group}) == 1


@pytest.mark.parametrize(("a", "b"), [
    (("varchar(20)", "mysql"), ("character varying(30)", "postgres")),
    (("integer", "postgres"), ("smallint", "postgres")),
    (("timestamp", "postgres"), ("timestamp with time zone", "postgres")),
    (("float", "mysql"), ("double precision", "postgres")),
])
def test_different_types_stay_different(a: tuple[str, str], b: tuple[str, str]) -> None:
    assert canonical(*a) != canonical(*b)


@pytest.mark.parametrize(("default", "dialect", "spelled"), [
    ("'abc'::text", "postgres", "'abc'"), ("'abc'", "mysql", "'abc'"),
    ("0.00", "mysql", "0"), ("0", "postgres", "0"), ("(-1.50)", "postgres", "-1.5"),
    ("NULL", "mysql", None), (None, "postgres", None),
    ("nextval('t_id_seq'::regclass)", "postgres", "AUTOINCREMENT"),
    ("nextval(auto_increment)", "mysql", "AUTOINCREMENT"),
    ("now()", "postgres", "CURRENT_TIMESTAMP"),
    ("current_timestamp()", "mysql", "CURRENT_TIMESTAMP"),
])
def test_defaults_have_one_spelling(default: str | None, dialect: str,
                                    spelled: str | None) -> None:
    assert canonical_default(default, dialect) == spelled


def test_pairs_and_sides() -> None:
    dbs = parse_dbs(["shop=mysql://u@h/shop", "lite=sqlite:///x.db"])
    pair = parse_pair("public.orders:shop.orders", dbs)
    assert (pair.a.db, pair.a.schema, pair.a.table) == ("", "public", "orders")
    assert (pair.b.db, pair.b.schema, pair.b.table) == ("shop", None, "orders")
    three = parse_pair("orders:lite.main.orders", dbs)
    assert (three.a.schema, three.b.db, three.b.schema) == (None, "lite", "main")
    for line, message in [
        ("a:b:c", '"a:b:c" is not a pair: write A:B (one colon)'),
        ("a", '"a" is not a pair: write A:B (one colon)'),
        ("a..b:c", '"a..b" is not a table: write [db.][schema.]table'),
        ("x.y.z:a", '"x" in "x.y.z" is not a database given with --db'),
    ]:
        with pytest.raises(DmsError) as err:
            parse_pair(line, dbs)
        assert err.value.message == message and err.value.sqlstate == "22023"
    with pytest.raises(DmsError):
        parse_dbs(["noequals"])


def test_compare_matches_columns_by_name_not_order_or_case() -> None:
    def shape(*cols: tuple[str, str]) -> TableShape:
        return TableShape("postgres", None, "t",
                          [Column(n, t, canonical(t, "postgres"), True, None) for n, t in cols],
                          primary_key=("ID",))
    a = shape(("id", "integer"), ("Name", "text"))
    b = shape(("name", "text"), ("ID", "int4"))
    assert compare(a, b) == []
