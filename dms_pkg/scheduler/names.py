"""Names as DBMS_SCHEDULER takes them: job names, lists of them, procedure names.

Oracle upper-cases an unquoted job name and keeps a double-quoted one as
written; a job name may be qualified with its owner (``SCOTT.NIGHTLY``).  Here
the owner is a PostgreSQL login, so it folds to lower case like any
PostgreSQL identifier.  A STORED_PROCEDURE action names a PostgreSQL
procedure, ``[schema.]name``, folded the PostgreSQL way too: what Oracle
called ``DW.LOAD_SALES`` is ``dw.load_sales`` once ported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dms_pkg.errors import INSUFFICIENT_PRIVILEGE, INVALID_PARAMETER_VALUE, DmsError

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_$#]*\Z")
MAX_LENGTH = 128  # Oracle's limit for a job name


@dataclass(frozen=True)
class JobName:
    owner: str
    name: str

    def __str__(self) -> str:
        return self.name


def split_outside_quotes(text: str, sep: str) -> list[str]:
    """``text`` split on ``sep`` where it is not inside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _identifier(part: str, what: str, fold: str) -> str:
    text = part.strip()
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        inner = text[1:-1]
        if inner and '"' not in inner.replace('""', ""):
            return inner.replace('""', '"')
    elif _PLAIN.match(text):
        return text.upper() if fold == "upper" else text.lower()
    raise DmsError(f"{what} {part.strip()!r} is not a valid name",
                   sqlstate=INVALID_PARAMETER_VALUE,
                   hint='give a name of letters, digits and _ (or one in double quotes)')


def job_name(text: str | None, login: str, verb: str) -> JobName:
    """The job a caller names; another owner's job is refused before it is looked up
    (a caller learns nothing about it)."""
    if text is None or not text.strip():
        raise DmsError("job_name must be given", sqlstate=INVALID_PARAMETER_VALUE,
                       hint="for example job_name => 'NIGHTLY_LOAD'")
    parts = split_outside_quotes(text.strip(), ".")
    if len(parts) > 2:
        raise DmsError(f"job name {text.strip()!r} is not a valid name",
                       sqlstate=INVALID_PARAMETER_VALUE,
                       hint="give JOB_NAME or OWNER.JOB_NAME")
    name = _identifier(parts[-1], "job name", "upper")
    if len(name) > MAX_LENGTH:
        raise DmsError(f"job name {name!r} is longer than {MAX_LENGTH} characters",
                       sqlstate=INVALID_PARAMETER_VALUE)
    owner = _identifier(parts[0], "job owner", "lower") if len(parts) == 2 else login
    if owner != login:
        raise DmsError(f"job {owner}.{name} belongs to {owner}: only its owner can {verb} it",
                       sqlstate=INSUFFICIENT_PRIVILEGE,
                       hint="a job is seen, changed and run only by the login that created it")
    return JobName(owner, name)


def job_names(text: str | None, login: str, verb: str) -> list[JobName]:
    """A comma-separated list of job names (enable, disable, drop_job, stop_job)."""
    if text is None or not text.strip():
        return [job_name(text, login, verb)]
    found: list[JobName] = []
    for part in split_outside_quotes(text, ","):
        name = job_name(part, login, verb)
        if name not in found:
            found.append(name)
    return found


def procedure_name(text: str) -> tuple[str, ...]:
    """The parts of a ``[schema.]procedure`` name, folded as PostgreSQL folds them."""
    parts = split_outside_quotes(text.strip(), ".")
    if len(parts) > 2 or not text.strip():
        raise DmsError(f"job_action {text.strip()!r} is not a procedure name",
                       sqlstate=INVALID_PARAMETER_VALUE,
                       hint="a STORED_PROCEDURE job names a procedure: [schema.]procedure, "
                            "for example 'dw.load_sales'")
    try:
        return tuple(_identifier(p, "procedure", "lower") for p in parts)
    except DmsError:
        raise DmsError(f"job_action {text.strip()!r} is not a procedure name",
                       sqlstate=INVALID_PARAMETER_VALUE,
                       hint="a STORED_PROCEDURE job names a procedure: [schema.]procedure, "
                            "for example 'dw.load_sales'") from None
