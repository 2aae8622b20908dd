"""What a job runs: the statement its owner's session executes.

* PLSQL_BLOCK: a block (``BEGIN ... END;``, ``DECLARE ... BEGIN ... END;``)
  runs as ``DO`` with a dollar-quote tag that does not occur in the text, so
  the text cannot end the quote; anything else is SQL, run as written.
* STORED_PROCEDURE: ``CALL schema.procedure(arg, ...)`` with the name quoted
  as identifiers and every argument a literal quoted by psycopg (an untyped
  literal, so PostgreSQL converts it to the parameter's type, as Oracle
  converts a VARCHAR2 argument value).

Either way the text is executed by the job owner's own session with the
owner's privileges; nothing here gives it more.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence

from psycopg import sql

from dms_pkg.scheduler.names import procedure_name

PLSQL_BLOCK = "PLSQL_BLOCK"
STORED_PROCEDURE = "STORED_PROCEDURE"
JOB_TYPES = (PLSQL_BLOCK, STORED_PROCEDURE)

_COMMENTS = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.S)
# BEGIN that starts a transaction, not a block.
_TRANSACTION = re.compile(r"\ABEGIN\s*(?:;|\Z|WORK\b|TRANSACTION\b|ISOLATION\b|READ\b|"
                          r"NOT\b|DEFERRABLE\b)", re.I)
_BLOCK = re.compile(r"\A(?:BEGIN|DECLARE)\b|\A<<", re.I)
# SQL*Plus ends a block with a line holding only "/": not part of the block.
_SLASH = re.compile(r"\n\s*/\s*\Z")


def is_block(action: str) -> bool:
    """Whether a PLSQL_BLOCK action is a block (run with DO) rather than SQL."""
    text = _COMMENTS.sub("", action, count=1)
    return bool(_BLOCK.match(text)) and not _TRANSACTION.match(text)


def dollar_quote(body: str) -> str:
    """``body`` dollar-quoted with a tag that ends the quote only where we put it."""
    while True:
        tag = f"$dms_job_{secrets.token_hex(6)}$"
        # Checked on the joined text: a body ending in "$dms_job_xxx" must not
        # let the closing tag's first "$" close the quote early.
        if (tag + body + tag).find(tag, len(tag)) == len(tag) + len(body):
            return tag + body + tag


def command(job_type: str, action: str, arguments: Sequence[str | None]) -> str:
    """The statement that carries out a job."""
    if job_type == STORED_PROCEDURE:
        return sql.SQL("CALL {}({})").format(
            sql.Identifier(*procedure_name(action)),
            sql.SQL(", ").join(sql.Literal(a) for a in arguments)).as_string(None)
    if is_block(action):
        return "DO " + dollar_quote(_SLASH.sub("", action.rstrip()))
    return action
