"""``dms table-compare``: rows of two tables compared across databases (docs/table-compare.md).

``normalize`` writes each row as the same text in every dialect and hashes
it, ``segments`` compares one pair by segment checksums computed in the
databases, bisection and a row diff, ``command`` runs many pairs.
"""
