-- 0003: what exactly-once loading, consistent reads and safe truncate-and-load need
-- (DESIGN §3 "Correctness and recovery").

ALTER TABLE dms.run
    ADD COLUMN snapshot_id    text,
    ADD COLUMN snapshot_at    timestamptz,
    ADD COLUMN snapshot_note  text,
    ADD COLUMN staging_table  text,
    ADD COLUMN checkpoint_value text,
    ADD COLUMN finalized_at   timestamptz;
COMMENT ON COLUMN dms.run.snapshot_id IS 'Exported snapshot (pg_export_snapshot) every worker reads the source with; NULL when reads are not pinned';
COMMENT ON COLUMN dms.run.snapshot_at IS 'When the snapshot was taken: the target equals the source as of this moment';
COMMENT ON COLUMN dms.run.snapshot_note IS 'Set when a resumed run could not use its first snapshot and read the rest as of a new one';
COMMENT ON COLUMN dms.run.staging_table IS 'Truncate-and-load: the table chunks load into, swapped in for the target when every chunk is done';
COMMENT ON COLUMN dms.run.checkpoint_value IS 'Incremental loads: the largest checkpoint-column value the run reads (as of its snapshot); the job''s checkpoint moves there when the run succeeds';
COMMENT ON COLUMN dms.run.finalized_at IS 'When the run''s last step (staging swap, ledger clean-up) was done';

ALTER TABLE dms.chunk
    ADD COLUMN source_pid integer,
    ADD COLUMN target_pid integer,
    ADD COLUMN stats      jsonb;
COMMENT ON COLUMN dms.chunk.source_pid IS 'Backend pid, on the source server, of the connection reading this chunk (to cancel it)';
COMMENT ON COLUMN dms.chunk.target_pid IS 'Backend pid, on the target server, of the connection writing this chunk (to cancel it)';
COMMENT ON COLUMN dms.chunk.stats IS 'Merge loads: rows inserted, updated in place and expired (closed versions) by the chunk';

CREATE TABLE dms.chunk_reject (
    run_id    bigint      NOT NULL,
    chunk_no  integer     NOT NULL,
    seq       integer     NOT NULL,
    key_value text        NOT NULL,
    sqlstate  text,
    message   text        NOT NULL,
    found_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT chunk_reject_pk PRIMARY KEY (run_id, chunk_no, seq),
    CONSTRAINT chunk_reject_chunk_fk FOREIGN KEY (run_id, chunk_no)
        REFERENCES dms.chunk (run_id, chunk_no) ON DELETE CASCADE
);
COMMENT ON TABLE dms.chunk_reject IS 'Rows the target refused in a failed chunk, each with its business key and the database message (mapper runs copy them to DMS_JOBERR)';
COMMENT ON COLUMN dms.chunk_reject.run_id IS 'Run id';
COMMENT ON COLUMN dms.chunk_reject.chunk_no IS 'Chunk number';
COMMENT ON COLUMN dms.chunk_reject.seq IS 'Order in which the row was found';
COMMENT ON COLUMN dms.chunk_reject.key_value IS 'Business key of the refused row, as text';
COMMENT ON COLUMN dms.chunk_reject.sqlstate IS 'SQLSTATE the target gave';
COMMENT ON COLUMN dms.chunk_reject.message IS 'Message the target gave';
COMMENT ON COLUMN dms.chunk_reject.found_at IS 'When the row was found';

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
