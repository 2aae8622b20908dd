"""Migration discovery and the compatibility rules, without a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from dms_pkg import __version__
from dms_pkg.errors import DmsError
from dms_pkg.install.migrations import Applied, Migration, discover, pending
from dms_pkg.resources import resource_dir


def _applied(m: Migration) -> Applied:
    return Applied(m.version, m.name, m.checksum, __version__)


def test_discover_orders_by_number(tmp_path: Path) -> None:
    (tmp_path / "0010_b.sql").write_text("select 2;")
    (tmp_path / "0002_a.sql").write_text("select 1;")
    assert [m.name for m in discover(tmp_path)] == ["0002_a.sql", "0010_b.sql"]


def test_discover_refuses_misnamed_file(tmp_path: Path) -> None:
    (tmp_path / "2_add.sql").write_text("select 1;")
    with pytest.raises(DmsError) as err:
        discover(tmp_path)
    assert err.value.message == "migration file 2_add.sql is not named NNNN_name.sql"


def test_discover_refuses_duplicate_numbers(tmp_path: Path) -> None:
    (tmp_path / "0003_a.sql").write_text("select 1;")
    (tmp_path / "0003_b.sql").write_text("select 2;")
    with pytest.raises(DmsError) as err:
        discover(tmp_path)
    assert err.value.message == "two migrations share number 0003: 0003_a.sql and 0003_b.sql"


def test_pending_returns_unapplied_in_order() -> None:
    a, b, c = (Migration(n, f"000{n}_m.sql", f"select {n};") for n in (1, 2, 3))
    assert pending([a, b, c], [_applied(a)]) == [b, c]
    assert pending([a, b, c], [_applied(a), _applied(b), _applied(c)]) == []


def test_pending_refuses_newer_schema() -> None:
    a = Migration(1, "0001_m.sql", "select 1;")
    newer = Applied(7, "0007_future.sql", "x" * 64, "9.9.9")
    with pytest.raises(DmsError) as err:
        pending([a], [_applied(a), newer])
    assert err.value.message == (
        f"this database's dms schema is newer than dms_pkg {__version__}: it has migration "
        "0007_future.sql (applied by dms_pkg 9.9.9), and this package knows migrations "
        "only up to 0001"
    )
    assert err.value.hint == "install dms_pkg 9.9.9 or newer"


def test_pending_refuses_edited_migration() -> None:
    a = Migration(1, "0001_m.sql", "select 1;")
    edited = Migration(1, "0001_m.sql", "select 1; -- changed")
    with pytest.raises(DmsError) as err:
        pending([edited], [_applied(a)])
    assert err.value.message == "migration 0001_m.sql was changed after it was applied"


def test_pending_refuses_migration_numbered_below_applied() -> None:
    a, b, c = (Migration(n, f"000{n}_m.sql", f"select {n};") for n in (1, 2, 3))
    with pytest.raises(DmsError) as err:
        pending([a, b, c], [_applied(a), _applied(c)])
    assert err.value.message == (
        "migration 0002_m.sql is numbered below the newest applied one (0003) but was never applied"
    )


def test_pending_refuses_deleted_migration() -> None:
    a, b = (Migration(n, f"000{n}_m.sql", f"select {n};") for n in (1, 2))
    with pytest.raises(DmsError) as err:
        pending([b], [_applied(a), _applied(b)])
    assert err.value.message == (
        "migration 0001_m.sql is recorded as applied but this package has no such file"
    )


def test_packaged_migrations_are_well_formed() -> None:
    found = discover(resource_dir("migrations"))
    assert found and found[0].version == 1
    # numbered in order; a gap is fine (numbers are handed out per branch)
    versions = [m.version for m in found]
    assert versions == sorted(set(versions))
