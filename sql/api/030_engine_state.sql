-- Run and chunk state, written only through these SECURITY DEFINER functions.
--
-- Operators never get INSERT/UPDATE on dms.run or dms.chunk: a worker claims,
-- finishes or fails a chunk by calling a function that checks the caller's
-- role first and runs with a fixed search_path.  The procedures that move
-- data (dms.work, dms.execute_query_parallel) must COMMIT between chunks, and
-- PostgreSQL forbids transaction control in SECURITY DEFINER procedures or in
-- procedures with a SET clause; they therefore run as the caller (whose
-- privileges on the source and target tables then apply, as they should) and
-- change DMS state only through the functions below.

CREATE OR REPLACE FUNCTION dms._require_role(p_role text)
RETURNS void
LANGUAGE plpgsql
STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF NOT pg_catalog.pg_has_role(session_user, p_role, 'MEMBER') THEN
        RAISE EXCEPTION 'dms: permission denied: role % is not a member of %', session_user, p_role
            USING ERRCODE = '42501',
                  HINT = pg_catalog.format('ask an administrator to GRANT %s TO %s', p_role, session_user);
    END IF;
END
$fn$;
COMMENT ON FUNCTION dms._require_role(text) IS
    'Internal: raise 42501 unless the session''s login is a member of the given dms role';

CREATE OR REPLACE FUNCTION dms.record_run(p_run jsonb, p_chunks jsonb)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
-- SECURITY DEFINER: operators may not write dms.run/dms.chunk directly.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_run_id bigint;
BEGIN
    PERFORM dms._require_role('dms_operator');
    INSERT INTO dms.run (label, source_conid, source_dialect, source_sql, target_conid,
                         target_schema, target_table, params, config, spec, path, write_mode,
                         strategy, chunk_key, driving_table, refused_reason, parallel_note,
                         workers_requested, workers_planned, estimated_rows, state,
                         coordinator_pid, search_path, started_at, staging_table, prcid,
                         mapcmbcd, notes)
    SELECT r.label, r.source_conid, r.source_dialect, r.source_sql, r.target_conid,
           r.target_schema, r.target_table, coalesce(r.params, '{}'), coalesce(r.config, '{}'),
           coalesce(r.spec, '{}'), r.path, r.write_mode, r.strategy, r.chunk_key,
           r.driving_table, r.refused_reason, r.parallel_note, r.workers_requested,
           r.workers_planned, r.estimated_rows, r.state,
           CASE WHEN r.state = 'RUNNING' THEN pg_catalog.pg_backend_pid() END,
           r.search_path,
           CASE WHEN r.state = 'RUNNING' THEN pg_catalog.clock_timestamp() END,
           r.staging_table, r.prcid, r.mapcmbcd, coalesce(r.notes, '{}')
    FROM pg_catalog.jsonb_to_record(p_run) AS r(
        label text, source_conid bigint, source_dialect text, source_sql text,
        target_conid bigint, target_schema text, target_table text, params jsonb,
        config jsonb, spec jsonb, path text, write_mode text, strategy text, chunk_key text,
        driving_table text, refused_reason text, parallel_note text,
        workers_requested integer, workers_planned integer, estimated_rows bigint,
        state text, search_path text, staging_table text, prcid bigint, mapcmbcd text,
        notes text[])
    RETURNING run_id INTO v_run_id;

    INSERT INTO dms.chunk (run_id, chunk_no, kind, predicate_sql, query_sql, params, lo, hi,
                           estimated_rows)
    SELECT v_run_id, c.chunk_no, c.kind, c.predicate_sql, c.query_sql,
           coalesce(c.params, '[]'), c.lo, c.hi, c.estimated_rows
    FROM pg_catalog.jsonb_to_recordset(p_chunks) AS c(
        chunk_no integer, kind text, predicate_sql text, query_sql text, params jsonb,
        lo text, hi text, estimated_rows bigint);
    RETURN v_run_id;
END
$fn$;
COMMENT ON FUNCTION dms.record_run(jsonb, jsonb) IS
    'Internal (engine): record a planned run and its chunks; returns the run id (operator role)';

DROP FUNCTION IF EXISTS dms.claim_chunk(bigint);
CREATE FUNCTION dms.claim_chunk(p_run_id bigint)
RETURNS TABLE (chunk_no integer, query_sql text, params jsonb, attempts integer,
               estimated_rows bigint, run_uuid uuid, snapshot_id text)
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_owner text;
BEGIN
    PERFORM dms._require_role('dms_operator');
    -- A chunk runs the run's SQL with the privileges of the session that
    -- claims it: only sessions of the login that started the run may.
    SELECT r.created_by INTO v_owner FROM dms.run r WHERE r.run_id = p_run_id;
    IF FOUND AND v_owner <> session_user::text THEN
        RAISE EXCEPTION 'dms: run % belongs to %: only its own sessions work on it', p_run_id, v_owner
            USING ERRCODE = '42501',
                  HINT = 'resume it with CALL dms.resume_run(' || p_run_id || '), which runs it as its owner';
    END IF;
    -- A run that is not RUNNING (stopping, stopped, finished) hands out nothing.
    RETURN QUERY
    WITH claimed AS (
        UPDATE dms.chunk c
           SET state = 'RUNNING', attempts = c.attempts + 1,
               worker_pid = pg_catalog.pg_backend_pid(),
               started_at = pg_catalog.clock_timestamp(),
               heartbeat_at = pg_catalog.clock_timestamp(),
               ended_at = NULL, retry_at = NULL, source_pid = NULL, target_pid = NULL
         WHERE (c.run_id, c.chunk_no) = (
                SELECT p.run_id, p.chunk_no
                  FROM dms.chunk p JOIN dms.run r ON r.run_id = p.run_id
                 WHERE p.run_id = p_run_id AND p.state = 'PENDING' AND r.state = 'RUNNING'
                   AND (p.retry_at IS NULL OR p.retry_at <= pg_catalog.clock_timestamp())
                 ORDER BY p.chunk_no
                 LIMIT 1
                   FOR UPDATE OF p SKIP LOCKED)
        RETURNING c.run_id, c.chunk_no, c.query_sql, c.params, c.attempts, c.estimated_rows)
    SELECT k.chunk_no, k.query_sql, k.params, k.attempts, k.estimated_rows, r.run_uuid,
           r.snapshot_id
      FROM claimed k JOIN dms.run r ON r.run_id = k.run_id;
END
$fn$;
COMMENT ON FUNCTION dms.claim_chunk(bigint) IS
    'Worker: take the next pending chunk of a running run (FOR UPDATE SKIP LOCKED), with the run''s ledger key and snapshot, or nothing (operator role)';

CREATE OR REPLACE FUNCTION dms.chunk_started(p_run_id bigint, p_chunk_no integer,
                                             p_source_pid integer, p_target_pid integer)
RETURNS text
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_state text;
BEGIN
    PERFORM dms._require_role('dms_operator');
    UPDATE dms.chunk SET source_pid = p_source_pid, target_pid = p_target_pid,
                         heartbeat_at = pg_catalog.clock_timestamp()
     WHERE run_id = p_run_id AND chunk_no = p_chunk_no;
    SELECT state INTO v_state FROM dms.run WHERE run_id = p_run_id;
    RETURN v_state;
END
$fn$;
COMMENT ON FUNCTION dms.chunk_started(bigint, integer, integer, integer) IS
    'Worker: record the backend pids reading and writing a chunk (so a stop can cancel them); returns the run''s state (operator role)';

DROP FUNCTION IF EXISTS dms.finish_chunk(bigint, integer, bigint, bigint);
CREATE OR REPLACE FUNCTION dms.finish_chunk(p_run_id bigint, p_chunk_no integer,
                                            p_rows bigint, p_bytes bigint,
                                            p_stats jsonb DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM dms._require_role('dms_operator');
    UPDATE dms.chunk
       SET state = 'DONE', rows = p_rows, bytes = p_bytes, stats = p_stats,
           ended_at = pg_catalog.clock_timestamp(),
           heartbeat_at = pg_catalog.clock_timestamp(), sqlstate = NULL, last_error = NULL
     WHERE run_id = p_run_id AND chunk_no = p_chunk_no;
END
$fn$;
COMMENT ON FUNCTION dms.finish_chunk(bigint, integer, bigint, bigint, jsonb) IS
    'Worker: mark a chunk done with its row and byte counts (and merge counts) (operator role)';

CREATE OR REPLACE FUNCTION dms.record_rejects(p_run_id bigint, p_chunk_no integer,
                                              p_rejects jsonb)
RETURNS void
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM dms._require_role('dms_operator');
    -- The rows of the chunk's latest attempt replace those of earlier ones.
    DELETE FROM dms.chunk_reject WHERE run_id = p_run_id AND chunk_no = p_chunk_no;
    INSERT INTO dms.chunk_reject (run_id, chunk_no, seq, key_value, sqlstate, message)
    SELECT p_run_id, p_chunk_no, r.ord::int, r.v->>'key', r.v->>'sqlstate', r.v->>'message'
      FROM pg_catalog.jsonb_array_elements(p_rejects) WITH ORDINALITY AS r(v, ord);
END
$fn$;
COMMENT ON FUNCTION dms.record_rejects(bigint, integer, jsonb) IS
    'Worker: record the rows the target refused in a chunk, with their keys and messages (operator role)';

CREATE OR REPLACE FUNCTION dms.fail_chunk(p_run_id bigint, p_chunk_no integer, p_sqlstate text,
                                          p_message text, p_retry_in double precision)
RETURNS text
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_state text := CASE WHEN p_retry_in IS NULL THEN 'FAILED' ELSE 'PENDING' END;
BEGIN
    PERFORM dms._require_role('dms_operator');
    UPDATE dms.chunk
       SET state = v_state, sqlstate = p_sqlstate, last_error = p_message,
           ended_at = CASE WHEN v_state = 'FAILED' THEN pg_catalog.clock_timestamp() END,
           retry_at = CASE WHEN p_retry_in IS NOT NULL
                           THEN pg_catalog.clock_timestamp() + p_retry_in * interval '1 second' END
     WHERE run_id = p_run_id AND chunk_no = p_chunk_no;
    RETURN v_state;
END
$fn$;
COMMENT ON FUNCTION dms.fail_chunk(bigint, integer, text, text, double precision) IS
    'Worker: record a chunk''s error; with p_retry_in (seconds) it goes back to pending for a retry, else it fails (operator role)';

CREATE OR REPLACE FUNCTION dms.finish_run(p_run_id bigint)
RETURNS text
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_total integer; v_done integer; v_failed integer; v_open integer; v_rows bigint;
    v_state text; v_message text; v_errors text; v_current text;
BEGIN
    PERFORM dms._require_role('dms_operator');
    SELECT state INTO v_current FROM dms.run WHERE run_id = p_run_id FOR UPDATE;
    SELECT count(*), count(*) FILTER (WHERE state = 'DONE'),
           count(*) FILTER (WHERE state = 'FAILED'),
           count(*) FILTER (WHERE state IN ('PENDING', 'RUNNING')),
           coalesce(sum(rows) FILTER (WHERE state = 'DONE'), 0)
      INTO v_total, v_done, v_failed, v_open, v_rows
      FROM dms.chunk WHERE run_id = p_run_id;
    SELECT string_agg(pg_catalog.format('chunk %s: %s%s', chunk_no,
                                        coalesce('[' || sqlstate || '] ', ''), last_error),
                      '; ' ORDER BY chunk_no)
      INTO v_errors
      FROM (SELECT * FROM dms.chunk WHERE run_id = p_run_id AND state = 'FAILED'
            ORDER BY chunk_no LIMIT 5) f;
    IF v_open > 0 AND v_current IN ('STOPPING', 'STOPPED') THEN
        v_state := 'STOPPED';
        v_message := pg_catalog.format('stopped: %s of %s chunks done (%s rows), %s not run',
                                       v_done, v_total, v_rows, v_open);
    ELSIF v_open > 0 THEN
        v_state := 'FAILED';
        v_message := pg_catalog.format('the workers ended with %s of %s chunks not done; '
                                       'resume the run to finish them', v_open, v_total);
    ELSIF v_failed = 0 THEN
        v_state := 'SUCCEEDED';
        v_message := pg_catalog.format('%s rows in %s chunks', v_rows, v_total);
    ELSIF v_done = 0 THEN
        v_state := 'FAILED';
        v_message := pg_catalog.format('all %s chunks failed: %s', v_total, v_errors);
    ELSE
        v_state := 'PARTIAL';
        v_message := pg_catalog.format('%s of %s chunks failed (%s rows loaded): %s',
                                       v_failed, v_total, v_rows, v_errors);
    END IF;
    IF v_failed > 5 THEN
        v_message := v_message || pg_catalog.format(' (and %s more; see dms.chunk_progress)',
                                                    v_failed - 5);
    END IF;
    v_message := v_message || coalesce('; ' || (SELECT snapshot_note FROM dms.run
                                                 WHERE run_id = p_run_id), '');
    UPDATE dms.run SET state = v_state, message = v_message, ended_at = pg_catalog.clock_timestamp()
     WHERE run_id = p_run_id;
    RETURN v_state;
END
$fn$;
COMMENT ON FUNCTION dms.finish_run(bigint) IS
    'Coordinator: set a run''s final state from its chunks (SUCCEEDED, PARTIAL, FAILED, STOPPED) with a message naming failed chunks (operator role)';

CREATE OR REPLACE FUNCTION dms.set_run_state(p_run_id bigint, p_state text, p_message text)
RETURNS void
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM dms._require_role('dms_operator');
    UPDATE dms.run
       SET state = p_state,
           message = coalesce(p_message, message),
           started_at = CASE WHEN p_state = 'RUNNING' THEN coalesce(started_at, pg_catalog.clock_timestamp())
                             ELSE started_at END,
           coordinator_pid = CASE WHEN p_state = 'RUNNING' THEN pg_catalog.pg_backend_pid()
                                  ELSE coordinator_pid END,
           ended_at = CASE WHEN p_state IN ('SUCCEEDED', 'FAILED', 'PARTIAL', 'STOPPED')
                           THEN pg_catalog.clock_timestamp() END
     WHERE run_id = p_run_id;
END
$fn$;
COMMENT ON FUNCTION dms.set_run_state(bigint, text, text) IS
    'Coordinator: move a run to another state, with a message (operator role)';

-- ------------------------------------------------------------------ fan-out
-- Worker sessions are dblink connections from the coordinator back to its own
-- database, authenticated as the caller's own login (never as a superuser
-- that then switches: SQL the caller controls could switch back).  They
-- connect without a password over the server's own Unix socket, which the
-- server must accept for its own OS user only (peer authentication with an
-- ident map, or trust on a socket only that OS user can reach; docs/roles.md
-- "Trust model").  dblink_connect_u is the only dblink function that may
-- connect without a password; these definer functions use it with a
-- destination and a login the caller cannot choose.  The caller's
-- search_path is carried over so unqualified names resolve the same way.

CREATE OR REPLACE FUNCTION dms._dblink_schema()
RETURNS text
LANGUAGE sql
STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT n.nspname::text FROM pg_catalog.pg_extension e
      JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'dblink'
$fn$;
COMMENT ON FUNCTION dms._dblink_schema() IS 'Internal: the schema the dblink extension lives in';

CREATE OR REPLACE FUNCTION dms._conninfo_quote(p_value text)
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT '''' || replace(replace(p_value, '\', '\\'), '''', '\''') || ''''
$fn$;
COMMENT ON FUNCTION dms._conninfo_quote(text) IS 'Internal: quote a value for a libpq connection string';

CREATE OR REPLACE FUNCTION dms._loopback_conninfo(p_login text)
RETURNS text
LANGUAGE sql
STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    -- Host and port: what a superuser set in dms.loopback, else this
    -- server's first socket directory and its port.  Never a session
    -- setting: a caller must not choose where (or as whom) workers log in.
    SELECT 'host=' || dms._conninfo_quote(coalesce(
               l.host,
               nullif(trim(split_part(current_setting('unix_socket_directories'), ',', 1)), ''),
               'localhost'))
           || ' port=' || coalesce(l.port::text, current_setting('port'))
           || ' dbname=' || dms._conninfo_quote(current_database())
           || ' user=' || dms._conninfo_quote(p_login)
      FROM dms.loopback l
$fn$;
COMMENT ON FUNCTION dms._loopback_conninfo(text) IS
    'Internal: how a session logs in to this database as p_login over the loopback route (no password)';

CREATE OR REPLACE FUNCTION dms.loopback_conninfo()
RETURNS text
LANGUAGE sql
STABLE PARALLEL SAFE
-- SECURITY DEFINER: reads dms.loopback; the login is always the caller's.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT dms._loopback_conninfo(session_user)
$fn$;
COMMENT ON FUNCTION dms.loopback_conninfo() IS
    'Internal (engine): how a worker connects back to this database as the calling login (no password: local socket authentication)';

CREATE OR REPLACE FUNCTION dms._loopback_connect(p_name text, p_login text, p_application text)
RETURNS void
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_schema text := dms._dblink_schema();
    v_detail text;
BEGIN
    IF v_schema IS NULL THEN
        RAISE EXCEPTION 'dms: extension dblink is not installed in this database'
            USING ERRCODE = '55000', HINT = 'run dms install again';
    END IF;
    BEGIN
        EXECUTE pg_catalog.format('SELECT %I.dblink_connect_u($1, $2)', v_schema)
            USING p_name, dms._loopback_conninfo(p_login)
                          || ' application_name=' || dms._conninfo_quote(p_application);
    EXCEPTION WHEN sqlclient_unable_to_establish_sqlconnection THEN
        GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
        RAISE EXCEPTION 'dms: a worker session cannot log in to this server as %', p_login
            USING ERRCODE = '08001',
                  DETAIL = pg_catalog.format('%s (loopback %s)',
                                             pg_catalog.btrim(coalesce(nullif(v_detail, ''), SQLERRM), E' \n'),
                                             pg_catalog.regexp_replace(dms._loopback_conninfo(p_login),
                                                                       ' user=.*$', '')),
                  HINT = 'the server must let its own OS user log in as each dms login over '
                         'its Unix socket without a password (peer authentication with an '
                         'ident map, or trust on a socket only that user can reach): see '
                         'docs/roles.md, "Trust model"';
    END;
END
$fn$;
COMMENT ON FUNCTION dms._loopback_connect(text, text, text) IS
    'Internal: open dblink connection p_name to this database as p_login, with a clear error when the server refuses it';

CREATE OR REPLACE FUNCTION dms.start_workers(p_run_id bigint, p_count integer)
RETURNS text[]
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
-- SECURITY DEFINER: dblink_connect_u is for superusers only.  The sessions
-- it opens are the caller's own login, running nothing but CALL dms.work.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_schema text := dms._dblink_schema();
    v_names text[] := '{}';
    v_name text;
    v_run dms.run;
BEGIN
    PERFORM dms._require_role('dms_operator');
    SELECT * INTO v_run FROM dms.run WHERE run_id = p_run_id;
    -- Only the run's own coordinator starts its workers.
    IF NOT FOUND OR v_run.state <> 'RUNNING'
       OR v_run.coordinator_pid IS DISTINCT FROM pg_catalog.pg_backend_pid() THEN
        RAISE EXCEPTION 'dms: run % is not coordinated by this session', p_run_id
            USING ERRCODE = '55000',
                  HINT = 'workers are started by the run''s coordinator (CALL dms.execute_query_parallel, dms.resume_run, dms.run_queued)';
    END IF;
    IF p_count NOT BETWEEN 1 AND 64 THEN
        RAISE EXCEPTION 'dms: cannot start % workers', p_count
            USING ERRCODE = '22023', HINT = 'from 1 to 64';
    END IF;
    BEGIN
        FOR i IN 1 .. p_count LOOP
            -- Unique per session: replacements for dead workers must not reuse a live name.
            v_name := pg_catalog.format('dms_run_%s_worker_%s', p_run_id,
                                        left(pg_catalog.gen_random_uuid()::text, 8));
            PERFORM dms._loopback_connect(v_name, session_user, 'dms worker run ' || p_run_id);
            EXECUTE pg_catalog.format('SELECT count(*) FROM %I.dblink($1, $2) AS t(v text)', v_schema)
                USING v_name, pg_catalog.format('SELECT pg_catalog.set_config(%L, %L, false)',
                                                'search_path', coalesce(v_run.search_path, '"$user", public'));
            EXECUTE pg_catalog.format('SELECT %I.dblink_send_query($1, $2)', v_schema)
                USING v_name, pg_catalog.format('CALL dms.work(%s)', p_run_id);
            v_names := v_names || v_name;
        END LOOP;
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        -- The sessions opened so far are nobody's once this raises: closed
        -- here (their CALL cancelled), or they would stay open for the rest
        -- of this backend's life.  A name that never connected is skipped.
        PERFORM dms.stop_workers(v_names || v_name, true);
        RAISE;
    END;
    RETURN v_names;
END
$fn$;
COMMENT ON FUNCTION dms.start_workers(bigint, integer) IS
    'Coordinator: open p_count sessions to this database logged in as the caller, each running CALL dms.work(run); returns their names (operator role, the run''s coordinator only)';

CREATE OR REPLACE FUNCTION dms.boot_workers(p_count integer)
RETURNS text[]
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
-- SECURITY DEFINER: dblink_connect_u is for superusers only.  The sessions
-- it opens are the caller's own login, running nothing but
-- SELECT dms.boot_worker() until the coordinator gives them a run.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_schema text := dms._dblink_schema();
    v_names text[] := '{}';
    v_name text;
    v_count integer;
BEGIN
    PERFORM dms._require_role('dms_operator');
    IF p_count NOT BETWEEN 1 AND 64 THEN
        RAISE EXCEPTION 'dms: cannot start % workers', p_count
            USING ERRCODE = '22023', HINT = 'from 1 to 64';
    END IF;
    -- Booting is a head start, never a reason to take the last connections:
    -- the run's planning caps its workers by what is free (with a reserve).
    v_count := least(p_count, dms.connection_headroom() - 5);
    BEGIN
        FOR i IN 1 .. v_count LOOP
            v_name := pg_catalog.format('dms_boot_%s', left(pg_catalog.gen_random_uuid()::text, 8));
            BEGIN
                PERFORM dms._loopback_connect(v_name, session_user, 'dms worker booting');
            EXCEPTION WHEN OTHERS THEN
                EXIT;  -- the run starts its workers the usual way, and says why if it cannot
            END;
            EXECUTE pg_catalog.format('SELECT %I.dblink_send_query($1, $2)', v_schema)
                USING v_name, 'SELECT dms.boot_worker()';
            v_names := v_names || v_name;
        END LOOP;
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        PERFORM dms.stop_workers(v_names || v_name, true);  -- as in start_workers
        RAISE;
    END;
    RETURN v_names;
END
$fn$;
COMMENT ON FUNCTION dms.boot_workers(integer) IS
    'Coordinator: open up to p_count sessions to this database logged in as the caller, each loading the worker''s code while the run is planned; dms.adopt_workers gives them the run (operator role)';

CREATE OR REPLACE FUNCTION dms.adopt_workers(p_run_id bigint, p_names text[])
RETURNS text[]
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_schema text := dms._dblink_schema();
    v_adopted text[] := '{}';
    v_name text;
    v_run dms.run;
BEGIN
    PERFORM dms._require_role('dms_operator');
    SELECT * INTO v_run FROM dms.run WHERE run_id = p_run_id;
    IF NOT FOUND OR v_run.state <> 'RUNNING'
       OR v_run.coordinator_pid IS DISTINCT FROM pg_catalog.pg_backend_pid() THEN
        RAISE EXCEPTION 'dms: run % is not coordinated by this session', p_run_id
            USING ERRCODE = '55000',
                  HINT = 'workers are started by the run''s coordinator (CALL dms.execute_query_parallel, dms.resume_run, dms.run_queued)';
    END IF;
    FOREACH v_name IN ARRAY p_names LOOP
        -- Only sessions dms.boot_workers opened in this backend (dblink
        -- connections belong to the backend that opened them).
        CONTINUE WHEN v_name !~ '^dms_boot_[0-9a-f]{8}$';
        BEGIN
            -- The boot's result, then the end of its results: the session is idle.
            EXECUTE pg_catalog.format('SELECT count(*) FROM %I.dblink_get_result($1) AS t(ok boolean)',
                                      v_schema) USING v_name;
            EXECUTE pg_catalog.format('SELECT count(*) FROM %I.dblink_get_result($1) AS t(ok boolean)',
                                      v_schema) USING v_name;
            EXECUTE pg_catalog.format('SELECT count(*) FROM %I.dblink($1, $2) AS t(a text, b text)', v_schema)
                USING v_name, pg_catalog.format(
                    'SELECT pg_catalog.set_config(%L, %L, false), pg_catalog.set_config(%L, %L, false)',
                    'search_path', coalesce(v_run.search_path, '"$user", public'),
                    'application_name', 'dms worker run ' || p_run_id);
            EXECUTE pg_catalog.format('SELECT %I.dblink_send_query($1, $2)', v_schema)
                USING v_name, pg_catalog.format('CALL dms.work(%s)', p_run_id);
            v_adopted := v_adopted || v_name;
        EXCEPTION WHEN OTHERS THEN
            BEGIN  -- a session whose boot failed is closed; the run starts another
                EXECUTE pg_catalog.format('SELECT %I.dblink_disconnect($1)', v_schema) USING v_name;
            EXCEPTION WHEN OTHERS THEN
                NULL;
            END;
        END;
    END LOOP;
    RETURN v_adopted;
END
$fn$;
COMMENT ON FUNCTION dms.adopt_workers(bigint, text[]) IS
    'Coordinator: give booted sessions (dms.boot_workers) the run: each runs CALL dms.work(run); returns the sessions that took it (operator role, the run''s coordinator only)';

CREATE OR REPLACE FUNCTION dms._dblink_outcome(p_name text)
RETURNS text
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_schema text := dms._dblink_schema();
    v_message text;
    v_rows integer;
BEGIN
    -- Collect the statement's outcome (fail => false: an error comes back as
    -- text, not as an exception), then drain the connection.
    EXECUTE pg_catalog.format(
        'SELECT count(*) FROM %I.dblink_get_result($1, false) AS t(status text)', v_schema)
        INTO v_rows USING p_name;
    EXECUTE pg_catalog.format('SELECT %I.dblink_error_message($1)', v_schema)
        INTO v_message USING p_name;
    EXECUTE pg_catalog.format(
        'SELECT count(*) FROM %I.dblink_get_result($1, false) AS t(status text)', v_schema)
        INTO v_rows USING p_name;
    RETURN nullif(v_message, 'OK');
END
$fn$;
COMMENT ON FUNCTION dms._dblink_outcome(text) IS
    'Internal: the error of the statement a dblink connection finished (NULL when it succeeded), the connection drained';

CREATE OR REPLACE FUNCTION dms.run_as_owner(p_kind text, p_id bigint)
RETURNS text
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
-- SECURITY DEFINER: a dispatcher carries out what another login queued, in a
-- session logged in as that login (dblink_connect_u is for superusers).  The
-- command is fixed by p_kind and the login read from the queue, so a caller
-- chooses neither; the session lives only inside this call, so no connection
-- is ever left in the caller's hands (not even when the call is cancelled or
-- times out: the cleanup catches query_canceled, which OTHERS does not).
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_schema text := dms._dblink_schema();
    v_login text;
    v_command text;
    v_name text := 'dms_owner_' || replace(pg_catalog.gen_random_uuid()::text, '-', '');
    v_message text;
    v_busy integer;
    v_open boolean;
BEGIN
    PERFORM dms._require_role('dms_operator');
    IF p_kind = 'run' THEN
        SELECT created_by INTO v_login FROM dms.run WHERE run_id = p_id AND state = 'QUEUED';
        v_command := pg_catalog.format('CALL dms.run_queued(%s)', p_id);
    ELSIF p_kind = 'resume' THEN
        SELECT created_by INTO v_login FROM dms.run WHERE run_id = p_id;
        v_command := pg_catalog.format('CALL dms.resume_run(%s)', p_id);
    ELSIF p_kind = 'request' THEN
        SELECT reqby INTO v_login FROM dms.dms_prcreq WHERE reqid = p_id AND status = 'CLAIMED';
        v_command := pg_catalog.format('CALL pkgdwprc.carry_out_request(%s)', p_id);
    ELSIF p_kind = 'sched' THEN
        -- A DBMS_SCHEDULER run this very session claimed (dms._sched_claim, for
        -- dbms_scheduler.dispatch, administrators only): the job's owner carries
        -- it out.  No other session may start it, nor a later session that got
        -- the pid of a dispatcher that ended.
        SELECT r.owner INTO v_login FROM dms.sched_job_run r
         WHERE r.log_id = p_id AND r.status = 'CLAIMED'
           AND r.dispatcher_pid = pg_catalog.pg_backend_pid()
           AND r.claimed_at >= (SELECT s.backend_start FROM pg_catalog.pg_stat_activity s
                                 WHERE s.pid = pg_catalog.pg_backend_pid());
        IF v_login IS NULL THEN
            RAISE EXCEPTION 'dms: DBMS_SCHEDULER run % is not claimed by this session', p_id
                USING ERRCODE = '42501',
                      HINT = 'CALL dbms_scheduler.dispatch() (dms_admin) claims the queued runs and carries them out';
        END IF;
        v_command := pg_catalog.format('CALL dms.sched_carry_out(%s)', p_id);
    ELSE
        RAISE EXCEPTION 'dms: unknown kind %', p_kind USING ERRCODE = '22023';
    END IF;
    IF v_login IS NULL THEN
        RETURN pg_catalog.format('%s %s is no longer waiting', p_kind, p_id);
    END IF;
    BEGIN
        BEGIN
            PERFORM dms._loopback_connect(v_name, v_login,
                                          pg_catalog.format('dms dispatcher %s %s', p_kind, p_id));
        EXCEPTION WHEN sqlclient_unable_to_establish_sqlconnection THEN
            RETURN SQLERRM;
        END;
        EXECUTE pg_catalog.format('SELECT %I.dblink_send_query($1, $2)', v_schema)
            USING v_name, v_command;
        -- Wait with pg_sleep, which a cancel or terminate interrupts at once
        -- (dblink's own blocking calls would not).
        LOOP
            EXECUTE pg_catalog.format('SELECT %I.dblink_is_busy($1)', v_schema)
                INTO v_busy USING v_name;
            EXIT WHEN v_busy = 0;
            PERFORM pg_catalog.pg_sleep(0.1);
        END LOOP;
        v_message := dms._dblink_outcome(v_name);
        EXECUTE pg_catalog.format('SELECT %I.dblink_disconnect($1)', v_schema) USING v_name;
    -- Whatever ends the call -- an error, a cancel, a statement timeout (those
    -- two are query_canceled, which OTHERS does not catch) -- the session
    -- logged in as v_login is cancelled and closed before it propagates: it
    -- must never stay open in the caller's session.
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        BEGIN
            EXECUTE pg_catalog.format('SELECT $1 = ANY (coalesce(%I.dblink_get_connections(), ''{}''))',
                                      v_schema)
                INTO v_open USING v_name;
            IF v_open THEN
                EXECUTE pg_catalog.format('SELECT %I.dblink_cancel_query($1)', v_schema) USING v_name;
                -- The cancel only asks: the session then records how its work
                -- ended (a run STOPPED) and commits that before it answers.
                -- Closing it at once could cut that off (its next write to a
                -- closed connection ends it), so it is given up to 5 s; a
                -- second cancel of this call closes it at once (below).
                FOR i IN 1..100 LOOP
                    EXECUTE pg_catalog.format('SELECT %I.dblink_is_busy($1)', v_schema)
                        INTO v_busy USING v_name;
                    EXIT WHEN v_busy = 0;
                    PERFORM pg_catalog.pg_sleep(0.05);
                END LOOP;
                EXECUTE pg_catalog.format('SELECT %I.dblink_disconnect($1)', v_schema) USING v_name;
            END IF;
        EXCEPTION WHEN OTHERS OR query_canceled THEN
            -- Gone already, or the cancel failed: close it all the same.
            BEGIN
                EXECUTE pg_catalog.format('SELECT %I.dblink_disconnect($1)', v_schema) USING v_name;
            EXCEPTION WHEN OTHERS OR query_canceled THEN
                NULL;  -- not open
            END;
        END;
        RAISE;
    END;
    RETURN v_message;
END
$fn$;
COMMENT ON FUNCTION dms.run_as_owner(text, bigint) IS
    'Carry out a queued run (p_kind run), resume a run (resume), a claimed mapper request (request) or a DBMS_SCHEDULER run this session claimed (sched) in a session logged in as whoever queued or started it (the job''s owner), and wait; returns its error or NULL; the session is closed however the call ends (operator role)';

CREATE OR REPLACE FUNCTION dms.poll_workers(p_names text[])
RETURNS TABLE (name text, busy boolean, error text)
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_schema text := dms._dblink_schema();
    v_busy integer;
BEGIN
    PERFORM dms._require_role('dms_operator');
    FOREACH name IN ARRAY p_names LOOP
        BEGIN
            EXECUTE pg_catalog.format('SELECT %I.dblink_is_busy($1)', v_schema) INTO v_busy USING name;
        EXCEPTION WHEN OTHERS THEN
            busy := false; error := SQLERRM; RETURN NEXT; CONTINUE;
        END;
        IF v_busy = 1 THEN
            busy := true; error := NULL;
        ELSE
            busy := false;
            error := dms._dblink_outcome(name);
        END IF;
        RETURN NEXT;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION dms.poll_workers(text[]) IS
    'Coordinator: which worker sessions still run, and the error of those that ended with one (operator role)';

CREATE OR REPLACE FUNCTION dms.stop_workers(p_names text[], p_cancel boolean)
RETURNS void
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_schema text := dms._dblink_schema();
    v_name text;
BEGIN
    PERFORM dms._require_role('dms_operator');
    FOREACH v_name IN ARRAY p_names LOOP
        BEGIN
            IF p_cancel THEN
                EXECUTE pg_catalog.format('SELECT %I.dblink_cancel_query($1)', v_schema) USING v_name;
            END IF;
            EXECUTE pg_catalog.format('SELECT %I.dblink_disconnect($1)', v_schema) USING v_name;
        EXCEPTION WHEN OTHERS THEN
            NULL;  -- already gone: nothing to close
        END;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION dms.stop_workers(text[], boolean) IS
    'Coordinator: close worker sessions, cancelling their statement first when p_cancel (operator role)';

CREATE OR REPLACE FUNCTION dms.connection_headroom()
RETURNS integer
LANGUAGE sql
STABLE PARALLEL SAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
    -- Connections still free for ordinary sessions: max_connections minus the
    -- ones reserved for superusers minus every backend that counts against it.
    SELECT current_setting('max_connections')::int
           - current_setting('superuser_reserved_connections')::int
           - (SELECT count(*)::int FROM pg_catalog.pg_stat_activity WHERE backend_type = 'client backend')
$fn$;
COMMENT ON FUNCTION dms.connection_headroom() IS
    'How many more client sessions the server accepts now (used to cap the number of workers)';

CREATE OR REPLACE FUNCTION dms._queued_run_ready(p_run_id bigint)
RETURNS boolean
LANGUAGE sql
STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    -- A queued run waits while another run is loading the same target.
    SELECT NOT EXISTS (
        SELECT FROM dms.run q JOIN dms.run b
            ON b.run_id <> q.run_id
           AND b.target_conid IS NOT DISTINCT FROM q.target_conid
           AND b.target_schema = q.target_schema
           AND b.target_table = q.target_table
         WHERE q.run_id = p_run_id
           AND b.state IN ('RUNNING', 'STOPPING')
           AND (EXISTS (SELECT FROM pg_catalog.pg_stat_activity a WHERE a.pid = b.coordinator_pid)
                OR EXISTS (SELECT FROM dms.chunk c
                             JOIN pg_catalog.pg_stat_activity a ON a.pid = c.worker_pid
                            WHERE c.run_id = b.run_id AND c.state = 'RUNNING')))
$fn$;
COMMENT ON FUNCTION dms._queued_run_ready(bigint) IS
    'Internal: whether a queued run may start now (no other run is loading its target)';

CREATE OR REPLACE FUNCTION dms.next_queued_run(p_skip bigint[] DEFAULT '{}')
RETURNS TABLE (run_id bigint, created_by text)
LANGUAGE plpgsql
STABLE PARALLEL SAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM dms._require_role('dms_operator');
    RETURN QUERY
    SELECT q.run_id, q.created_by FROM dms.run q
     WHERE q.state = 'QUEUED' AND q.run_id <> ALL (coalesce(p_skip, '{}'))
       AND dms._queued_run_ready(q.run_id)
     ORDER BY q.run_id LIMIT 1;
END
$fn$;
COMMENT ON FUNCTION dms.next_queued_run(bigint[]) IS
    'Dispatcher: the oldest queued run that may start now (not in p_skip) and who queued it; claims nothing (operator role)';

CREATE OR REPLACE FUNCTION dms.claim_queued_run(p_run_id bigint DEFAULT NULL)
RETURNS TABLE (run_id bigint, workers_planned integer, created_by text, search_path text)
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM dms._require_role('dms_operator');
    -- Whoever claims a run coordinates it, and its workers log in as the
    -- claiming login, running the run's SQL: only the login that queued it
    -- may (a dispatcher hands other logins' runs over with dms.run_as_owner).
    RETURN QUERY
    UPDATE dms.run r
       SET state = 'RUNNING', started_at = pg_catalog.clock_timestamp(),
           coordinator_pid = pg_catalog.pg_backend_pid()
     WHERE r.run_id = (SELECT q.run_id FROM dms.run q
                        WHERE q.state = 'QUEUED' AND (p_run_id IS NULL OR q.run_id = p_run_id)
                          AND q.created_by = session_user
                          AND dms._queued_run_ready(q.run_id)
                        ORDER BY q.run_id LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING r.run_id, r.workers_planned, r.created_by, r.search_path;
END
$fn$;
COMMENT ON FUNCTION dms.claim_queued_run(bigint) IS
    'Dispatcher: take the oldest queued run of the session''s login (or the one given) that may start, and mark it running under this session (operator role)';

CREATE OR REPLACE FUNCTION dms._worker_alive(p_pid integer, p_since timestamptz)
RETURNS boolean
LANGUAGE sql
STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    -- Whether the backend that took a chunk at p_since can still be moving it:
    -- alive, and started before it took the chunk (not a later backend that
    -- was given the same pid after the first one died).
    SELECT EXISTS (SELECT FROM pg_catalog.pg_stat_activity a
                    WHERE a.pid = p_pid AND (p_since IS NULL OR a.backend_start <= p_since))
$fn$;
COMMENT ON FUNCTION dms._worker_alive(integer, timestamptz) IS
    'Internal: whether the worker backend p_pid that took a chunk at p_since can still be moving it';

CREATE OR REPLACE FUNCTION dms.reopen_run(p_run_id bigint)
RETURNS integer
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_run dms.run;
    v_reopened integer;
BEGIN
    PERFORM dms._require_role('dms_operator');
    SELECT * INTO v_run FROM dms.run WHERE run_id = p_run_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dms: run % does not exist', p_run_id
            USING ERRCODE = '42704', HINT = 'SELECT * FROM dms.run_progress lists the runs';
    END IF;
    IF v_run.state IN ('RUNNING', 'STOPPING') AND v_run.coordinator_pid IS NOT NULL
       AND EXISTS (SELECT FROM pg_catalog.pg_stat_activity WHERE pid = v_run.coordinator_pid
                   AND pid <> pg_catalog.pg_backend_pid()) THEN
        RAISE EXCEPTION 'dms: run % is % under coordinator pid %', p_run_id, lower(v_run.state),
                        v_run.coordinator_pid
            USING ERRCODE = '55006',
                  HINT = 'wait for it, or stop it with CALL dms.stop_run(' || p_run_id || ')';
    END IF;
    -- Failed chunks and chunks whose worker is gone go back to the queue;
    -- done chunks stay done.
    UPDATE dms.chunk c
       SET state = 'PENDING', retry_at = NULL, worker_pid = NULL
     WHERE c.run_id = p_run_id
       AND (c.state = 'FAILED'
            OR (c.state = 'RUNNING' AND NOT dms._worker_alive(c.worker_pid, c.started_at))
            -- A chunk under this session's own pid: this session, resuming, is
            -- not moving it -- an attempt it cut short (a cancel while the
            -- chunk's failure was recorded) left it RUNNING.
            OR (c.state = 'RUNNING' AND c.worker_pid = pg_catalog.pg_backend_pid()));
    GET DIAGNOSTICS v_reopened = ROW_COUNT;
    UPDATE dms.run
       SET state = 'RUNNING', message = NULL, ended_at = NULL,
           coordinator_pid = pg_catalog.pg_backend_pid(),
           started_at = coalesce(started_at, pg_catalog.clock_timestamp())
     WHERE run_id = p_run_id;
    RETURN v_reopened;
END
$fn$;
COMMENT ON FUNCTION dms.reopen_run(bigint) IS
    'Resume: put a run''s failed and orphaned chunks back in the queue and mark it running (operator role)';

-- ---------------------------------------------------------------- recovery

CREATE OR REPLACE FUNCTION dms.set_snapshot(p_run_id bigint, p_snapshot_id text)
RETURNS void
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM dms._require_role('dms_operator');
    UPDATE dms.run
       SET snapshot_note = CASE
               WHEN snapshot_id IS NOT NULL AND snapshot_id IS DISTINCT FROM p_snapshot_id
                    AND EXISTS (SELECT FROM dms.chunk c WHERE c.run_id = p_run_id AND c.state = 'DONE')
               THEN pg_catalog.format('the snapshot of %s was gone when the run resumed; chunks '
                                      'done since %s read the source as of then',
                                      pg_catalog.to_char(snapshot_at, 'YYYY-MM-DD HH24:MI:SS'),
                                      pg_catalog.to_char(pg_catalog.clock_timestamp(),
                                                         'YYYY-MM-DD HH24:MI:SS'))
               ELSE snapshot_note END,
           snapshot_at = CASE WHEN snapshot_id IS NULL OR NOT EXISTS (
                                   SELECT FROM dms.chunk c WHERE c.run_id = p_run_id AND c.state = 'DONE')
                              THEN pg_catalog.clock_timestamp() ELSE snapshot_at END,
           snapshot_id = p_snapshot_id
     WHERE run_id = p_run_id;
END
$fn$;
COMMENT ON FUNCTION dms.set_snapshot(bigint, text) IS
    'Coordinator: record the snapshot the run''s workers read with; a replaced one is noted on the run (operator role)';

CREATE OR REPLACE FUNCTION dms.reap_chunks(p_run_id bigint)
RETURNS integer
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_reaped integer;
BEGIN
    PERFORM dms._require_role('dms_operator');
    -- A chunk whose worker backend is gone goes back to the queue; whatever
    -- that worker had not committed was rolled back with it, and what it had
    -- committed is in the target's ledger, which the next attempt checks.
    UPDATE dms.chunk c
       SET state = 'PENDING', retry_at = NULL, sqlstate = '57P01',
           last_error = pg_catalog.format('worker pid %s ended while moving the chunk', c.worker_pid)
     WHERE c.run_id = p_run_id AND c.state = 'RUNNING'
       AND NOT dms._worker_alive(c.worker_pid, c.started_at);
    GET DIAGNOSTICS v_reaped = ROW_COUNT;
    RETURN v_reaped;
END
$fn$;
COMMENT ON FUNCTION dms.reap_chunks(bigint) IS
    'Coordinator: put chunks whose worker died back in the queue; returns how many (operator role)';

CREATE OR REPLACE FUNCTION dms.request_stop(p_run_id bigint)
RETURNS TABLE (chunk_no integer, source_pid integer, target_pid integer, state text)
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_state text;
BEGIN
    PERFORM dms._require_role('dms_operator');
    SELECT r.state INTO v_state FROM dms.run r WHERE r.run_id = p_run_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dms: run % does not exist', p_run_id
            USING ERRCODE = '42704', HINT = 'SELECT * FROM dms.run_progress lists the runs';
    END IF;
    IF v_state = 'QUEUED' THEN
        UPDATE dms.run SET state = 'STOPPED', message = 'stopped before it started',
                           ended_at = pg_catalog.clock_timestamp()
         WHERE run_id = p_run_id;
        v_state := 'STOPPED';
    ELSIF v_state = 'RUNNING' THEN
        UPDATE dms.run SET state = 'STOPPING' WHERE run_id = p_run_id;
        v_state := 'STOPPING';
    END IF;
    RETURN QUERY
    SELECT c.chunk_no, c.source_pid, c.target_pid, v_state
      FROM dms.chunk c WHERE c.run_id = p_run_id AND c.state = 'RUNNING';
    IF NOT FOUND THEN
        RETURN QUERY SELECT NULL::integer, NULL::integer, NULL::integer, v_state;
    END IF;
END
$fn$;
COMMENT ON FUNCTION dms.request_stop(bigint) IS
    'Stop: hand out no more chunks of the run; returns the chunks being moved and the run''s state (operator role)';

CREATE OR REPLACE FUNCTION dms.cancel_run_statements(p_run_id bigint)
RETURNS integer
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_count integer;
BEGIN
    PERFORM dms._require_role('dms_operator');
    -- Only the run's own data connections on this server (they carry its
    -- name); never a worker session itself, which must live on to put its
    -- chunk back in the queue.
    SELECT count(*) FILTER (WHERE pg_catalog.pg_cancel_backend(a.pid))::int INTO v_count
      FROM pg_catalog.pg_stat_activity a
     WHERE a.application_name = 'dms worker run ' || p_run_id || ' data'
       AND a.state = 'active';
    RETURN v_count;
END
$fn$;
COMMENT ON FUNCTION dms.cancel_run_statements(bigint) IS
    'Stop: cancel the statements the run''s workers are running on this server; returns how many (operator role)';

CREATE OR REPLACE FUNCTION dms.set_finalized(p_run_id bigint)
RETURNS void
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM dms._require_role('dms_operator');
    UPDATE dms.run SET finalized_at = pg_catalog.clock_timestamp() WHERE run_id = p_run_id;
END
$fn$;
COMMENT ON FUNCTION dms.set_finalized(bigint) IS
    'Coordinator: record that the run''s last step (staging swap, ledger clean-up) is done (operator role)';

CREATE OR REPLACE FUNCTION dms.set_checkpoint_value(p_run_id bigint, p_value text)
RETURNS void
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM dms._require_role('dms_operator');
    -- Set once, from the run's first snapshot: a resumed run keeps it.
    UPDATE dms.run SET checkpoint_value = coalesce(checkpoint_value, p_value)
     WHERE run_id = p_run_id;
END
$fn$;
COMMENT ON FUNCTION dms.set_checkpoint_value(bigint, text) IS
    'Coordinator: record the largest checkpoint-column value the run reads (operator role)';
