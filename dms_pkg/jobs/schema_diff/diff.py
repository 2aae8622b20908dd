"""Two table shapes compared: every difference, each as one record.

Columns are matched by name, case-insensitively (MariaDB and SQLite compare
names so, and PostgreSQL folds unquoted names to lower case); keys and
indexes by their columns.  Column order is not a difference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from dms_pkg.jobs.schema_diff.catalog import TableShape

KINDS = ("column_only_in_a", "column_only_in_b", "type", "nullable", "default",
         "primary_key", "unique_only_in_a", "unique_only_in_b", "index_only_in_a",
         "index_only_in_b")


@dataclass(frozen=True)
class Difference:
    kind: str  # one of KINDS
    column: str | None
    a: Any
    b: Any

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        what = f"column {self.column}: " if self.column else ""
        if self.kind == "column_only_in_a":
            return f"column {self.column} only in A ({self.a})"
        if self.kind == "column_only_in_b":
            return f"column {self.column} only in B ({self.b})"
        if self.kind.endswith("_only_in_a"):
            return f"{self.kind.split('_')[0]} on ({', '.join(self.a)}) only in A"
        if self.kind.endswith("_only_in_b"):
            return f"{self.kind.split('_')[0]} on ({', '.join(self.b)}) only in B"
        if self.kind == "primary_key":
            return (f"primary key: A ({', '.join(self.a) or 'none'}) vs "
                    f"B ({', '.join(self.b) or 'none'})")
        return f"{what}{self.kind} {self.a} vs {self.b}"


def _keys(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(n.lower() for n in names)


def compare(a: TableShape, b: TableShape) -> list[Difference]:
    found: list[Difference] = []
    b_columns = {c.name.lower(): c for c in b.columns}
    a_names = {c.name.lower() for c in a.columns}
    for col in a.columns:
        other = b_columns.get(col.name.lower())
        if other is None:
            found.append(Difference("column_only_in_a", col.name, col.declared, None))
            continue
        if col.type != other.type:
            found.append(Difference("type", col.name, col.type, other.type))
        if col.nullable != other.nullable:
            found.append(Difference("nullable", col.name, col.nullable, other.nullable))
        if col.default != other.default:
            found.append(Difference("default", col.name, col.default, other.default))
    for col in b.columns:
        if col.name.lower() not in a_names:
            found.append(Difference("column_only_in_b", col.name, None, col.declared))
    if _keys(a.primary_key) != _keys(b.primary_key):
        found.append(Difference("primary_key", None, list(a.primary_key),
                                list(b.primary_key)))
    for kind, left, right in (("unique", a.unique, b.unique), ("index", a.indexes, b.indexes)):
        lk, rk = {_keys(k): k for k in left}, {_keys(k): k for k in right}
        for key in sorted(set(lk) - set(rk)):
            found.append(Difference(f"{kind}_only_in_a", None, list(lk[key]), None))
        for key in sorted(set(rk) - set(lk)):
            found.append(Difference(f"{kind}_only_in_b", None, None, list(rk[key])))
    return found
