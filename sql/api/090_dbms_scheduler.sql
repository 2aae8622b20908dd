-- DBMS_SCHEDULER: Oracle's job scheduler, the subset DMS jobs use, with
-- Oracle's procedure and parameter names (named notation: job_name => ...)
-- and defaults.  Jobs are rows of dms.sched_job; pg_cron calls
-- dbms_scheduler.dispatch() every minute (docs/dbms_scheduler.md), which
-- queues the due jobs and hands each to a session logged in as its owner
-- (dms.run_as_owner): a job's action never runs as anyone else.  The
-- dispatcher and its helpers (dms._sched_queue_due, _sched_claim,
-- _sched_abandon) hand out and record every login's runs, so they are for
-- dms_admin only; operators run their own jobs with run_job.
--
-- Two kinds of entry point:
-- * PL/Python (the definitions and the dms._sched_* bookkeeping): SECURITY
--   DEFINER, search_path pinned, the caller's role checked first
--   (dms_pkg.scheduler.entry); they write the tables and run no job.
--   Except dms._sched_begin, plpgsql SECURITY DEFINER: it takes the row lock
--   that says a job is running, which must belong to the run's transaction.
-- * plpgsql SECURITY INVOKER (run_job, dispatch, dms.sched_carry_out,
--   dms._sched_execute): the ones that execute a job's action, so that it
--   runs with the caller's own privileges, and that COMMIT, which definer
--   procedures may not.  They schema-qualify every name they use.

-- ------------------------------------------------------------------ jobs

CREATE OR REPLACE PROCEDURE dbms_scheduler.create_job(
    job_name text, job_type text, job_action text, number_of_arguments integer DEFAULT 0,
    start_date timestamptz DEFAULT NULL, repeat_interval text DEFAULT NULL,
    end_date timestamptz DEFAULT NULL, job_class text DEFAULT 'DEFAULT_JOB_CLASS',
    enabled boolean DEFAULT false, auto_drop boolean DEFAULT true, comments text DEFAULT NULL,
    credential_name text DEFAULT NULL, destination_name text DEFAULT NULL)
LANGUAGE plpython3u
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $plpy$@plpy(scheduler:dbms_scheduler.create_job)$plpy$;
COMMENT ON PROCEDURE dbms_scheduler.create_job(text, text, text, integer, timestamptz, text, timestamptz, text, boolean, boolean, text, text, text) IS
    'Create a job owned by the calling login: job_type PLSQL_BLOCK (SQL or a BEGIN ... END; block) or STORED_PROCEDURE (a procedure called with number_of_arguments arguments), repeat_interval in Oracle''s calendaring syntax; enabled => true schedules it at once (operator role)';

CREATE OR REPLACE PROCEDURE dbms_scheduler.set_job_argument_value(
    job_name text, argument_position integer, argument_value text)
LANGUAGE plpython3u
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $plpy$@plpy(scheduler:dbms_scheduler.set_job_argument_value)$plpy$;
COMMENT ON PROCEDURE dbms_scheduler.set_job_argument_value(text, integer, text) IS
    'Set argument argument_position (1..number_of_arguments) of a STORED_PROCEDURE job; passed as a literal PostgreSQL converts to the parameter''s type (operator role, own jobs)';

CREATE OR REPLACE PROCEDURE dbms_scheduler.set_attribute(name text, attribute text, value text)
LANGUAGE plpython3u
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $plpy$@plpy(scheduler:dbms_scheduler.set_attribute)$plpy$;
COMMENT ON PROCEDURE dbms_scheduler.set_attribute(text, text, text) IS
    'Change an attribute of a job: job_action, job_type, number_of_arguments, start_date, repeat_interval, end_date, auto_drop or comments; an enabled job is checked and rescheduled (operator role, own jobs)';

-- Oracle overloads SET_ATTRIBUTE by the value's type; these pass theirs on as text.
CREATE OR REPLACE PROCEDURE dbms_scheduler.set_attribute(name text, attribute text, value boolean)
LANGUAGE plpgsql
AS $fn$
BEGIN
    CALL dbms_scheduler.set_attribute(name, attribute, value::text);
END
$fn$;
COMMENT ON PROCEDURE dbms_scheduler.set_attribute(text, text, boolean) IS
    'set_attribute with a boolean value (auto_drop) (operator role, own jobs)';

CREATE OR REPLACE PROCEDURE dbms_scheduler.set_attribute(name text, attribute text, value timestamptz)
LANGUAGE plpgsql
AS $fn$
BEGIN
    -- ISO 8601 whatever the session's DateStyle.
    CALL dbms_scheduler.set_attribute(name, attribute, pg_catalog.to_jsonb(value) #>> '{}');
END
$fn$;
COMMENT ON PROCEDURE dbms_scheduler.set_attribute(text, text, timestamptz) IS
    'set_attribute with a date value (start_date, end_date) (operator role, own jobs)';

CREATE OR REPLACE PROCEDURE dbms_scheduler.set_attribute(name text, attribute text, value bigint)
LANGUAGE plpgsql
AS $fn$
BEGIN
    CALL dbms_scheduler.set_attribute(name, attribute, value::text);
END
$fn$;
COMMENT ON PROCEDURE dbms_scheduler.set_attribute(text, text, bigint) IS
    'set_attribute with a number (number_of_arguments) (operator role, own jobs)';

CREATE OR REPLACE PROCEDURE dbms_scheduler.set_attribute_null(name text, attribute text)
LANGUAGE plpython3u
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $plpy$@plpy(scheduler:dbms_scheduler.set_attribute_null)$plpy$;
COMMENT ON PROCEDURE dbms_scheduler.set_attribute_null(text, text) IS
    'Set start_date, repeat_interval, end_date or comments of a job to NULL (operator role, own jobs)';

CREATE OR REPLACE PROCEDURE dbms_scheduler.enable(
    name text, commit_semantics text DEFAULT 'STOP_ON_FIRST_ERROR')
LANGUAGE plpython3u
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $plpy$@plpy(scheduler:dbms_scheduler.enable)$plpy$;
COMMENT ON PROCEDURE dbms_scheduler.enable(text, text) IS
    'Enable jobs (a comma-separated list): checks them and computes their next run in the database''s time zone (operator role, own jobs)';

CREATE OR REPLACE PROCEDURE dbms_scheduler.disable(
    name text, force boolean DEFAULT false, commit_semantics text DEFAULT 'STOP_ON_FIRST_ERROR')
LANGUAGE plpython3u
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $plpy$@plpy(scheduler:dbms_scheduler.disable)$plpy$;
COMMENT ON PROCEDURE dbms_scheduler.disable(text, boolean, text) IS
    'Disable jobs (a comma-separated list); a running job only with force => true, and its run goes on (operator role, own jobs)';

CREATE OR REPLACE PROCEDURE dbms_scheduler.drop_job(
    job_name text, force boolean DEFAULT false, defer boolean DEFAULT false,
    commit_semantics text DEFAULT 'STOP_ON_FIRST_ERROR')
LANGUAGE plpython3u
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $plpy$@plpy(scheduler:dbms_scheduler.drop_job)$plpy$;
COMMENT ON PROCEDURE dbms_scheduler.drop_job(text, boolean, boolean, text) IS
    'Drop jobs (a comma-separated list) with their arguments and queued runs; the run log stays. A running job only with force => true, which stops it (operator role, own jobs)';

CREATE OR REPLACE PROCEDURE dbms_scheduler.stop_job(
    job_name text, force boolean DEFAULT false, commit_semantics text DEFAULT 'STOP_ON_FIRST_ERROR')
LANGUAGE plpython3u
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $plpy$@plpy(scheduler:dbms_scheduler.stop_job)$plpy$;
COMMENT ON PROCEDURE dbms_scheduler.stop_job(text, boolean, text) IS
    'Stop running jobs: cancel the statement of the session running each, which records the run STOPPED (force => true: end the session if it still runs after 5 s) (operator role, own jobs)';

CREATE OR REPLACE PROCEDURE dbms_scheduler.evaluate_calendar_string(
    calendar_string text, start_date timestamptz, return_date_after timestamptz,
    INOUT next_run_date timestamptz DEFAULT NULL)
LANGUAGE plpython3u
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $plpy$@plpy(scheduler:dbms_scheduler.evaluate_calendar_string)$plpy$;
COMMENT ON PROCEDURE dbms_scheduler.evaluate_calendar_string(text, timestamptz, timestamptz, timestamptz) IS
    'The first date of a calendaring string after return_date_after (now when NULL), counted from start_date (now when NULL), in the database''s time zone (viewer role)';

-- ------------------------------------------------------------------ runs: bookkeeping

CREATE OR REPLACE FUNCTION dms._sched_start(p_log_id bigint, p_job_name text)
RETURNS TABLE (log_id bigint, job_id integer, job_name text, command text)
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $plpy$@plpy(scheduler:dms._sched_start)$plpy$;
COMMENT ON FUNCTION dms._sched_start(bigint, text) IS
    'Internal (dms._sched_begin only): mark a run RUNNING in this session (a claimed run of the session''s login, or with p_job_name a new run of its own job); return it, its job and the statement to execute (NULL: the run could not start and is recorded)';

CREATE OR REPLACE FUNCTION dms._sched_not_started(p_log_id bigint)
RETURNS void
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $plpy$@plpy(scheduler:dms._sched_not_started)$plpy$;
COMMENT ON FUNCTION dms._sched_not_started(bigint) IS
    'Internal (dms._sched_begin only): record FAILED a claimed run this session started whose job another session is running';

-- plpgsql, not PL/Python: PL/Python runs each statement in a subtransaction,
-- and a row lock taken there would carry that subtransaction's id, which
-- pg_locks stops showing when it ends -- nobody could then tell which session
-- holds the lock (user_scheduler_jobs' RUNNING, stop_job's target).  Taken
-- here it belongs to the caller's transaction, the run's.
CREATE OR REPLACE FUNCTION dms._sched_begin(p_log_id bigint, p_job_name text)
RETURNS TABLE (log_id bigint, job_name text, command text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_run record;
BEGIN
    PERFORM dms._require_role('dms_operator');
    SELECT s.log_id, s.job_id, s.job_name, s.command INTO v_run
      FROM dms._sched_start(p_log_id, p_job_name) s;
    IF v_run.command IS NOT NULL THEN
        -- The gate: the job's row of dms.sched_job_lock, held until the run's
        -- transaction ends.  No dms role may read or lock that table.
        PERFORM FROM dms.sched_job_lock k WHERE k.job_id = v_run.job_id FOR UPDATE SKIP LOCKED;
        IF NOT FOUND AND NOT EXISTS (SELECT FROM dms.sched_job_lock k WHERE k.job_id = v_run.job_id) THEN
            -- A job without its row (create_job makes one): make it, ours until we end.
            INSERT INTO dms.sched_job_lock (job_id) VALUES (v_run.job_id) ON CONFLICT DO NOTHING;
            PERFORM FROM dms.sched_job_lock k WHERE k.job_id = v_run.job_id FOR UPDATE SKIP LOCKED;
        END IF;
        IF NOT FOUND THEN
            IF p_log_id IS NULL THEN  -- run_job in this session: refused, its run row rolls back
                RAISE EXCEPTION 'dms: job % is running', v_run.job_name
                    USING ERRCODE = '55006',
                          HINT = 'wait for it, or stop it with dbms_scheduler.stop_job';
            END IF;
            PERFORM dms._sched_not_started(v_run.log_id);
            v_run.command := NULL;
        END IF;
    END IF;
    log_id := v_run.log_id;
    job_name := v_run.job_name;
    command := v_run.command;
    RETURN NEXT;
END
$fn$;
COMMENT ON FUNCTION dms._sched_begin(bigint, text) IS
    'Internal: start a run in this session (a claimed run of the session''s login, or with p_job_name a run of its own job now): lock the job''s row of dms.sched_job_lock for this transaction, return the run, its job and the statement to execute (NULL: the run could not start and is recorded) (operator role)';

CREATE OR REPLACE FUNCTION dms._sched_end(p_log_id bigint, p_status text, p_sqlstate text,
                                          p_message text)
RETURNS void
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $plpy$@plpy(scheduler:dms._sched_end)$plpy$;
COMMENT ON FUNCTION dms._sched_end(bigint, text, text, text) IS
    'Internal: record the outcome of the run this session started; completes (or drops, auto_drop) a job with no run left (operator role)';

CREATE OR REPLACE FUNCTION dms._sched_queue_run(p_job_name text)
RETURNS void
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $plpy$@plpy(scheduler:dms._sched_queue_run)$plpy$;
COMMENT ON FUNCTION dms._sched_queue_run(text) IS
    'Internal (run_job with use_current_session false): queue a run of the caller''s job for the next dispatch (operator role)';

CREATE OR REPLACE FUNCTION dms._sched_queue_due()
RETURNS integer
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $plpy$@plpy(scheduler:dms._sched_queue_due)$plpy$;
COMMENT ON FUNCTION dms._sched_queue_due() IS
    'Internal (dispatcher): queue a run of every due job and move it to its next date; returns how many were queued (administrator role)';

CREATE OR REPLACE FUNCTION dms._sched_claim()
RETURNS bigint
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $plpy$@plpy(scheduler:dms._sched_claim)$plpy$;
COMMENT ON FUNCTION dms._sched_claim() IS
    'Internal (dispatcher): claim the oldest queued run (records claims whose dispatcher is gone FAILED first); returns its log_id or NULL (administrator role)';

-- It took the error text to record from its caller before: the record is fixed text now.
DROP FUNCTION IF EXISTS dms._sched_abandon(bigint, text);
CREATE OR REPLACE FUNCTION dms._sched_abandon(p_log_id bigint)
RETURNS boolean
LANGUAGE plpython3u VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $plpy$@plpy(scheduler:dms._sched_abandon)$plpy$;
COMMENT ON FUNCTION dms._sched_abandon(bigint) IS
    'Internal (dispatcher): record a run this session claimed that its owner''s session did not record (it could not log in, or ended) FAILED, with a fixed message; its job is not dropped (auto_drop); whether it was recorded (administrator role)';

-- ------------------------------------------------------------------ runs: execution
-- SECURITY INVOKER and without SET: the action runs as the session's login
-- with its own search_path, exactly as if that login had typed it.

CREATE OR REPLACE FUNCTION dms._sched_require_login()
RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- A job runs as its owner: not as a role the session SET ROLE to, nor as
    -- the owner of a SECURITY DEFINER function that called us.
    IF current_user <> session_user THEN
        RAISE EXCEPTION 'dms: a job runs as its owner, but this session acts as role % instead of its login %',
                        current_user, session_user
            USING ERRCODE = '42501', HINT = 'RESET ROLE, and run jobs from a plain session of their owner';
    END IF;
END
$fn$;
COMMENT ON FUNCTION dms._sched_require_login() IS
    'Internal: raise 42501 unless the session acts as its own login (no SET ROLE, no SECURITY DEFINER caller), so a job''s action runs exactly as its owner';

CREATE OR REPLACE FUNCTION dms._sched_execute(p_command text, OUT status text,
                                              OUT error_code text, OUT message text,
                                              OUT detail text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
AS $fn$
BEGIN
    BEGIN
        EXECUTE p_command;
        status := 'SUCCEEDED';
        error_code := '00000';
    EXCEPTION
        -- A cancel (stop_job, a statement timeout) is not among OTHERS.
        WHEN query_canceled THEN
            GET STACKED DIAGNOSTICS error_code = RETURNED_SQLSTATE, message = MESSAGE_TEXT;
            status := 'STOPPED';
        WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS error_code = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                                    detail = PG_EXCEPTION_DETAIL;
            status := 'FAILED';
            detail := nullif(detail, '');
    END;
END
$fn$;
COMMENT ON FUNCTION dms._sched_execute(text) IS
    'Internal: execute a job''s statement as the session''s login and say how it ended (SUCCEEDED, FAILED, STOPPED) with its SQLSTATE, message and detail; its effects roll back when it fails';

CREATE OR REPLACE PROCEDURE dms.sched_carry_out(p_log_id bigint)
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_log bigint;
    v_command text;
    v_outcome record;
BEGIN
    PERFORM dms._require_role('dms_operator');
    PERFORM dms._sched_require_login();
    SELECT b.log_id, b.command INTO v_log, v_command FROM dms._sched_begin(p_log_id, NULL) b;
    IF v_command IS NOT NULL THEN
        SELECT e.status, e.error_code, e.message, e.detail INTO v_outcome
          FROM dms._sched_execute(v_command) e;
        PERFORM dms._sched_end(v_log, v_outcome.status, v_outcome.error_code,
                               v_outcome.message || coalesce(E'\nDETAIL: ' || v_outcome.detail, ''));
    END IF;
END
$fn$;
COMMENT ON PROCEDURE dms.sched_carry_out(bigint) IS
    'Internal (dispatcher, through dms.run_as_owner): carry out a claimed run in a session of the job''s owner and record it; only that login may (operator role)';

CREATE OR REPLACE PROCEDURE dbms_scheduler.run_job(job_name text, use_current_session boolean DEFAULT true)
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_log bigint;
    v_job text;
    v_command text;
    v_outcome record;
BEGIN
    PERFORM dms._require_role('dms_operator');
    IF NOT coalesce(use_current_session, true) THEN
        PERFORM dms._sched_queue_run(run_job.job_name);
        RETURN;
    END IF;
    PERFORM dms._sched_require_login();
    SELECT b.log_id, b.job_name, b.command INTO v_log, v_job, v_command
      FROM dms._sched_begin(NULL, run_job.job_name) b;
    SELECT e.status, e.error_code, e.message, e.detail INTO v_outcome
      FROM dms._sched_execute(v_command) e;
    PERFORM dms._sched_end(v_log, v_outcome.status, v_outcome.error_code,
                           v_outcome.message || coalesce(E'\nDETAIL: ' || v_outcome.detail, ''));
    IF v_outcome.status <> 'SUCCEEDED' THEN
        -- As in Oracle the caller sees the job's error.  Called on its own
        -- (autocommit, top level) the run's record is committed first so the
        -- error does not roll it back; inside a transaction block it rolls
        -- back with the rest.
        IF pg_catalog.transaction_timestamp() = pg_catalog.statement_timestamp() THEN
            COMMIT;
        END IF;
        RAISE EXCEPTION USING ERRCODE = v_outcome.error_code, MESSAGE = v_outcome.message,
            DETAIL = coalesce(v_outcome.detail || E'\n', '')
                     || pg_catalog.format('job %s, run %s (dbms_scheduler.user_scheduler_job_run_details)',
                                          v_job, v_log);
    END IF;
END
$fn$;
COMMENT ON PROCEDURE dbms_scheduler.run_job(text, boolean) IS
    'Run a job now: in this session, as this login, raising the job''s error (use_current_session true, the default), or queued for the next dispatch (false); logged in user_scheduler_job_run_details (operator role, own jobs)';

CREATE OR REPLACE PROCEDURE dbms_scheduler.dispatch(p_max_runs integer DEFAULT NULL)
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_queued integer;
    v_done integer := 0;
    v_log bigint;
    v_error text;
BEGIN
    -- Invoker (it commits between runs) but it runs no SQL a user wrote: fix
    -- the search_path of each of its transactions anyway.
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    -- It hands out every login's runs: administrators only (EXECUTE is
    -- granted to dms_admin; this says so to a member that lost the grant).
    PERFORM dms._require_role('dms_admin');
    v_queued := dms._sched_queue_due();
    COMMIT;
    LOOP
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        EXIT WHEN p_max_runs IS NOT NULL AND v_done >= p_max_runs;
        v_log := dms._sched_claim();
        COMMIT;
        EXIT WHEN v_log IS NULL;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        -- The run is carried out in a session logged in as the job's owner;
        -- this session only waits for it.
        v_error := dms.run_as_owner('sched', v_log);
        -- Recorded by the owner's session, unless it could not start or ended
        -- first: then FAILED here, with a fixed message; its reason goes to
        -- this session's log only.
        IF dms._sched_abandon(v_log) THEN
            RAISE WARNING 'dbms_scheduler.dispatch: run % was not recorded by its job''s session: %',
                          v_log, coalesce(v_error, 'it ended');
        END IF;
        COMMIT;
        v_done := v_done + 1;
    END LOOP;
    RAISE NOTICE 'dbms_scheduler.dispatch: % run(s) due, % carried out', v_queued, v_done;
END
$fn$;
COMMENT ON PROCEDURE dbms_scheduler.dispatch(integer) IS
    'The scheduler''s step, called by pg_cron every minute: queue a run of every due job, then carry out the queued runs one after another (at most p_max_runs), each in a session logged in as its job''s owner (administrator role)';

-- ------------------------------------------------------------------ views
-- security_barrier: a caller's own function in a WHERE clause is evaluated
-- after the owner filter, never on other logins' rows.

CREATE OR REPLACE VIEW dbms_scheduler.user_scheduler_jobs WITH (security_barrier) AS
SELECT j.job_name, j.job_type, j.job_action, j.number_of_arguments, j.start_date,
       j.repeat_interval, j.end_date, j.enabled, j.auto_drop,
       -- Running: a transaction holds the job's row of dms.sched_job_lock
       -- (its xmax) and is still in progress (dms_pkg.scheduler.jobs.running_pid).
       CASE WHEN EXISTS (
                SELECT FROM dms.sched_job_lock k
                  JOIN pg_catalog.pg_locks l
                    ON l.locktype = 'transactionid' AND l.transactionid = k.xmax
                   AND l.mode = 'ExclusiveLock' AND l.granted
                 WHERE k.job_id = j.job_id)
            THEN 'RUNNING'
            WHEN j.enabled THEN 'SCHEDULED'
            WHEN j.completed_at IS NOT NULL AND j.repeat_interval IS NULL THEN j.last_status
            WHEN j.completed_at IS NOT NULL THEN 'COMPLETED'
            ELSE 'DISABLED' END AS state,
       j.run_count, j.failure_count, j.last_start_date, j.last_run_duration, j.next_run_date,
       j.comments
  FROM dms.sched_job j
 WHERE j.owner = session_user;
COMMENT ON VIEW dbms_scheduler.user_scheduler_jobs IS
    'USER_SCHEDULER_JOBS: the calling login''s jobs, with their state (SCHEDULED, RUNNING, DISABLED, COMPLETED, or how a one-off job''s run ended), counters and next run (viewer role)';

CREATE OR REPLACE VIEW dbms_scheduler.user_scheduler_job_run_details WITH (security_barrier) AS
SELECT r.log_id, r.log_date, r.job_name, r.status, r.error_code AS "error#",
       r.req_start_date, r.actual_start_date, r.run_duration, r.session_id,
       r.additional_info
  FROM dms.sched_job_run r
 WHERE r.owner = session_user AND r.status IN ('SUCCEEDED', 'FAILED', 'STOPPED');
COMMENT ON VIEW dbms_scheduler.user_scheduler_job_run_details IS
    'USER_SCHEDULER_JOB_RUN_DETAILS: one row per finished run of the calling login''s jobs (also of dropped ones): status, "error#" (SQLSTATE, 00000 when it succeeded), times, backend pid, the error (viewer role)';

-- ------------------------------------------------------------------ privileges
-- Kept with the package: privileges.sql (run after this file) revokes from
-- PUBLIC in the dms schema, where the helpers above live, but does not know
-- this schema.

REVOKE ALL ON SCHEMA dbms_scheduler FROM PUBLIC;
GRANT USAGE ON SCHEMA dbms_scheduler TO dms_viewer;
REVOKE ALL ON ALL TABLES IN SCHEMA dbms_scheduler FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA dbms_scheduler FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA dbms_scheduler FROM PUBLIC;
GRANT SELECT ON dbms_scheduler.user_scheduler_jobs, dbms_scheduler.user_scheduler_job_run_details
    TO dms_viewer;
GRANT EXECUTE ON PROCEDURE
    dbms_scheduler.evaluate_calendar_string(text, timestamptz, timestamptz, timestamptz)
    TO dms_viewer;
GRANT EXECUTE ON PROCEDURE
    dbms_scheduler.create_job(text, text, text, integer, timestamptz, text, timestamptz, text, boolean, boolean, text, text, text),
    dbms_scheduler.set_job_argument_value(text, integer, text),
    dbms_scheduler.set_attribute(text, text, text),
    dbms_scheduler.set_attribute(text, text, boolean),
    dbms_scheduler.set_attribute(text, text, timestamptz),
    dbms_scheduler.set_attribute(text, text, bigint),
    dbms_scheduler.set_attribute_null(text, text),
    dbms_scheduler.enable(text, text),
    dbms_scheduler.disable(text, boolean, text),
    dbms_scheduler.drop_job(text, boolean, boolean, text),
    dbms_scheduler.stop_job(text, boolean, text),
    dbms_scheduler.run_job(text, boolean),
    dms.sched_carry_out(bigint)
    TO dms_operator;
GRANT EXECUTE ON FUNCTION
    dms._sched_begin(bigint, text), dms._sched_end(bigint, text, text, text),
    dms._sched_queue_run(text), dms._sched_execute(text), dms._sched_require_login()
    TO dms_operator;
-- The dispatcher hands out and records every login's runs: administrators
-- only (pg_cron's job is scheduled by one, or by a superuser).  Revoked
-- from operators by name too: an earlier install granted them.
REVOKE ALL ON PROCEDURE dbms_scheduler.dispatch(integer) FROM dms_operator;
REVOKE ALL ON FUNCTION dms._sched_queue_due(), dms._sched_claim() FROM dms_operator;
GRANT EXECUTE ON PROCEDURE dbms_scheduler.dispatch(integer) TO dms_admin;
GRANT EXECUTE ON FUNCTION dms._sched_queue_due(), dms._sched_claim(), dms._sched_abandon(bigint)
    TO dms_admin;
-- The invoker procedures check the caller's role with it (it only reads).
GRANT EXECUTE ON FUNCTION dms._require_role(text) TO dms_viewer;
