"""Oracle's DBMS_PARALLEL_EXECUTE exceptions, each with its own SQLSTATE.

Oracle code catches them by name (``WHEN DBMS_PARALLEL_EXECUTE.TASK_NOT_FOUND``);
PL/pgSQL catches them by SQLSTATE (``WHEN SQLSTATE 'PE498'``).  Class ``PE``
is not used by PostgreSQL, and the last three characters repeat Oracle's
code (ORA-29498 -> PE498), so one table in docs/dbms_parallel_execute.md
maps both ways.  The message starts with Oracle's code and name, so a log
search for ORA-29498 still finds it.
"""

from __future__ import annotations

from dataclasses import dataclass

from dms_pkg.errors import DmsError


@dataclass(frozen=True)
class OracleException:
    name: str
    code: int  # Oracle's SQLCODE, negative

    @property
    def sqlstate(self) -> str:
        return f"PE{abs(self.code) % 1000:03d}"

    def error(self, message: str, hint: str | None = None,
              detail: str | None = None) -> DmsError:
        return DmsError(f"ORA{self.code:06d}: {self.name}: {message}", sqlstate=self.sqlstate,
                        hint=hint, detail=detail)


MISSING_ROLE = OracleException("MISSING_ROLE", -29490)
INVALID_TABLE = OracleException("INVALID_TABLE", -29491)
INVALID_STATE_FOR_CHUNK = OracleException("INVALID_STATE_FOR_CHUNK", -29492)
INVALID_STATUS = OracleException("INVALID_STATUS", -29493)
INVALID_STATE_FOR_RUN = OracleException("INVALID_STATE_FOR_RUN", -29494)
INVALID_STATE_FOR_RESUME = OracleException("INVALID_STATE_FOR_RESUME", -29495)
DUPLICATE_TASK_NAME = OracleException("DUPLICATE_TASK_NAME", -29497)
TASK_NOT_FOUND = OracleException("TASK_NOT_FOUND", -29498)
CHUNK_NOT_FOUND = OracleException("CHUNK_NOT_FOUND", -29499)

ALL = (MISSING_ROLE, INVALID_TABLE, INVALID_STATE_FOR_CHUNK, INVALID_STATUS,
       INVALID_STATE_FOR_RUN, INVALID_STATE_FOR_RESUME, DUPLICATE_TASK_NAME, TASK_NOT_FOUND,
       CHUNK_NOT_FOUND)
