"""Oracle errors -> (code, message, transient), through python-oracledb's own
error objects.

No Oracle server runs here, so the errors are built the way the thin
driver builds them from a server's reply (``oracledb.errors._Error(message,
code=...)``, which applies the driver's own translation to DPY codes and
its Help line) or raises its own (``_create_err``).  That is the driver's
code path, not an imitation of it.
"""

from __future__ import annotations

from typing import Any

import oracledb
import pytest
from oracledb import errors as ora_errors

from dms_pkg.backends import oracle_errors
from dms_pkg.backends.oracle_errors import OracleFault, classify
from dms_pkg.engine.retry import is_transient


def server_error(code: int, text: str) -> oracledb.Error:
    """The exception the thin driver raises for ``ORA-<code>: <text>``."""
    error = ora_errors._Error(f"ORA-{code:05d}: {text}", code=code)
    exc: oracledb.Error = error.exc_type(error)
    return exc


def driver_error(number: int, context: str | None = None, **args: Any) -> oracledb.Error:
    error = ora_errors._create_err(number, context, **args)  # type: ignore[arg-type]
    exc: oracledb.Error = error.exc_type(error)
    return exc


@pytest.mark.parametrize(("code", "text", "sqlstate", "transient"), [
    (3113, "end-of-file on communication channel", "08006", True),
    (3114, "not connected to ORACLE", "08006", True),
    (3135, "connection lost contact", "08006", True),
    (12541, "TNS:no listener", "08001", True),
    (12514, "TNS:listener does not currently know of service requested in connect "
     "descriptor", "08001", True),
    (12170, "TNS:Connect timeout occurred", "08001", True),
    (60, "deadlock detected while waiting for resource", "40P01", True),
    (54, "resource busy and acquire with NOWAIT specified or timeout expired", "55P03", True),
    (1013, "user requested cancel of current operation", "57014", True),
    (28, "your session has been killed", "08006", True),
    (1089, "immediate shutdown or close in progress - no operations are permitted",
     "57P01", True),
    (18, "maximum number of sessions exceeded", "53300", True),
    (1555, 'snapshot too old: rollback segment number 9 with name "_SYSSMU9$" too small',
     "72000", False),
    (1466, "unable to read data - table definition has changed", "72000", False),
    (942, "table or view does not exist", "42P01", False),
    (1031, "insufficient privileges", "42501", False),
    (1017, "invalid credential or not authorized; logon denied", "28P01", False),
    (1722, "invalid number", "22P02", False),
    (1489, "result of string concatenation is too long", "22001", False),
    (20001, "a user's own RAISE_APPLICATION_ERROR", "HV000", False),
])
def test_server_errors_are_classified_with_oracles_own_message(
    code: int, text: str, sqlstate: str, transient: bool
) -> None:
    fault = classify(server_error(code, text))
    assert fault == OracleFault(f"ORA-{code:05d}", f"ORA-{code:05d}: {text}", transient)
    assert fault.sqlstate == sqlstate
    # The runtime decides retries by SQLSTATE: both views agree.
    assert is_transient(fault.sqlstate) is transient


def test_driver_prefix_and_help_url_are_not_part_of_the_message() -> None:
    exc = server_error(3113, "end-of-file on communication channel")
    raw = str(exc.args[0].message)
    assert raw.startswith("DPY-4011: the database or network closed the connection\n")
    assert "Help: https://docs.oracle.com/error-help/db/ora-03113/" in raw
    fault = classify(exc)
    assert fault.message == "ORA-03113: end-of-file on communication channel"
    assert classify(exc.args[0]) == fault  # the error object itself works too


def test_only_a_lost_snapshot_says_so() -> None:
    lost = {c for c in (1555, 8181, 1466, 8176)
            if classify(server_error(c, "x")).snapshot_lost}
    assert lost == {1555, 8181, 1466, 8176}
    assert not classify(server_error(3113, "x")).snapshot_lost
    assert not classify(server_error(942, "x")).snapshot_lost


@pytest.mark.parametrize(("error", "code", "sqlstate", "transient"), [
    (lambda: driver_error(ora_errors.ERR_CONNECTION_FAILED, "[Errno 111] Connection refused",
                          connection_id="abc"), "DPY-6005", "08001", True),
    (lambda: driver_error(ora_errors.ERR_INVALID_SERVICE_NAME, service_name="SALES",
                          host="db1", port=1521), "DPY-6001", "08001", True),
    (lambda: driver_error(ora_errors.ERR_LISTENER_REFUSED_CONNECTION, error_code="12516"),
     "DPY-6000", "08001", True),
    (lambda: driver_error(ora_errors.ERR_NO_CREDENTIALS), "DPY-4001", "28000", False),
    (lambda: driver_error(ora_errors.ERR_NO_CONFIG_DIR), "DPY-4027", "42704", False),
    (lambda: driver_error(ora_errors.ERR_CALL_TIMEOUT_EXCEEDED, timeout=500), "DPY-4024",
     "57014", True),
])
def test_driver_errors_use_their_dpy_code(
    error: Any, code: str, sqlstate: str, transient: bool
) -> None:
    fault = classify(error())
    assert (fault.code, fault.sqlstate, fault.transient) == (code, sqlstate, transient)
    assert fault.message.startswith(f"{code}: ")
    assert is_transient(fault.sqlstate) is transient


def test_every_table_entry_agrees_with_the_runtimes_retry_rule() -> None:
    for table in (oracle_errors._ORA, oracle_errors._DPY):
        for number, (sqlstate, transient) in table.items():
            assert is_transient(sqlstate) is transient, (number, sqlstate)


def test_non_oracle_exceptions() -> None:
    assert classify(ConnectionResetError("reset by peer")) == OracleFault(
        "OSError", "reset by peer", True)
    assert classify(ValueError("bad")) == OracleFault("ValueError", "bad", False)


def test_as_dms_error_keeps_sqlstate_and_message() -> None:
    error = classify(server_error(1555, "snapshot too old")).as_dms_error("chunk 3 of run 7")
    assert (error.sqlstate, error.message) == ("72000", "chunk 3 of run 7: ORA-01555: "
                                                          "snapshot too old")
    fault = classify(server_error(60, "deadlock detected")).fault()
    assert (fault.sqlstate, fault.message) == ("40P01", "ORA-00060: deadlock detected")
