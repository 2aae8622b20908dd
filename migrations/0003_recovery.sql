-- 0003: what exactly-once loading, consistent reads and safe truncate-and-load need
-- (DESIGN §3 "Correctness and recovery").

ALTER TABLE dms.run
    ADD COLUMN snapshot_id    text,
    ADD COLUMN snapshot_at    timestamptz,
    ADD COLUMN snapshot_note  text,
    ADD COLUMN staging_table  text,
    ADD COLUMN finalized_at   timestamptz;
COMMENT ON COLUMN dms.run.snapshot_id IS 'Exported snapshot (pg_export_snapshot) every worker reads the source with; NULL when reads are not pinned';
COMMENT ON COLUMN dms.run.snapshot_at IS 'When the snapshot was taken: the target equals the source as of this moment';
COMMENT ON COLUMN dms.run.snapshot_note IS 'Set when a resumed run could not use its first snapshot and read the rest as of a new one';
COMMENT ON COLUMN dms.run.staging_table IS 'Truncate-and-load: the table chunks load into, swapped in for the target when every chunk is done';
COMMENT ON COLUMN dms.run.finalized_at IS 'When the run''s last step (staging swap, ledger clean-up) was done';

ALTER TABLE dms.chunk
    ADD COLUMN source_pid integer,
    ADD COLUMN target_pid integer;
COMMENT ON COLUMN dms.chunk.source_pid IS 'Backend pid, on the source server, of the connection reading this chunk (to cancel it)';
COMMENT ON COLUMN dms.chunk.target_pid IS 'Backend pid, on the target server, of the connection writing this chunk (to cancel it)';

-- The chunk ledger: a row per loaded chunk, written in the same transaction
-- as the chunk's rows, in the target database.  A retried or resumed chunk
-- that finds its row is not loaded again; two workers racing on one chunk
-- cannot both commit (primary key).  Target databases without dms get the
-- same schema and table from the engine when a run first loads into them --
-- which may be before dms is installed here, hence IF NOT EXISTS.
CREATE SCHEMA IF NOT EXISTS dms_ledger;
COMMENT ON SCHEMA dms_ledger IS 'DMS chunk ledger: which chunks of which runs are committed in this database';
CREATE TABLE IF NOT EXISTS dms_ledger.chunk_ledger (
    run_uuid      uuid        NOT NULL,
    chunk_no      integer     NOT NULL,
    rows          bigint      NOT NULL,
    committed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT chunk_ledger_pk PRIMARY KEY (run_uuid, chunk_no)
);
COMMENT ON TABLE dms_ledger.chunk_ledger IS 'Chunks committed into this database, each once: written with the chunk''s rows in one transaction';
COMMENT ON COLUMN dms_ledger.chunk_ledger.run_uuid IS 'Run UUID (dms.run.run_uuid of the database that coordinates the run)';
COMMENT ON COLUMN dms_ledger.chunk_ledger.chunk_no IS 'Chunk number within the run';
COMMENT ON COLUMN dms_ledger.chunk_ledger.rows IS 'Rows the chunk loaded';
COMMENT ON COLUMN dms_ledger.chunk_ledger.committed_at IS 'When the chunk committed';
