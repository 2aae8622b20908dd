-- 0010: table profiles (issue 13): one row per profile run, per table and per column,
-- so that drift can be asked in SQL ("how did the null ratio of orders.note move?").
-- Written only through dms.record_profile (SECURITY DEFINER); read by viewers.

CREATE TABLE dms.profile_run (
    profile_id  bigint GENERATED ALWAYS AS IDENTITY,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz NOT NULL,
    tables      integer     NOT NULL,
    failed      integer     NOT NULL,
    created_by  text        NOT NULL DEFAULT session_user,
    CONSTRAINT profile_run_pk PRIMARY KEY (profile_id)
);
COMMENT ON TABLE dms.profile_run IS 'Profile runs (dms profile): one row per run';
COMMENT ON COLUMN dms.profile_run.profile_id IS 'Profile run id';
COMMENT ON COLUMN dms.profile_run.started_at IS 'When the run started';
COMMENT ON COLUMN dms.profile_run.ended_at IS 'When the run ended';
COMMENT ON COLUMN dms.profile_run.tables IS 'Tables the run was given';
COMMENT ON COLUMN dms.profile_run.failed IS 'Tables that could not be profiled';
COMMENT ON COLUMN dms.profile_run.created_by IS 'Login that recorded the run';

CREATE TABLE dms.profile_table (
    profile_id       bigint      NOT NULL REFERENCES dms.profile_run (profile_id) ON DELETE CASCADE,
    table_ref        text        NOT NULL,
    dialect          text,
    row_count        bigint,
    row_count_change bigint,
    seconds          double precision,
    error            jsonb,
    CONSTRAINT profile_table_pk PRIMARY KEY (profile_id, table_ref)
);
CREATE INDEX profile_table_ref_ix ON dms.profile_table (table_ref, profile_id);
COMMENT ON TABLE dms.profile_table IS 'Profiled tables: one row per run and table';
COMMENT ON COLUMN dms.profile_table.profile_id IS 'Profile run (dms.profile_run)';
COMMENT ON COLUMN dms.profile_table.table_ref IS 'The table as given: [db.][schema.]table';
COMMENT ON COLUMN dms.profile_table.dialect IS 'postgres, mysql or sqlite';
COMMENT ON COLUMN dms.profile_table.row_count IS 'Rows in the table';
COMMENT ON COLUMN dms.profile_table.row_count_change IS 'Rows more (or fewer) than at the last profile of the same table_ref; NULL the first time';
COMMENT ON COLUMN dms.profile_table.seconds IS 'How long profiling the table took';
COMMENT ON COLUMN dms.profile_table.error IS 'Why the table could not be profiled (sqlstate, message, hint); NULL when it was';

CREATE TABLE dms.profile_column (
    profile_id     bigint NOT NULL,
    table_ref      text   NOT NULL,
    column_name    text   NOT NULL,
    ordinal        integer NOT NULL,
    data_type      text   NOT NULL,
    count          bigint,
    null_count     bigint,
    null_ratio     double precision,
    distinct_count bigint,
    unique_ratio   double precision,
    min_value      text,
    max_value      text,
    mean           double precision,
    stddev         double precision,
    min_length     integer,
    avg_length     double precision,
    max_length     integer,
    histogram      jsonb,
    CONSTRAINT profile_column_pk PRIMARY KEY (profile_id, table_ref, column_name),
    CONSTRAINT profile_column_table_fk FOREIGN KEY (profile_id, table_ref)
        REFERENCES dms.profile_table (profile_id, table_ref) ON DELETE CASCADE
);
COMMENT ON TABLE dms.profile_column IS 'Column profiles: one row per run, table and column';
COMMENT ON COLUMN dms.profile_column.profile_id IS 'Profile run (dms.profile_run)';
COMMENT ON COLUMN dms.profile_column.table_ref IS 'The table as given';
COMMENT ON COLUMN dms.profile_column.column_name IS 'Column name';
COMMENT ON COLUMN dms.profile_column.ordinal IS 'Position of the column in the table, from 1';
COMMENT ON COLUMN dms.profile_column.data_type IS 'The column''s type, in the one spelling schema-diff uses';
COMMENT ON COLUMN dms.profile_column.count IS 'Values that are not NULL';
COMMENT ON COLUMN dms.profile_column.null_count IS 'NULLs';
COMMENT ON COLUMN dms.profile_column.null_ratio IS 'NULLs / rows';
COMMENT ON COLUMN dms.profile_column.distinct_count IS 'Distinct values that are not NULL (exact)';
COMMENT ON COLUMN dms.profile_column.unique_ratio IS 'distinct_count / count';
COMMENT ON COLUMN dms.profile_column.min_value IS 'Smallest value, as text';
COMMENT ON COLUMN dms.profile_column.max_value IS 'Largest value, as text';
COMMENT ON COLUMN dms.profile_column.mean IS 'Mean of a number column';
COMMENT ON COLUMN dms.profile_column.stddev IS 'Sample standard deviation of a number column';
COMMENT ON COLUMN dms.profile_column.min_length IS 'Shortest string, in characters';
COMMENT ON COLUMN dms.profile_column.avg_length IS 'Mean string length, in characters';
COMMENT ON COLUMN dms.profile_column.max_length IS 'Longest string, in characters';
COMMENT ON COLUMN dms.profile_column.histogram IS 'Number and date columns: 10 equal-width buckets [{"lo", "hi", "count"}], the last one closed';
