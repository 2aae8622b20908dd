"""One error type that carries what PostgreSQL needs to report a failure well.

Every refusal in dms_pkg names the problem and the fix.  Carrying SQLSTATE,
DETAIL and HINT on the exception lets the PL/Python adapters re-raise it as a
proper PostgreSQL error (``plpy.error(..., sqlstate=..., hint=...)``) and lets
the CLI print the same text, so a user sees one message whichever way they
called us.
"""

from __future__ import annotations


class DmsError(Exception):
    """A user-facing error with a SQLSTATE, a message, and optional detail/hint."""

    def __init__(
        self,
        message: str,
        *,
        sqlstate: str = "P0001",
        detail: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate
        self.detail = detail
        self.hint = hint

    def __str__(self) -> str:
        parts = [self.message]
        if self.detail:
            parts.append(f"DETAIL: {self.detail}")
        if self.hint:
            parts.append(f"HINT: {self.hint}")
        return "\n".join(parts)


# SQLSTATE codes used across the package, named so call sites read as intent.
INVALID_PARAMETER_VALUE = "22023"
SYNTAX_ERROR = "42601"
UNDEFINED_COLUMN = "42703"
UNDEFINED_TABLE = "42P01"
UNDEFINED_OBJECT = "42704"
FEATURE_NOT_SUPPORTED = "0A000"
INSUFFICIENT_PRIVILEGE = "42501"
CONNECTION_FAILURE = "08006"
SQLCLIENT_UNABLE_TO_ESTABLISH = "08001"
OBJECT_NOT_IN_PREREQUISITE_STATE = "55000"
DUPLICATE_OBJECT = "42710"
