-- 0011: results of schema-diff and table-compare run from SQL (issue 13), one row per
-- check run and one per pair, so that pg_cron can run them nightly and people query them.

CREATE TABLE dms.check_run (
    check_id    bigint GENERATED ALWAYS AS IDENTITY,
    kind        text        NOT NULL,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz NOT NULL,
    pairs       integer     NOT NULL,
    equal       integer     NOT NULL,
    different   integer     NOT NULL,
    errors      integer     NOT NULL,
    created_by  text        NOT NULL DEFAULT session_user,
    CONSTRAINT check_run_pk PRIMARY KEY (check_id),
    CONSTRAINT check_run_kind_ck CHECK (kind IN ('schema-diff', 'table-compare'))
);
COMMENT ON TABLE dms.check_run IS 'Check runs from SQL (dms.schema_diff, dms.compare_tables): one row per call';
COMMENT ON COLUMN dms.check_run.check_id IS 'Check run id';
COMMENT ON COLUMN dms.check_run.kind IS 'schema-diff or table-compare';
COMMENT ON COLUMN dms.check_run.started_at IS 'When the call started';
COMMENT ON COLUMN dms.check_run.ended_at IS 'When it ended';
COMMENT ON COLUMN dms.check_run.pairs IS 'Pairs it was given';
COMMENT ON COLUMN dms.check_run.equal IS 'Pairs found equal';
COMMENT ON COLUMN dms.check_run.different IS 'Pairs found different';
COMMENT ON COLUMN dms.check_run.errors IS 'Pairs that could not be compared';
COMMENT ON COLUMN dms.check_run.created_by IS 'Login that ran it';

CREATE TABLE dms.check_result (
    check_id  bigint  NOT NULL REFERENCES dms.check_run (check_id) ON DELETE CASCADE,
    seq       integer NOT NULL,
    pair      text    NOT NULL,
    status    text    NOT NULL,
    result    jsonb   NOT NULL,
    CONSTRAINT check_result_pk PRIMARY KEY (check_id, seq),
    CONSTRAINT check_result_status_ck CHECK (status IN ('equal', 'different', 'error'))
);
COMMENT ON TABLE dms.check_result IS 'One row per pair of a check run';
COMMENT ON COLUMN dms.check_result.check_id IS 'Check run (dms.check_run)';
COMMENT ON COLUMN dms.check_result.seq IS 'Position of the pair in the call, from 1';
COMMENT ON COLUMN dms.check_result.pair IS 'The pair as given (A:B)';
COMMENT ON COLUMN dms.check_result.status IS 'equal, different or error';
COMMENT ON COLUMN dms.check_result.result IS 'The pair''s result, in the JSON shape of docs/schema-diff.md or docs/table-compare.md (differences, keys, error)';
