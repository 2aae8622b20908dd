"""DBMS_PARALLEL_EXECUTE for PostgreSQL: Oracle's task and chunk package on dms tables.

``errors`` holds Oracle's exceptions, ``statement`` turns a task's
``sql_stmt`` into what a chunk runs, ``chunking`` cuts a table into ranges,
``runner`` is the worker loop and the run_task coordinator, ``entry`` the
functions the PL/Python bodies call.
"""
