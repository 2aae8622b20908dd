"""The MariaDB sandbox is a real server the tests can use."""

from __future__ import annotations

from typing import Any

import pymysql


def test_mariadb_answers_over_its_socket(mariadb: dict[str, Any]) -> None:
    conn = pymysql.connect(**mariadb)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION(), @@port, @@bind_address, @@tmpdir")
            version, port, bind, tmpdir = cur.fetchone()
    finally:
        conn.close()
    assert "MariaDB" in version
    assert bind == "127.0.0.1"
    assert port >= 53307
    # Its own temporary folder: a server starting in a shared /tmp deletes
    # every other server's temporary tables there.
    assert tmpdir.rstrip("/").endswith("/mariadb/tmp") and tmpdir != "/tmp", tmpdir
