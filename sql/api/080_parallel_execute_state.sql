-- DBMS_PARALLEL_EXECUTE, part 1: the task and chunk state (issue 11).
--
-- Every write to dms.pe_task / dms.pe_chunk goes through these SECURITY
-- DEFINER functions, each with a fixed search_path and a role check.  A task
-- belongs to the login that created it (session_user): these functions find
-- a task by (owner, name) with the owner always the caller, except the adm_
-- entry points, which require dms_admin.  Oracle's exceptions are raised
-- with their own SQLSTATE (class PE, the last three digits of the Oracle
-- code) through dms._pe_error, the same table as
-- dms_pkg/jobs/parallel_execute/errors.py.

CREATE OR REPLACE FUNCTION dms._pe_error(p_name text, p_message text, p_hint text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_code integer := CASE p_name
        WHEN 'MISSING_ROLE' THEN 29490
        WHEN 'INVALID_TABLE' THEN 29491
        WHEN 'INVALID_STATE_FOR_CHUNK' THEN 29492
        WHEN 'INVALID_STATUS' THEN 29493
        WHEN 'INVALID_STATE_FOR_RUN' THEN 29494
        WHEN 'INVALID_STATE_FOR_RESUME' THEN 29495
        WHEN 'DUPLICATE_TASK_NAME' THEN 29497
        WHEN 'TASK_NOT_FOUND' THEN 29498
        WHEN 'CHUNK_NOT_FOUND' THEN 29499 END;
BEGIN
    IF v_code IS NULL THEN
        RAISE EXCEPTION 'dms: unknown DBMS_PARALLEL_EXECUTE exception %', p_name USING ERRCODE = 'XX000';
    END IF;
    IF p_hint IS NULL THEN
        RAISE EXCEPTION USING
            MESSAGE = pg_catalog.format('dms: ORA-%s: %s: %s', v_code, p_name, p_message),
            ERRCODE = 'PE' || (v_code % 1000)::text;
    END IF;
    RAISE EXCEPTION USING
        MESSAGE = pg_catalog.format('dms: ORA-%s: %s: %s', v_code, p_name, p_message),
        ERRCODE = 'PE' || (v_code % 1000)::text, HINT = p_hint;
END
$fn$;
COMMENT ON FUNCTION dms._pe_error(text, text, text) IS
    'Internal: raise the DBMS_PARALLEL_EXECUTE exception p_name (ORA code and name in the message, SQLSTATE PE + the code''s last three digits)';

CREATE OR REPLACE FUNCTION dms._pe_status_name(p_status integer)
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT (ARRAY['CREATED', 'CHUNKING', 'CHUNKING_FAILED', 'NO_CHUNKS', 'CHUNKED', 'PROCESSING',
                  'FINISHED', 'FINISHED_WITH_ERROR', 'CRASHED'])[p_status]
$fn$;
COMMENT ON FUNCTION dms._pe_status_name(integer) IS 'Internal: the name of a task status number';

CREATE OR REPLACE FUNCTION dms._pe_chunk_status_name(p_status integer)
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT (ARRAY['UNASSIGNED', 'ASSIGNED', 'PROCESSED', 'PROCESSED_WITH_ERROR'])[p_status + 1]
$fn$;
COMMENT ON FUNCTION dms._pe_chunk_status_name(integer) IS 'Internal: the name of a chunk status number';

CREATE OR REPLACE FUNCTION dms._pe_alive(p_pid integer, p_started timestamptz)
RETURNS boolean
LANGUAGE sql
STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    -- The backend start time guards against a pid the system gave again.
    SELECT p_pid IS NOT NULL AND EXISTS (
        SELECT FROM pg_catalog.pg_stat_activity a
         WHERE a.pid = p_pid AND a.backend_start IS NOT DISTINCT FROM p_started)
$fn$;
COMMENT ON FUNCTION dms._pe_alive(integer, timestamptz) IS
    'Internal: whether the backend with this pid and start time still runs';

CREATE OR REPLACE FUNCTION dms._pe_my_start()
RETURNS timestamptz
LANGUAGE sql
STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT backend_start FROM pg_catalog.pg_stat_activity WHERE pid = pg_catalog.pg_backend_pid()
$fn$;
COMMENT ON FUNCTION dms._pe_my_start() IS 'Internal: when this backend started';

CREATE OR REPLACE FUNCTION dms._pe_effective_status(p_task dms.pe_task)
RETURNS integer
LANGUAGE sql
STABLE PARALLEL SAFE
-- SECURITY DEFINER: the views call it as the reader, who may not see other
-- sessions' start times in pg_stat_activity.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
    -- PROCESSING is only believed while the session running the task lives:
    -- a run_task whose session died is CRASHED, whatever the row says.
    SELECT CASE WHEN p_task.status = 6 AND p_task.coordinator_pid IS NOT NULL
                     AND NOT dms._pe_alive(p_task.coordinator_pid, p_task.coordinator_start)
                THEN 9 ELSE p_task.status END
$fn$;
COMMENT ON FUNCTION dms._pe_effective_status(dms.pe_task) IS
    'Internal: a task''s status, with PROCESSING whose session is gone read as CRASHED';

CREATE OR REPLACE FUNCTION dms._pe_find(p_owner text, p_task_name text, p_lock boolean DEFAULT true)
RETURNS dms.pe_task
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_task dms.pe_task;
    v_status integer;
BEGIN
    IF p_lock THEN
        SELECT * INTO v_task FROM dms.pe_task
         WHERE task_owner = p_owner AND task_name = p_task_name FOR UPDATE;
    ELSE
        SELECT * INTO v_task FROM dms.pe_task WHERE task_owner = p_owner AND task_name = p_task_name;
    END IF;
    IF NOT FOUND THEN
        PERFORM dms._pe_error('TASK_NOT_FOUND',
            pg_catalog.format('task %s of %s does not exist', coalesce(p_task_name, 'NULL'), p_owner),
            'create it with CALL dbms_parallel_execute.create_task(task_name => ...); '
            'SELECT task_name FROM dbms_parallel_execute.user_parallel_execute_tasks lists yours');
    END IF;
    v_status := dms._pe_effective_status(v_task);
    IF v_status <> v_task.status AND p_lock THEN
        UPDATE dms.pe_task SET status = v_status, coordinator_pid = NULL,
               message = 'the session running the task ended before it finished'
         WHERE task_id = v_task.task_id
        RETURNING * INTO v_task;
    ELSE
        v_task.status := v_status;
    END IF;
    RETURN v_task;
END
$fn$;
COMMENT ON FUNCTION dms._pe_find(text, text, boolean) IS
    'Internal: the task p_task_name of p_owner (TASK_NOT_FOUND otherwise), locked, its crash detected';

CREATE OR REPLACE FUNCTION dms._pe_owner(p_admin boolean, p_owner text)
RETURNS text
LANGUAGE plpgsql
STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF p_admin THEN
        IF NOT pg_catalog.pg_has_role(session_user, 'dms_admin', 'MEMBER') THEN
            PERFORM dms._pe_error('MISSING_ROLE',
                pg_catalog.format('%s may not administer other logins'' tasks', session_user),
                'the adm_ routines and the dba_ views need dms_admin (Oracle''s ADM_PARALLEL_EXECUTE_TASK): ask an administrator to GRANT dms_admin TO ' || session_user);
        END IF;
        RETURN coalesce(p_owner, session_user);
    END IF;
    PERFORM dms._require_role('dms_operator');
    RETURN session_user;
END
$fn$;
COMMENT ON FUNCTION dms._pe_owner(boolean, text) IS
    'Internal: whose tasks the call may touch: the caller''s own (operator role), or p_owner''s for adm_ calls (dms_admin, else MISSING_ROLE)';

-- ------------------------------------------------------------------ tasks

CREATE OR REPLACE FUNCTION dms.pe_create_task(p_task_name text, p_comment text)
RETURNS void
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM dms._pe_owner(false, NULL);
    IF p_task_name IS NULL OR pg_catalog.btrim(p_task_name) = '' OR length(p_task_name) > 128 THEN
        RAISE EXCEPTION 'dms: task_name must be 1 to 128 characters'
            USING ERRCODE = '22023', HINT = 'SELECT dbms_parallel_execute.generate_task_name() makes one';
    END IF;
    IF EXISTS (SELECT FROM dms.pe_task WHERE task_owner = session_user AND task_name = p_task_name) THEN
        PERFORM dms._pe_error('DUPLICATE_TASK_NAME',
            pg_catalog.format('%s already has a task named %s', session_user, p_task_name),
            'drop it first (CALL dbms_parallel_execute.drop_task(...)) or choose another name');
    END IF;
    INSERT INTO dms.pe_task (task_name, task_comment) VALUES (p_task_name, p_comment);
END
$fn$;
COMMENT ON FUNCTION dms.pe_create_task(text, text) IS 'create_task: record a new task of the caller (operator role)';

CREATE OR REPLACE FUNCTION dms.pe_generate_task_name(p_prefix text)
RETURNS text
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM dms._pe_owner(false, NULL);
    RETURN coalesce(p_prefix, 'TASK$_') || pg_catalog.nextval('dms.pe_task_name_seq');
END
$fn$;
COMMENT ON FUNCTION dms.pe_generate_task_name(text) IS 'generate_task_name: a task name not handed out before (operator role)';

CREATE OR REPLACE FUNCTION dms.pe_begin_chunking(p_task_name text, p_chunk_type text,
                                                 p_table_owner text, p_table_name text,
                                                 p_column text)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_task dms.pe_task := dms._pe_find(dms._pe_owner(false, NULL), p_task_name);
BEGIN
    IF v_task.status NOT IN (1, 3) THEN
        PERFORM dms._pe_error('INVALID_STATE_FOR_CHUNK',
            pg_catalog.format('task %s is %s; only a CREATED (or CHUNKING_FAILED) task is chunked',
                              p_task_name, dms._pe_status_name(v_task.status)),
            'CALL dbms_parallel_execute.drop_chunks(task_name => ...) to chunk it again');
    END IF;
    UPDATE dms.pe_task
       SET status = 2, chunk_type = p_chunk_type, table_owner = p_table_owner,
           table_name = p_table_name, number_column = p_column, message = NULL
     WHERE task_id = v_task.task_id;
    RETURN v_task.task_id;
END
$fn$;
COMMENT ON FUNCTION dms.pe_begin_chunking(text, text, text, text, text) IS
    'create_chunks_*: check the task may be chunked and mark it CHUNKING (operator role, own tasks)';

CREATE OR REPLACE FUNCTION dms._pe_chunking_task(p_task_id bigint)
RETURNS dms.pe_task
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_task dms.pe_task;
BEGIN
    PERFORM dms._pe_owner(false, NULL);
    SELECT * INTO v_task FROM dms.pe_task
     WHERE task_id = p_task_id AND task_owner = session_user AND status = 2 FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dms: task % of % is not being chunked', p_task_id, session_user
            USING ERRCODE = '55000';
    END IF;
    RETURN v_task;
END
$fn$;
COMMENT ON FUNCTION dms._pe_chunking_task(bigint) IS 'Internal: the caller''s task p_task_id, which must be CHUNKING';

CREATE OR REPLACE FUNCTION dms._pe_chunked(p_task_id bigint)
RETURNS integer
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_n integer;
BEGIN
    SELECT count(*) INTO v_n FROM dms.pe_chunk WHERE task_id = p_task_id;
    UPDATE dms.pe_task SET status = CASE WHEN v_n = 0 THEN 4 ELSE 5 END,
           message = pg_catalog.format('%s chunk%s', v_n, CASE WHEN v_n = 1 THEN '' ELSE 's' END)
     WHERE task_id = p_task_id;
    RETURN v_n;
END
$fn$;
COMMENT ON FUNCTION dms._pe_chunked(bigint) IS 'Internal: end chunking: CHUNKED, or NO_CHUNKS when no chunk was made';

CREATE OR REPLACE FUNCTION dms.pe_add_number_chunks(p_task_id bigint, p_lo numeric, p_hi numeric,
                                                    p_size numeric)
RETURNS integer
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM dms._pe_chunking_task(p_task_id);
    IF p_lo IS NOT NULL THEN
        -- Oracle's ranges: [min + k*size, min + (k+1)*size - 1] up to the maximum.
        INSERT INTO dms.pe_chunk (task_id, start_id, end_id)
        SELECT p_task_id, s, least(s + p_size - 1, p_hi)
          FROM pg_catalog.generate_series(p_lo, p_hi, p_size) AS s
         ORDER BY s;
    END IF;
    RETURN dms._pe_chunked(p_task_id);
END
$fn$;
COMMENT ON FUNCTION dms.pe_add_number_chunks(bigint, numeric, numeric, numeric) IS
    'create_chunks_by_number_col: the task''s chunks from p_lo to p_hi, p_size values each (operator role, own task being chunked)';

CREATE OR REPLACE FUNCTION dms.pe_add_page_chunks(p_task_id bigint, p_pages bigint, p_per_chunk bigint)
RETURNS integer
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM dms._pe_chunking_task(p_task_id);
    -- A chunk is a run of whole pages: from (first page, 0) to (last page, 65535).
    INSERT INTO dms.pe_chunk (task_id, start_rowid, end_rowid)
    SELECT p_task_id, pg_catalog.format('(%s,0)', p)::tid,
           pg_catalog.format('(%s,65535)', least(p + p_per_chunk - 1, p_pages - 1))::tid
      FROM pg_catalog.generate_series(0::bigint, p_pages - 1, p_per_chunk) AS p
     ORDER BY p;
    RETURN dms._pe_chunked(p_task_id);
END
$fn$;
COMMENT ON FUNCTION dms.pe_add_page_chunks(bigint, bigint, bigint) IS
    'create_chunks_by_rowid: the task''s chunks over p_pages pages, p_per_chunk pages each (operator role, own task being chunked)';

CREATE OR REPLACE FUNCTION dms.pe_add_listed_chunks(p_task_id bigint, p_start_ids numeric[],
                                                    p_end_ids numeric[], p_start_rowids tid[],
                                                    p_end_rowids tid[])
RETURNS integer
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM dms._pe_chunking_task(p_task_id);
    INSERT INTO dms.pe_chunk (task_id, start_id, end_id, start_rowid, end_rowid)
    SELECT p_task_id, a, b, c, d
      FROM unnest(p_start_ids, p_end_ids, p_start_rowids, p_end_rowids) WITH ORDINALITY AS u(a, b, c, d, n)
     ORDER BY n;
    RETURN dms._pe_chunked(p_task_id);
END
$fn$;
COMMENT ON FUNCTION dms.pe_add_listed_chunks(bigint, numeric[], numeric[], tid[], tid[]) IS
    'create_chunks_by_sql: the task''s chunks as the query returned them, in order (operator role, own task being chunked)';

CREATE OR REPLACE FUNCTION dms.pe_chunking_failed(p_task_id bigint, p_message text)
RETURNS void
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM dms._pe_owner(false, NULL);
    DELETE FROM dms.pe_chunk c USING dms.pe_task t
     WHERE c.task_id = t.task_id AND t.task_id = p_task_id AND t.task_owner = session_user;
    UPDATE dms.pe_task SET status = 3, message = p_message
     WHERE task_id = p_task_id AND task_owner = session_user AND status IN (1, 2);
END
$fn$;
COMMENT ON FUNCTION dms.pe_chunking_failed(bigint, text) IS
    'create_chunks_*: the chunking of the caller''s task failed: CHUNKING_FAILED with the reason (operator role)';

-- ------------------------------------------------------------------ runs

CREATE OR REPLACE FUNCTION dms.pe_begin_run(p_task_name text, p_resume boolean, p_force boolean,
                                            p_settings jsonb)
RETURNS TABLE (task_id bigint, chunk_type text, sql_stmt text, run_sql text, run_mode text,
               parallel_level integer, xid_horizon bigint, job_prefix text, reopened integer,
               open_chunks integer)
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_task dms.pe_task := dms._pe_find(dms._pe_owner(false, NULL), p_task_name);
    v_reopened integer := 0;
BEGIN
    IF NOT p_resume AND v_task.status <> 5 THEN
        PERFORM dms._pe_error('INVALID_STATE_FOR_RUN',
            pg_catalog.format('task %s is %s; run_task runs a CHUNKED task', p_task_name,
                              dms._pe_status_name(v_task.status)),
            CASE WHEN v_task.status IN (8, 9)
                 THEN 'resume it: CALL dbms_parallel_execute.resume_task(task_name => ...)'
                 WHEN v_task.status = 6 THEN 'it is running: wait, or stop it with stop_task'
                 ELSE 'chunk it first with create_chunks_by_rowid, _by_number_col or _by_sql' END);
    END IF;
    IF p_resume AND NOT (v_task.status IN (8, 9) OR (v_task.status = 6 AND p_force)) THEN
        PERFORM dms._pe_error('INVALID_STATE_FOR_RESUME',
            pg_catalog.format('task %s is %s; resume_task resumes a CRASHED or FINISHED_WITH_ERROR task',
                              p_task_name, dms._pe_status_name(v_task.status)),
            CASE WHEN v_task.status = 6 THEN 'it is running; force => true takes it over'
                 WHEN v_task.status = 5 THEN 'it has not run: CALL dbms_parallel_execute.run_task(...)'
                 ELSE NULL END);
    END IF;
    IF p_resume THEN
        -- Chunks that failed, and chunks whose worker is gone, go back in the queue.
        UPDATE dms.pe_chunk c
           SET status = 0, job_name = NULL, worker_pid = NULL, worker_start = NULL,
               start_ts = NULL, end_ts = NULL, error_code = NULL, error_message = NULL
         WHERE c.task_id = v_task.task_id
           AND (c.status = 3 OR (c.status = 1 AND (NOT dms._pe_alive(c.worker_pid, c.worker_start)
                                                   -- taken by this very session (pull model)
                                                   OR c.worker_pid = pg_catalog.pg_backend_pid())));
        GET DIAGNOSTICS v_reopened = ROW_COUNT;
    END IF;
    UPDATE dms.pe_task t
       SET status = 6, stop_requested = false, message = NULL,
           coordinator_pid = pg_catalog.pg_backend_pid(), coordinator_start = dms._pe_my_start(),
           sql_stmt = coalesce(p_settings->>'sql_stmt', t.sql_stmt),
           run_sql = coalesce(p_settings->>'run_sql', t.run_sql),
           run_mode = coalesce(p_settings->>'run_mode', t.run_mode),
           search_path = coalesce(p_settings->>'search_path', t.search_path),
           language_flag = coalesce((p_settings->>'language_flag')::integer, t.language_flag),
           edition = coalesce(p_settings->>'edition', t.edition),
           apply_crossedition_trigger = coalesce(p_settings->>'apply_crossedition_trigger',
                                                 t.apply_crossedition_trigger),
           fire_apply_trigger = coalesce((p_settings->>'fire_apply_trigger')::boolean,
                                         t.fire_apply_trigger),
           parallel_level = coalesce((p_settings->>'parallel_level')::integer, t.parallel_level),
           job_class = coalesce(p_settings->>'job_class', t.job_class),
           job_prefix = coalesce(t.job_prefix, 'TASK$_' || t.task_id),
           -- The first run fixes which row versions the task started with.
           xid_horizon = coalesce(t.xid_horizon,
               pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::text::bigint)
     WHERE t.task_id = v_task.task_id
    RETURNING * INTO v_task;
    RETURN QUERY SELECT v_task.task_id, v_task.chunk_type, v_task.sql_stmt, v_task.run_sql,
                        v_task.run_mode, v_task.parallel_level, v_task.xid_horizon,
                        v_task.job_prefix, v_reopened,
                        (SELECT count(*)::integer FROM dms.pe_chunk c
                          WHERE c.task_id = v_task.task_id AND c.status = 0);
END
$fn$;
COMMENT ON FUNCTION dms.pe_begin_run(text, boolean, boolean, jsonb) IS
    'run_task / resume_task: check the task''s state (INVALID_STATE_FOR_RUN / _RESUME), put failed and crashed chunks back (resume), mark it PROCESSING by this session (operator role, own tasks)';

CREATE OR REPLACE FUNCTION dms._pe_running_task(p_task_id bigint)
RETURNS dms.pe_task
LANGUAGE plpgsql
STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_task dms.pe_task;
BEGIN
    PERFORM dms._pe_owner(false, NULL);
    SELECT * INTO v_task FROM dms.pe_task WHERE task_id = p_task_id AND task_owner = session_user;
    IF NOT FOUND THEN
        PERFORM dms._pe_error('TASK_NOT_FOUND',
            pg_catalog.format('task %s of %s does not exist', p_task_id, session_user));
    END IF;
    RETURN v_task;
END
$fn$;
COMMENT ON FUNCTION dms._pe_running_task(bigint) IS 'Internal: the caller''s task by id (TASK_NOT_FOUND otherwise)';

CREATE OR REPLACE FUNCTION dms.pe_worker_task(p_task_id bigint)
RETURNS TABLE (chunk_type text, run_sql text, run_mode text, xid_horizon bigint, job_prefix text,
               stop_requested boolean)
LANGUAGE sql
STABLE PARALLEL SAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT t.chunk_type, t.run_sql, t.run_mode, t.xid_horizon, t.job_prefix, t.stop_requested
      FROM dms._pe_running_task(p_task_id) AS t
$fn$;
COMMENT ON FUNCTION dms.pe_worker_task(bigint) IS
    'Worker: what the chunks of the caller''s task run (operator role, own tasks)';

CREATE OR REPLACE FUNCTION dms.pe_claim(p_task_id bigint, p_job_name text)
RETURNS TABLE (chunk_id bigint, start_rowid tid, end_rowid tid, start_id numeric, end_id numeric)
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_task dms.pe_task := dms._pe_running_task(p_task_id);
BEGIN
    IF v_task.status <> 6 OR v_task.stop_requested THEN
        RETURN;  -- stopped, or over: nothing more to hand out
    END IF;
    RETURN QUERY
    UPDATE dms.pe_chunk c
       SET status = 1, job_name = p_job_name, worker_pid = pg_catalog.pg_backend_pid(),
           worker_start = dms._pe_my_start(), start_ts = pg_catalog.clock_timestamp(),
           end_ts = NULL, error_code = NULL, error_message = NULL
     WHERE c.chunk_id = (SELECT q.chunk_id FROM dms.pe_chunk q
                          WHERE q.task_id = p_task_id AND q.status = 0
                          ORDER BY q.chunk_id
                          LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING c.chunk_id, c.start_rowid, c.end_rowid, c.start_id, c.end_id;
END
$fn$;
COMMENT ON FUNCTION dms.pe_claim(bigint, text) IS
    'Worker: take the next UNASSIGNED chunk of the caller''s running task (FOR UPDATE SKIP LOCKED) and mark it ASSIGNED (operator role, own tasks)';

CREATE OR REPLACE FUNCTION dms.pe_end_chunk(p_task_id bigint, p_chunk_id bigint, p_status integer,
                                            p_code text, p_message text)
RETURNS void
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM dms._pe_running_task(p_task_id);
    IF p_status NOT IN (0, 2, 3) THEN
        RAISE EXCEPTION 'dms: a chunk ends UNASSIGNED, PROCESSED or PROCESSED_WITH_ERROR, not %', p_status
            USING ERRCODE = '22023';
    END IF;
    UPDATE dms.pe_chunk
       SET status = p_status,
           end_ts = CASE WHEN p_status = 0 THEN NULL ELSE pg_catalog.clock_timestamp() END,
           start_ts = CASE WHEN p_status = 0 THEN NULL ELSE start_ts END,
           job_name = CASE WHEN p_status = 0 THEN NULL ELSE job_name END,
           error_code = p_code, error_message = p_message
     WHERE chunk_id = p_chunk_id AND task_id = p_task_id AND status = 1
       AND worker_pid = pg_catalog.pg_backend_pid();
END
$fn$;
COMMENT ON FUNCTION dms.pe_end_chunk(bigint, bigint, integer, text, text) IS
    'Worker: the chunk this session took ends PROCESSED (2), PROCESSED_WITH_ERROR (3, with SQLSTATE and message) or back in the queue (0) (operator role, own tasks)';

CREATE OR REPLACE FUNCTION dms.pe_finish_run(p_task_id bigint)
RETURNS TABLE (status integer, message text)
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_task dms.pe_task := dms._pe_running_task(p_task_id);
    v_open integer; v_assigned integer; v_failed integer; v_done integer;
    v_status integer; v_message text;
BEGIN
    SELECT count(*) FILTER (WHERE c.status = 0), count(*) FILTER (WHERE c.status = 1),
           count(*) FILTER (WHERE c.status = 3), count(*) FILTER (WHERE c.status = 2)
      INTO v_open, v_assigned, v_failed, v_done
      FROM dms.pe_chunk c WHERE c.task_id = p_task_id;
    IF v_task.status <> 6 OR v_task.coordinator_pid IS DISTINCT FROM pg_catalog.pg_backend_pid() THEN
        RETURN QUERY SELECT v_task.status, v_task.message;  -- another session took it over
        RETURN;
    END IF;
    v_message := pg_catalog.format('%s chunk%s processed, %s with error', v_done,
                                   CASE WHEN v_done = 1 THEN '' ELSE 's' END, v_failed);
    IF v_assigned > 0 OR v_open > 0 THEN
        v_status := 9;
        v_message := v_message || pg_catalog.format(
            '; %s not processed (%s)', v_open + v_assigned,
            CASE WHEN v_task.stop_requested THEN 'stopped by stop_task'
                 ELSE 'their worker ended before them' END);
    ELSIF v_failed > 0 THEN
        v_status := 8;
    ELSE
        v_status := 7;
    END IF;
    UPDATE dms.pe_task t SET status = v_status, message = v_message, coordinator_pid = NULL,
           coordinator_start = NULL
     WHERE t.task_id = p_task_id;
    RETURN QUERY SELECT v_status, v_message;
END
$fn$;
COMMENT ON FUNCTION dms.pe_finish_run(bigint) IS
    'run_task / resume_task: the task''s final status from its chunks: FINISHED, FINISHED_WITH_ERROR, or CRASHED when chunks were left (operator role, own tasks)';

CREATE OR REPLACE FUNCTION dms.pe_start_workers(p_task_id bigint, p_first integer, p_count integer)
RETURNS text[]
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
-- SECURITY DEFINER: dblink_connect_u is for superusers only.  The sessions it
-- opens are the caller's own login (the task's owner) and run nothing but
-- CALL dms.pe_work for this task.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_schema text := dms._dblink_schema();
    v_task dms.pe_task := dms._pe_running_task(p_task_id);
    v_names text[] := '{}';
    v_name text;
BEGIN
    IF v_task.status <> 6 OR v_task.coordinator_pid IS DISTINCT FROM pg_catalog.pg_backend_pid() THEN
        RAISE EXCEPTION 'dms: task % is not run by this session', v_task.task_name
            USING ERRCODE = '55000', HINT = 'workers are started by run_task or resume_task';
    END IF;
    IF p_count NOT BETWEEN 1 AND 64 THEN
        RAISE EXCEPTION 'dms: cannot start % workers', p_count USING ERRCODE = '22023', HINT = 'from 1 to 64';
    END IF;
    FOR i IN p_first .. p_first + p_count - 1 LOOP
        v_name := pg_catalog.format('dms_pe_%s_worker_%s_%s', p_task_id, i,
                                    left(pg_catalog.gen_random_uuid()::text, 8));
        PERFORM dms._loopback_connect(v_name, session_user,
                                      pg_catalog.format('dms pe %s_%s', v_task.job_prefix, i));
        -- The statement's names resolve in the workers as in the caller's session.
        EXECUTE pg_catalog.format('SELECT count(*) FROM %I.dblink($1, $2) AS t(v text)', v_schema)
            USING v_name, pg_catalog.format('SELECT pg_catalog.set_config(%L, %L, false)',
                                            'search_path', coalesce(v_task.search_path, '"$user", public'));
        EXECUTE pg_catalog.format('SELECT %I.dblink_send_query($1, $2)', v_schema)
            USING v_name, pg_catalog.format('CALL dms.pe_work(%s, %s)', p_task_id, i);
        v_names := v_names || v_name;
    END LOOP;
    RETURN v_names;
END
$fn$;
COMMENT ON FUNCTION dms.pe_start_workers(bigint, integer, integer) IS
    'run_task: open p_count sessions to this database as the caller, each running CALL dms.pe_work(task, n); returns their names (operator role, the task''s running session only)';

CREATE OR REPLACE FUNCTION dms.pe_request_stop(p_owner text, p_task_name text, p_admin boolean)
RETURNS integer
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_task dms.pe_task := dms._pe_find(dms._pe_owner(p_admin, p_owner), p_task_name);
    v_n integer := 0;
BEGIN
    IF v_task.status <> 6 THEN
        RETURN -1;  -- not running: nothing to stop
    END IF;
    -- A task worked through the pull model (no session runs it) is over at once.
    UPDATE dms.pe_task
       SET stop_requested = true,
           status = CASE WHEN coordinator_pid IS NULL THEN 9 ELSE status END,
           message = CASE WHEN coordinator_pid IS NULL THEN 'stopped by stop_task' ELSE message END
     WHERE task_id = v_task.task_id;
    RETURN 0;
END
$fn$;
COMMENT ON FUNCTION dms.pe_request_stop(text, text, boolean) IS
    'stop_task: hand out no more chunks of the task; returns -1 when the task was not running (operator role own tasks; dms_admin any)';

CREATE OR REPLACE FUNCTION dms.pe_cancel_chunks(p_owner text, p_task_name text, p_admin boolean)
RETURNS integer
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
-- SECURITY DEFINER: cancels the statements of the task's own workers, which
-- are sessions of the task's owner.  Called after pe_request_stop committed,
-- so a cancelled worker finds the stop and puts its chunk back.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_task dms.pe_task := dms._pe_find(dms._pe_owner(p_admin, p_owner), p_task_name, false);
    v_n integer := 0;
BEGIN
    IF NOT v_task.stop_requested THEN
        RETURN 0;
    END IF;
    SELECT count(pg_catalog.pg_cancel_backend(c.worker_pid)) INTO v_n
      FROM dms.pe_chunk c
     WHERE c.task_id = v_task.task_id AND c.status = 1
       AND dms._pe_alive(c.worker_pid, c.worker_start)
       AND c.worker_pid <> pg_catalog.pg_backend_pid()
       -- an administrator stops a superuser's task, but does not cancel its sessions
       AND (NOT EXISTS (SELECT FROM pg_catalog.pg_roles r
                         WHERE r.rolname = v_task.task_owner AND r.rolsuper)
            OR EXISTS (SELECT FROM pg_catalog.pg_roles r
                        WHERE r.rolname = session_user AND r.rolsuper));
    RETURN v_n;
END
$fn$;
COMMENT ON FUNCTION dms.pe_cancel_chunks(text, text, boolean) IS
    'stop_task: cancel the statements of the chunks a stopped task''s workers are processing; returns how many (operator role own tasks; dms_admin any)';

CREATE OR REPLACE FUNCTION dms.pe_task_state(p_owner text, p_task_name text, p_admin boolean)
RETURNS TABLE (task_id bigint, status integer, message text, running boolean, chunk_type text,
               has_statement boolean)
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_task dms.pe_task := dms._pe_find(dms._pe_owner(p_admin, p_owner), p_task_name);
BEGIN
    RETURN QUERY SELECT v_task.task_id, v_task.status, v_task.message,
        EXISTS (SELECT FROM dms.pe_chunk c WHERE c.task_id = v_task.task_id AND c.status = 1
                   AND dms._pe_alive(c.worker_pid, c.worker_start)),
        v_task.chunk_type, v_task.run_sql IS NOT NULL;
END
$fn$;
COMMENT ON FUNCTION dms.pe_task_state(text, text, boolean) IS
    'task_status / stop_task: a task''s status (crash detected), its message, and whether a worker still holds a chunk (operator role own tasks; dms_admin any)';

CREATE OR REPLACE FUNCTION dms.pe_drop(p_owner text, p_task_name text, p_what text, p_admin boolean)
RETURNS integer
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_task dms.pe_task := dms._pe_find(dms._pe_owner(p_admin, p_owner), p_task_name);
    v_n integer;
BEGIN
    IF v_task.status IN (2, 6) THEN
        PERFORM dms._pe_error('INVALID_STATE_FOR_CHUNK',
            pg_catalog.format('task %s is %s; it cannot be changed while it runs', p_task_name,
                              dms._pe_status_name(v_task.status)),
            'stop it first: CALL dbms_parallel_execute.stop_task(task_name => ...)');
    END IF;
    IF p_what = 'task' THEN
        DELETE FROM dms.pe_task WHERE task_id = v_task.task_id;
        RETURN 1;
    ELSIF p_what = 'chunks' THEN
        DELETE FROM dms.pe_chunk WHERE task_id = v_task.task_id;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        UPDATE dms.pe_task SET status = 1, chunk_type = 'UNDECLARED', message = NULL,
               xid_horizon = NULL
         WHERE task_id = v_task.task_id;
        RETURN v_n;
    ELSIF p_what = 'processed' THEN
        DELETE FROM dms.pe_chunk WHERE task_id = v_task.task_id AND status = 2;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        RETURN v_n;
    END IF;
    RAISE EXCEPTION 'dms: unknown drop %', p_what USING ERRCODE = '22023';
END
$fn$;
COMMENT ON FUNCTION dms.pe_drop(text, text, text, boolean) IS
    'drop_task (task), drop_chunks (chunks: the task is CREATED again), purge_processed_chunks (processed) (operator role own tasks; dms_admin any)';

-- ------------------------------------------------------------------ pull model

CREATE OR REPLACE FUNCTION dms.pe_get_chunk(p_task_name text, p_chunk_type text)
RETURNS TABLE (chunk_id bigint, start_rowid tid, end_rowid tid, start_id numeric, end_id numeric)
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_task dms.pe_task := dms._pe_find(dms._pe_owner(false, NULL), p_task_name);
BEGIN
    IF v_task.status IN (7, 8, 9) THEN
        RETURN;  -- over: no chunk left to hand out (any_rows => false)
    END IF;
    IF v_task.status NOT IN (5, 6) THEN
        PERFORM dms._pe_error('INVALID_STATE_FOR_CHUNK',
            pg_catalog.format('task %s is %s; chunks are handed out of a CHUNKED or PROCESSING task',
                              p_task_name, dms._pe_status_name(v_task.status)));
    END IF;
    IF v_task.chunk_type <> p_chunk_type THEN
        PERFORM dms._pe_error('INVALID_STATE_FOR_CHUNK',
            pg_catalog.format('task %s has %s chunks, not %s', p_task_name, v_task.chunk_type, p_chunk_type),
            CASE WHEN v_task.chunk_type = 'ROWID_RANGE' THEN 'use get_rowid_chunk'
                 ELSE 'use get_number_col_chunk' END);
    END IF;
    IF v_task.status = 5 THEN
        UPDATE dms.pe_task SET status = 6, job_prefix = coalesce(job_prefix, 'TASK$_' || task_id)
         WHERE task_id = v_task.task_id;
    END IF;
    RETURN QUERY
    UPDATE dms.pe_chunk c
       SET status = 1, job_name = NULL, worker_pid = pg_catalog.pg_backend_pid(),
           worker_start = dms._pe_my_start(), start_ts = pg_catalog.clock_timestamp(),
           end_ts = NULL, error_code = NULL, error_message = NULL
     WHERE c.chunk_id = (SELECT q.chunk_id FROM dms.pe_chunk q
                          WHERE q.task_id = v_task.task_id AND q.status = 0
                          ORDER BY q.chunk_id
                          LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING c.chunk_id, c.start_rowid, c.end_rowid, c.start_id, c.end_id;
END
$fn$;
COMMENT ON FUNCTION dms.pe_get_chunk(text, text) IS
    'get_rowid_chunk / get_number_col_chunk: hand the caller the next UNASSIGNED chunk of its task, ASSIGNED to this session (operator role, own tasks)';

CREATE OR REPLACE FUNCTION dms.pe_set_chunk_status(p_task_name text, p_chunk_id bigint,
                                                   p_status integer, p_err_num text, p_err_msg text)
RETURNS void
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_task dms.pe_task := dms._pe_find(dms._pe_owner(false, NULL), p_task_name);
    v_left integer; v_failed integer;
BEGIN
    IF p_status IS NULL OR p_status NOT BETWEEN 0 AND 3 THEN
        PERFORM dms._pe_error('INVALID_STATUS',
            pg_catalog.format('%s is not a chunk status', coalesce(p_status::text, 'NULL')),
            'UNASSIGNED 0, ASSIGNED 1, PROCESSED 2, PROCESSED_WITH_ERROR 3');
    END IF;
    UPDATE dms.pe_chunk
       SET status = p_status,
           end_ts = CASE WHEN p_status IN (2, 3) THEN pg_catalog.clock_timestamp() END,
           error_code = CASE WHEN p_status = 3 THEN p_err_num END,
           error_message = CASE WHEN p_status = 3 THEN p_err_msg END,
           worker_pid = CASE WHEN p_status = 0 THEN NULL ELSE worker_pid END
     WHERE chunk_id = p_chunk_id AND task_id = v_task.task_id;
    IF NOT FOUND THEN
        PERFORM dms._pe_error('CHUNK_NOT_FOUND',
            pg_catalog.format('task %s has no chunk %s', p_task_name, coalesce(p_chunk_id::text, 'NULL')),
            'SELECT chunk_id FROM dbms_parallel_execute.user_parallel_execute_chunks WHERE task_name = ...');
    END IF;
    -- A task worked through the pull model is over when no chunk is left.
    IF v_task.status = 6 AND v_task.coordinator_pid IS NULL THEN
        SELECT count(*) FILTER (WHERE status IN (0, 1)), count(*) FILTER (WHERE status = 3)
          INTO v_left, v_failed FROM dms.pe_chunk WHERE task_id = v_task.task_id;
        IF v_left = 0 THEN
            UPDATE dms.pe_task SET status = CASE WHEN v_failed > 0 THEN 8 ELSE 7 END
             WHERE task_id = v_task.task_id;
        END IF;
    END IF;
END
$fn$;
COMMENT ON FUNCTION dms.pe_set_chunk_status(text, bigint, integer, text, text) IS
    'set_chunk_status: set a chunk''s status (INVALID_STATUS, CHUNK_NOT_FOUND); the task ends when no chunk is left (operator role, own tasks)';
