-- PKGDWMAPR, PKGDWJOB and PKGDWPRC (DESIGN §1, §4): the Oracle packages'
-- procedures and parameter names, callable with named notation
-- (p_mapref => ...).
--
-- They run as the caller (SECURITY INVOKER): validation EXPLAINs the
-- caller's queries on the caller's search_path, target tables are created
-- and loaded with the caller's privileges, and the procedures that run jobs
-- COMMIT between steps, which PostgreSQL allows only without SECURITY
-- DEFINER and SET.  Each body checks the caller's role first
-- (dms_pkg.mapper.entry) and writes DMS tables only through dms._write.
-- Call the procedures with autocommit on (psql's default).

-- ------------------------------------------------------------------ PKGDWMAPR

CREATE OR REPLACE FUNCTION pkgdwmapr.create_update_sql(
    p_maprsqlcd text, p_maprsql text, p_sqlconid bigint DEFAULT NULL)
RETURNS bigint LANGUAGE plpython3u VOLATILE
AS $plpy$@plpy(mapper:pkgdwmapr.create_update_sql)$plpy$;
COMMENT ON FUNCTION pkgdwmapr.create_update_sql(text, text, bigint) IS
    'Create or change a named source query (DMS_MAPRSQL, historised); returns MAPRSQLID. The SQL must parse; p_sqlconid NULL = this database (admin role)';

CREATE OR REPLACE FUNCTION pkgdwmapr.create_update_mapping(
    p_mapref text, p_mapdesc text, p_trgschm text, p_trgtbtyp text, p_trgtbnm text,
    p_frqcd text DEFAULT 'NA', p_srcsystm text DEFAULT NULL, p_lgvrfyflg text DEFAULT 'N',
    p_lgvrfydt timestamptz DEFAULT NULL, p_stflg text DEFAULT 'N',
    p_blkprcrows integer DEFAULT NULL, p_trgconid bigint DEFAULT NULL,
    p_chkpntstrtgy text DEFAULT 'NONE', p_chkpntclnm text DEFAULT NULL,
    p_chkpntenbld text DEFAULT NULL)
RETURNS bigint LANGUAGE plpython3u VOLATILE
AS $plpy$@plpy(mapper:pkgdwmapr.create_update_mapping)$plpy$;
COMMENT ON FUNCTION pkgdwmapr.create_update_mapping(text, text, text, text, text, text, text, text, timestamptz, text, integer, bigint, text, text, text) IS
    'Create or change a mapping (DMS_MAPR, historised with CURFLG); returns MAPID. Refuses invalid values with every problem in one message, writing nothing (admin role)';

CREATE OR REPLACE FUNCTION pkgdwmapr.create_update_mapping_detail(
    p_mapref text, p_trgclnm text, p_trgcldtyp text, p_trgkeyflg text DEFAULT 'N',
    p_trgkeyseq integer DEFAULT NULL, p_trgcldesc text DEFAULT NULL,
    p_maplogic text DEFAULT NULL, p_keyclnm text DEFAULT NULL, p_valclnm text DEFAULT NULL,
    p_mapcmbcd text DEFAULT NULL, p_excseq integer DEFAULT NULL, p_scdtyp integer DEFAULT 1,
    p_lgvrfyflg text DEFAULT 'N', p_lgvrfydt timestamptz DEFAULT NULL)
RETURNS bigint LANGUAGE plpython3u VOLATILE
AS $plpy$@plpy(mapper:pkgdwmapr.create_update_mapping_detail)$plpy$;
COMMENT ON FUNCTION pkgdwmapr.create_update_mapping_detail(text, text, text, text, integer, text, text, text, text, text, integer, integer, text, timestamptz) IS
    'Create or change one target column of a mapping (DMS_MAPRDTL, historised); returns MAPDTLID. A change marks the mapping unverified (admin role)';

CREATE OR REPLACE FUNCTION pkgdwmapr.validate_sql(p_maprsqlcd text)
RETURNS text LANGUAGE plpython3u VOLATILE
AS $plpy$@plpy(mapper:pkgdwmapr.validate_sql)$plpy$;
COMMENT ON FUNCTION pkgdwmapr.validate_sql(text) IS
    'Y when the named query parses and EXPLAINs on its connection (DWT_PARAM1..10 as NULL), else what is wrong (admin role)';

CREATE OR REPLACE FUNCTION pkgdwmapr.validate_logic(
    p_maplogic text, p_keyclnm text DEFAULT NULL, p_valclnm text DEFAULT NULL)
RETURNS text LANGUAGE plpython3u VOLATILE
AS $plpy$@plpy(mapper:pkgdwmapr.validate_logic)$plpy$;
COMMENT ON FUNCTION pkgdwmapr.validate_logic(text, text, text) IS
    'Y when a mapping logic (SQL or DMS_MAPRSQL code) parses, EXPLAINs and returns the key and value columns, else what is wrong (admin role)';

CREATE OR REPLACE FUNCTION pkgdwmapr.validate_mapping_details(p_mapref text)
RETURNS TABLE (trgclnm text, errtyp text, errmsg text) LANGUAGE plpython3u VOLATILE
AS $plpy$@plpy(mapper:pkgdwmapr.validate_mapping_details)$plpy$;
COMMENT ON FUNCTION pkgdwmapr.validate_mapping_details(text) IS
    'Check every rule on a mapping and its details, EXPLAIN included; the problems are returned and kept in DMS_MAPERR. No row = valid: the mapping is then marked verified (LGVRFYFLG Y) (admin role)';

CREATE OR REPLACE FUNCTION pkgdwmapr.activate_deactivate_mapping(p_mapref text, p_stflg text)
RETURNS text LANGUAGE plpython3u VOLATILE
AS $plpy$@plpy(mapper:pkgdwmapr.activate_deactivate_mapping)$plpy$;
COMMENT ON FUNCTION pkgdwmapr.activate_deactivate_mapping(text, text) IS
    'Set a mapping (and its job) active (A) or inactive (N); only a verified mapping can be activated (admin role)';

CREATE OR REPLACE FUNCTION pkgdwmapr.delete_mapping(p_mapref text)
RETURNS integer LANGUAGE plpython3u VOLATILE
AS $plpy$@plpy(mapper:pkgdwmapr.delete_mapping)$plpy$;
COMMENT ON FUNCTION pkgdwmapr.delete_mapping(text) IS
    'Close a mapping and its details, job, job flow and schedule (CURFLG N; history stays); refused while the job runs. Returns the rows closed (admin role)';

CREATE OR REPLACE FUNCTION pkgdwmapr.delete_mapping_details(p_mapref text, p_trgclnm text DEFAULT NULL)
RETURNS integer LANGUAGE plpython3u VOLATILE
AS $plpy$@plpy(mapper:pkgdwmapr.delete_mapping_details)$plpy$;
COMMENT ON FUNCTION pkgdwmapr.delete_mapping_details(text, text) IS
    'Close one detail (p_trgclnm) or all details of a mapping; the mapping must be validated again (admin role)';

-- ------------------------------------------------------------------- PKGDWJOB

CREATE OR REPLACE FUNCTION pkgdwjob.version()
RETURNS text LANGUAGE plpython3u STABLE
AS $plpy$@plpy(mapper:pkgdwjob.version)$plpy$;
COMMENT ON FUNCTION pkgdwjob.version() IS 'Package version (viewer role)';

CREATE OR REPLACE FUNCTION pkgdwjob.create_update_job(p_mapref text)
RETURNS bigint LANGUAGE plpython3u VOLATILE
AS $plpy$@plpy(mapper:pkgdwjob.create_update_job)$plpy$;
COMMENT ON FUNCTION pkgdwjob.create_update_job(text) IS
    'Copy an active, verified mapping into DMS_JOB / DMS_JOBDTL (historised), create or extend its target table and write its job flow; returns JOBID (admin role)';

CREATE OR REPLACE FUNCTION pkgdwjob.create_target_table(p_mapref text)
RETURNS text LANGUAGE plpython3u VOLATILE
AS $plpy$@plpy(mapper:pkgdwjob.create_target_table)$plpy$;
COMMENT ON FUNCTION pkgdwjob.create_target_table(text) IS
    'Create the job''s target table (SKEY with its sequence for DIM/FCT/MRT, mapped columns typed from DMS_PARAMS, RWHKEY, CURFLG/FROMDT/TODT for DIM, RECCRDT/RECUPDT, business-key indexes) or add its missing columns; returns Y (admin role)';

CREATE OR REPLACE FUNCTION pkgdwjob.create_job_flow(p_mapref text)
RETURNS bigint LANGUAGE plpython3u VOLATILE
AS $plpy$@plpy(mapper:pkgdwjob.create_job_flow)$plpy$;
COMMENT ON FUNCTION pkgdwjob.create_job_flow(text) IS
    'Write the job flow (DMS_JOBFLW.DWLOGIC): per combination its source SQL, key, value columns and SCD types; a new version only when the text changes. Returns JOBFLWID (admin role)';

CREATE OR REPLACE FUNCTION pkgdwjob.create_all_jobs()
RETURNS TABLE (mapref text, jobid bigint, error text) LANGUAGE plpython3u VOLATILE
AS $plpy$@plpy(mapper:pkgdwjob.create_all_jobs)$plpy$;
COMMENT ON FUNCTION pkgdwjob.create_all_jobs() IS
    'create_update_job for every active, verified mapping; one that fails is reported in error and leaves nothing half made (admin role)';

CREATE OR REPLACE PROCEDURE pkgdwjob.run_job(
    p_mapref text, p_params jsonb DEFAULT '{}', INOUT p_prcid bigint DEFAULT NULL)
LANGUAGE plpython3u
AS $plpy$@plpy(mapper:pkgdwjob.run_job)$plpy$;
COMMENT ON PROCEDURE pkgdwjob.run_job(text, jsonb, bigint) IS
    'Run a job now and wait; returns the process id (DMS_PRCLOG.PRCID) and raises unless every combination loaded. p_params: params (DWT_PARAM1..10 values) and run settings max_workers, chunk_size, min_rows_for_parallel, enable_parallel, enable_retry, max_retries (operator role)';

-- ------------------------------------------------------------------- PKGDWPRC

CREATE OR REPLACE PROCEDURE pkgdwprc.process_job_flow(
    p_mapref text,
    p_param1 text DEFAULT NULL, p_param2 text DEFAULT NULL, p_param3 text DEFAULT NULL,
    p_param4 text DEFAULT NULL, p_param5 text DEFAULT NULL, p_param6 text DEFAULT NULL,
    p_param7 text DEFAULT NULL, p_param8 text DEFAULT NULL, p_param9 text DEFAULT NULL,
    p_param10 text DEFAULT NULL, INOUT p_prcid bigint DEFAULT NULL)
LANGUAGE plpython3u
AS $plpy$@plpy(mapper:pkgdwprc.process_job_flow)$plpy$;
COMMENT ON PROCEDURE pkgdwprc.process_job_flow(text, text, text, text, text, text, text, text, text, text, text, bigint) IS
    'Run a job''s flow with parameters DWT_PARAM1..10 and wait: DMS_PRCLOG IP then PC or FL, one DMS_JOBLOG row, refused rows in DMS_JOBERR; raises unless every combination loaded (operator role)';

CREATE OR REPLACE PROCEDURE pkgdwprc.process_historical_data(
    p_mapref text, p_strtdt date, p_enddt date, p_tl_flg text DEFAULT 'N',
    INOUT p_prcid bigint DEFAULT NULL)
LANGUAGE plpython3u
AS $plpy$@plpy(mapper:pkgdwprc.process_historical_data)$plpy$;
COMMENT ON PROCEDURE pkgdwprc.process_historical_data(text, date, date, text, bigint) IS
    'Reload a period (DWT_PARAM1 = p_strtdt, DWT_PARAM2 = p_enddt); p_tl_flg Y empties the target first (not for DIM). The checkpoint is neither used nor moved (operator role)';

CREATE OR REPLACE FUNCTION pkgdwprc.create_job_schedule(
    p_mapref text, p_frqcd text, p_frqdd text DEFAULT NULL, p_frqhh integer DEFAULT NULL,
    p_frqmi integer DEFAULT NULL, p_strtdt timestamptz DEFAULT NULL,
    p_enddt timestamptz DEFAULT NULL)
RETURNS bigint LANGUAGE plpython3u VOLATILE
AS $plpy$@plpy(mapper:pkgdwprc.create_job_schedule)$plpy$;
COMMENT ON FUNCTION pkgdwprc.create_job_schedule(text, text, text, integer, integer, timestamptz, timestamptz) IS
    'Schedule a job (DMS_JOBSCH, historised) and compute its next run: ID every p_frqmi minutes (p_frqdd H: hourly at p_frqmi), DL daily, WK weekly on p_frqdd, FN every second week, MN monthly on day p_frqdd, HY half-yearly, YR yearly, at p_frqhh:p_frqmi; NA on demand. Returns JOBSCHID (admin role)';

CREATE OR REPLACE FUNCTION pkgdwprc.create_job_dependency(p_parent_mapref text, p_child_mapref text)
RETURNS bigint LANGUAGE plpython3u VOLATILE
AS $plpy$@plpy(mapper:pkgdwprc.create_job_dependency)$plpy$;
COMMENT ON FUNCTION pkgdwprc.create_job_dependency(text, text) IS
    'Make the child job run after each successful run of the parent (no cycles); returns the child''s JOBSCHID (admin role)';

CREATE OR REPLACE FUNCTION pkgdwprc.enable_disable_schedule(p_mapref text, p_action text)
RETURNS text LANGUAGE plpython3u VOLATILE
AS $plpy$@plpy(mapper:pkgdwprc.enable_disable_schedule)$plpy$;
COMMENT ON FUNCTION pkgdwprc.enable_disable_schedule(text, text) IS
    'ENABLE (E) or DISABLE (D) a job''s schedule; enabling computes the next run from now (admin role)';

CREATE OR REPLACE FUNCTION pkgdwprc.schedule_job_immediate(p_mapref text)
RETURNS bigint LANGUAGE plpython3u VOLATILE
AS $plpy$@plpy(mapper:pkgdwprc.schedule_job_immediate)$plpy$;
COMMENT ON FUNCTION pkgdwprc.schedule_job_immediate(text) IS
    'Queue a run of the job now (DMS_PRCREQ IMMEDIATE); the dispatcher carries it out. Returns REQID (operator role)';

CREATE OR REPLACE PROCEDURE pkgdwprc.stop_running_job(p_mapref text)
LANGUAGE plpython3u
AS $plpy$@plpy(mapper:pkgdwprc.stop_running_job)$plpy$;
COMMENT ON PROCEDURE pkgdwprc.stop_running_job(text) IS
    'Stop the job''s running process: its engine runs stop, chunks being loaded roll back, the process ends FL (operator role)';

CREATE OR REPLACE PROCEDURE pkgdwprc.dispatch(p_max_requests integer DEFAULT NULL)
LANGUAGE plpython3u
AS $plpy$@plpy(mapper:pkgdwprc.dispatch)$plpy$;
COMMENT ON PROCEDURE pkgdwprc.dispatch(integer) IS
    'The scheduler''s step: queue a request for every due schedule, then carry out queued requests (IMMEDIATE from schedule_job_immediate, SCHEDULED from due schedules and from parent jobs that completed) one after another, each as the login that asked; pg_cron calls it every minute (operator role)';

CREATE OR REPLACE PROCEDURE pkgdwprc.carry_out_request(p_reqid bigint)
LANGUAGE plpython3u
AS $plpy$@plpy(mapper:pkgdwprc.carry_out_request)$plpy$;
COMMENT ON PROCEDURE pkgdwprc.carry_out_request(bigint) IS
    'Internal (dispatcher): carry out a claimed request in a session of the login that asked for it; only that login may (operator role)';

CREATE OR REPLACE FUNCTION pkgdwprc.next_run_dates(p_mapref text, p_count integer DEFAULT 5)
RETURNS SETOF timestamptz LANGUAGE plpython3u STABLE
AS $plpy$@plpy(mapper:pkgdwprc.next_run_dates)$plpy$;
COMMENT ON FUNCTION pkgdwprc.next_run_dates(text, integer) IS
    'The next p_count run times of a job''s current schedule, from now (viewer role)';
