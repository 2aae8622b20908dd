-- dms profile's results (issue 13): written by dms.record_profile, read through the tables.

CREATE OR REPLACE FUNCTION dms.record_profile(p_run jsonb)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
-- SECURITY DEFINER: operators may not write the profile tables directly.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_id bigint;
    v_table jsonb;
BEGIN
    PERFORM dms._require_role('dms_operator');
    INSERT INTO dms.profile_run (started_at, ended_at, tables, failed)
    VALUES ((p_run->>'started_at')::timestamptz, (p_run->>'ended_at')::timestamptz,
            jsonb_array_length(p_run->'tables'),
            (SELECT count(*) FROM jsonb_array_elements(p_run->'tables') t
              WHERE t->'error' IS NOT NULL AND t->'error' <> 'null'::jsonb))
    RETURNING profile_id INTO v_id;
    FOR v_table IN SELECT * FROM jsonb_array_elements(p_run->'tables') LOOP
        INSERT INTO dms.profile_table (profile_id, table_ref, dialect, row_count,
                                       row_count_change, seconds, error)
        VALUES (v_id, v_table->>'table', v_table->>'dialect', (v_table->>'row_count')::bigint,
                (v_table->>'row_count')::bigint - (
                    SELECT t.row_count FROM dms.profile_table t
                     WHERE t.table_ref = v_table->>'table' AND t.profile_id < v_id
                       AND t.row_count IS NOT NULL
                     ORDER BY t.profile_id DESC LIMIT 1),
                (v_table->>'seconds')::double precision,
                nullif(v_table->'error', 'null'::jsonb));
        INSERT INTO dms.profile_column
        SELECT v_id, v_table->>'table', c->>'column', (c->>'ordinal')::integer, c->>'type',
               (c->>'count')::bigint, (c->>'null_count')::bigint,
               (c->>'null_ratio')::double precision, (c->>'distinct_count')::bigint,
               (c->>'unique_ratio')::double precision, c->>'min', c->>'max',
               (c->>'mean')::double precision, (c->>'stddev')::double precision,
               (c->>'min_length')::integer, (c->>'avg_length')::double precision,
               (c->>'max_length')::integer, nullif(c->'histogram', 'null'::jsonb)
          FROM jsonb_array_elements(coalesce(v_table->'columns', '[]'::jsonb)) AS c;
    END LOOP;
    RETURN v_id;
END
$fn$;
COMMENT ON FUNCTION dms.record_profile(jsonb) IS
    'dms profile: record a profile run (its tables and columns, in the shape of docs/profile.md); returns the profile id; row_count_change is worked out against the last profile of each table (operator role)';
