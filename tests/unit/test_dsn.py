from __future__ import annotations

from dms_pkg.dsn import redact, with_dbname, with_user


def test_redact_hides_password_keeps_the_rest() -> None:
    shown = redact("host=db1 port=5433 dbname=sales user=etl password=s3cr3t")
    assert "s3cr3t" not in shown
    assert "password=********" in shown
    assert "host=db1" in shown and "dbname=sales" in shown


def test_redact_url_form() -> None:
    shown = redact("postgresql://etl:s3cr3t@db1:5433/sales")
    assert "s3cr3t" not in shown
    assert "user=etl" in shown


def test_redact_unparseable_is_not_echoed() -> None:
    assert redact("host='unterminated password=s3cr3t") == "<unparseable connection string>"


def test_with_dbname_and_user() -> None:
    dsn = with_user(with_dbname("host=/tmp port=5 dbname=a user=b", "c"), "d")
    assert "dbname=c" in dsn and "user=d" in dsn
