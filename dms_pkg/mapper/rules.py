"""The validation rules of PKGDWMAPR, as pure functions over mapping rows.

Each rule yields ``Problem``s -- the column it concerns (if any), a short
error type and a message that says what is wrong and how to fix it.  The
package records them in DMS_MAPERR and returns them; a mapping with any
problem cannot be verified, so it cannot become a job.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TABLE_TYPES = ("NRM", "DIM", "FCT", "MRT")
FREQUENCIES = ("NA", "ID", "DL", "WK", "FN", "MN", "HY", "YR")
SCD_TYPES = (1, 2)
CHECKPOINT_STRATEGIES = ("NONE", "KEY")
FLAGS = ("Y", "N")
STATUS_FLAGS = ("A", "N")
# A name PostgreSQL and Oracle both take unquoted: a letter, then letters,
# digits or underscores, at most 63 characters (PostgreSQL's limit).
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")
# Columns the package adds to target tables; a mapping may not define them.
RESERVED = ("SKEY", "RWHKEY", "CURFLG", "FROMDT", "TODT", "RECCRDT", "RECUPDT")


SET_BY_VALIDATION = ("the logic verified flag (LGVRFYFLG) is set by "
                     "pkgdwmapr.validate_mapping_details, not given: pass N or leave it out")


def given_verification(values: Mapping[str, Any], column: str | None = None
                       ) -> Problem | None:
    """A definition may not declare itself verified (only validation does)."""
    if values.get("lgvrfyflg") == "Y":
        return Problem(column, "VALUE", SET_BY_VALIDATION)
    return None


@dataclass(frozen=True)
class Problem:
    column: str | None
    kind: str  # error type, stored in DMS_MAPERR.ERRTYP
    message: str


def name_problem(value: Any, what: str, column: str | None = None) -> Problem | None:
    if value is None or not str(value).strip():
        return Problem(column, "REQUIRED", f"{what} is required")
    if not NAME.fullmatch(str(value)):
        return Problem(
            column, "NAME",
            f"{what} {value!r} must start with a letter and contain only letters, digits and "
            "underscores (no spaces or special characters), at most 63 characters",
        )
    return None


def _choice(value: Any, allowed: Sequence[Any], what: str, column: str | None = None
            ) -> Problem | None:
    if value not in allowed:
        return Problem(column, "VALUE", f"{what} must be one of "
                       + ", ".join(str(a) for a in allowed) + f", got {value!r}")
    return None


def mapping_problems(m: Mapping[str, Any]) -> list[Problem]:
    """Rules for one DMS_MAPR row."""
    problems = [
        name_problem(m.get("mapref"), "MAPREF"),
        name_problem(m.get("trgschm"), "target schema (TRGSCHM)"),
        name_problem(m.get("trgtbnm"), "target table (TRGTBNM)"),
        _choice(m.get("trgtbtyp"), TABLE_TYPES, "target table type (TRGTBTYP)"),
        _choice(m.get("frqcd"), FREQUENCIES, "frequency (FRQCD)"),
        _choice(m.get("stflg"), STATUS_FLAGS, "status (STFLG)"),
        _choice(m.get("lgvrfyflg"), FLAGS, "logic verified flag (LGVRFYFLG)"),
        _choice(m.get("chkpntstrtgy"), CHECKPOINT_STRATEGIES,
                "checkpoint strategy (CHKPNTSTRTGY)"),
        _choice(m.get("chkpntenbld"), FLAGS, "checkpoint enabled flag (CHKPNTENBLD)"),
    ]
    if m.get("chkpntstrtgy") == "KEY":
        if not m.get("chkpntclnm"):
            problems.append(Problem(None, "CHECKPOINT", "checkpoint strategy KEY needs the "
                                    "checkpoint column (CHKPNTCLNM)"))
        else:
            problems.append(name_problem(m.get("chkpntclnm"), "checkpoint column (CHKPNTCLNM)"))
    rows = m.get("blkprcrows")
    if rows is not None and (not isinstance(rows, int) or rows <= 0):
        problems.append(Problem(None, "VALUE", f"BLKPRCROWS must be a positive number of rows, "
                                f"got {rows!r}"))
    return [p for p in problems if p is not None]


def detail_problems(d: Mapping[str, Any]) -> list[Problem]:
    """Rules for one DMS_MAPRDTL row taken alone."""
    column = str(d.get("trgclnm") or "") or None
    problems = [
        name_problem(d.get("trgclnm"), "target column (TRGCLNM)", column),
        name_problem(d.get("trgcldtyp"), "datatype code (TRGCLDTYP)", column),
        _choice(d.get("trgkeyflg"), FLAGS, "key flag (TRGKEYFLG)", column),
        _choice(d.get("scdtyp"), SCD_TYPES, "SCD type (SCDTYP)", column),
    ]
    if column and column.upper() in RESERVED:
        problems.append(Problem(column, "NAME", f"target column {column} is added by the "
                                "package itself; choose another name"))
    if not (d.get("maplogic") or "").strip():
        problems.append(Problem(column, "LOGIC", f"column {column}: the mapping logic "
                                "(MAPLOGIC) is required: a query or the code of a "
                                "DMS_MAPRSQL row"))
    # KEYCLNM names the query's business key column(s): a comma-separated list
    # for a composite key, in TRGKEYSEQ order.
    keys = [k.strip() for k in str(d.get("keyclnm") or "").split(",")]
    for key in keys if any(keys) else [None]:
        problems.append(name_problem(key, f"column {column}: source key column (KEYCLNM)",
                                     column))
    problems.append(name_problem(d.get("valclnm"), f"column {column}: source value column "
                                 "(VALCLNM)", column))

    if d.get("mapcmbcd") is not None:
        problems.append(name_problem(d.get("mapcmbcd"), "combination code (MAPCMBCD)", column))
    if d.get("trgkeyflg") == "Y" and d.get("trgkeyseq") is None:
        problems.append(Problem(column, "KEY", f"key column {column} needs its key sequence "
                                "(TRGKEYSEQ)"))
    return [p for p in problems if p is not None]


def details_problems(details: Iterable[Mapping[str, Any]]) -> list[Problem]:
    """Rules across the details of one mapping."""
    rows = list(details)
    problems: list[Problem] = []
    keys = [d for d in rows if d.get("trgkeyflg") == "Y"]
    if not keys:
        problems.append(Problem(None, "KEY", "the mapping has no key column: set TRGKEYFLG 'Y' "
                                "on at least one column"))
    for seq, count in Counter(d.get("trgkeyseq") for d in keys).items():
        if seq is not None and count > 1:
            columns = ", ".join(str(d["trgclnm"]) for d in keys if d.get("trgkeyseq") == seq)
            problems.append(Problem(None, "KEY", f"key sequence {seq} is used by more than one "
                                    f"key column ({columns}); give each its own TRGKEYSEQ"))
    for column, count in Counter(str(d.get("trgclnm", "")).upper() for d in rows).items():
        if count > 1:
            problems.append(Problem(column, "DUPLICATE",
                                    f"target column {column} is mapped more than once"))
    seen: Counter[tuple[str, str]] = Counter(
        (str(d.get("mapcmbcd") or ""), str(d.get("valclnm") or "").upper())
        for d in rows if d.get("trgkeyflg") != "Y")
    for (combination, value), count in seen.items():
        if value and count > 1:
            problems.append(Problem(None, "DUPLICATE", f"value column {value} is used more than "
                                    f"once in combination {combination or '(none)'}"))
    return problems


def combination_problems(m: Mapping[str, Any], details: Iterable[Mapping[str, Any]]
                         ) -> list[Problem]:
    """Rules tying the mapping to its details' combinations."""
    rows = list(details)
    problems: list[Problem] = []
    combinations = {str(d.get("mapcmbcd") or "") for d in rows if d.get("trgkeyflg") != "Y"}
    if m.get("trgtbtyp") != "DIM" and len(combinations) > 1:
        problems.append(Problem(None, "COMBINATION", (
            f"a {m.get('trgtbtyp')} mapping loads rows from one combination, this one has "
            f"{len(combinations)} (" + ", ".join(sorted(c or "(none)" for c in combinations))
            + "); join the queries in one combination (several details may share MAPCMBCD)")))
    if m.get("chkpntstrtgy") == "KEY" and m.get("chkpntclnm"):
        column = str(m["chkpntclnm"]).upper()
        mapped = {str(d.get("trgclnm") or "").upper(): d for d in rows}
        if column not in mapped:
            problems.append(Problem(None, "CHECKPOINT", (
                f"checkpoint column {column} is not a target column of the mapping; "
                "CHKPNTCLNM names the mapped column whose last loaded value is kept")))
        elif mapped[column].get("trgkeyflg") != "Y" and len(combinations) > 1:
            problems.append(Problem(column, "CHECKPOINT", (
                f"checkpoint column {column} must be a key column when the mapping has "
                "several combinations (every combination reads the key)")))
    return problems
