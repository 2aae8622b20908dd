-- 0007: what a run says about itself before it starts (issue 15).
--
-- A source query can be right and still deserve a warning: it calls functions
-- that change data (their effects repeat when a chunk is retried or resumed),
-- or the statistics that sized the run were never gathered.  The planner says
-- so in a NOTICE and keeps it here, so that whoever looks at the run later
-- (dms.run_progress) sees it too.

ALTER TABLE dms.run ADD COLUMN notes text[] NOT NULL DEFAULT '{}';
COMMENT ON COLUMN dms.run.notes IS 'Warnings the planner gave when it recorded the run: side-effecting or VOLATILE functions in the source query, missing or stale statistics on a table it reads';
