"""The build step that turns sql/ + plpy/ into the installed SQL."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from dms_pkg import __version__
from dms_pkg.install import bundle
from dms_pkg.resources import resource_dir


def test_every_marker_is_replaced_by_preamble_and_body() -> None:
    built = bundle.build()
    for name, text in built.api:
        assert "@plpy(" not in text, name
    core = dict(built.api)["010_core.sql"]
    assert core.count("dms_pkg preamble") == 2
    assert f'GD.get("dms_pkg_version") != "{__version__}"' in core
    assert "return dms_pkg.__version__" in core


@pytest.mark.parametrize("body", sorted(resource_dir("plpy").glob("*.py")), ids=lambda p: p.name)
def test_each_body_compiles_as_a_plpython_function(body: Path) -> None:
    """PL/Python wraps a body in a def; compile it the same way to catch errors early."""
    source = bundle.preamble() + body.read_text()
    wrapped = "def __plpython_body():\n" + textwrap.indent(source, "    ")
    compile(wrapped, str(body), "exec")


def test_every_body_file_is_used() -> None:
    sql_text = "".join(p.read_text() for p in (resource_dir("sql") / "api").glob("*.sql"))
    used = {name for name, _ in bundle._MARKER.findall(sql_text)}
    files = {p.stem for p in resource_dir("plpy").glob("*.py")}
    assert used == files


def test_every_mapper_entry_has_a_sql_function_and_back() -> None:
    """The shared body dispatches on DMS_ENTRY: each SQL function names an entry
    that exists, and no entry is left without its SQL function."""
    from dms_pkg.mapper.entry import ENTRIES

    sql_text = "".join(p.read_text() for p in (resource_dir("sql") / "api").glob("*.sql"))
    named = {entry for name, entry in bundle._MARKER.findall(sql_text) if name == "mapper"}
    assert named == set(ENTRIES)


def test_an_entry_is_set_before_the_body() -> None:
    text = bundle.render_sql("AS $plpy$@plpy(mapper:pkgdwjob.version)$plpy$;",
                             resource_dir("plpy"))
    assert "DMS_ENTRY = 'pkgdwjob.version'\n# Body of every pkgdwmapr" in text


def test_missing_body_is_a_build_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        bundle.render_sql("AS $plpy$@plpy(nope)$plpy$;", tmp_path)
    assert str(err.value) == f"@plpy(nope) refers to {tmp_path}/nope.py, which does not exist"


def test_checksum_follows_the_code(tmp_path: Path) -> None:
    sql_dir = tmp_path / "sql"
    plpy_dir = tmp_path / "plpy"
    import shutil

    shutil.copytree(resource_dir("sql"), sql_dir)
    shutil.copytree(resource_dir("plpy"), plpy_dir)
    before = bundle.build(sql_dir, plpy_dir).checksum
    assert bundle.build(sql_dir, plpy_dir).checksum == before
    (plpy_dir / "version.py").write_text("return 'x'\n")
    assert bundle.build(sql_dir, plpy_dir).checksum != before
