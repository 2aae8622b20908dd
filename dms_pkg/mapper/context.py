"""What the mapper packages work with: the local database, the engine, the writer."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from dms_pkg.backends import postgres
from dms_pkg.backends.base import PlanningSession, backend_for
from dms_pkg.backends.endpoint import Endpoint
from dms_pkg.db.base import Session
from dms_pkg.db.psycopg_db import PsycopgDatabase
from dms_pkg.engine import connections
from dms_pkg.engine.local import Local
from dms_pkg.engine.worker import Login
from dms_pkg.errors import UNDEFINED_OBJECT, DmsError


@dataclass
class Context:
    local: Local
    login: Login | None = None
    notify: Callable[[str], None] | None = None
    # Worker sessions opened for this call before its code loaded (head_start;
    # None: none were tried for): the first job run takes them
    # (``take_booted``); the entry closes any left.
    booted: list[str] | None = None

    def take_booted(self) -> list[str] | None:
        names, self.booted = self.booted, None
        return names

    @property
    def db(self) -> Session:
        return self.local.session

    def write(self, op: str, **args: Any) -> dict[str, Any]:
        """A write to the DMS tables, through the SECURITY DEFINER ``dms._write``."""
        row = self.db.query("SELECT dms._write($1::text, $2::jsonb)::text AS result",
                            [op, json.dumps(args, default=str)])
        result: dict[str, Any] = json.loads(row[0]["result"])
        return result

    def rows(self, sql_text: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        return self.db.query(sql_text, params or [])

    def say(self, message: str) -> None:
        if self.notify is not None:
            self.notify(message)

    def connection(self, conid: int | None) -> Endpoint:
        return connections.resolve(self.db, conid, self.local.conninfo.conninfo, "source")

    @contextmanager
    def session_on(self, conid: int | None) -> Iterator[Session]:
        """The PostgreSQL database of (target) connection ``conid`` (this one when
        None), as the caller sees it."""
        if conid is None:
            yield self.db
            return
        info = connections.resolve(self.db, conid, self.local.conninfo.conninfo, "target")
        with postgres.connect(info, autocommit=False) as conn:
            try:
                yield PsycopgDatabase(conn)
            finally:
                if not conn.closed:
                    conn.rollback()

    @contextmanager
    def planning_on(self, conid: int | None) -> Iterator[PlanningSession]:
        """The source database of connection ``conid`` (this one when None), of any
        DBTYP with a backend, as the planner sees it."""
        if conid is None:
            yield postgres.Planning(self.db, self.local.planner_source)
            return
        info = self.connection(conid)
        with backend_for(info.dbtyp).planning(info) as planning:
            yield planning


def database_type(ctx: Context, conid: int | None) -> str:
    """DBTYP of a connection; this database is POSTGRESQL."""
    if conid is None:
        return "POSTGRESQL"
    rows = ctx.rows("SELECT dbtyp FROM dms.dms_dbcondtls WHERE conid = $1::bigint AND curflg = 'Y'",
                    [conid])
    if not rows:
        raise DmsError(f"connection {conid} does not exist in DMS_DBCONDTLS",
                       sqlstate=UNDEFINED_OBJECT)
    return str(rows[0]["dbtyp"])

