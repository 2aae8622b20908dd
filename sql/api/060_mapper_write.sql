-- The mapper packages' writes to the DMS tables (DESIGN §4, §6).
--
-- pkgdwmapr / pkgdwjob / pkgdwprc run as their caller: they EXPLAIN the
-- caller's queries and create and load the caller's tables with the caller's
-- privileges.  Callers cannot write the DMS tables themselves; this definer
-- function is the only way in.  It runs a fixed set of named operations
-- (dms_pkg.mapper.writes.OPERATIONS), checks the caller's role for each, and
-- binds every value: the caller chooses values, never SQL.

CREATE OR REPLACE FUNCTION dms._write(p_op text, p_args jsonb DEFAULT '{}')
RETURNS jsonb
LANGUAGE plpython3u
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $plpy$@plpy(write)$plpy$;
COMMENT ON FUNCTION dms._write(text, jsonb) IS
    'Internal: the mapper packages'' writes to DMS tables (historised definitions, process logs, schedules, requests); each operation checks the caller''s role';
