"""An orders-like sample table for the demo and the benchmarks.

Mixed types the way a real fact table has them: bigint key, int foreign
key, numeric money, short and long text with about 10 % NULLs, timestamptz,
a date with about 20 % NULLs, boolean and a small jsonb document.  Every
value is a pure function of the row id (``hashint8``), so two databases
generated with the same row count hold identical data, and a rerun is
reproducible.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

ORDERS_COLUMNS = (
    "id bigint NOT NULL, customer_id integer NOT NULL, amount numeric(12,2) NOT NULL, "
    "status text NOT NULL, note text, created_at timestamptz NOT NULL, ship_date date, "
    "is_paid boolean NOT NULL, payload jsonb"
)

_FILL = """
INSERT INTO {table}
SELECT id,
       1 + (h1 %% 100000)::int,
       ((h2 %% 10000000) / 100.0)::numeric(12,2),
       (ARRAY['new','paid','shipped','delivered','cancelled'])[1 + (h3 %% 5)::int],
       CASE WHEN h4 %% 10 = 0 THEN NULL
            ELSE left('note ' || md5(id::text) || ' ' || md5((id + 1)::text) || ' '
                      || md5((id + 2)::text), 20 + (h4 %% 81)::int) END,
       timestamptz '2020-01-01 00:00:00+00' + make_interval(secs => (h5 %% (4 * 365 * 86400))),
       CASE WHEN h6 %% 5 = 0 THEN NULL
            ELSE date '2020-01-01' + (h5 %% (4 * 365 * 86400) / 86400)::int + (h6 %% 30)::int END,
       h7 %% 2 = 0,
       jsonb_build_object('sku', 'SKU-' || (h1 %% 5000), 'qty', 1 + h2 %% 10,
                          'gift', h3 %% 7 = 0, 'tags', jsonb_build_array('t' || (h4 %% 13)))
FROM (SELECT g AS id,
             abs(hashint8(g * 7 + 1)) AS h1, abs(hashint8(g * 7 + 2)) AS h2,
             abs(hashint8(g * 7 + 3)) AS h3, abs(hashint8(g * 7 + 4)) AS h4,
             abs(hashint8(g * 7 + 5)) AS h5, abs(hashint8(g * 7 + 6)) AS h6,
             abs(hashint8(g * 7 + 7)) AS h7
      FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g) AS s
"""


def create_orders(
    conn: psycopg.Connection[Any], rows: int, *, schema: str = "public", table: str = "orders"
) -> bool:
    """(Re)create ``schema.table`` with ``rows`` orders; False if it already had them.

    The connection must be in autocommit mode: the fill is committed in
    slices of a million rows and the table is vacuumed (hint bits, visibility
    map, statistics) so the first timed read does not pay for that.
    """
    name = sql.Identifier(schema, table)
    exists = conn.execute(
        "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text)) IS NOT NULL",
        [schema, table],
    ).fetchone()
    if exists and exists[0]:
        have = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(name)).fetchone()
        if have and have[0] == rows:
            return False
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))
    conn.execute(sql.SQL("CREATE TABLE {} (" + ORDERS_COLUMNS + ")").format(name))
    fill = sql.SQL(_FILL).format(table=name)
    for first in range(1, rows + 1, 1_000_000):
        conn.execute(fill, {"first": first, "last": min(rows, first + 999_999)})
    conn.execute(
        sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (id)").format(name)
    )
    conn.execute(sql.SQL("VACUUM (FREEZE, ANALYZE) {}").format(name))
    return True


def create_empty_orders(
    conn: psycopg.Connection[Any], *, schema: str = "public", table: str = "orders"
) -> None:
    """An empty target with the same columns and primary key."""
    name = sql.Identifier(schema, table)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))
    conn.execute(
        sql.SQL("CREATE TABLE {} (" + ORDERS_COLUMNS + ", PRIMARY KEY (id))").format(name)
    )


# An order-independent content checksum: count plus the sum of a 64-bit hash
# of every row's text form (the anchor benchmark's method), so two tables
# with the same rows in any physical order give the same pair.
CHECKSUM_SQL = (
    "SELECT count(*) AS n, coalesce(sum(hashtextextended(t::text, 0)::numeric), 0) AS h "
    "FROM {} AS t"
)


def checksum(conn: psycopg.Connection[Any], schema: str, table: str) -> tuple[int, int]:
    row = conn.execute(
        sql.SQL(CHECKSUM_SQL).format(sql.Identifier(schema, table))
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])
