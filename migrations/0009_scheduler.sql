-- 0009: DBMS_SCHEDULER (the subset DMS jobs use): jobs, their arguments, their runs.
--
-- A job belongs to the login that created it (OWNER = session_user, never a
-- credential) and is only ever carried out in a session logged in as that
-- login.  Operators read their own rows only (row-level security; the
-- package's definer functions, owned by the installer, see all rows and
-- filter by owner themselves); the dbms_scheduler views show the caller's.

CREATE SCHEMA dbms_scheduler;
COMMENT ON SCHEMA dbms_scheduler IS 'DBMS_SCHEDULER: Oracle''s job scheduler procedures and views (the subset DMS jobs use), run by pg_cron through dbms_scheduler.dispatch';

CREATE TABLE dms.sched_job (
    job_id              integer     GENERATED ALWAYS AS IDENTITY,
    owner               text        NOT NULL DEFAULT session_user,
    job_name            text        NOT NULL,
    job_type            text        NOT NULL,
    job_action          text        NOT NULL,
    number_of_arguments integer     NOT NULL DEFAULT 0,
    start_date          timestamptz,
    anchor_date         timestamptz,
    repeat_interval     text,
    end_date            timestamptz,
    enabled             boolean     NOT NULL DEFAULT false,
    auto_drop           boolean     NOT NULL DEFAULT true,
    comments            text,
    next_run_date       timestamptz,
    completed_at        timestamptz,
    run_count           integer     NOT NULL DEFAULT 0,
    failure_count       integer     NOT NULL DEFAULT 0,
    last_start_date     timestamptz,
    last_run_duration   interval,
    last_status         text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sched_job_pk PRIMARY KEY (job_id),
    CONSTRAINT sched_job_name_uk UNIQUE (owner, job_name),
    CONSTRAINT sched_job_type_ck CHECK (job_type IN ('PLSQL_BLOCK', 'STORED_PROCEDURE')),
    CONSTRAINT sched_job_args_ck CHECK (number_of_arguments BETWEEN 0 AND 255),
    CONSTRAINT sched_job_dates_ck CHECK (end_date IS NULL OR start_date IS NULL OR end_date >= start_date),
    CONSTRAINT sched_job_status_ck CHECK (last_status IN ('SUCCEEDED', 'FAILED', 'STOPPED'))
);
CREATE INDEX sched_job_due_ix ON dms.sched_job (next_run_date) WHERE enabled;
COMMENT ON TABLE dms.sched_job IS 'DBMS_SCHEDULER jobs: what runs (job_type, job_action), when (start_date, repeat_interval, end_date) and as whom (owner); read through dbms_scheduler.user_scheduler_jobs';
COMMENT ON COLUMN dms.sched_job.job_id IS 'Job number (also the key of the job''s row in dms.sched_job_lock, locked while it runs)';
COMMENT ON COLUMN dms.sched_job.owner IS 'Login that created the job (session_user); the job always runs in a session logged in as it';
COMMENT ON COLUMN dms.sched_job.job_name IS 'Job name, unique per owner; upper case unless it was given in double quotes (as Oracle)';
COMMENT ON COLUMN dms.sched_job.job_type IS 'PLSQL_BLOCK (SQL, or a plpgsql block run with DO) or STORED_PROCEDURE (a procedure CALLed with the job''s arguments)';
COMMENT ON COLUMN dms.sched_job.job_action IS 'The SQL or block text (PLSQL_BLOCK), or the procedure''s name (STORED_PROCEDURE)';
COMMENT ON COLUMN dms.sched_job.number_of_arguments IS 'Arguments a STORED_PROCEDURE job passes (0..255), set with set_job_argument_value';
COMMENT ON COLUMN dms.sched_job.start_date IS 'First date the job may run, as given (NULL: when it is enabled)';
COMMENT ON COLUMN dms.sched_job.anchor_date IS 'Date the calendar counts INTERVAL periods from and takes missing BY values from: start_date, or when the job was first enabled';
COMMENT ON COLUMN dms.sched_job.repeat_interval IS 'Oracle calendaring string (FREQ=...;INTERVAL=...;BY...=...), read in the database''s time zone; NULL: runs once';
COMMENT ON COLUMN dms.sched_job.end_date IS 'After this date the job no longer runs (NULL: no end)';
COMMENT ON COLUMN dms.sched_job.enabled IS 'Whether the job is scheduled (enable / disable)';
COMMENT ON COLUMN dms.sched_job.auto_drop IS 'Drop the job after its last run (no repeat_interval, or end_date passed)';
COMMENT ON COLUMN dms.sched_job.comments IS 'Free text about the job';
COMMENT ON COLUMN dms.sched_job.next_run_date IS 'When the dispatcher runs the job next (NULL: not scheduled)';
COMMENT ON COLUMN dms.sched_job.completed_at IS 'When the job''s last scheduled run ended and it had no run left (state COMPLETED / SUCCEEDED / FAILED)';
COMMENT ON COLUMN dms.sched_job.run_count IS 'Runs carried out by the dispatcher (runs in the caller''s session are not counted, as in Oracle)';
COMMENT ON COLUMN dms.sched_job.failure_count IS 'Dispatcher runs that FAILED';
COMMENT ON COLUMN dms.sched_job.last_start_date IS 'When the last dispatcher run started';
COMMENT ON COLUMN dms.sched_job.last_run_duration IS 'How long the last dispatcher run took';
COMMENT ON COLUMN dms.sched_job.last_status IS 'How the last dispatcher run ended: SUCCEEDED, FAILED or STOPPED';
COMMENT ON COLUMN dms.sched_job.created_at IS 'When the job was created';
COMMENT ON COLUMN dms.sched_job.updated_at IS 'When the job was last changed';

CREATE TABLE dms.sched_job_arg (
    job_id            integer NOT NULL REFERENCES dms.sched_job (job_id) ON DELETE CASCADE,
    argument_position integer NOT NULL,
    argument_value    text,
    CONSTRAINT sched_job_arg_pk PRIMARY KEY (job_id, argument_position),
    CONSTRAINT sched_job_arg_position_ck CHECK (argument_position BETWEEN 1 AND 255)
);
COMMENT ON TABLE dms.sched_job_arg IS 'DBMS_SCHEDULER job arguments (set_job_argument_value), passed to a STORED_PROCEDURE job in position order as quoted literals';
COMMENT ON COLUMN dms.sched_job_arg.job_id IS 'Job (dms.sched_job.job_id)';
COMMENT ON COLUMN dms.sched_job_arg.argument_position IS 'Position of the argument in the procedure call, 1..number_of_arguments';
COMMENT ON COLUMN dms.sched_job_arg.argument_value IS 'The argument''s value as text (NULL passes NULL); PostgreSQL converts it to the parameter''s type';

CREATE TABLE dms.sched_job_run (
    log_id            bigint      GENERATED ALWAYS AS IDENTITY,
    job_id            integer     NOT NULL,
    owner             text        NOT NULL,
    job_name          text        NOT NULL,
    run_kind          text        NOT NULL,
    status            text        NOT NULL,
    req_start_date    timestamptz NOT NULL,
    actual_start_date timestamptz,
    log_date          timestamptz,
    run_duration      interval,
    session_id        integer,
    dispatcher_pid    integer,
    claimed_at        timestamptz,
    error_code        text,
    additional_info   text,
    CONSTRAINT sched_job_run_pk PRIMARY KEY (log_id),
    CONSTRAINT sched_job_run_kind_ck CHECK (run_kind IN ('SCHEDULED', 'RUN_JOB', 'CURRENT_SESSION')),
    CONSTRAINT sched_job_run_status_ck CHECK (status IN ('QUEUED', 'CLAIMED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'STOPPED'))
);
CREATE INDEX sched_job_run_queue_ix ON dms.sched_job_run (log_id) WHERE status IN ('QUEUED', 'CLAIMED');
CREATE INDEX sched_job_run_job_ix ON dms.sched_job_run (job_id);
COMMENT ON TABLE dms.sched_job_run IS 'DBMS_SCHEDULER runs: the queue of runs waiting for the dispatcher (QUEUED, CLAIMED) and one row per finished run, kept after the job is dropped; read through dbms_scheduler.user_scheduler_job_run_details';
COMMENT ON COLUMN dms.sched_job_run.log_id IS 'Run number (Oracle LOG_ID)';
COMMENT ON COLUMN dms.sched_job_run.job_id IS 'Job (dms.sched_job.job_id; no foreign key: the log outlives the job)';
COMMENT ON COLUMN dms.sched_job_run.owner IS 'Login the run was carried out as (the job''s owner)';
COMMENT ON COLUMN dms.sched_job_run.job_name IS 'Job name at the time of the run';
COMMENT ON COLUMN dms.sched_job_run.run_kind IS 'SCHEDULED (due by the calendar), RUN_JOB (run_job with use_current_session false) or CURRENT_SESSION (run_job in the caller''s session)';
COMMENT ON COLUMN dms.sched_job_run.status IS 'QUEUED, CLAIMED (a dispatcher hands it to the owner''s session), RUNNING (only ever seen by its own session), SUCCEEDED, FAILED or STOPPED';
COMMENT ON COLUMN dms.sched_job_run.req_start_date IS 'When the run was due (scheduled) or asked for (run_job)';
COMMENT ON COLUMN dms.sched_job_run.actual_start_date IS 'When the action started';
COMMENT ON COLUMN dms.sched_job_run.log_date IS 'When the run''s outcome was recorded';
COMMENT ON COLUMN dms.sched_job_run.run_duration IS 'How long the action ran';
COMMENT ON COLUMN dms.sched_job_run.session_id IS 'Backend pid of the session that carried out the action';
COMMENT ON COLUMN dms.sched_job_run.dispatcher_pid IS 'Backend pid of the dispatcher that claimed the run (a claim whose dispatcher is gone is recorded FAILED)';
COMMENT ON COLUMN dms.sched_job_run.claimed_at IS 'When a dispatcher claimed the run';
COMMENT ON COLUMN dms.sched_job_run.error_code IS 'SQLSTATE of the run''s outcome (Oracle ERROR#): 00000 when it succeeded';
COMMENT ON COLUMN dms.sched_job_run.additional_info IS 'The error (SQLSTATE, message, detail) of a run that failed or was stopped';

-- "The job is running" is a row lock: the session that carries out a run
-- holds its job's row here FOR UPDATE (taken by the SECURITY DEFINER
-- dms._sched_begin) until the run's transaction ends, a crash included.
-- No dms role may read or lock this table (sql/privileges.sql revokes the
-- viewers' SELECT), so no other session can make a job look running or keep
-- it from starting, as anyone could with a public advisory lock key.  Who
-- runs a job is read from the row's xmax (the locking transaction) and
-- pg_locks.  No foreign key: a job dropped while it runs must not wait for
-- its run to release this row; orphans are swept by the dispatcher.
CREATE TABLE dms.sched_job_lock (
    job_id integer NOT NULL,
    CONSTRAINT sched_job_lock_pk PRIMARY KEY (job_id)
);
COMMENT ON TABLE dms.sched_job_lock IS 'DBMS_SCHEDULER: one row per job, locked FOR UPDATE by the session running the job (internal; no dms role reads it)';
COMMENT ON COLUMN dms.sched_job_lock.job_id IS 'Job (dms.sched_job.job_id; no foreign key, see the table''s comment)';

-- Operators read their own jobs and runs only; viewers get SELECT on every
-- dms table (privileges.sql), so the rows are filtered here.
ALTER TABLE dms.sched_job ENABLE ROW LEVEL SECURITY;
ALTER TABLE dms.sched_job_arg ENABLE ROW LEVEL SECURITY;
ALTER TABLE dms.sched_job_run ENABLE ROW LEVEL SECURITY;
CREATE POLICY sched_job_own ON dms.sched_job FOR SELECT USING (owner = session_user);
CREATE POLICY sched_job_arg_own ON dms.sched_job_arg FOR SELECT
    USING (EXISTS (SELECT FROM dms.sched_job j WHERE j.job_id = sched_job_arg.job_id
                   AND j.owner = session_user));
CREATE POLICY sched_job_run_own ON dms.sched_job_run FOR SELECT USING (owner = session_user);
-- No policy: nobody but the package's definer functions (the table's owner) sees a row.
ALTER TABLE dms.sched_job_lock ENABLE ROW LEVEL SECURITY;
