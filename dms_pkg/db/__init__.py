"""The small connection interface the engine talks through (DESIGN §2).

Two implementations: :class:`~dms_pkg.db.plpy_db.PlpyDatabase` over the
``plpy`` module handed in by a PL/Python body (the local database, inside a
backend) and :class:`~dms_pkg.db.psycopg_db.PsycopgDatabase` over a driver
connection (the CLI, tests, remote databases).  Code above this interface
never knows which one it has, so it is testable without a backend.
"""

from dms_pkg.db.base import Database, Row, Session

__all__ = ["Database", "Row", "Session"]
