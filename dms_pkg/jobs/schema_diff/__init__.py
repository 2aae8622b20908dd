"""``dms schema-diff``: compare tables' schemas across PostgreSQL, MariaDB/MySQL and SQLite.

``pairs`` reads what to compare, ``catalog`` reads a table's columns, keys
and indexes from its database, ``types`` writes each type in one spelling
for every dialect, ``diff`` compares two tables, ``batch`` runs many pairs
in parallel and reports them (text or JSON, docs/schema-diff.md).
"""
