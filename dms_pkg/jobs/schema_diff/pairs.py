"""What to compare: pairs ``A:B`` of tables, each side ``[db.][schema.]table``.

``db`` is a name given with ``--db NAME=URL`` (a PostgreSQL connection
string, ``mysql://...``, ``sqlite:///path``); without it a side is in the
``--dsn`` database.  With two parts, the first is a ``--db`` name if there is
one of that name, else the schema.  Names are taken as written (no case
folding): ``public.Orders`` is the table "Orders".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dms_pkg.errors import INVALID_PARAMETER_VALUE, DmsError

DEFAULT_DB = ""  # the --dsn database


@dataclass(frozen=True)
class Side:
    db: str  # a --db name, or DEFAULT_DB
    schema: str | None
    table: str
    text: str  # as given

    @property
    def label(self) -> str:
        return self.text


@dataclass(frozen=True)
class Pair:
    text: str  # the line as given
    a: Side
    b: Side


def parse_side(text: str, dbs: Mapping[str, str]) -> Side:
    parts = text.strip().split(".")
    if any(not p for p in parts) or len(parts) > 3:
        raise DmsError(f'"{text}" is not a table: write [db.][schema.]table',
                       sqlstate=INVALID_PARAMETER_VALUE,
                       hint="db is a --db NAME=URL name; without it, the --dsn database")
    if len(parts) == 3:
        if parts[0] not in dbs:
            raise DmsError(f'"{parts[0]}" in "{text}" is not a database given with --db',
                           sqlstate=INVALID_PARAMETER_VALUE,
                           hint=f"add --db {parts[0]}=URL (known: "
                                f"{', '.join(sorted(dbs)) or 'none'})")
        return Side(parts[0], parts[1], parts[2], text.strip())
    if len(parts) == 2:
        if parts[0] in dbs:
            return Side(parts[0], None, parts[1], text.strip())
        return Side(DEFAULT_DB, parts[0], parts[1], text.strip())
    return Side(DEFAULT_DB, None, parts[0], text.strip())


def parse_pair(text: str, dbs: Mapping[str, str]) -> Pair:
    line = text.strip()
    if line.count(":") != 1:
        raise DmsError(f'"{line}" is not a pair: write A:B (one colon)',
                       sqlstate=INVALID_PARAMETER_VALUE,
                       hint="for example public.orders:mariadb.shop.orders")
    left, right = line.split(":")
    return Pair(line, parse_side(left, dbs), parse_side(right, dbs))


def lines(stream: Iterable[str]) -> list[str]:
    """Pair lines of a file or stdin: blank lines and # comments are skipped."""
    return [s.strip() for s in stream if s.strip() and not s.strip().startswith("#")]


def parse_dbs(items: Iterable[str]) -> dict[str, str]:
    dbs: dict[str, str] = {}
    for item in items:
        name, sep, url = item.partition("=")
        if not sep or not name.strip() or not url.strip() or "." in name or ":" in name:
            raise DmsError(f'--db "{item.split("=")[0]}=..." is not NAME=URL',
                           sqlstate=INVALID_PARAMETER_VALUE,
                           hint="for example --db shop=mysql://dms@127.0.0.1:3306/shop")
        dbs[name.strip()] = url.strip()
    return dbs
