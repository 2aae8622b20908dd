-- Privileges, applied last on every install (STYLE.md §5): revoke from
-- PUBLIC, then grant per role.  Re-running it converges to the same ACLs.

REVOKE ALL ON SCHEMA dms, pkgdwmapr, pkgdwjob, pkgdwprc FROM PUBLIC;
GRANT USAGE ON SCHEMA dms, pkgdwmapr, pkgdwjob, pkgdwprc TO dms_viewer;

REVOKE ALL ON ALL TABLES IN SCHEMA dms FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA dms FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA dms, pkgdwmapr, pkgdwjob, pkgdwprc FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA dms, pkgdwmapr, pkgdwjob, pkgdwprc FROM PUBLIC;

-- Viewers read every DMS table and view.
GRANT SELECT ON ALL TABLES IN SCHEMA dms TO dms_viewer;

-- Administrators maintain the configuration tables directly; everything
-- else is written by the package's own (SECURITY DEFINER) functions.
GRANT INSERT, UPDATE, DELETE ON dms.dms_params, dms.dms_dbcondtls TO dms_admin;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA dms TO dms_admin;

-- Functions, by the least role that needs them.
GRANT EXECUTE ON FUNCTION dms.version() TO dms_viewer;
GRANT EXECUTE ON FUNCTION dms.check_install() TO dms_operator;
GRANT EXECUTE ON FUNCTION dms.plan_chunks(text, text, text, integer, bigint, text) TO dms_operator;

-- The parallel engine.  Entry points for operators; the state functions are
-- what those entry points (and external workers) call.
GRANT EXECUTE ON PROCEDURE dms.execute_query_parallel(bigint, text, bigint, text, text, jsonb, bigint) TO dms_operator;
GRANT EXECUTE ON FUNCTION dms.submit_query_parallel(bigint, text, bigint, text, text, jsonb) TO dms_operator;
GRANT EXECUTE ON PROCEDURE dms.work(bigint) TO dms_operator;
GRANT EXECUTE ON FUNCTION dms.boot_worker() TO dms_operator;
GRANT EXECUTE ON PROCEDURE dms.dispatch(integer) TO dms_operator;
GRANT EXECUTE ON FUNCTION dms.record_run(jsonb, jsonb), dms.claim_chunk(bigint),
    dms.finish_chunk(bigint, integer, bigint, bigint, jsonb),
    dms.record_rejects(bigint, integer, jsonb),
    dms.fail_chunk(bigint, integer, text, text, double precision),
    dms.finish_run(bigint), dms.set_run_state(bigint, text, text),
    dms.start_workers(bigint, integer), dms.poll_workers(text[]),
    dms.boot_workers(integer), dms.adopt_workers(bigint, text[]),
    dms.stop_workers(text[], boolean), dms.connection_headroom(), dms.loopback_conninfo(),
    dms.claim_queued_run(bigint), dms.next_queued_run(bigint[]), dms.run_as_owner(text, bigint),
    dms.connection_for_use(bigint), dms.check_loopback(), dms.reopen_run(bigint), dms.chunk_started(bigint, integer, integer, integer),
    dms.set_snapshot(bigint, text), dms.reap_chunks(bigint), dms.request_stop(bigint),
    dms.cancel_run_statements(bigint), dms.set_finalized(bigint),
    dms.set_checkpoint_value(bigint, text)
    TO dms_operator;
GRANT EXECUTE ON PROCEDURE dms.run_queued(bigint), dms.resume_run(bigint), dms.stop_run(bigint)
    TO dms_operator;

-- The chunk ledger: workers write it in the target transaction, as the caller.
REVOKE ALL ON SCHEMA dms_ledger FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA dms_ledger FROM PUBLIC;
GRANT USAGE ON SCHEMA dms_ledger TO dms_viewer;
GRANT SELECT ON dms_ledger.chunk_ledger TO dms_viewer;
GRANT INSERT, DELETE ON dms_ledger.chunk_ledger TO dms_operator;

-- The mapper packages.  dms._write is their only way into the DMS tables;
-- it checks the role of each operation itself, so operators may call it.
GRANT EXECUTE ON FUNCTION dms._write(text, jsonb) TO dms_operator;
GRANT EXECUTE ON FUNCTION pkgdwjob.version(), pkgdwprc.next_run_dates(text, integer)
    TO dms_viewer;
GRANT EXECUTE ON PROCEDURE pkgdwjob.run_job(text, jsonb, bigint),
    pkgdwprc.process_job_flow(text, text, text, text, text, text, text, text, text, text, text, bigint),
    pkgdwprc.process_historical_data(text, date, date, text, bigint),
    pkgdwprc.stop_running_job(text), pkgdwprc.dispatch(integer),
    pkgdwprc.carry_out_request(bigint)
    TO dms_operator;
GRANT EXECUTE ON FUNCTION pkgdwprc.schedule_job_immediate(text) TO dms_operator;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pkgdwmapr TO dms_admin;
GRANT EXECUTE ON FUNCTION pkgdwjob.create_update_job(text), pkgdwjob.create_target_table(text),
    pkgdwjob.create_job_flow(text), pkgdwjob.create_all_jobs(),
    pkgdwprc.create_job_schedule(text, text, text, integer, integer, timestamptz, timestamptz),
    pkgdwprc.create_job_dependency(text, text), pkgdwprc.enable_disable_schedule(text, text)
    TO dms_admin;

-- Connections are used by grant (DMS_DBCONUSR), which administrators give.
GRANT EXECUTE ON FUNCTION dms.grant_connection(bigint, text), dms.revoke_connection(bigint, text)
    TO dms_admin;
-- dms.set_loopback and dms._check_dbcondtls keep no grant: superusers only
-- (the trigger fires whoever writes the table).

-- dblink is how workers connect back; its functions are for superusers and
-- our definer functions only.  PostgreSQL grants them to PUBLIC: a session
-- that may call them can drive a connection a definer function opened.
DO $dblink$
DECLARE
    v_fn regprocedure;
BEGIN
    FOR v_fn IN
        SELECT p.oid::regprocedure
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
          JOIN pg_catalog.pg_proc p ON p.oid = d.objid
         WHERE d.classid = 'pg_catalog.pg_proc'::regclass
           AND d.refclassid = 'pg_catalog.pg_extension'::regclass
           AND d.deptype = 'e' AND e.extname = 'dblink'
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', v_fn);
    END LOOP;
END
$dblink$;

-- DBMS_PARALLEL_EXECUTE (issue 11).  A login sees its own tasks through the
-- user_ views; the tables behind them, and the dba_ views, are for dms_admin.
REVOKE ALL ON SCHEMA dbms_parallel_execute FROM PUBLIC;
GRANT USAGE ON SCHEMA dbms_parallel_execute TO dms_viewer;
REVOKE ALL ON ALL TABLES IN SCHEMA dbms_parallel_execute FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA dbms_parallel_execute FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA dbms_parallel_execute FROM PUBLIC;
REVOKE SELECT ON dms.pe_task, dms.pe_chunk, dms.pe_tasks_all, dms.pe_chunks_all FROM dms_viewer;
GRANT SELECT ON dms.pe_task, dms.pe_chunk, dms.pe_tasks_all, dms.pe_chunks_all TO dms_admin;
GRANT SELECT ON dbms_parallel_execute.user_parallel_execute_tasks,
    dbms_parallel_execute.user_parallel_execute_chunks TO dms_viewer;
GRANT SELECT ON dbms_parallel_execute.dba_parallel_execute_tasks,
    dbms_parallel_execute.dba_parallel_execute_chunks TO dms_admin;
-- Constants for everyone who reads the views; the routines for operators
-- (the adm_ ones check dms_admin themselves and raise MISSING_ROLE).
GRANT EXECUTE ON FUNCTION dbms_parallel_execute.unassigned(), dbms_parallel_execute.assigned(),
    dbms_parallel_execute.processed(), dbms_parallel_execute.processed_with_error(),
    dbms_parallel_execute.created(), dbms_parallel_execute.chunking(),
    dbms_parallel_execute.chunking_failed(), dbms_parallel_execute.no_chunks(),
    dbms_parallel_execute.chunked(), dbms_parallel_execute.processing(),
    dbms_parallel_execute.finished(), dbms_parallel_execute.finished_with_error(),
    dbms_parallel_execute.crashed() TO dms_viewer;
GRANT EXECUTE ON FUNCTION dms._pe_status_name(integer), dms._pe_chunk_status_name(integer),
    dms._pe_effective_status(dms.pe_task) TO dms_viewer;
GRANT EXECUTE ON FUNCTION dbms_parallel_execute.generate_task_name(text),
    dbms_parallel_execute.task_status(text), dbms_parallel_execute.adm_task_status(text, text)
    TO dms_operator;
GRANT EXECUTE ON ALL PROCEDURES IN SCHEMA dbms_parallel_execute TO dms_operator;
GRANT EXECUTE ON PROCEDURE dms.pe_work(bigint, integer) TO dms_operator;
GRANT EXECUTE ON FUNCTION dms.pe_create_task(text, text), dms.pe_generate_task_name(text),
    dms.pe_begin_chunking(text, text, text, text, text),
    dms.pe_add_number_chunks(bigint, numeric, numeric, numeric),
    dms.pe_add_page_chunks(bigint, bigint, bigint),
    dms.pe_add_listed_chunks(bigint, numeric[], numeric[], tid[], tid[]),
    dms.pe_chunking_failed(bigint, text), dms.pe_begin_run(text, boolean, boolean, jsonb),
    dms.pe_worker_task(bigint), dms.pe_claim(bigint, text),
    dms.pe_end_chunk(bigint, bigint, integer, text, text), dms.pe_finish_run(bigint),
    dms.pe_start_workers(bigint, integer, integer), dms.pe_request_stop(text, text, boolean),
    dms.pe_cancel_chunks(text, text, boolean),
    dms.pe_task_state(text, text, boolean), dms.pe_drop(text, text, text, boolean),
    dms.pe_get_chunk(text, text), dms.pe_set_chunk_status(text, bigint, integer, text, text)
    TO dms_operator;

-- Profiles (issue 13): written through dms.record_profile by operators.
GRANT EXECUTE ON FUNCTION dms.record_profile(jsonb) TO dms_operator;
GRANT EXECUTE ON FUNCTION dms.record_check(text, jsonb), dms.schema_diff(text[], jsonb),
    dms.compare_tables(text[], jsonb), dms.profile_tables(text[], jsonb) TO dms_operator;

-- DBMS_SCHEDULER (the rest of its grants are in sql/api/090_dbms_scheduler.sql).
-- dms.sched_job_lock is how "a job is running" is known: a row lock only the
-- session carrying out the run holds.  No dms role reads or locks it.
REVOKE ALL ON dms.sched_job_lock FROM dms_viewer, dms_operator, dms_admin;
