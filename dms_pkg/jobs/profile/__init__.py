"""``dms profile``: column metrics of many tables, in parallel, kept in DMS tables for drift.

``metrics`` writes the two queries a table costs (every metric of every
column in one scan; the histograms of number and date columns in a
second), for each dialect through sqlglot; ``batch`` runs tables side by
side under per-dialect caps and records the run (docs/profile.md).
"""
