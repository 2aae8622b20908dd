"""What a chunk does, by job kind (DESIGN §2): run_statement for DBMS_PARALLEL_EXECUTE."""
