"""The Oracle backend as the runtime sees it (no server here: what can be checked without one)."""

from __future__ import annotations

from typing import Any

import pytest

from dms_pkg.backends.base import Chunk, backend_for
from dms_pkg.backends.oracle import _Reader
from dms_pkg.errors import DmsError


def test_it_is_registered_for_dbtyp_oracle() -> None:
    backend = backend_for("ORACLE")
    assert (backend.NAME, backend.DIALECT, backend.LABEL) == ("oracle", "oracle", "Oracle")


def test_a_url_endpoint_keeps_its_password_in_memory_only() -> None:
    endpoint = backend_for("ORACLE").endpoint_from_url("oracle://scott:Tiger42@db1:1521/sales")
    assert "Tiger42" not in repr(endpoint) and "Tiger42" not in endpoint.describe()
    assert endpoint.password == "Tiger42"
    assert endpoint.shown == "scott@db1:1521/sales"


def test_a_row_endpoint_holds_no_secret_and_logs_in_as_the_caller_when_it_names_no_login(
) -> None:
    row: dict[str, Any] = {"conid": 7, "connm": "erp", "dbtyp": "ORACLE", "dbhost": "db1",
                           "dbport": 1521, "dbsrvnm": "sales", "usrnm": None, "constr": None,
                           "pwdsrc": "ENV", "pwdref": "ERP_PW"}
    endpoint = backend_for("ORACLE").endpoint(row, "etl")
    assert endpoint.password is None and endpoint.password_env == "ERP_PW"
    from dms_pkg.backends.oracle import _params
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ERP_PW", "s3cr3t")
        params = _params(endpoint)
    assert (params["user"], params["password"], params["host"]) == ("etl", "s3cr3t", "db1")


def test_every_chunk_is_read_as_of_the_runs_scn() -> None:
    reader = _Reader(backend_for("ORACLE").endpoint_from_url("oracle://u@h/s"), 4000)
    query, params = reader._query(Chunk(
        'SELECT o.id FROM orders o WHERE o.id >= :dms_lo AND o.id < :dms_hi',
        {"dms_lo": 1, "dms_hi": 100}, snapshot="123456789"))
    assert "AS OF SCN :dms_scn" in query
    assert params == {"dms_lo": 1, "dms_hi": 100, "dms_scn": 123456789}
    # Without a point in time the chunk is read as it is.
    assert reader._query(Chunk("SELECT 1 FROM dual", {}))[0] == "SELECT 1 FROM dual"


def test_a_binary_copy_is_refused() -> None:
    reader = _Reader(backend_for("ORACLE").endpoint_from_url("oracle://u@h/s"), 4000)
    with pytest.raises(DmsError) as err, reader.copy(Chunk("SELECT 1 FROM dual", {}), "binary"):
        pass
    assert err.value.message == "an Oracle source is read as COPY text"
