-- Progress views: what people watch while a run goes (DESIGN §1).
-- Computed from dms.chunk on every read, so they are live from any session
-- and never disagree with the queue itself.

DROP VIEW IF EXISTS dms.run_progress;
CREATE VIEW dms.run_progress AS
SELECT r.run_id,
       r.label,
       r.state,
       r.path,
       r.strategy,
       r.workers_planned AS workers,
       c.chunks_total,
       c.chunks_pending,
       c.chunks_running,
       c.chunks_done,
       c.chunks_failed,
       c.rows_done,
       r.estimated_rows,
       c.bytes_done,
       round(CASE WHEN r.state = 'SUCCEEDED' THEN 100
                  WHEN c.est_total > 0 THEN 100.0 * c.est_done / c.est_total
                  WHEN c.chunks_total > 0 THEN 100.0 * c.chunks_finished / c.chunks_total
                  ELSE 0 END, 1) AS percent,
       coalesce(r.ended_at, clock_timestamp()) - r.started_at AS elapsed,
       round(c.rows_done / nullif(extract(epoch FROM coalesce(r.ended_at, clock_timestamp())
                                                      - r.started_at), 0)) AS rows_per_sec,
       -- The ETA extrapolates from chunks that moved rows: an empty chunk (the
       -- NULL-key one, say) is done in no time and would predict days.
       CASE WHEN r.state IN ('RUNNING', 'STOPPING') AND c.eta_done > 0 AND c.eta_total > c.eta_done
            THEN (clock_timestamp() - r.started_at) * ((c.eta_total - c.eta_done)::float8 / c.eta_done)
       END AS eta,
       r.started_at,
       r.ended_at,
       r.message,
       r.parallel_note,
       r.refused_reason,
       r.created_by,
       r.notes
  FROM dms.run r
  LEFT JOIN LATERAL (
        SELECT count(*) AS chunks_total,
               count(*) FILTER (WHERE ch.state = 'PENDING') AS chunks_pending,
               count(*) FILTER (WHERE ch.state = 'RUNNING') AS chunks_running,
               count(*) FILTER (WHERE ch.state = 'DONE') AS chunks_done,
               count(*) FILTER (WHERE ch.state = 'FAILED') AS chunks_failed,
               count(*) FILTER (WHERE ch.state IN ('DONE', 'FAILED')) AS chunks_finished,
               coalesce(sum(ch.rows) FILTER (WHERE ch.state = 'DONE'), 0) AS rows_done,
               sum(ch.bytes) FILTER (WHERE ch.state = 'DONE') AS bytes_done,
               -- progress in expected rows: a chunk counts with its estimate
               -- (at least 1, so empty-looking chunks still move the bar)
               coalesce(sum(greatest(ch.estimated_rows, 1))
                        FILTER (WHERE ch.state IN ('DONE', 'FAILED')), 0) AS est_done,
               coalesce(sum(greatest(ch.estimated_rows, 1)), 0) AS est_total,
               -- the ETA's weights: the rows of finished chunks that loaded any
               -- (their estimate, else what they loaded), against the estimate
               -- of every chunk expected to hold rows
               coalesce(sum(greatest(ch.estimated_rows, ch.rows))
                        FILTER (WHERE ch.state IN ('DONE', 'FAILED')
                                AND greatest(ch.estimated_rows, ch.rows) > 0), 0) AS eta_done,
               coalesce(sum(CASE WHEN ch.state IN ('DONE', 'FAILED')
                                 THEN greatest(ch.estimated_rows, ch.rows)
                                 ELSE ch.estimated_rows END)
                        FILTER (WHERE greatest(ch.estimated_rows, ch.rows) > 0), 0) AS eta_total
          FROM dms.chunk ch
         WHERE ch.run_id = r.run_id) c ON true;
COMMENT ON VIEW dms.run_progress IS
    'One row per run: state, chunks by state, rows done, rows/s, percent, elapsed and ETA; live from any session';
COMMENT ON COLUMN dms.run_progress.run_id IS 'Run id';
COMMENT ON COLUMN dms.run_progress.label IS 'What the run moves: source -> target';
COMMENT ON COLUMN dms.run_progress.state IS 'QUEUED, RUNNING, SUCCEEDED, PARTIAL, FAILED, STOPPING or STOPPED';
COMMENT ON COLUMN dms.run_progress.path IS 'Data path: same_db, copy_binary, copy_text or rows';
COMMENT ON COLUMN dms.run_progress.strategy IS 'Chunk strategy';
COMMENT ON COLUMN dms.run_progress.workers IS 'Worker sessions the run uses';
COMMENT ON COLUMN dms.run_progress.chunks_total IS 'Chunks in the run';
COMMENT ON COLUMN dms.run_progress.chunks_pending IS 'Chunks waiting for a worker';
COMMENT ON COLUMN dms.run_progress.chunks_running IS 'Chunks being moved now';
COMMENT ON COLUMN dms.run_progress.chunks_done IS 'Chunks loaded';
COMMENT ON COLUMN dms.run_progress.chunks_failed IS 'Chunks that failed';
COMMENT ON COLUMN dms.run_progress.rows_done IS 'Rows loaded so far';
COMMENT ON COLUMN dms.run_progress.estimated_rows IS 'Rows the server estimated for the source query';
COMMENT ON COLUMN dms.run_progress.bytes_done IS 'Bytes streamed so far (COPY paths)';
COMMENT ON COLUMN dms.run_progress.percent IS 'Progress in percent, weighted by the chunks'' estimated rows';
COMMENT ON COLUMN dms.run_progress.elapsed IS 'Time since the run started (until it ended)';
COMMENT ON COLUMN dms.run_progress.rows_per_sec IS 'Rows loaded per second of elapsed time';
COMMENT ON COLUMN dms.run_progress.eta IS 'Estimated time left, from the chunks done so far that held rows (NULL until one did)';
COMMENT ON COLUMN dms.run_progress.started_at IS 'When the run started';
COMMENT ON COLUMN dms.run_progress.ended_at IS 'When the run ended';
COMMENT ON COLUMN dms.run_progress.message IS 'Outcome: a summary, or the failed chunks and why';
COMMENT ON COLUMN dms.run_progress.parallel_note IS 'Why the run uses fewer workers than asked';
COMMENT ON COLUMN dms.run_progress.refused_reason IS 'Why the source query was not split';
COMMENT ON COLUMN dms.run_progress.created_by IS 'Login that started the run';
COMMENT ON COLUMN dms.run_progress.notes IS 'Warnings from planning: side-effecting functions in the source query, missing or stale statistics';

DROP VIEW IF EXISTS dms.chunk_progress;
CREATE VIEW dms.chunk_progress AS
SELECT ch.run_id,
       ch.chunk_no,
       ch.state,
       ch.kind,
       ch.lo,
       ch.hi,
       ch.estimated_rows,
       ch.rows,
       ch.bytes,
       ch.attempts,
       ch.worker_pid,
       ch.started_at,
       ch.ended_at,
       coalesce(ch.ended_at, CASE WHEN ch.state = 'RUNNING' THEN clock_timestamp() END)
           - ch.started_at AS duration,
       round(ch.rows / nullif(extract(epoch FROM ch.ended_at - ch.started_at), 0)) AS rows_per_sec,
       ch.retry_at,
       ch.sqlstate,
       ch.last_error,
       ch.predicate_sql
  FROM dms.chunk ch;
COMMENT ON VIEW dms.chunk_progress IS
    'One row per chunk: state, bounds, rows, attempts, worker pid, timing and the last error';
COMMENT ON COLUMN dms.chunk_progress.run_id IS 'Run id';
COMMENT ON COLUMN dms.chunk_progress.chunk_no IS 'Chunk number within the run';
COMMENT ON COLUMN dms.chunk_progress.state IS 'PENDING, RUNNING, DONE or FAILED';
COMMENT ON COLUMN dms.chunk_progress.kind IS 'range, null, point, tid, bucket, offset or all';
COMMENT ON COLUMN dms.chunk_progress.lo IS 'Lower bound';
COMMENT ON COLUMN dms.chunk_progress.hi IS 'Upper bound';
COMMENT ON COLUMN dms.chunk_progress.estimated_rows IS 'Rows expected in the chunk';
COMMENT ON COLUMN dms.chunk_progress.rows IS 'Rows loaded';
COMMENT ON COLUMN dms.chunk_progress.bytes IS 'Bytes streamed (COPY paths)';
COMMENT ON COLUMN dms.chunk_progress.attempts IS 'Times a worker took the chunk';
COMMENT ON COLUMN dms.chunk_progress.worker_pid IS 'Backend pid of the worker that took it last';
COMMENT ON COLUMN dms.chunk_progress.started_at IS 'When the last attempt started';
COMMENT ON COLUMN dms.chunk_progress.ended_at IS 'When the chunk was done or failed';
COMMENT ON COLUMN dms.chunk_progress.duration IS 'How long the last attempt took (so far, while running)';
COMMENT ON COLUMN dms.chunk_progress.rows_per_sec IS 'Rows loaded per second';
COMMENT ON COLUMN dms.chunk_progress.retry_at IS 'Not retried before this time (backoff after a transient failure)';
COMMENT ON COLUMN dms.chunk_progress.sqlstate IS 'SQLSTATE of the last error';
COMMENT ON COLUMN dms.chunk_progress.last_error IS 'Message of the last error';
COMMENT ON COLUMN dms.chunk_progress.predicate_sql IS 'The filter that selects the chunk''s rows';
