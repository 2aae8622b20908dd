-- The checks from SQL (issue 13): schema-diff, table-compare and profile, with sides
-- named [connection.][schema.]table (connection: a DMS_DBCONDTLS CONNM or CONID; none =
-- this database).  They run as the caller (SECURITY INVOKER: the caller's own login
-- and connection grants reach the tables) and write results through definer functions.

CREATE OR REPLACE FUNCTION dms.record_check(p_kind text, p_run jsonb)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
-- SECURITY DEFINER: operators may not write the check tables directly.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_id bigint;
BEGIN
    PERFORM dms._require_role('dms_operator');
    INSERT INTO dms.check_run (kind, started_at, ended_at, pairs, equal, different, errors)
    SELECT p_kind, (p_run->>'started_at')::timestamptz, (p_run->>'ended_at')::timestamptz,
           count(*), count(*) FILTER (WHERE r->>'status' = 'equal'),
           count(*) FILTER (WHERE r->>'status' = 'different'),
           count(*) FILTER (WHERE r->>'status' = 'error')
      FROM jsonb_array_elements(p_run->'results') AS r
    RETURNING check_id INTO v_id;
    INSERT INTO dms.check_result (check_id, seq, pair, status, result)
    SELECT v_id, n::integer, r->>'pair', r->>'status', r
      FROM jsonb_array_elements(p_run->'results') WITH ORDINALITY AS t(r, n);
    RETURN v_id;
END
$fn$;
COMMENT ON FUNCTION dms.record_check(text, jsonb) IS
    'dms.schema_diff / dms.compare_tables: record a check run and its pairs'' results; returns the check id (operator role)';

CREATE OR REPLACE FUNCTION dms.schema_diff(p_pairs text[], p_params jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpython3u
VOLATILE PARALLEL UNSAFE
AS $plpy$@plpy(checks:schema_diff)$plpy$;
COMMENT ON FUNCTION dms.schema_diff(text[], jsonb) IS
    'Compare the schemas of pairs A:B of tables ([connection.][schema.]table); results in dms.check_result; returns the check id. p_params: parallel (operator role)';

CREATE OR REPLACE FUNCTION dms.compare_tables(p_pairs text[], p_params jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpython3u
VOLATILE PARALLEL UNSAFE
AS $plpy$@plpy(checks:compare_tables)$plpy$;
COMMENT ON FUNCTION dms.compare_tables(text[], jsonb) IS
    'Compare the rows of pairs A:B of tables; keys only in A, only in B and different in dms.check_result; returns the check id. p_params: key, parallel, limit (operator role)';

CREATE OR REPLACE FUNCTION dms.profile_tables(p_tables text[], p_params jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpython3u
VOLATILE PARALLEL UNSAFE
AS $plpy$@plpy(checks:profile_tables)$plpy$;
COMMENT ON FUNCTION dms.profile_tables(text[], jsonb) IS
    'Profile tables ([connection.][schema.]table); results in dms.profile_table / dms.profile_column; returns the profile id. p_params: parallel (operator role)';

CREATE OR REPLACE VIEW dms.check_results AS
SELECT r.check_id, r.kind, r.started_at, r.created_by, c.seq, c.pair, c.status,
       c.result->'error'->>'message' AS error,
       coalesce(jsonb_array_length(c.result->'differences'), 0)
         + coalesce(jsonb_array_length(c.result->'only_in_a'), 0)
         + coalesce(jsonb_array_length(c.result->'only_in_b'), 0)
         + coalesce(jsonb_array_length(c.result->'different'), 0) AS differences
  FROM dms.check_run r JOIN dms.check_result c USING (check_id);
COMMENT ON VIEW dms.check_results IS 'Check results for people: one row per pair, with its error and how many differences it found';
COMMENT ON COLUMN dms.check_results.check_id IS 'Check run id';
COMMENT ON COLUMN dms.check_results.kind IS 'schema-diff or table-compare';
COMMENT ON COLUMN dms.check_results.started_at IS 'When the check ran';
COMMENT ON COLUMN dms.check_results.created_by IS 'Login that ran it';
COMMENT ON COLUMN dms.check_results.seq IS 'Position of the pair in the call';
COMMENT ON COLUMN dms.check_results.pair IS 'The pair as given';
COMMENT ON COLUMN dms.check_results.status IS 'equal, different or error';
COMMENT ON COLUMN dms.check_results.error IS 'Why the pair could not be compared';
COMMENT ON COLUMN dms.check_results.differences IS 'Differences found (schema differences, or keys only in A, only in B and different)';
