"""table-compare's per-dialect SQL, rendered without a server."""

from __future__ import annotations

import hashlib

from dms_pkg.jobs.compare import normalize
from dms_pkg.jobs.schema_diff.catalog import Column


def col(name: str, type_: str) -> Column:
    return Column(name, type_.lower(), type_, True, None)


def test_values_are_normalised_per_dialect() -> None:
    amount = col("amount", "DECIMAL(12, 2)")
    made = col("made", "TIMESTAMP")
    assert normalize.value_sql(amount, amount, "postgres") == (
        '(round("amount"::numeric, 2))::numeric(65,2)::text')
    assert normalize.value_sql(amount, amount, "mysql") == (
        "CAST(CAST(`amount` AS DECIMAL(65,2)) AS CHAR)")
    assert normalize.value_sql(amount, col("amount", "DOUBLE PRECISION"), "sqlite") == (
        "printf('%.6f', \"amount\")")
    assert normalize.value_sql(made, made, "postgres") == (
        "to_char(\"made\", 'YYYY-MM-DD HH24:MI:SS.MS')")
    assert normalize.value_sql(made, made, "mysql") == (
        "LEFT(DATE_FORMAT(`made`, '%%Y-%%m-%%d %%H:%%i:%%s.%%f'), 23)")
    assert normalize.value_sql(made, made, "sqlite") == "strftime('%Y-%m-%d %H:%M:%f', \"made\")"


def test_a_row_text_cannot_be_forged_by_values_that_hold_the_separator() -> None:
    text = normalize.row_text_sql([(col("a", "TEXT"), None), (col("b", "TEXT"), None)],
                                  "postgres")
    assert text == ("COALESCE(length(\"a\"::text) || ':' || \"a\"::text, 'n') || '|' || "
                    "COALESCE(length(\"b\"::text) || ':' || \"b\"::text, 'n')")


def test_values_that_cannot_hold_the_separator_are_written_once() -> None:
    n, d, t = col("n", "INT"), col("d", "DATE"), col("t", "TEXT")
    assert normalize.row_text_sql([(n, n), (d, d)], "mysql") == (
        "CONCAT(COALESCE(CAST(`n` AS CHAR), 'n'), '|', "
        "COALESCE(DATE_FORMAT(`d`, '%%Y-%%m-%%d'), 'n'))")
    # An integer compared with a text column is written as the text is, prefixed.
    assert normalize.row_text_sql([(n, t)], "postgres") == (
        "COALESCE(length(\"n\"::text) || ':' || \"n\"::text, 'n')")


def test_the_hash_is_60_bits_of_md5() -> None:
    digest = hashlib.md5(b"x").hexdigest()
    assert normalize.hash60("x") == int(digest[17:], 16) == int(digest, 16) & normalize.LOW60
    assert normalize.hash_sql("t", "postgres") == (
        "('x' || substr(md5(t), 18, 15))::bit(60)::bigint")
    assert normalize.hash_sql("t", "mysql") == (
        "CAST(CONV(SUBSTRING(MD5(t), 18, 15), 16, 10) AS UNSIGNED)")
    assert normalize.quote('we"ird%', "postgres") == '"we""ird%%"'
    assert normalize.quote("we`ird", "mysql") == "`we``ird`"
