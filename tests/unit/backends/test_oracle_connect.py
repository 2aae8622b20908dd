"""Connecting to Oracle: DMS_DBCONDTLS rows and URLs -> oracledb.connect()
keywords, refusals that name the fix, and no secret in any message.

The driver is real (python-oracledb thin); no Oracle server runs here, so a
connection attempt goes to a closed port on 127.0.0.1 and must fail
cleanly.
"""

from __future__ import annotations

import socket
from typing import Any

import oracledb
import pytest
import sqlglot
from oracledb import errors as ora_errors

from dms_pkg.backends.oracle_connect import (
    CONNECT_TIMEOUT,
    PROGRAM,
    Caller,
    LoginCheck,
    cancel,
    connect,
    connect_params,
    describe,
    params_from_url,
    redact,
    secret_key,
)
from dms_pkg.dsn import secret_key as stored_secret_key
from dms_pkg.engine.connections import check_stored_row
from dms_pkg.errors import DmsError

SECRET = "Tiger#42@x"
BASE = {"tcp_connect_timeout": CONNECT_TIMEOUT, "program": PROGRAM}


def row(**values: Any) -> dict[str, Any]:
    return {"conid": 3, "connm": "erp", "dbtyp": "ORACLE", "pwdsrc": "ENV",
            "pwdref": "ERP_PW", **values}


ENV = {"ERP_PW": SECRET}


def test_row_by_parts_with_the_password_from_the_environment_now() -> None:
    params = connect_params(row(dbhost="db1", dbport=1522, dbsrvnm="SALES", usrnm="etl"),
                            Caller("alice"), ENV)
    assert params == {**BASE, "host": "db1", "port": 1522, "service_name": "SALES",
                      "user": "etl", "password": SECRET}


def test_default_port_and_the_caller_as_login() -> None:
    params = connect_params(row(dbhost="db1", dbsrvnm="SALES"), Caller("alice"), ENV)
    assert (params["port"], params["user"]) == (1521, "alice")
    assert connect_params(row(dbhost="db1", dbsrvnm="SALES"), "bob", ENV)["user"] == "bob"


@pytest.mark.parametrize("constr", ["db1:1521/sales", "//db1/sales", "SALES_TNS",
                                    "(DESCRIPTION=(ADDRESS=(PROTOCOL=TCP)(HOST=db1)(PORT=1521))"
                                    "(CONNECT_DATA=(SID=ORCL)))",
                                    "tcps://db1:2484/sales?wallet_location=/etc/wallet"])
def test_constr_is_passed_as_the_dsn(constr: str) -> None:
    params = connect_params(row(constr=constr, usrnm="etl"), None, ENV)
    assert params == {**BASE, "dsn": constr, "user": "etl", "password": SECRET}


def test_a_login_in_constr_is_used_once() -> None:
    params = connect_params(row(constr="etl@db1:1521/sales"), Caller("alice"), ENV)
    assert (params["dsn"], params["user"]) == ("db1:1521/sales", "etl")
    with pytest.raises(DmsError) as err:
        connect_params(row(constr="etl@db1/sales", usrnm="other"), None, ENV)
    assert err.value.message == "connection 3 (erp) names the login twice, in USRNM and in CONSTR"


@pytest.mark.parametrize(("constr", "key"), [
    (f"etl/{SECRET}@db1:1521/sales", "password (user/password@)"),
    (f'etl/"{SECRET}"@db1/sales', "password (user/password@)"),
    (f"tcps://db1/sales?wallet_location=/w&wallet_password={SECRET}", "wallet_password"),
    (f"(DESCRIPTION=(ADDRESS=(HOST=db1))(SECURITY=(WALLET_PASSWORD={SECRET})))",
     "wallet_password"),
])
def test_a_secret_in_constr_is_refused_without_repeating_it(constr: str, key: str) -> None:
    assert secret_key(constr) == key
    assert stored_secret_key(constr, "ORACLE") == key
    with pytest.raises(DmsError) as err:
        connect_params(row(constr=constr), None, ENV)
    assert err.value.message == (
        f"CONSTR of connection 3 (erp) holds a secret ({key}); DMS tables never store one")
    assert err.value.sqlstate == "22023"
    assert SECRET not in str(err.value) and "Tiger" not in str(err.value)
    # The table's trigger uses the same check for ORACLE rows.
    with pytest.raises(DmsError) as stored:
        check_stored_row({"connm": "erp", "dbtyp": "ORACLE", "constr": constr})
    assert SECRET not in str(stored.value)
    assert stored.value.message.startswith("CONSTR of connection erp holds a secret")


@pytest.mark.parametrize("constr", ["db1:1521/sales", "etl@db1/sales", "SALES_TNS",
                                    "(DESCRIPTION=(ADDRESS=(HOST=db1)(PORT=1521)))"])
def test_constr_without_a_secret_is_accepted(constr: str) -> None:
    assert secret_key(constr) is None
    check_stored_row({"connm": "erp", "dbtyp": "ORACLE", "constr": constr})


@pytest.mark.parametrize(("values", "message", "hint"), [
    ({"constr": "db1/sales", "dbhost": "db1"},
     "connection 3 (erp) gives both CONSTR and DBHOST/DBPORT/DBSRVNM", "name the database one"),
    ({"dbsrvnm": "SALES"}, "connection 3 (erp) has no DBHOST", "give DBHOST, DBPORT"),
    ({"dbhost": "db1"}, "connection 3 (erp) has no DBSRVNM", "give DBHOST, DBPORT"),
    ({}, "connection 3 (erp) has no DBHOST and DBSRVNM", "give DBHOST, DBPORT"),
    ({"dbhost": "db1", "dbsrvnm": "S", "pwdsrc": "PGPASS"},
     "connection 3 (erp) has PWDSRC PGPASS, a libpq password source that Oracle logins "
     "cannot use", "set PWDSRC ENV"),
    ({"dbhost": "db1", "dbsrvnm": "S", "pwdsrc": "PGSERVICE"},
     "connection 3 (erp) has PWDSRC PGSERVICE, a libpq password source that Oracle logins "
     "cannot use", "set PWDSRC ENV"),
    ({"dbhost": "db1", "dbsrvnm": "S", "pwdref": None},
     "connection 3 (erp) has PWDSRC ENV but no PWDREF", "put the name of the environment"),
    ({"dbhost": "db1", "dbsrvnm": "S", "pwdsrc": "NONE", "usrnm": "etl"},
     "connection 3 (erp) has PWDSRC NONE (external authentication) and a login (etl)",
     "external authentication logs in as the OS or wallet identity"),
    ({"dbhost": "db1", "dbsrvnm": "S", "dbtyp": "MYSQL"},
     "connection 3 (erp) is a MYSQL database, not ORACLE", "use the backend"),
])
def test_bad_rows_are_refused_naming_the_fix(
    values: dict[str, Any], message: str, hint: str
) -> None:
    with pytest.raises(DmsError) as err:
        connect_params(row(**values), Caller("alice"), ENV)
    assert err.value.message == message
    assert err.value.hint is not None and err.value.hint.startswith(hint)
    assert err.value.sqlstate == "22023"


def test_an_unset_password_variable_is_named_not_shown() -> None:
    with pytest.raises(DmsError) as err:
        connect_params(row(dbhost="db1", dbsrvnm="S"), Caller("alice"), {})
    assert err.value.message == ("connection 3 (erp) takes its password from environment "
                                 "variable ERP_PW, which is not set")
    assert err.value.sqlstate == "08001"


def test_pwdsrc_none_asks_for_external_authentication() -> None:
    params = connect_params(row(dbhost="db1", dbsrvnm="S", pwdsrc="NONE", pwdref=None),
                            Caller("alice"), ENV)
    assert params == {**BASE, "host": "db1", "port": 1521, "service_name": "S",
                      "externalauth": True}


@pytest.mark.parametrize(("url", "expected"), [
    ("oracle://etl@db1:1522/SALES", {"host": "db1", "port": 1522, "service_name": "SALES",
                                     "user": "etl"}),
    ("oracle://etl:Ti%40ger@db1/SALES", {"host": "db1", "port": 1521, "service_name": "SALES",
                                         "user": "etl", "password": "Ti@ger"}),
    ("oracle+oracledb://system:pw@127.0.0.1:49153/?service_name=FREEPDB1",
     {"host": "127.0.0.1", "port": 49153, "service_name": "FREEPDB1", "user": "system",
      "password": "pw"}),
    ("oracle://db1/SALES", {"host": "db1", "port": 1521, "service_name": "SALES",
                            "externalauth": True}),
])
def test_params_from_url(url: str, expected: dict[str, Any]) -> None:
    assert params_from_url(url) == {**BASE, **expected}


@pytest.mark.parametrize(("url", "message"), [
    ("postgresql://u:pw@h/db", "postgresql://u:********@h/db is not an oracle:// URL"),
    ("oracle://u:pw@h", "oracle://u:********@h names no host or no service"),
    ("oracle://u:pw@h/s?mode=sysdba", "oracle://u:********@h/s?mode=sysdba has parameters "
                                      "this backend does not take: mode"),
    ("oracle://u:pw@h:99999/s", "oracle://u:********@h:99999/s has an invalid port"),
])
def test_bad_urls_are_refused_without_their_password(url: str, message: str) -> None:
    with pytest.raises(DmsError) as err:
        params_from_url(url)
    assert err.value.message == message
    assert ":pw@" not in str(err.value)


@pytest.mark.parametrize(("text", "shown"), [
    (f"oracle://etl:{SECRET}@db1/s", "oracle://etl:********@db1/s"),
    (f"etl/{SECRET}@db1:1521/sales", "etl/********@db1:1521/sales"),
    (f'connect etl/"{SECRET}"@db1/s failed', 'connect etl/********@db1/s failed'),
    (f"tcps://db1/s?wallet_password={SECRET}&x=1", "tcps://db1/s?wallet_password=********&x=1"),
    (f"(SECURITY=(WALLET_PASSWORD={SECRET}))", "(SECURITY=(WALLET_PASSWORD=********))"),
    ("db1:1521/sales", "db1:1521/sales"),
])
def test_redact_leaves_no_secret(text: str, shown: str) -> None:
    assert redact(text) == shown
    assert SECRET not in redact(text)


def test_redact_also_hides_known_secrets_anywhere() -> None:
    assert redact(f"ORA-01017 for password {SECRET}", [SECRET, None]) == (
        "ORA-01017 for password ********")


def test_describe_never_shows_the_password() -> None:
    params = connect_params(row(dbhost="db1", dbsrvnm="SALES", usrnm="etl"), None, ENV)
    assert describe(params) == "etl@db1:1521/SALES"
    assert describe({"dsn": "SALES_TNS", "externalauth": True}) == (
        "SALES_TNS (external authentication)")


def test_external_authentication_is_refused_in_thin_mode_before_any_network() -> None:
    assert oracledb.is_thin_mode()
    with pytest.raises(DmsError) as err:
        connect({"host": "192.0.2.1", "port": 1521, "service_name": "S", "externalauth": True},
                label="source connection 3 (erp)")
    assert err.value.sqlstate == "0A000"
    assert err.value.message == (
        "cannot connect to source connection 3 (erp): external authentication needs "
        "python-oracledb's thick mode (Oracle Client libraries); thin mode logs in with a "
        "password only")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_an_unreachable_server_fails_with_08001_and_no_secret() -> None:
    port = closed_port()
    params = {"host": "127.0.0.1", "port": port, "service_name": "SALES", "user": "etl",
              "password": SECRET, "tcp_connect_timeout": 2.0}
    with pytest.raises(DmsError) as err:
        connect(params)
    text = str(err.value)
    assert err.value.sqlstate == "08001"
    assert err.value.message.startswith(
        f"cannot connect to Oracle at etl@127.0.0.1:{port}/SALES: DPY-6005: cannot connect "
        "to database")
    assert "Connection refused" in err.value.message
    assert SECRET not in text


def test_login_check_sql_is_one_oracle_select() -> None:
    tree = sqlglot.parse_one(LoginCheck.SQL, read="oracle")
    assert [e.alias_or_name for e in tree.expressions] == ["login", "admin_roles",
                                                           "admin_privileges"]
    assert "'DBA'" in LoginCheck.SQL and "'BECOME USER'" in LoginCheck.SQL


@pytest.mark.parametrize(("result", "refused"), [
    (("ETL", 0, 0), False),
    (("ETL", 1, 0), True),     # the DBA role
    (("ETL", 0, 2), True),     # e.g. BECOME USER
    (("SYSTEM", 0, 0), True),
    (("sys", 0, 0), True),
])
def test_login_check_refuses_administrators_for_ordinary_callers(
    result: tuple[Any, ...], refused: bool
) -> None:
    where = "source connection 3 (erp)"
    if not refused:
        LoginCheck.check(result, Caller("alice"), where)
        return
    with pytest.raises(DmsError) as err:
        LoginCheck.check(result, Caller("alice"), where)
    assert err.value.sqlstate == "42501"
    assert err.value.message == (
        f"{where} logs in as {result[0]}, an administrator of its database: the engine would "
        "run your SQL there with privileges beyond any grant, and alice is not a superuser")
    LoginCheck.check(result, Caller("postgres", is_superuser=True), where)  # allowed


class CancelRecorder:
    """Stands in for an oracledb.Connection, which needs a server to exist; it
    records cancel() or raises the driver's real error for a closed one."""

    def __init__(self, error: oracledb.Error | None = None) -> None:
        self.error = error
        self.cancelled = 0

    def cancel(self) -> None:
        if self.error is not None:
            raise self.error
        self.cancelled += 1


def test_cancel_calls_the_drivers_cancel_and_ignores_a_closed_connection() -> None:
    live = CancelRecorder()
    cancel(live)
    assert live.cancelled == 1
    closed = ora_errors._create_err(ora_errors.ERR_NOT_CONNECTED)
    cancel(CancelRecorder(closed.exc_type(closed)))  # nothing to cancel: no error
    other = ora_errors._create_err(ora_errors.ERR_FEATURE_NOT_SUPPORTED, feature="x",
                                   driver_type="thick")
    with pytest.raises(oracledb.NotSupportedError):
        cancel(CancelRecorder(other.exc_type(other)))
