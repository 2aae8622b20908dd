"""Oracle errors as the runtime needs them: a code, Oracle's own words, and
whether trying again may help.

python-oracledb raises ``oracledb.Error`` subclasses whose first argument is
an error object with ``code`` (the ORA number, 0 for the driver's own errors)
and ``full_code`` (``ORA-00942``, or ``DPY-4011`` when the driver translated
an ORA error or raised one of its own).  The driver prefixes translated
errors with a line of its own and appends a ``Help: <url>`` line in thin
mode; the message kept here is the database's line(s), without either.

Each known code also gets the PostgreSQL SQLSTATE of the same condition, so
a runtime that decides retries by SQLSTATE (``engine.retry.is_transient``)
decides alike for Oracle: ``transient`` always equals
``is_transient(sqlstate)`` (a unit test holds the tables to it).  A code not
listed is not transient (``HV000``, "error from a foreign data source"): a
data or SQL error fails the chunk at once with Oracle's message.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from dms_pkg.db.faults import Fault
from dms_pkg.errors import DmsError

# SQLSTATE and whether a retry may cure it, per ORA number.
_ORA: dict[int, tuple[str, bool]] = {
    # The connection is gone: a new session may succeed.
    3113: ("08006", True),   # end-of-file on communication channel
    3114: ("08006", True),   # not connected to ORACLE
    3135: ("08006", True),   # connection lost contact
    3111: ("08006", True),   # break received on communication channel
    3122: ("08006", True),   # attempt to close ORACLE-side window on user side
    12537: ("08006", True),  # TNS:connection closed
    12547: ("08006", True),  # TNS:lost contact
    12570: ("08006", True),  # TNS:packet reader failure
    12571: ("08006", True),  # TNS:packet writer failure
    12583: ("08006", True),  # TNS:no reader
    12153: ("08006", True),  # TNS:not connected
    28: ("08006", True),     # your session has been killed
    31: ("08006", True),     # your session has been marked for kill
    1012: ("08003", True),   # not logged on
    2396: ("08006", True),   # exceeded maximum idle time
    603: ("08006", True),    # ORACLE server session terminated by fatal error
    # The listener or the instance cannot take the session now.
    12541: ("08001", True),  # TNS:no listener
    12514: ("08001", True),  # listener does not currently know of service
    12505: ("08001", True),  # listener does not currently know of SID
    12170: ("08001", True),  # TNS:connect timeout occurred
    12535: ("08001", True),  # TNS:operation timed out
    12543: ("08001", True),  # TNS:destination host unreachable
    12516: ("08001", True),  # listener could not find available handler
    12518: ("08001", True),  # listener could not hand off client connection
    12519: ("08001", True),  # no appropriate service handler found
    12520: ("08001", True),  # listener could not find handler for server type
    12521: ("08001", True),  # listener does not know of instance
    12526: ("08001", True),  # all appropriate instances are in restricted mode
    12527: ("08001", True),  # all instances are in restricted mode or blocking
    12528: ("08001", True),  # all appropriate instances are blocking
    1033: ("57P03", True),   # ORACLE initialization or shutdown in progress
    1034: ("57P03", True),   # ORACLE not available
    1090: ("57P03", True),   # shutdown in progress - connection is not permitted
    1089: ("57P01", True),   # immediate shutdown or close in progress
    1092: ("57P01", True),   # ORACLE instance terminated. Disconnection forced
    18: ("53300", True),     # maximum number of sessions exceeded
    20: ("53300", True),     # maximum number of processes exceeded
    # Concurrency: the same statement may pass next time.
    60: ("40P01", True),     # deadlock detected while waiting for resource
    8177: ("40001", True),   # can't serialize access for this transaction
    54: ("55P03", True),     # resource busy and acquire with NOWAIT specified
    30006: ("55P03", True),  # resource busy; acquire with WAIT timeout expired
    4021: ("55P03", True),   # timeout occurred while waiting to lock object
    # Cancelled (connection.cancel(), a DBA, a call timeout): as PostgreSQL's
    # 57014, the chunk goes back to the queue; a stop is honoured by the
    # runtime between chunks, not by this flag.
    1013: ("57014", True),   # user requested cancel of current operation
    # Resources, as PostgreSQL's class 53.
    1652: ("53100", True),   # unable to extend temp segment
    30036: ("53100", True),  # unable to extend segment in undo tablespace
    4031: ("53200", True),   # unable to allocate shared memory
    # The SCN's snapshot is gone: reading again at that SCN fails again, and
    # a new SCN would mix two points in time.  The run must say so.
    1555: ("72000", False),  # snapshot too old
    8181: ("72000", False),  # specified number is not a valid system change number
    1466: ("72000", False),  # unable to read data - table definition has changed
    8176: ("72000", False),  # consistent read failure; rollback data not available
    # Errors of the query or the login: the same every time.
    1031: ("42501", False),  # insufficient privileges
    942: ("42P01", False),   # table or view does not exist
    904: ("42703", False),   # invalid identifier
    900: ("42601", False),   # invalid SQL statement
    907: ("42601", False),   # missing right parenthesis
    933: ("42601", False),   # SQL command not properly ended
    936: ("42601", False),   # missing expression
    918: ("42702", False),   # column ambiguously defined
    1017: ("28P01", False),  # invalid username/password; logon denied
    28000: ("28000", False),  # the account is locked
    1005: ("28P01", False),  # null password given; logon denied
    1722: ("22P02", False),  # invalid number
    1489: ("22001", False),  # result of string concatenation is too long
    1841: ("22008", False),  # year must be between -4713 and +9999
    1476: ("22012", False),  # divisor is equal to zero
}

# The driver's own errors (DPY-NNNN), where the number alone decides.
_DPY: dict[int, tuple[str, bool]] = {
    4011: ("08006", True),   # the database or network closed the connection
    1001: ("08003", True),   # not connected to database
    6005: ("08001", True),   # cannot connect to database (refused, timed out)
    4024: ("57014", True),   # call timeout exceeded
    4001: ("28000", False),  # no credentials specified
    4000: ("42704", False),  # cannot connect: TNS entry not found
    4027: ("42704", False),  # no configuration directory to look a TNS alias up
    3001: ("0A000", False),  # feature only supported in thick mode
}
# DPY-6000 (listener refused), 6001 (service) and 6003 (SID) say "(Similar to
# ORA-NNNNN)": the ORA number decides.
_SIMILAR = re.compile(r"\(Similar to ORA-(\d+)\)")
_UNKNOWN = ("HV000", False)

SNAPSHOT_LOST_CODES = frozenset({"ORA-01555", "ORA-08181", "ORA-01466", "ORA-08176"})


class OracleFault(NamedTuple):
    """``(code, message, transient)`` of one Oracle error."""

    code: str        # "ORA-03113", or "DPY-6005" for the driver's own errors
    message: str     # Oracle's (or the driver's) words, without the Help URL
    transient: bool  # whether a retry may cure it

    @property
    def sqlstate(self) -> str:
        """The PostgreSQL SQLSTATE of the same condition (``HV000`` if unknown)."""
        return _lookup(self.code, self.message)[0]

    @property
    def snapshot_lost(self) -> bool:
        """The run's SCN can no longer be read (snapshot too old, table changed):
        the run must report that its consistent read is lost."""
        return self.code in SNAPSHOT_LOST_CODES

    def fault(self) -> Fault:
        """As the engine's database fault (SQLSTATE + message)."""
        return Fault(self.sqlstate, self.message)

    def as_dms_error(self, context: str, *, hint: str | None = None) -> DmsError:
        """A DmsError ``<context>: <ORA-NNNNN: message>`` with this SQLSTATE."""
        return DmsError(f"{context}: {self.message}", sqlstate=self.sqlstate, hint=hint)


def _lookup(code: str, message: str) -> tuple[str, bool]:
    prefix, _, number = code.partition("-")
    if not number.isdigit():
        return _UNKNOWN
    if prefix == "ORA":
        return _ORA.get(int(number), _UNKNOWN)
    if prefix == "DPY":
        similar = _SIMILAR.search(message)
        if similar is not None:
            return _ORA.get(int(similar.group(1)), _UNKNOWN)
        return _DPY.get(int(number), _UNKNOWN)
    return _UNKNOWN


def _clean(message: str, ora_code: int) -> str:
    """The database's own line(s): no ``Help:`` URL, and no driver line in front
    of an ORA error the driver translated (``DPY-4011: ...\\nORA-03113: ...``)."""
    lines = [ln.rstrip() for ln in message.splitlines()
             if ln.strip() and not ln.lstrip().startswith("Help: ")]
    if ora_code:
        for index, line in enumerate(lines):
            if line.startswith("ORA-"):
                return "\n".join(lines[index:])
    return "\n".join(lines)


def _error_object(error: BaseException | Any) -> Any:
    """The driver's error object inside an ``oracledb.Error`` (or the object itself)."""
    if isinstance(error, BaseException) and error.args and hasattr(error.args[0], "full_code"):
        return error.args[0]
    return error


def classify(error: BaseException | Any) -> OracleFault:
    """``(code, message, transient)`` of an ``oracledb.Error`` (or its error object).

    Anything else is no Oracle error: an ``OSError`` (the socket broke under
    the driver) counts as a lost connection, any other exception as a
    permanent failure with its own text.
    """
    obj = _error_object(error)
    full_code = getattr(obj, "full_code", None)
    if full_code is None:
        if isinstance(error, OSError):
            return OracleFault("OSError", str(error) or type(error).__name__, True)
        return OracleFault(type(error).__name__, str(error), False)
    ora_code = int(getattr(obj, "code", 0) or 0)
    message = _clean(str(getattr(obj, "message", "") or ""), ora_code)
    code = f"ORA-{ora_code:05d}" if ora_code else str(full_code or "")
    if not code:  # the driver gave no code at all: keep the class name
        code = type(error).__name__
    return OracleFault(code, message, _lookup(code, message)[1])


def is_transient(error: BaseException) -> bool:
    """Whether a retry may cure ``error`` (see ``classify``)."""
    return classify(error).transient
