-- DBMS_PARALLEL_EXECUTE, part 2: Oracle's package, with Oracle's names,
-- parameters (named notation works) and defaults (issue 11).
--
-- Oracle's procedures are procedures here too, so ported code keeps its
-- CALLs; its two functions (generate_task_name, task_status) are functions.
-- Procedures that read the caller's tables or run the caller's statement
-- (create_chunks_*, run_task, resume_task) run as the caller (SECURITY
-- INVOKER; they commit, which PostgreSQL allows only there) and write task
-- state through the definer functions of 080.  The others are SECURITY
-- DEFINER with a fixed search_path.  Package constants are functions
-- (PostgreSQL has no package variables): dbms_parallel_execute.finished().
-- Call the procedures with autocommit on (psql's default) or from a DO block
-- or procedure, not inside BEGIN ... COMMIT.

-- ------------------------------------------------------------------ constants
CREATE OR REPLACE FUNCTION dbms_parallel_execute.unassigned() RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT 0';
CREATE OR REPLACE FUNCTION dbms_parallel_execute.assigned() RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT 1';
CREATE OR REPLACE FUNCTION dbms_parallel_execute.processed() RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT 2';
CREATE OR REPLACE FUNCTION dbms_parallel_execute.processed_with_error() RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT 3';
CREATE OR REPLACE FUNCTION dbms_parallel_execute.created() RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT 1';
CREATE OR REPLACE FUNCTION dbms_parallel_execute.chunking() RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT 2';
CREATE OR REPLACE FUNCTION dbms_parallel_execute.chunking_failed() RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT 3';
CREATE OR REPLACE FUNCTION dbms_parallel_execute.no_chunks() RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT 4';
CREATE OR REPLACE FUNCTION dbms_parallel_execute.chunked() RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT 5';
CREATE OR REPLACE FUNCTION dbms_parallel_execute.processing() RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT 6';
CREATE OR REPLACE FUNCTION dbms_parallel_execute.finished() RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT 7';
CREATE OR REPLACE FUNCTION dbms_parallel_execute.finished_with_error() RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT 8';
CREATE OR REPLACE FUNCTION dbms_parallel_execute.crashed() RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT 9';
COMMENT ON FUNCTION dbms_parallel_execute.unassigned() IS 'Chunk status UNASSIGNED (0)';
COMMENT ON FUNCTION dbms_parallel_execute.assigned() IS 'Chunk status ASSIGNED (1)';
COMMENT ON FUNCTION dbms_parallel_execute.processed() IS 'Chunk status PROCESSED (2)';
COMMENT ON FUNCTION dbms_parallel_execute.processed_with_error() IS 'Chunk status PROCESSED_WITH_ERROR (3)';
COMMENT ON FUNCTION dbms_parallel_execute.created() IS 'Task status CREATED (1)';
COMMENT ON FUNCTION dbms_parallel_execute.chunking() IS 'Task status CHUNKING (2)';
COMMENT ON FUNCTION dbms_parallel_execute.chunking_failed() IS 'Task status CHUNKING_FAILED (3)';
COMMENT ON FUNCTION dbms_parallel_execute.no_chunks() IS 'Task status NO_CHUNKS (4)';
COMMENT ON FUNCTION dbms_parallel_execute.chunked() IS 'Task status CHUNKED (5)';
COMMENT ON FUNCTION dbms_parallel_execute.processing() IS 'Task status PROCESSING (6)';
COMMENT ON FUNCTION dbms_parallel_execute.finished() IS 'Task status FINISHED (7)';
COMMENT ON FUNCTION dbms_parallel_execute.finished_with_error() IS 'Task status FINISHED_WITH_ERROR (8)';
COMMENT ON FUNCTION dbms_parallel_execute.crashed() IS 'Task status CRASHED (9): the task''s workers or session died mid-run';

-- ------------------------------------------------------------------ tasks
CREATE OR REPLACE FUNCTION dbms_parallel_execute.generate_task_name(prefix text DEFAULT 'TASK$_')
RETURNS text LANGUAGE sql VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT dms.pe_generate_task_name(prefix) $fn$;
COMMENT ON FUNCTION dbms_parallel_execute.generate_task_name(text) IS
    'A unique task name: prefix followed by a number (operator role)';

CREATE OR REPLACE PROCEDURE dbms_parallel_execute.create_task(task_name text, comment text DEFAULT NULL)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT dms.pe_create_task(task_name, comment) $fn$;
COMMENT ON PROCEDURE dbms_parallel_execute.create_task(text, text) IS
    'Create a task of the caller (DUPLICATE_TASK_NAME if it has one of that name) (operator role)';

CREATE OR REPLACE FUNCTION dbms_parallel_execute.task_status(task_name text)
RETURNS integer LANGUAGE sql VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT s.status FROM dms.pe_task_state(session_user, task_name, false) AS s $fn$;
COMMENT ON FUNCTION dbms_parallel_execute.task_status(text) IS
    'The status number of the caller''s task (CRASHED when its session died while PROCESSING) (operator role)';

CREATE OR REPLACE FUNCTION dbms_parallel_execute.adm_task_status(task_owner text, task_name text)
RETURNS integer LANGUAGE sql VOLATILE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT s.status FROM dms.pe_task_state(task_owner, task_name, true) AS s $fn$;
COMMENT ON FUNCTION dbms_parallel_execute.adm_task_status(text, text) IS
    'The status number of another login''s task (dms_admin, else MISSING_ROLE)';

CREATE OR REPLACE PROCEDURE dbms_parallel_execute.drop_task(task_name text)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT dms.pe_drop(session_user, task_name, 'task', false) $fn$;
COMMENT ON PROCEDURE dbms_parallel_execute.drop_task(text) IS 'Drop the caller''s task and its chunks (operator role)';

CREATE OR REPLACE PROCEDURE dbms_parallel_execute.adm_drop_task(task_owner text, task_name text)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT dms.pe_drop(task_owner, task_name, 'task', true) $fn$;
COMMENT ON PROCEDURE dbms_parallel_execute.adm_drop_task(text, text) IS 'Drop another login''s task (dms_admin, else MISSING_ROLE)';

CREATE OR REPLACE PROCEDURE dbms_parallel_execute.drop_chunks(task_name text)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT dms.pe_drop(session_user, task_name, 'chunks', false) $fn$;
COMMENT ON PROCEDURE dbms_parallel_execute.drop_chunks(text) IS 'Drop the task''s chunks: the task is CREATED again (operator role)';

CREATE OR REPLACE PROCEDURE dbms_parallel_execute.adm_drop_chunks(task_owner text, task_name text)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT dms.pe_drop(task_owner, task_name, 'chunks', true) $fn$;
COMMENT ON PROCEDURE dbms_parallel_execute.adm_drop_chunks(text, text) IS 'Drop another login''s task''s chunks (dms_admin, else MISSING_ROLE)';

CREATE OR REPLACE PROCEDURE dbms_parallel_execute.purge_processed_chunks(task_name text)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT dms.pe_drop(session_user, task_name, 'processed', false) $fn$;
COMMENT ON PROCEDURE dbms_parallel_execute.purge_processed_chunks(text) IS 'Delete the task''s PROCESSED chunks (operator role)';

-- ------------------------------------------------------------------ chunking
CREATE OR REPLACE PROCEDURE dbms_parallel_execute.create_chunks_by_rowid(
    task_name text, table_owner text, table_name text, by_row boolean, chunk_size bigint)
LANGUAGE plpython3u
AS $plpy$@plpy(parallel_execute:create_chunks_by_rowid)$plpy$;
COMMENT ON PROCEDURE dbms_parallel_execute.create_chunks_by_rowid(text, text, text, boolean, bigint) IS
    'Chunk the task''s table into ranges of whole pages (ROWIDs are ctids): chunk_size blocks each, or about chunk_size rows each when by_row (operator role)';

CREATE OR REPLACE PROCEDURE dbms_parallel_execute.create_chunks_by_number_col(
    task_name text, table_owner text, table_name text, table_column text, chunk_size bigint)
LANGUAGE plpython3u
AS $plpy$@plpy(parallel_execute:create_chunks_by_number_col)$plpy$;
COMMENT ON PROCEDURE dbms_parallel_execute.create_chunks_by_number_col(text, text, text, text, bigint) IS
    'Chunk the task''s table by a number column: from its MIN to its MAX, chunk_size values per chunk; NULLs are in no chunk (operator role)';

CREATE OR REPLACE PROCEDURE dbms_parallel_execute.create_chunks_by_sql(
    task_name text, sql_stmt text, by_rowid boolean)
LANGUAGE plpython3u
AS $plpy$@plpy(parallel_execute:create_chunks_by_sql)$plpy$;
COMMENT ON PROCEDURE dbms_parallel_execute.create_chunks_by_sql(text, text, boolean) IS
    'Chunk the task by a query returning (start_id, end_id) rows, ROWIDs (tid) when by_rowid; the query runs as the caller (operator role)';

-- ------------------------------------------------------------------ running
CREATE OR REPLACE PROCEDURE dbms_parallel_execute.run_task(
    task_name text, sql_stmt text, language_flag integer,
    edition text DEFAULT NULL, apply_crossedition_trigger text DEFAULT NULL,
    fire_apply_trigger boolean DEFAULT true, parallel_level integer DEFAULT 0,
    job_class text DEFAULT 'DEFAULT_JOB_CLASS')
LANGUAGE plpython3u
AS $plpy$@plpy(parallel_execute:run_task)$plpy$;
COMMENT ON PROCEDURE dbms_parallel_execute.run_task(text, text, integer, text, text, boolean, integer, text) IS
    'Run sql_stmt (with :start_id and :end_id) once per chunk, each chunk committed on its own, with parallel_level sessions (0 or 1: this session; NULL: 4), and wait (operator role)';

CREATE OR REPLACE PROCEDURE dbms_parallel_execute.resume_task(
    task_name text, sql_stmt text, language_flag integer,
    edition text DEFAULT NULL, apply_crossedition_trigger text DEFAULT NULL,
    fire_apply_trigger boolean DEFAULT true, parallel_level integer DEFAULT 0,
    job_class text DEFAULT 'DEFAULT_JOB_CLASS', force boolean DEFAULT false)
LANGUAGE plpython3u
AS $plpy$@plpy(parallel_execute:resume_task)$plpy$;
COMMENT ON PROCEDURE dbms_parallel_execute.resume_task(text, text, integer, text, text, boolean, integer, text, boolean) IS
    'Run the UNASSIGNED, PROCESSED_WITH_ERROR and crashed chunks of a CRASHED or FINISHED_WITH_ERROR task (PROCESSING with force) with a new statement, and wait (operator role)';

CREATE OR REPLACE PROCEDURE dbms_parallel_execute.resume_task(task_name text, force boolean DEFAULT false)
LANGUAGE plpython3u
AS $plpy$@plpy(parallel_execute:resume_task)$plpy$;
COMMENT ON PROCEDURE dbms_parallel_execute.resume_task(text, boolean) IS
    'Run the UNASSIGNED, PROCESSED_WITH_ERROR and crashed chunks of a CRASHED or FINISHED_WITH_ERROR task (PROCESSING with force) with its statement, and wait (operator role)';

CREATE OR REPLACE PROCEDURE dbms_parallel_execute.stop_task(task_name text)
LANGUAGE plpython3u
AS $plpy$@plpy(parallel_execute:stop_task)$plpy$;
COMMENT ON PROCEDURE dbms_parallel_execute.stop_task(text) IS
    'Stop a running task: no more chunks are handed out, the chunks being processed are cancelled and go back to UNASSIGNED; the task ends CRASHED, ready for resume_task (operator role)';

CREATE OR REPLACE PROCEDURE dbms_parallel_execute.adm_stop_task(task_owner text, task_name text)
LANGUAGE plpython3u
AS $plpy$@plpy(parallel_execute:adm_stop_task)$plpy$;
COMMENT ON PROCEDURE dbms_parallel_execute.adm_stop_task(text, text) IS
    'Stop another login''s running task (dms_admin, else MISSING_ROLE)';

CREATE OR REPLACE PROCEDURE dms.pe_work(p_task_id bigint, p_worker integer)
LANGUAGE plpython3u
AS $plpy$@plpy(parallel_execute:work)$plpy$;
COMMENT ON PROCEDURE dms.pe_work(bigint, integer) IS
    'Internal (run_task''s worker sessions): claim the task''s chunks one by one, run the statement, commit each (operator role, own tasks)';

-- ------------------------------------------------------------------ pull model
CREATE OR REPLACE PROCEDURE dbms_parallel_execute.get_rowid_chunk(
    task_name text, INOUT chunk_id bigint, INOUT start_rowid tid, INOUT end_rowid tid,
    INOUT any_rows boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    SELECT c.chunk_id, c.start_rowid, c.end_rowid INTO chunk_id, start_rowid, end_rowid
      FROM dms.pe_get_chunk(task_name, 'ROWID_RANGE') AS c;
    any_rows := FOUND;
END
$fn$;
COMMENT ON PROCEDURE dbms_parallel_execute.get_rowid_chunk(text, bigint, tid, tid, boolean) IS
    'Pull model: take the next UNASSIGNED ROWID chunk of the task; any_rows is false when none is left (operator role)';

CREATE OR REPLACE PROCEDURE dbms_parallel_execute.get_number_col_chunk(
    task_name text, INOUT chunk_id bigint, INOUT start_id numeric, INOUT end_id numeric,
    INOUT any_rows boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    SELECT c.chunk_id, c.start_id, c.end_id INTO chunk_id, start_id, end_id
      FROM dms.pe_get_chunk(task_name, 'NUMBER_RANGE') AS c;
    any_rows := FOUND;
END
$fn$;
COMMENT ON PROCEDURE dbms_parallel_execute.get_number_col_chunk(text, bigint, numeric, numeric, boolean) IS
    'Pull model: take the next UNASSIGNED number chunk of the task; any_rows is false when none is left (operator role)';

CREATE OR REPLACE PROCEDURE dbms_parallel_execute.set_chunk_status(
    task_name text, chunk_id bigint, status integer, err_num text DEFAULT NULL, err_msg text DEFAULT NULL)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT dms.pe_set_chunk_status(task_name, chunk_id, status, err_num, err_msg) $fn$;
COMMENT ON PROCEDURE dbms_parallel_execute.set_chunk_status(text, bigint, integer, text, text) IS
    'Pull model: set a chunk''s status (PROCESSED, PROCESSED_WITH_ERROR with err_num/err_msg, ...) (operator role)';

-- ------------------------------------------------------------------ views
CREATE OR REPLACE VIEW dms.pe_tasks_all WITH (security_barrier) AS
SELECT t.task_owner, t.task_name, t.chunk_type, dms._pe_status_name(dms._pe_effective_status(t)) AS status,
       t.table_owner, t.table_name, t.number_column, t.task_comment, t.job_prefix, t.sql_stmt,
       t.language_flag, t.edition, t.apply_crossedition_trigger, t.fire_apply_trigger,
       t.parallel_level, t.job_class, t.message, t.created_at
  FROM dms.pe_task t;
COMMENT ON VIEW dms.pe_tasks_all IS 'Internal: every task, Oracle''s columns (the dba_ and user_ views select from it)';

CREATE OR REPLACE VIEW dms.pe_chunks_all WITH (security_barrier) AS
SELECT t.task_owner, c.chunk_id, t.task_name, dms._pe_chunk_status_name(c.status) AS status,
       c.start_rowid, c.end_rowid, c.start_id, c.end_id, c.job_name, c.start_ts, c.end_ts,
       c.error_code, c.error_message
  FROM dms.pe_chunk c JOIN dms.pe_task t USING (task_id);
COMMENT ON VIEW dms.pe_chunks_all IS 'Internal: every chunk, Oracle''s columns (the dba_ and user_ views select from it)';

CREATE OR REPLACE VIEW dbms_parallel_execute.user_parallel_execute_tasks WITH (security_barrier) AS
SELECT task_name, chunk_type, status, table_owner, table_name, number_column, task_comment,
       job_prefix, sql_stmt, language_flag, edition, apply_crossedition_trigger,
       fire_apply_trigger, parallel_level, job_class, message
  FROM dms.pe_tasks_all WHERE task_owner = session_user;
COMMENT ON VIEW dbms_parallel_execute.user_parallel_execute_tasks IS 'The caller''s tasks (USER_PARALLEL_EXECUTE_TASKS)';

CREATE OR REPLACE VIEW dbms_parallel_execute.dba_parallel_execute_tasks AS
SELECT task_owner, task_name, chunk_type, status, table_owner, table_name, number_column,
       task_comment, job_prefix, sql_stmt, language_flag, edition, apply_crossedition_trigger,
       fire_apply_trigger, parallel_level, job_class, message
  FROM dms.pe_tasks_all;
COMMENT ON VIEW dbms_parallel_execute.dba_parallel_execute_tasks IS 'Every login''s tasks (DBA_PARALLEL_EXECUTE_TASKS; dms_admin)';

CREATE OR REPLACE VIEW dbms_parallel_execute.user_parallel_execute_chunks WITH (security_barrier) AS
SELECT chunk_id, task_name, status, start_rowid, end_rowid, start_id, end_id, job_name,
       start_ts, end_ts, error_code, error_message
  FROM dms.pe_chunks_all WHERE task_owner = session_user;
COMMENT ON VIEW dbms_parallel_execute.user_parallel_execute_chunks IS 'The chunks of the caller''s tasks (USER_PARALLEL_EXECUTE_CHUNKS)';

CREATE OR REPLACE VIEW dbms_parallel_execute.dba_parallel_execute_chunks AS
SELECT task_owner, chunk_id, task_name, status, start_rowid, end_rowid, start_id, end_id,
       job_name, start_ts, end_ts, error_code, error_message
  FROM dms.pe_chunks_all;
COMMENT ON VIEW dbms_parallel_execute.dba_parallel_execute_chunks IS 'The chunks of every login''s tasks (DBA_PARALLEL_EXECUTE_CHUNKS; dms_admin)';

-- Column comments of the views: those of the table columns they show, and
-- the status columns, which show names where the tables keep numbers.
DO $comments$
DECLARE
    v record;
BEGIN
    FOR v IN
        SELECT c.oid AS view_oid, a.attname, a.attnum,
               coalesce(
                   CASE WHEN a.attname = 'status' AND c.relname LIKE '%chunks%'
                        THEN 'Chunk status (STATUS): UNASSIGNED, ASSIGNED, PROCESSED or PROCESSED_WITH_ERROR'
                        WHEN a.attname = 'status'
                        THEN 'Task status (STATUS): CREATED, CHUNKING, CHUNKING_FAILED, NO_CHUNKS, CHUNKED, PROCESSING, FINISHED, FINISHED_WITH_ERROR or CRASHED (PROCESSING whose session died reads CRASHED)' END,
                   CASE WHEN c.relname LIKE '%chunks%'
                        THEN pg_catalog.col_description('dms.pe_chunk'::regclass,
                                 (SELECT attnum FROM pg_catalog.pg_attribute
                                   WHERE attrelid = 'dms.pe_chunk'::regclass AND attname = a.attname)) END,
                   pg_catalog.col_description('dms.pe_task'::regclass,
                       (SELECT attnum FROM pg_catalog.pg_attribute
                         WHERE attrelid = 'dms.pe_task'::regclass AND attname = a.attname))) AS text
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
         WHERE c.relkind = 'v'
           AND (n.nspname = 'dbms_parallel_execute'
                OR (n.nspname = 'dms' AND c.relname IN ('pe_tasks_all', 'pe_chunks_all')))
    LOOP
        EXECUTE pg_catalog.format('COMMENT ON COLUMN %s.%I IS %L', v.view_oid::regclass, v.attname,
                                  v.text);
    END LOOP;
END
$comments$;
