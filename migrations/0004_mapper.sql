-- 0004: what the mapper packages (PKGDWMAPR, PKGDWJOB, PKGDWPRC) add to the engine.

ALTER TABLE dms.run
    ADD COLUMN prcid    bigint REFERENCES dms.dms_prclog (prcid),
    ADD COLUMN mapcmbcd text;
CREATE INDEX run_prcid_ix ON dms.run (prcid) WHERE prcid IS NOT NULL;
COMMENT ON COLUMN dms.run.prcid IS 'Job process (DMS_PRCLOG.PRCID) the run is a step of, for mapper jobs';
COMMENT ON COLUMN dms.run.mapcmbcd IS 'Mapping combination (MAPCMBCD) the run loads, for mapper jobs';

CREATE INDEX dms_jobsch_due_ix ON dms.dms_jobsch (nxtrundt) WHERE curflg = 'Y' AND stflg = 'A';

-- Datatype codes of mapping details (TRGCLDTYP), per target database type
-- (PRTYP = DBTYP); administrators add their own.  PRTYP 'DATATYPE' holds codes
-- that apply to every database type.
INSERT INTO dms.dms_params (prtyp, prcd, prdesc, prval) VALUES
    ('POSTGRESQL', 'INTEGER',    'Whole number (4 bytes)',              'integer'),
    ('POSTGRESQL', 'BIGINT',     'Whole number (8 bytes)',              'bigint'),
    ('POSTGRESQL', 'NUMBER',     'Exact number, any precision',         'numeric'),
    ('POSTGRESQL', 'MONEY',      'Amount with 2 decimals',              'numeric(18,2)'),
    ('POSTGRESQL', 'FLOAT',      'Floating point (8 bytes)',            'double precision'),
    ('POSTGRESQL', 'STRING',     'Text of any length',                  'text'),
    ('POSTGRESQL', 'VARCHAR30',  'Text up to 30 characters',            'varchar(30)'),
    ('POSTGRESQL', 'VARCHAR100', 'Text up to 100 characters',           'varchar(100)'),
    ('POSTGRESQL', 'VARCHAR255', 'Text up to 255 characters',           'varchar(255)'),
    ('POSTGRESQL', 'CHAR1',      'One character (flags)',               'char(1)'),
    ('POSTGRESQL', 'DATE',       'Calendar date',                       'date'),
    ('POSTGRESQL', 'TIMESTAMP',  'Date and time without time zone',     'timestamp'),
    ('POSTGRESQL', 'TIMESTAMPTZ','Date and time with time zone',        'timestamptz'),
    ('POSTGRESQL', 'BOOLEAN',    'True or false',                       'boolean'),
    ('POSTGRESQL', 'JSON',       'JSON document',                       'jsonb'),
    ('POSTGRESQL', 'UUID',       'UUID',                                'uuid')
ON CONFLICT (prtyp, prcd) DO NOTHING;

-- DMS_JOBLOG holds one summary row per job run (process); the per-combination
-- and per-chunk detail is in dms.run / dms.chunk (dms.run.prcid, mapcmbcd).
COMMENT ON TABLE dms.dms_joblog IS 'DMS job log (JOBLOG): one summary row per job run (process) with its row counts; per-combination and per-chunk detail in dms.run and dms.chunk (dms.run.prcid)';
COMMENT ON COLUMN dms.dms_joblog.mapcmbcd IS 'Mapping combination code (MAPCMBCD): NULL on the summary row of a job run';
COMMENT ON COLUMN dms.dms_joblog.srcrows IS 'Source rows (SRCROWS): rows read by the chunks that loaded, summed over the combinations';
COMMENT ON COLUMN dms.dms_joblog.trgrows IS 'Target rows (TRGROWS): rows written: inserted rows and new versions, expired versions, rows updated in place';
COMMENT ON COLUMN dms.dms_joblog.errrows IS 'Error rows (ERRROWS): rows the target refused, listed in DMS_JOBERR';
