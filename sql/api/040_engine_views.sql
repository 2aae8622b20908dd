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
       CASE WHEN r.state IN ('RUNNING', 'STOPPING') AND c.est_done > 0 AND c.est_total > c.est_done
            THEN (clock_timestamp() - r.started_at) * ((c.est_total - c.est_done)::float8 / c.est_done)
       END AS eta,
       r.started_at,
       r.ended_at,
       r.message,
       r.parallel_note,
       r.refused_reason,
       r.created_by
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
               coalesce(sum(greatest(ch.estimated_rows, 1)), 0) AS est_total
          FROM dms.chunk ch
         WHERE ch.run_id = r.run_id) c ON true;
COMMENT ON VIEW dms.run_progress IS
    'One row per run: state, chunks by state, rows done, rows/s, percent, elapsed and ETA; live from any session';

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
