"""One module per source database (DESIGN §2, issue 14).

Each backend turns a chunk query of its database into PostgreSQL COPY text
(or bounded batches), and says what the planner and the run need around
that: where the database is, its columns as PostgreSQL types, a row
estimate, the worker cap, and which of its errors are worth a retry.
"""
