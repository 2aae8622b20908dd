-- Runs first on every install, before the numbered migrations.  Idempotent:
-- it creates only what the migration machinery itself stands on (the dms
-- schema, the version tables) and the three cluster-wide roles (DESIGN §6).

CREATE SCHEMA IF NOT EXISTS dms;
COMMENT ON SCHEMA dms IS 'DMS (data movement system): metadata tables, run state and progress views of dms_pkg';

CREATE TABLE IF NOT EXISTS dms.schema_migration (
    version          integer     NOT NULL,
    name             text        NOT NULL,
    checksum         text        NOT NULL,
    package_version  text        NOT NULL,
    applied_at       timestamptz NOT NULL DEFAULT now(),
    applied_by       text        NOT NULL DEFAULT session_user,
    CONSTRAINT schema_migration_pk PRIMARY KEY (version)
);
COMMENT ON TABLE dms.schema_migration IS 'Numbered migrations applied to this database, each once, with the checksum that freezes it';
COMMENT ON COLUMN dms.schema_migration.version IS 'Migration number (the file''s numeric prefix)';
COMMENT ON COLUMN dms.schema_migration.name IS 'Migration file name';
COMMENT ON COLUMN dms.schema_migration.checksum IS 'SHA-256 of the migration file as applied; a changed released file is refused';
COMMENT ON COLUMN dms.schema_migration.package_version IS 'dms_pkg version that applied the migration';
COMMENT ON COLUMN dms.schema_migration.applied_at IS 'When the migration was applied';
COMMENT ON COLUMN dms.schema_migration.applied_by IS 'Login that applied the migration';

CREATE TABLE IF NOT EXISTS dms.install_state (
    singleton        boolean     NOT NULL DEFAULT true,
    package_version  text        NOT NULL,
    code_checksum    text        NOT NULL,
    installed_at     timestamptz NOT NULL DEFAULT now(),
    installed_by     text        NOT NULL DEFAULT session_user,
    CONSTRAINT install_state_pk PRIMARY KEY (singleton),
    CONSTRAINT install_state_singleton_ck CHECK (singleton)
);
COMMENT ON TABLE dms.install_state IS 'The dms_pkg version whose functions and views are installed here (one row)';
COMMENT ON COLUMN dms.install_state.singleton IS 'Always true: keeps the table to one row';
COMMENT ON COLUMN dms.install_state.package_version IS 'dms_pkg version of the installed SQL API';
COMMENT ON COLUMN dms.install_state.code_checksum IS 'SHA-256 of the SQL API as installed; equal checksum means a re-install has nothing to do';
COMMENT ON COLUMN dms.install_state.installed_at IS 'When the SQL API was last (re)installed';
COMMENT ON COLUMN dms.install_state.installed_by IS 'Login that last (re)installed it';

-- Roles are cluster-wide, so they may already exist from another database's
-- install.  Each role inherits the one below it: admin ⊃ operator ⊃ viewer.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'dms_viewer') THEN
        CREATE ROLE dms_viewer NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'dms_operator') THEN
        CREATE ROLE dms_operator NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'dms_admin') THEN
        CREATE ROLE dms_admin NOLOGIN;
    END IF;
    IF NOT pg_catalog.pg_has_role('dms_operator', 'dms_viewer', 'MEMBER') THEN
        GRANT dms_viewer TO dms_operator;
    END IF;
    IF NOT pg_catalog.pg_has_role('dms_admin', 'dms_operator', 'MEMBER') THEN
        GRANT dms_operator TO dms_admin;
    END IF;
END
$roles$;
COMMENT ON ROLE dms_viewer IS 'dms_pkg viewer: reads DMS tables, progress views and logs';
COMMENT ON ROLE dms_operator IS 'dms_pkg operator: runs, stops and resumes jobs (inherits dms_viewer)';
COMMENT ON ROLE dms_admin IS 'dms_pkg administrator: connections, parameters, mappings (inherits dms_operator)';
