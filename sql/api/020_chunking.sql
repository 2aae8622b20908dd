-- The chunk planner seen from SQL (DESIGN §3 "Chunking").

CREATE OR REPLACE FUNCTION dms.plan_chunks(
    p_sql        text,
    p_dialect    text    DEFAULT 'postgres',
    p_key        text    DEFAULT NULL,
    p_chunks     integer DEFAULT NULL,
    p_chunk_size bigint  DEFAULT NULL,
    p_strategy   text    DEFAULT 'auto'
)
RETURNS TABLE (
    chunk_no       integer,
    strategy       text,
    kind           text,
    predicate_sql  text,
    lo             text,
    hi             text,
    estimated_rows bigint,
    params         json,   -- json, not jsonb: keeps the bind order ($1, $2, ...)
    driving_table  text,
    chunk_key      text,
    refused_reason text,
    notes          text,
    query_sql      text
)
LANGUAGE plpython3u
VOLATILE PARALLEL UNSAFE
-- SECURITY INVOKER on purpose: it reads statistics of the caller's tables,
-- so the caller's search_path must resolve the names in p_sql and the
-- caller's privileges must apply.  The body checks the caller's role first
-- and schema-qualifies every name of its own.
SECURITY INVOKER
AS $plpy$@plpy(plan_chunks)$plpy$;
COMMENT ON FUNCTION dms.plan_chunks(text, text, text, integer, bigint, text) IS
    'Chunk plan of a source query without running it: one row per chunk with its predicate, bounds, estimated rows and strategy, or the reason chunking was refused (operator role). p_dialect postgres is measured on this database; other dialects are planned without statistics.';
