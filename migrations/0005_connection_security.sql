-- 0005: who may use a connection, where worker sessions log in, and no secret in CONSTR
-- (DESIGN §6; docs/roles.md "Trust model").

-- Using a DMS_DBCONDTLS connection is a privilege, granted per role like a
-- foreign server's user mapping.  Rows are written only through
-- dms.grant_connection / dms.revoke_connection (administrators).
CREATE TABLE dms.dms_dbconusr (
    conid      bigint      NOT NULL,
    grantee    text        NOT NULL,
    grntdby    text        NOT NULL DEFAULT session_user,
    grntdt     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT dms_dbconusr_pk PRIMARY KEY (conid, grantee),
    CONSTRAINT dms_dbconusr_conid_fk FOREIGN KEY (conid)
        REFERENCES dms.dms_dbcondtls (conid) ON DELETE CASCADE
);
COMMENT ON TABLE dms.dms_dbconusr IS 'DMS database connection users (DBCONUSR): which roles may use which DMS_DBCONDTLS connection as a source or target';
COMMENT ON COLUMN dms.dms_dbconusr.conid IS 'Connection id (CONID) in DMS_DBCONDTLS';
COMMENT ON COLUMN dms.dms_dbconusr.grantee IS 'Role (GRANTEE) whose members may use the connection; PUBLIC for every dms_operator';
COMMENT ON COLUMN dms.dms_dbconusr.grntdby IS 'Granted by (GRNTDBY): the administrator who granted it';
COMMENT ON COLUMN dms.dms_dbconusr.grntdt IS 'Granted date (GRNTDT)';

-- Where worker and data sessions connect back to this server.  NULL host and
-- port mean "the server's own first Unix socket directory and port"; only a
-- superuser may change them (dms.set_loopback), never a session setting.
CREATE TABLE dms.loopback (
    singleton  boolean     NOT NULL DEFAULT true,
    host       text,
    port       integer,
    set_by     text        NOT NULL DEFAULT session_user,
    set_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT loopback_pk PRIMARY KEY (singleton),
    CONSTRAINT loopback_singleton_ck CHECK (singleton),
    CONSTRAINT loopback_port_ck CHECK (port BETWEEN 1 AND 65535)
);
INSERT INTO dms.loopback (singleton) VALUES (true);
COMMENT ON TABLE dms.loopback IS 'Where worker sessions connect back to this server (one row; superusers only change it, with dms.set_loopback)';
COMMENT ON COLUMN dms.loopback.singleton IS 'Always true: keeps the table to one row';
COMMENT ON COLUMN dms.loopback.host IS 'Host or Unix socket directory workers connect to; NULL = the first of unix_socket_directories';
COMMENT ON COLUMN dms.loopback.port IS 'Port workers connect to; NULL = this server''s port';
COMMENT ON COLUMN dms.loopback.set_by IS 'Superuser who last set it';
COMMENT ON COLUMN dms.loopback.set_at IS 'When it was last set';

-- The CONSTR check moves to a trigger that parses the string with libpq's
-- own parser (URIs, percent-encoded keys, sslpassword...) and, unlike a
-- CHECK, never echoes the refused row in its error.
ALTER TABLE dms.dms_dbcondtls DROP CONSTRAINT dms_dbcondtls_no_password_ck;
