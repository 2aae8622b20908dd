-- 0008: tasks and chunks of DBMS_PARALLEL_EXECUTE (issue 11).
--
-- Oracle's package keeps a task (its name, how it was chunked, the statement
-- it runs, its status) and the task's chunks (a range each, with a status and
-- the error it ended with).  These two tables hold exactly that, with the
-- owner of each task, so that a login sees and runs only its own.  The chunk
-- table is the task's queue: workers claim an UNASSIGNED chunk with
-- FOR UPDATE SKIP LOCKED, run the statement for its range and mark it
-- PROCESSED in the same transaction, so a chunk's work commits exactly once.
-- Only the package's SECURITY DEFINER functions write them; people read them
-- through the Oracle-named views in schema dbms_parallel_execute.

CREATE TABLE dms.pe_task (
    task_id           bigint GENERATED ALWAYS AS IDENTITY,
    task_owner        text        NOT NULL DEFAULT session_user,
    task_name         text        NOT NULL,
    chunk_type        text        NOT NULL DEFAULT 'UNDECLARED',
    status            integer     NOT NULL DEFAULT 1,
    table_owner       text,
    table_name        text,
    number_column     text,
    task_comment      text,
    job_prefix        text,
    sql_stmt          text,
    language_flag     integer,
    edition           text,
    apply_crossedition_trigger text,
    fire_apply_trigger boolean,
    parallel_level    integer,
    job_class         text,
    run_sql           text,
    run_mode          text,
    search_path       text,
    xid_horizon       bigint,
    coordinator_pid   integer,
    coordinator_start timestamptz,
    stop_requested    boolean     NOT NULL DEFAULT false,
    message           text,
    created_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT pe_task_pk PRIMARY KEY (task_id),
    CONSTRAINT pe_task_name_uk UNIQUE (task_owner, task_name),
    CONSTRAINT pe_task_status_ck CHECK (status BETWEEN 1 AND 9),
    CONSTRAINT pe_task_chunk_type_ck CHECK (chunk_type IN ('UNDECLARED', 'ROWID_RANGE', 'NUMBER_RANGE')),
    CONSTRAINT pe_task_run_mode_ck CHECK (run_mode IS NULL OR run_mode IN ('statement', 'block'))
);
COMMENT ON TABLE dms.pe_task IS 'DBMS_PARALLEL_EXECUTE tasks (PE = parallel execute): one row per task, per owner';
COMMENT ON COLUMN dms.pe_task.task_id IS 'Task id (internal; Oracle names tasks only)';
COMMENT ON COLUMN dms.pe_task.task_owner IS 'Login that created the task (TASK_OWNER): only it runs and sees the task, besides dms_admin';
COMMENT ON COLUMN dms.pe_task.task_name IS 'Task name (TASK_NAME), unique per owner';
COMMENT ON COLUMN dms.pe_task.chunk_type IS 'How the task was chunked (CHUNK_TYPE): ROWID_RANGE, NUMBER_RANGE or UNDECLARED before chunking';
COMMENT ON COLUMN dms.pe_task.status IS 'Task status number: 1 CREATED, 2 CHUNKING, 3 CHUNKING_FAILED, 4 NO_CHUNKS, 5 CHUNKED, 6 PROCESSING, 7 FINISHED, 8 FINISHED_WITH_ERROR, 9 CRASHED';
COMMENT ON COLUMN dms.pe_task.table_owner IS 'Schema of the chunked table (TABLE_OWNER)';
COMMENT ON COLUMN dms.pe_task.table_name IS 'Chunked table (TABLE_NAME)';
COMMENT ON COLUMN dms.pe_task.number_column IS 'Column the task was chunked by (NUMBER_COLUMN), for create_chunks_by_number_col';
COMMENT ON COLUMN dms.pe_task.task_comment IS 'Comment given to create_task (TASK_COMMENT)';
COMMENT ON COLUMN dms.pe_task.job_prefix IS 'Prefix of the worker names shown in the chunks'' JOB_NAME (JOB_PREFIX)';
COMMENT ON COLUMN dms.pe_task.sql_stmt IS 'Statement run_task runs per chunk, as given, with :start_id and :end_id (SQL_STMT)';
COMMENT ON COLUMN dms.pe_task.language_flag IS 'LANGUAGE_FLAG as given (recorded; PostgreSQL has one SQL language)';
COMMENT ON COLUMN dms.pe_task.edition IS 'EDITION as given (recorded; PostgreSQL has no editions)';
COMMENT ON COLUMN dms.pe_task.apply_crossedition_trigger IS 'APPLY_CROSSEDITION_TRIGGER as given (recorded; not applicable)';
COMMENT ON COLUMN dms.pe_task.fire_apply_trigger IS 'FIRE_APPLY_TRIGGER as given (recorded; not applicable)';
COMMENT ON COLUMN dms.pe_task.parallel_level IS 'Workers run_task ran the chunks with (PARALLEL_LEVEL)';
COMMENT ON COLUMN dms.pe_task.job_class IS 'JOB_CLASS as given (recorded)';
COMMENT ON COLUMN dms.pe_task.run_sql IS 'The statement as each chunk runs it: binds numbered, ROWID spelled ctid, rows the task itself rewrote left out';
COMMENT ON COLUMN dms.pe_task.run_mode IS 'statement (run with bind values) or block (a PL/pgSQL block, run as DO with the range as literals)';
COMMENT ON COLUMN dms.pe_task.search_path IS 'search_path of the session that ran the task: its worker sessions resolve the statement''s names the same way';
COMMENT ON COLUMN dms.pe_task.xid_horizon IS 'ROWID_RANGE tasks: the next transaction id when the task first ran; row versions written from then on (by the task''s own chunks) are not touched again';
COMMENT ON COLUMN dms.pe_task.coordinator_pid IS 'Backend pid of the session running run_task or resume_task; PROCESSING with that session gone is CRASHED';
COMMENT ON COLUMN dms.pe_task.coordinator_start IS 'Start time of that backend (a reused pid is not taken for the coordinator)';
COMMENT ON COLUMN dms.pe_task.stop_requested IS 'stop_task was called: workers take no more chunks';
COMMENT ON COLUMN dms.pe_task.message IS 'Outcome for people: chunks processed, failed, crashed, or why chunking failed';
COMMENT ON COLUMN dms.pe_task.created_at IS 'When the task was created';

CREATE TABLE dms.pe_chunk (
    chunk_id       bigint GENERATED ALWAYS AS IDENTITY,
    task_id        bigint      NOT NULL REFERENCES dms.pe_task (task_id) ON DELETE CASCADE,
    status         integer     NOT NULL DEFAULT 0,
    start_rowid    tid,
    end_rowid      tid,
    start_id       numeric,
    end_id         numeric,
    job_name       text,
    worker_pid     integer,
    worker_start   timestamptz,
    start_ts       timestamptz,
    end_ts         timestamptz,
    error_code     text,
    error_message  text,
    CONSTRAINT pe_chunk_pk PRIMARY KEY (chunk_id),
    CONSTRAINT pe_chunk_status_ck CHECK (status BETWEEN 0 AND 3)
);
CREATE INDEX pe_chunk_task_ix ON dms.pe_chunk (task_id, status, chunk_id);
COMMENT ON TABLE dms.pe_chunk IS 'DBMS_PARALLEL_EXECUTE chunks: the work queue of a task, one row per range';
COMMENT ON COLUMN dms.pe_chunk.chunk_id IS 'Chunk id (CHUNK_ID), unique across tasks as in Oracle';
COMMENT ON COLUMN dms.pe_chunk.task_id IS 'Task (dms.pe_task)';
COMMENT ON COLUMN dms.pe_chunk.status IS 'Chunk status number: 0 UNASSIGNED, 1 ASSIGNED, 2 PROCESSED, 3 PROCESSED_WITH_ERROR';
COMMENT ON COLUMN dms.pe_chunk.start_rowid IS 'ROWID_RANGE: first tuple id of the range (START_ROWID; PostgreSQL ctid)';
COMMENT ON COLUMN dms.pe_chunk.end_rowid IS 'ROWID_RANGE: last tuple id of the range (END_ROWID)';
COMMENT ON COLUMN dms.pe_chunk.start_id IS 'NUMBER_RANGE: first value of the range (START_ID)';
COMMENT ON COLUMN dms.pe_chunk.end_id IS 'NUMBER_RANGE: last value of the range (END_ID)';
COMMENT ON COLUMN dms.pe_chunk.job_name IS 'Worker that took the chunk (JOB_NAME): the task''s job prefix and the worker''s number';
COMMENT ON COLUMN dms.pe_chunk.worker_pid IS 'Backend pid of that worker; ASSIGNED with that session gone means the worker crashed';
COMMENT ON COLUMN dms.pe_chunk.worker_start IS 'Start time of that backend (a reused pid is not taken for the worker)';
COMMENT ON COLUMN dms.pe_chunk.start_ts IS 'When the chunk was taken (START_TS)';
COMMENT ON COLUMN dms.pe_chunk.end_ts IS 'When the chunk was processed (END_TS)';
COMMENT ON COLUMN dms.pe_chunk.error_code IS 'SQLSTATE of the error the chunk ended with (ERROR_CODE)';
COMMENT ON COLUMN dms.pe_chunk.error_message IS 'Message of that error, as the database gave it (ERROR_MESSAGE)';

CREATE SEQUENCE dms.pe_task_name_seq;
COMMENT ON SEQUENCE dms.pe_task_name_seq IS 'Numbers of the names generate_task_name hands out (TASK$_<n>)';

CREATE SCHEMA dbms_parallel_execute;
COMMENT ON SCHEMA dbms_parallel_execute IS 'Oracle''s DBMS_PARALLEL_EXECUTE package: chunk a table, run a statement per chunk in parallel (docs/dbms_parallel_execute.md)';
