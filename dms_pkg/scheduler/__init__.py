"""DBMS_SCHEDULER: Oracle's job scheduler, the subset DMS jobs use, on pg_cron."""
