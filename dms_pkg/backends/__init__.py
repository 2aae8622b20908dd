"""One module per source database (DESIGN §2): connect, catalog and types,
consistent reads, chunk reader, cancel and error classification.

The target of every load is PostgreSQL, so a source backend's job is to turn
one chunk query into PostgreSQL COPY text (see docs/source-*.md).
"""
