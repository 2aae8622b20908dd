"""Where one database is, as the engine needs it: no secret inside.

One type for every database a run touches -- the engine's own database, a
DMS_DBCONDTLS connection of any DBTYP, a connection handed to the Python
API.  ``conninfo`` is the libpq key=value string of a PostgreSQL endpoint;
``params`` are the driver's keyword arguments of any other (never a
password).  The secret, when there is one, is looked up when connecting
(``secret()``): from the environment variable the row names (PWDSRC ENV),
or kept in memory for a Python API connection -- never shown, never stored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from dms_pkg.errors import SQLCLIENT_UNABLE_TO_ESTABLISH, DmsError

# DBTYP -> the chunk planner's dialect.
DIALECTS = {"POSTGRESQL": "postgres", "MYSQL": "mysql", "MARIADB": "mysql",
            "ORACLE": "oracle", "SQLITE": "sqlite"}


class LoginGuard(Protocol):
    """Checks, once connected, that a connection's login holds no more than the caller."""

    @property
    def caller(self) -> str:
        """The login the connection works for."""
        ...

    def check(self, conn: Any, endpoint: Endpoint, probe: str) -> None: ...


@dataclass(frozen=True)
class Endpoint:
    """Where one database is, as the engine needs it (no secret inside)."""

    conid: int | None
    name: str
    dbtyp: str
    conninfo: str = ""  # PostgreSQL: libpq key=value string without any password
    password_env: str | None = None
    # Only for connections handed to the Python API: kept in memory, never shown.
    password: str | None = field(default=None, repr=False, compare=False)
    # Checks who a DMS_DBCONDTLS connection really logged in as.
    guard: LoginGuard | None = field(default=None, repr=False, compare=False)
    # The engine's own route back to this server (dms.loopback_conninfo).
    loopback: bool = False
    # Other databases: the driver's keyword arguments, without any password.
    params: Mapping[str, Any] = field(default_factory=dict, compare=False)
    # Other databases: how to show where it is (already redacted).
    shown: str = ""

    @property
    def dialect(self) -> str:
        return DIALECTS[self.dbtyp]

    @property
    def is_local(self) -> bool:
        return self.conid is None

    def describe(self) -> str:
        if self.conid is None:
            return "this database" if self.dbtyp == "POSTGRESQL" else f"the {self.name}"
        return f"connection {self.conid} ({self.name})"

    def secret(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The password to connect with, looked up now; None when there is none."""
        if self.password:
            return self.password
        if not self.password_env:
            return None
        env = os.environ if environ is None else environ
        value = env.get(self.password_env)
        if value is None:
            raise DmsError(
                f"{self.describe()} takes its password from environment variable "
                f"{self.password_env}, which is not set",
                sqlstate=SQLCLIENT_UNABLE_TO_ESTABLISH,
                hint="set it in the environment of the process that connects "
                "(for workers inside the server: the server's environment, e.g. "
                "/etc/postgresql/15/main/environment)",
            )
        return value

    def connect_kwargs(self, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Keyword arguments for psycopg.connect(), the password looked up now."""
        kwargs: dict[str, Any] = {"conninfo": self.conninfo}
        secret = self.secret(environ)
        if secret:
            kwargs["password"] = secret
        return kwargs
