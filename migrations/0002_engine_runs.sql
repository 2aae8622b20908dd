-- 0002: run and chunk state of the parallel engine (DESIGN §3).
--
-- The chunk table is the queue: workers claim a PENDING chunk with
-- FOR UPDATE SKIP LOCKED, move it, and mark it DONE or FAILED, committing
-- each step.  Nothing about a run lives only in a process's memory, so a run
-- can be watched from any session and picked up after a crash.  Only the
-- package's SECURITY DEFINER functions write these tables; people read them
-- through the progress views.

CREATE TABLE dms.run (
    run_id            bigint GENERATED ALWAYS AS IDENTITY,
    run_uuid          uuid        NOT NULL DEFAULT gen_random_uuid(),
    label             text        NOT NULL,
    source_conid      bigint      REFERENCES dms.dms_dbcondtls (conid),
    source_dialect    text        NOT NULL DEFAULT 'postgres',
    source_sql        text        NOT NULL,
    target_conid      bigint      REFERENCES dms.dms_dbcondtls (conid),
    target_schema     text        NOT NULL,
    target_table      text        NOT NULL,
    params            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    config            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    spec              jsonb       NOT NULL DEFAULT '{}'::jsonb,
    path              text        NOT NULL,
    write_mode        text        NOT NULL DEFAULT 'append',
    strategy          text        NOT NULL,
    chunk_key         text,
    driving_table     text,
    refused_reason    text,
    parallel_note     text,
    workers_requested integer     NOT NULL DEFAULT 1,
    workers_planned   integer     NOT NULL DEFAULT 1,
    estimated_rows    bigint,
    state             text        NOT NULL DEFAULT 'QUEUED',
    message           text,
    coordinator_pid   integer,
    search_path       text,
    submitted_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at        timestamptz,
    ended_at          timestamptz,
    created_by        text        NOT NULL DEFAULT session_user,
    CONSTRAINT run_pk PRIMARY KEY (run_id),
    CONSTRAINT run_uuid_uk UNIQUE (run_uuid),
    CONSTRAINT run_state_ck CHECK (state IN ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED',
                                             'PARTIAL', 'STOPPING', 'STOPPED')),
    CONSTRAINT run_path_ck CHECK (path IN ('same_db', 'copy_binary', 'copy_text', 'rows')),
    CONSTRAINT run_write_mode_ck CHECK (write_mode IN ('append', 'truncate')),
    CONSTRAINT run_workers_ck CHECK (workers_requested >= 1 AND workers_planned >= 1)
);
CREATE INDEX run_state_ix ON dms.run (state, run_id) WHERE state IN ('QUEUED', 'RUNNING', 'STOPPING');
CREATE INDEX run_target_ix ON dms.run (target_conid, target_schema, target_table);
COMMENT ON TABLE dms.run IS 'Engine runs: one row per parallel move (execute_query_parallel, submit_query_parallel, mapper job steps)';
COMMENT ON COLUMN dms.run.run_id IS 'Run id';
COMMENT ON COLUMN dms.run.run_uuid IS 'Run UUID: identifies the run in other databases (the target''s chunk ledger)';
COMMENT ON COLUMN dms.run.label IS 'What runs, for people: source -> target';
COMMENT ON COLUMN dms.run.source_conid IS 'Source connection (DMS_DBCONDTLS.CONID); NULL = this database';
COMMENT ON COLUMN dms.run.source_dialect IS 'SQL dialect of the source query';
COMMENT ON COLUMN dms.run.source_sql IS 'The source query as given';
COMMENT ON COLUMN dms.run.target_conid IS 'Target connection (DMS_DBCONDTLS.CONID); NULL = this database';
COMMENT ON COLUMN dms.run.target_schema IS 'Target schema';
COMMENT ON COLUMN dms.run.target_table IS 'Target table';
COMMENT ON COLUMN dms.run.params IS 'The call''s own parameters (p_params) as given';
COMMENT ON COLUMN dms.run.config IS 'Effective settings after defaults, DMS_PARAMS, environment and p_params, each with where it came from';
COMMENT ON COLUMN dms.run.spec IS 'What a worker needs to move a chunk: columns, statements, connections (never a credential)';
COMMENT ON COLUMN dms.run.path IS 'Data path: same_db (INSERT ... SELECT in the database), copy_binary / copy_text (COPY stream between PostgreSQL databases), rows (fetch, transform, COPY)';
COMMENT ON COLUMN dms.run.write_mode IS 'append (insert into what is there) or truncate (empty the target first)';
COMMENT ON COLUMN dms.run.strategy IS 'Chunk strategy the planner chose (key_range, quantile, ctid, hash, offset, single, ...)';
COMMENT ON COLUMN dms.run.chunk_key IS 'Chunk key column(s)';
COMMENT ON COLUMN dms.run.driving_table IS 'The source table whose rows are split';
COMMENT ON COLUMN dms.run.refused_reason IS 'Why the source query could not be split (it then runs as one chunk)';
COMMENT ON COLUMN dms.run.parallel_note IS 'Why the run uses fewer workers than asked (below min_rows_for_parallel, parallel disabled, connection headroom)';
COMMENT ON COLUMN dms.run.workers_requested IS 'Workers asked for (max_workers)';
COMMENT ON COLUMN dms.run.workers_planned IS 'Workers the run starts';
COMMENT ON COLUMN dms.run.estimated_rows IS 'Rows the planner expects (sum of the chunks'' estimates)';
COMMENT ON COLUMN dms.run.state IS 'QUEUED, RUNNING, SUCCEEDED, FAILED, PARTIAL (some chunks failed), STOPPING, STOPPED';
COMMENT ON COLUMN dms.run.message IS 'Outcome for people: a summary, or which chunks failed and why';
COMMENT ON COLUMN dms.run.coordinator_pid IS 'Backend pid of the session coordinating the run';
COMMENT ON COLUMN dms.run.search_path IS 'search_path of the caller, used by the workers to resolve the source query';
COMMENT ON COLUMN dms.run.submitted_at IS 'When the run was recorded';
COMMENT ON COLUMN dms.run.started_at IS 'When the first worker started';
COMMENT ON COLUMN dms.run.ended_at IS 'When the run reached its final state';
COMMENT ON COLUMN dms.run.created_by IS 'Login that started the run';

CREATE TABLE dms.chunk (
    run_id          bigint      NOT NULL REFERENCES dms.run (run_id) ON DELETE CASCADE,
    chunk_no        integer     NOT NULL,
    kind            text        NOT NULL,
    predicate_sql   text        NOT NULL,
    query_sql       text        NOT NULL,
    params          jsonb       NOT NULL DEFAULT '[]'::jsonb,
    lo              text,
    hi              text,
    estimated_rows  bigint,
    state           text        NOT NULL DEFAULT 'PENDING',
    attempts        integer     NOT NULL DEFAULT 0,
    worker_pid      integer,
    started_at      timestamptz,
    ended_at        timestamptz,
    heartbeat_at    timestamptz,
    retry_at        timestamptz,
    rows            bigint,
    bytes           bigint,
    sqlstate        text,
    last_error      text,
    CONSTRAINT chunk_pk PRIMARY KEY (run_id, chunk_no),
    CONSTRAINT chunk_state_ck CHECK (state IN ('PENDING', 'RUNNING', 'DONE', 'FAILED'))
);
CREATE INDEX chunk_open_ix ON dms.chunk (run_id, chunk_no) WHERE state IN ('PENDING', 'RUNNING');
COMMENT ON TABLE dms.chunk IS 'Engine chunks: the work queue of a run, one row per chunk of the source query';
COMMENT ON COLUMN dms.chunk.run_id IS 'Run id (dms.run)';
COMMENT ON COLUMN dms.chunk.chunk_no IS 'Chunk number within the run, from 1';
COMMENT ON COLUMN dms.chunk.kind IS 'range, null, point, tid, rowid, bucket, offset or all';
COMMENT ON COLUMN dms.chunk.predicate_sql IS 'The filter added to the source query for this chunk (with bind markers)';
COMMENT ON COLUMN dms.chunk.query_sql IS 'The full source query of this chunk (with bind markers)';
COMMENT ON COLUMN dms.chunk.params IS 'Bind values in order, each as [name, type, text]';
COMMENT ON COLUMN dms.chunk.lo IS 'Lower bound, for people';
COMMENT ON COLUMN dms.chunk.hi IS 'Upper bound, for people';
COMMENT ON COLUMN dms.chunk.estimated_rows IS 'Rows the planner expects in the chunk';
COMMENT ON COLUMN dms.chunk.state IS 'PENDING, RUNNING, DONE or FAILED';
COMMENT ON COLUMN dms.chunk.attempts IS 'How many times a worker claimed the chunk';
COMMENT ON COLUMN dms.chunk.worker_pid IS 'Backend pid (in this database) of the worker that claimed it last';
COMMENT ON COLUMN dms.chunk.started_at IS 'When the last attempt started';
COMMENT ON COLUMN dms.chunk.ended_at IS 'When the chunk was done or failed';
COMMENT ON COLUMN dms.chunk.heartbeat_at IS 'Last sign of life of the worker moving it';
COMMENT ON COLUMN dms.chunk.retry_at IS 'A chunk put back after a transient failure is not claimed again before this time (backoff)';
COMMENT ON COLUMN dms.chunk.rows IS 'Rows written to the target';
COMMENT ON COLUMN dms.chunk.bytes IS 'Bytes streamed (COPY paths; NULL for same-database INSERT ... SELECT)';
COMMENT ON COLUMN dms.chunk.sqlstate IS 'SQLSTATE of the last error';
COMMENT ON COLUMN dms.chunk.last_error IS 'Message of the last error, as the database gave it';
