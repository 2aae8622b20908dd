"""MariaDB/MySQL errors as PostgreSQL SQLSTATEs, with a retry verdict.

The runtime retries by SQLSTATE class (``engine.retry``): a MariaDB error
number is mapped to the PostgreSQL SQLSTATE of the same meaning, and to
whether running the chunk again may cure it (a lost connection, a deadlock,
a lock wait, a server shutting down) or will fail the same way (a syntax
error, an unknown column, a refused login).

The errors reach us two ways: from pymysql (``exc.args == (errno, message)``)
and from the ``mariadb`` client's stderr (``ERROR 1054 (42S22) at line 3:
Unknown column 'x' in 'field list'``); both end up in :class:`MySQLError`.
"""

from __future__ import annotations

import re

from dms_pkg.errors import DmsError

# errno -> (PostgreSQL SQLSTATE, transient)
_BY_ERRNO: dict[int, tuple[str, bool]] = {
    # the connection: lost, refused, gone away, too many, server shutting down
    2002: ("08001", True), 2003: ("08001", True), 2005: ("08001", False),
    2006: ("08006", True), 2013: ("08006", True), 2055: ("08006", True),
    1040: ("53300", True), 1053: ("57P01", True), 1077: ("57P01", True),
    1152: ("08006", True), 1158: ("08006", True), 1159: ("08006", True),
    1160: ("08006", True), 1161: ("08006", True), 4031: ("08006", True),
    # a login refused: no retry cures a wrong password
    1044: ("28000", False), 1045: ("28P01", False), 1049: ("3D000", False),
    1130: ("28000", False), 1251: ("28000", False),
    # killed or interrupted
    1317: ("57014", True), 1927: ("57P01", True), 3024: ("57014", False),
    1969: ("57014", False),
    # concurrency
    1205: ("55P03", True), 1213: ("40P01", True), 1206: ("53200", True),
    1020: ("40001", True),
    # resources
    1037: ("53200", True), 1038: ("53200", True), 1041: ("53200", True),
    1114: ("53100", True), 1021: ("53100", True),
    # the query
    1064: ("42601", False), 1054: ("42703", False), 1146: ("42P01", False),
    1305: ("42883", False), 1052: ("42702", False), 1060: ("42701", False),
    1142: ("42501", False), 1143: ("42501", False), 1227: ("42501", False),
    1370: ("42501", False), 1242: ("21000", False), 1241: ("21000", False),
    1292: ("22007", False), 1366: ("22P02", False), 1264: ("22003", False),
    1406: ("22001", False), 1365: ("22012", False), 1267: ("42804", False),
    1270: ("42804", False), 1271: ("42804", False), 1176: ("42704", False),
    1192: ("25000", False), 1792: ("25006", False),
}

_CLIENT_LINE = re.compile(r"ERROR (\d+) \(([0-9A-Z]{5})\)(?: at line \d+)?: (.*)")


class MySQLError(Exception):
    """A MariaDB error: its number, its message, our SQLSTATE and retry verdict."""

    def __init__(self, errno: int, message: str) -> None:
        super().__init__(errno, message)
        self.errno = errno
        self.message = message

    @property
    def pg_sqlstate(self) -> str:
        return _BY_ERRNO.get(self.errno, ("42000" if 1000 <= self.errno < 2000 else "58000",
                                          False))[0]

    @property
    def transient(self) -> bool:
        return _BY_ERRNO.get(self.errno, ("", False))[1]

    def __str__(self) -> str:
        return f"MariaDB error {self.errno}: {self.message}"


def from_pymysql(exc: BaseException) -> MySQLError | None:
    """The MariaDB error in a pymysql exception, or None."""
    try:
        import pymysql
    except ImportError:  # pragma: no cover - a dependency
        return None
    if not isinstance(exc, pymysql.err.Error):
        return None
    args = exc.args
    if isinstance(exc, pymysql.err.InterfaceError) and not (args and args[0]):
        # A connection used after its link broke (a server restart, a kill):
        # pymysql raises InterfaceError(0, ""), whose errno 0 would read as an
        # unknown, permanent error; it is a lost connection, which a retry on a
        # new session cures.
        return MySQLError(2013, "the connection to the server is closed")
    if args and isinstance(args[0], int):
        return MySQLError(args[0], str(args[1]) if len(args) > 1 else "")
    if isinstance(exc, pymysql.err.InterfaceError):  # used after the link broke
        return MySQLError(2013, str(exc) or "the connection is closed")
    return MySQLError(0, str(exc))


def from_client(stderr: str, returncode: int | None) -> MySQLError:
    """The error the ``mariadb`` client printed before it stopped."""
    for line in stderr.splitlines():
        found = _CLIENT_LINE.search(line)
        if found:
            return MySQLError(int(found.group(1)), found.group(3).strip())
    text = " ".join(stderr.split())[:300]
    if returncode is not None and returncode < 0:
        return MySQLError(2013, f"the mariadb client was stopped by signal {-returncode}")
    return MySQLError(2013, text or f"the mariadb client ended (exit code {returncode})")


def as_dms_error(error: MySQLError, where: str) -> DmsError:
    """``error`` worded for a user: which source, what MariaDB said, what to do."""
    hint = None
    if error.pg_sqlstate in ("28P01", "28000"):
        hint = ("check the login and its password (PWDSRC ENV: the environment variable "
                "PWDREF of the process that connects), and that the account may connect "
                "from this host")
    elif error.pg_sqlstate == "08001":
        hint = "check DBHOST and DBPORT, and that the MariaDB server is running and reachable"
    elif error.pg_sqlstate == "3D000":
        hint = "check DBSRVNM, the database the connection opens"
    return DmsError(f"{where}: {error.message} (MariaDB error {error.errno})",
                    sqlstate=error.pg_sqlstate, hint=hint)
