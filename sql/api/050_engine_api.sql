-- The parallel engine's entry points (DESIGN §1, §3).
--
-- The procedures COMMIT between steps so that workers and watchers see the
-- run as it goes; PostgreSQL allows that only in procedures without SECURITY
-- DEFINER and without a SET clause.  They therefore run as the caller, check
-- the caller's role first, qualify every name of their own, and change DMS
-- state only through the SECURITY DEFINER functions of 030_engine_state.sql.
-- Call them with autocommit on (psql's default), not inside BEGIN ... COMMIT.

CREATE OR REPLACE PROCEDURE dms.execute_query_parallel(
    p_source_conid  bigint,
    p_source_sql    text,
    p_target_conid  bigint,
    p_target_schema text,
    p_target_table  text,
    p_params        jsonb  DEFAULT '{}',
    INOUT p_run_id  bigint DEFAULT NULL
)
LANGUAGE plpython3u
AS $plpy$@plpy(execute_query_parallel)$plpy$;
COMMENT ON PROCEDURE dms.execute_query_parallel(bigint, text, bigint, text, text, jsonb, bigint) IS
    'Move the rows of a source query into a target table in parallel chunks and wait; raises unless every chunk loaded. NULL conid = this database. p_params: max_workers, chunk_size, min_rows_for_parallel, enable_parallel, enable_retry, max_retries, path, write_mode, create_target, key, strategy, chunks (operator role)';

CREATE OR REPLACE FUNCTION dms.submit_query_parallel(
    p_source_conid  bigint,
    p_source_sql    text,
    p_target_conid  bigint,
    p_target_schema text,
    p_target_table  text,
    p_params        jsonb DEFAULT '{}'
)
RETURNS bigint
LANGUAGE plpython3u
VOLATILE PARALLEL UNSAFE
-- SECURITY INVOKER: planning reads the caller's source tables with the
-- caller's privileges and search_path; state is written through definer functions.
AS $plpy$@plpy(submit_query_parallel)$plpy$;
COMMENT ON FUNCTION dms.submit_query_parallel(bigint, text, bigint, text, text, jsonb) IS
    'Plan a parallel move and queue it; returns the run id at once. The dispatcher (CALL dms.dispatch(), scheduled by pg_cron) or dms worker --run-id carries it out (operator role)';

CREATE OR REPLACE PROCEDURE dms.work(p_run_id bigint)
LANGUAGE plpython3u
AS $plpy$@plpy(work)$plpy$;
COMMENT ON PROCEDURE dms.work(bigint) IS
    'Worker loop: claim a pending chunk of the run (FOR UPDATE SKIP LOCKED), move it, commit, repeat until none is left (operator role)';

CREATE OR REPLACE FUNCTION dms.boot_worker()
RETURNS boolean
LANGUAGE plpython3u
AS $plpy$@plpy(boot_worker)$plpy$;
COMMENT ON FUNCTION dms.boot_worker() IS
    'Internal (engine): load a worker''s code in this session, before the coordinator gives it a run (operator role)';

CREATE OR REPLACE PROCEDURE dms.dispatch(p_max_runs integer DEFAULT NULL)
LANGUAGE plpython3u
AS $plpy$@plpy(dispatch)$plpy$;
COMMENT ON PROCEDURE dms.dispatch(integer) IS
    'Run queued runs (from submit_query_parallel) one after another, each with the privileges of whoever submitted it; pg_cron calls it (operator role)';

CREATE OR REPLACE PROCEDURE dms.run_queued(p_run_id bigint)
LANGUAGE plpython3u
AS $plpy$@plpy(run_queued)$plpy$;
COMMENT ON PROCEDURE dms.run_queued(bigint) IS
    'Carry out one queued run now, in this session, and wait for it (operator role)';

CREATE OR REPLACE PROCEDURE dms.resume_run(p_run_id bigint)
LANGUAGE plpython3u
AS $plpy$@plpy(resume_run)$plpy$;
COMMENT ON PROCEDURE dms.resume_run(bigint) IS
    'Run the failed and unfinished chunks of a run again (done chunks stay done) and wait; raises unless every chunk is then loaded (operator role)';

CREATE OR REPLACE PROCEDURE dms.stop_run(p_run_id bigint)
LANGUAGE plpython3u
AS $plpy$@plpy(stop_run)$plpy$;
COMMENT ON PROCEDURE dms.stop_run(bigint) IS
    'Stop a run: no more chunks are handed out, statements being run are cancelled (their chunks go back to the queue), and the call waits until the run is STOPPED. Resume it with dms.resume_run (operator role)';
