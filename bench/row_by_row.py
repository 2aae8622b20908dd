"""The naive Python loader the benchmark compares against (reference, not a dms path).

    .venv/bin/python bench/row_by_row.py SOURCE_DSN TARGET_DSN ROWS

Reads the first ROWS orders (by id) from the source, then inserts them into
the target's ``orders`` one ``INSERT`` per row with psycopg, committing every
1,000 rows -- what a hand-written ETL script typically does.  bench/run.py
runs it as a separate process under GNU time, so its wall time and peak
RSS are measured like the other reference commands.
"""

from __future__ import annotations

import sys
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

COLUMNS = ("id, customer_id, amount, status, note, created_at, ship_date, is_paid, payload")
INSERT = f"INSERT INTO orders ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
COMMIT_EVERY = 1_000


def fetch(source_dsn: str, rows: int) -> list[tuple[Any, ...]]:
    with psycopg.connect(source_dsn) as src:
        return src.execute(
            f"SELECT {COLUMNS} FROM orders ORDER BY id LIMIT %s", [rows]).fetchall()


def load(target_dsn: str, rows: list[tuple[Any, ...]]) -> None:
    with psycopg.connect(target_dsn) as dst, dst.cursor() as cur:
        for done, row in enumerate(rows, 1):
            # jsonb arrives as a dict; wrap it so it goes back as jsonb.
            payload = Jsonb(row[-1]) if row[-1] is not None else None
            cur.execute(INSERT, (*row[:-1], payload))
            if done % COMMIT_EVERY == 0:
                dst.commit()
        dst.commit()


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    source_dsn, target_dsn, rows = argv[0], argv[1], int(argv[2])
    load(target_dsn, fetch(source_dsn, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
