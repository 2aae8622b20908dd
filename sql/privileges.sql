-- Privileges, applied last on every install (STYLE.md §5): revoke from
-- PUBLIC, then grant per role.  Re-running it converges to the same ACLs.

REVOKE ALL ON SCHEMA dms, pkgdwmapr, pkgdwjob, pkgdwprc FROM PUBLIC;
GRANT USAGE ON SCHEMA dms, pkgdwmapr, pkgdwjob, pkgdwprc TO dms_viewer;

REVOKE ALL ON ALL TABLES IN SCHEMA dms FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA dms FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA dms, pkgdwmapr, pkgdwjob, pkgdwprc FROM PUBLIC;
REVOKE ALL ON ALL PROCEDURES IN SCHEMA dms, pkgdwmapr, pkgdwjob, pkgdwprc FROM PUBLIC;

-- Viewers read every DMS table and view.
GRANT SELECT ON ALL TABLES IN SCHEMA dms TO dms_viewer;

-- Administrators maintain the configuration tables directly; everything
-- else is written by the package's own (SECURITY DEFINER) functions.
GRANT INSERT, UPDATE, DELETE ON dms.dms_params, dms.dms_dbcondtls TO dms_admin;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA dms TO dms_admin;

-- Functions, by the least role that needs them.
GRANT EXECUTE ON FUNCTION dms.version() TO dms_viewer;
GRANT EXECUTE ON FUNCTION dms.check_install() TO dms_operator;
GRANT EXECUTE ON FUNCTION dms.plan_chunks(text, text, text, integer, bigint, text) TO dms_operator;
