-- Core functions.  PL/Python bodies are filled in at build time from
-- plpy/<name>.py (see dms_pkg.install.bundle), behind a preamble that puts the server-side copy of
-- dms_pkg first on sys.path and checks its version (STYLE.md §1).

CREATE OR REPLACE FUNCTION dms.version()
RETURNS text
LANGUAGE plpython3u
STABLE PARALLEL SAFE
-- SECURITY DEFINER: untrusted PL/Python entry points run with a fixed
-- search_path as the installing role (DESIGN §6); this one only reports.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $plpy$@plpy(version)$plpy$;
COMMENT ON FUNCTION dms.version() IS
    'Version of the dms_pkg Python core that this server''s PL/Python runs (must equal the installed SQL API)';

CREATE OR REPLACE FUNCTION dms.check_install()
RETURNS TABLE (check_name text, ok boolean, detail text)
LANGUAGE plpython3u
VOLATILE PARALLEL UNSAFE
-- SECURITY DEFINER so an operator can see server-side facts (library path,
-- extensions) without superuser; the body checks the caller's role first.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $plpy$@plpy(check_install)$plpy$;
COMMENT ON FUNCTION dms.check_install() IS
    'Diagnoses the installation: extensions, server-side Python library, versions, pg_cron (operator role)';
