"""Fixtures over a real PostgreSQL cluster.

The cluster is the project's own sandbox (started if needed), or an existing
server when ``DMS_TEST_DSN`` names a superuser connection to it.  Integration
tests never skip silently: if no cluster can be had they fail, because a
green run that tested nothing would be a lie.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dms_pkg.dsn import with_dbname, with_user
from dms_pkg.install.installer import install
from dms_pkg.sandbox import Sandbox


@dataclass(frozen=True)
class Cluster:
    admin_dsn: str  # superuser, maintenance database
    sandbox: Sandbox | None  # None when DMS_TEST_DSN points elsewhere

    def dsn(self, dbname: str, user: str | None = None) -> str:
        dsn = with_dbname(self.admin_dsn, dbname)
        return with_user(dsn, user) if user else dsn

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.admin_dsn, autocommit=True)


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    external = os.environ.get("DMS_TEST_DSN")
    if external:
        return Cluster(admin_dsn=external, sandbox=None)
    box = Sandbox.default()
    box.start()
    return Cluster(admin_dsn=box.dsn(), sandbox=box)


class DatabaseFactory:
    """Creates throwaway databases and drops them at the end of the scope."""

    def __init__(self, cluster: Cluster, prefix: str) -> None:
        self.cluster = cluster
        self.prefix = prefix
        self.created: list[str] = []

    def create(self, *, installed: bool = False) -> str:
        name = f"dmst_{self.prefix}_{uuid.uuid4().hex[:8]}"[:63]
        with self.cluster.admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.created.append(name)
        if installed:
            install(self.cluster.dsn(name))
        return name

    def drop_all(self) -> None:
        with self.cluster.admin() as conn:
            for name in self.created:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(name)
                    )
                )


@pytest.fixture(scope="module")
def databases(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[DatabaseFactory]:
    prefix = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")[:20]
    factory = DatabaseFactory(cluster, prefix)
    yield factory
    factory.drop_all()


@pytest.fixture(scope="module")
def installed_db(databases: DatabaseFactory) -> str:
    """A fresh database per test module with the plugin installed."""
    return databases.create(installed=True)


@pytest.fixture
def login_role(cluster: Cluster) -> Iterator[Any]:
    """Make LOGIN roles that are members of given dms roles; drop them afterwards."""
    made: list[str] = []

    def make(member_of: str | None) -> str:
        name = f"dmst_login_{uuid.uuid4().hex[:8]}"
        with cluster.admin() as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
            if member_of:
                conn.execute(
                    sql.SQL("GRANT {} TO {}").format(
                        sql.Identifier(member_of), sql.Identifier(name)
                    )
                )
        made.append(name)
        return name

    yield make
    with cluster.admin() as conn:
        for name in made:
            conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def mariadb(cluster: Cluster) -> dict[str, object]:
    """pymysql.connect() keyword arguments for the sandbox's MariaDB server.

    With DMS_TEST_DSN (an external PostgreSQL) the MariaDB sandbox still runs
    under $DMS_HOME: it needs no PostgreSQL.
    """
    from dms_pkg.mariadb_sandbox import MariaDBSandbox
    from dms_pkg.sandbox import default_home

    box = cluster.sandbox.mariadb if cluster.sandbox else MariaDBSandbox(default_home())
    box.start()
    return box.connect_args()


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "",
             every: float = 0.02) -> Any:
    """Call ``predicate`` every ``every`` seconds until it returns something true;
    return that, or fail after ``timeout`` seconds naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
