-- Connections (DMS_DBCONDTLS) as a privilege, the loopback route workers use,
-- and the check that keeps secrets out of CONSTR (DESIGN §6, docs/roles.md).

CREATE OR REPLACE FUNCTION dms._check_dbcondtls()
RETURNS trigger
LANGUAGE plpython3u
VOLATILE PARALLEL UNSAFE
-- SECURITY DEFINER only for the SET below: log_min_error_statement is a
-- superuser setting.  A refused row's statement holds the very secret we
-- refuse, and the server would log it beside the error (STATEMENT: ...); the
-- setting stays in force until the error has been reported.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET log_min_error_statement = panic
AS $plpy$@plpy(check_dbcondtls)$plpy$;
COMMENT ON FUNCTION dms._check_dbcondtls() IS
    'Internal (trigger): refuse a DMS_DBCONDTLS row whose CONSTR holds a secret (parsed with libpq''s own parser), without echoing it';

CREATE OR REPLACE TRIGGER dms_dbcondtls_no_secret
    BEFORE INSERT OR UPDATE OF constr, dbtyp ON dms.dms_dbcondtls
    FOR EACH ROW EXECUTE FUNCTION dms._check_dbcondtls();

CREATE OR REPLACE FUNCTION dms.grant_connection(p_conid bigint, p_role text)
RETURNS void
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
-- SECURITY DEFINER: administrators may not write dms.dms_dbconusr directly.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_role text := CASE WHEN upper(p_role) = 'PUBLIC' THEN 'PUBLIC' ELSE p_role END;
BEGIN
    PERFORM dms._require_role('dms_admin');
    IF NOT EXISTS (SELECT FROM dms.dms_dbcondtls WHERE conid = p_conid AND curflg = 'Y') THEN
        RAISE EXCEPTION 'dms: connection % does not exist in DMS_DBCONDTLS (or is not current)', p_conid
            USING ERRCODE = '42704',
                  HINT = 'SELECT conid, connm, dbtyp FROM dms.dms_dbcondtls WHERE curflg = ''Y'' lists the connections';
    END IF;
    IF v_role IS DISTINCT FROM 'PUBLIC'
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = v_role) THEN
        RAISE EXCEPTION 'dms: role "%" does not exist', v_role
            USING ERRCODE = '42704', HINT = 'name an existing role (case-sensitive), or PUBLIC';
    END IF;
    INSERT INTO dms.dms_dbconusr (conid, grantee) VALUES (p_conid, v_role)
    ON CONFLICT (conid, grantee) DO NOTHING;
END
$fn$;
COMMENT ON FUNCTION dms.grant_connection(bigint, text) IS
    'Let the members of a role (or PUBLIC: every operator) use connection p_conid as a source or target (admin role)';

CREATE OR REPLACE FUNCTION dms.revoke_connection(p_conid bigint, p_role text)
RETURNS void
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM dms._require_role('dms_admin');
    DELETE FROM dms.dms_dbconusr
     WHERE conid = p_conid
       AND grantee = CASE WHEN upper(p_role) = 'PUBLIC' THEN 'PUBLIC' ELSE p_role END;
END
$fn$;
COMMENT ON FUNCTION dms.revoke_connection(bigint, text) IS
    'Take back a role''s use of connection p_conid (admin role)';

CREATE OR REPLACE FUNCTION dms.connection_for_use(p_conid bigint)
RETURNS TABLE (conid bigint, connm text, dbtyp text, dbhost text, dbport integer,
               dbsrvnm text, usrnm text, constr text, pwdsrc text, pwdref text)
LANGUAGE plpgsql
STABLE PARALLEL SAFE
-- SECURITY DEFINER with a fixed search_path: the grant check must not run in
-- the caller's search_path, where its operators and functions could be
-- replaced by the caller's own.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_connm text;
BEGIN
    PERFORM dms._require_role('dms_operator');
    SELECT c.connm INTO v_connm FROM dms.dms_dbcondtls c WHERE c.conid = p_conid AND c.curflg = 'Y';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dms: connection % does not exist in DMS_DBCONDTLS (or is not current)', p_conid
            USING ERRCODE = '42704',
                  HINT = 'SELECT conid, connm, dbtyp FROM dms.dms_dbcondtls WHERE curflg = ''Y'' lists the connections; pass NULL for this database';
    END IF;
    IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = session_user)
       AND NOT EXISTS (SELECT FROM dms.dms_dbconusr u
                        WHERE u.conid = p_conid
                          AND (u.grantee = 'PUBLIC'
                               -- CASE: a dropped grantee must not make pg_has_role raise
                               OR CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_roles g
                                                     WHERE g.rolname = u.grantee)
                                       THEN pg_catalog.pg_has_role(session_user, u.grantee, 'USAGE')
                                       ELSE false END)) THEN
        RAISE EXCEPTION 'dms: permission denied for connection % (%): role % may not use it', p_conid, v_connm, session_user
            USING ERRCODE = '42501',
                  HINT = pg_catalog.format('an administrator grants it with SELECT dms.grant_connection(%s, %L)',
                                           p_conid, session_user);
    END IF;
    RETURN QUERY
    SELECT c.conid, c.connm, c.dbtyp, c.dbhost, c.dbport, c.dbsrvnm, c.usrnm, c.constr,
           c.pwdsrc, c.pwdref
      FROM dms.dms_dbcondtls c WHERE c.conid = p_conid AND c.curflg = 'Y';
END
$fn$;
COMMENT ON FUNCTION dms.connection_for_use(bigint) IS
    'Internal (engine): the connection row, if the session''s login may use it (granted with dms.grant_connection, or a superuser); else 42501 (operator role)';

CREATE OR REPLACE VIEW dms.connection_grants AS
SELECT c.conid, c.connm, c.dbtyp, u.grantee, u.grntdby AS granted_by, u.grntdt AS granted_at
  FROM dms.dms_dbconusr u JOIN dms.dms_dbcondtls c ON c.conid = u.conid AND c.curflg = 'Y';
COMMENT ON VIEW dms.connection_grants IS 'Who may use which connection (DMS_DBCONUSR with the connection''s name)';
COMMENT ON COLUMN dms.connection_grants.conid IS 'Connection id (CONID)';
COMMENT ON COLUMN dms.connection_grants.connm IS 'Connection name (CONNM)';
COMMENT ON COLUMN dms.connection_grants.dbtyp IS 'Database type (DBTYP)';
COMMENT ON COLUMN dms.connection_grants.grantee IS 'Role whose members may use it; PUBLIC for every operator';
COMMENT ON COLUMN dms.connection_grants.granted_by IS 'Administrator who granted it';
COMMENT ON COLUMN dms.connection_grants.granted_at IS 'When it was granted';

-- ---------------------------------------------------------------- loopback

CREATE OR REPLACE FUNCTION dms.set_loopback(p_host text, p_port integer DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
-- SECURITY INVOKER on purpose: only the table's owner (the installing
-- superuser) or another superuser can write dms.loopback.
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'dms: permission denied: only a superuser sets where worker sessions connect'
            USING ERRCODE = '42501',
                  HINT = 'workers log in as their caller; the destination is part of the server''s trust setup (docs/roles.md)';
    END IF;
    IF p_host IS NOT NULL AND (p_host !~ '^[A-Za-z0-9_./:\[\]-]+$') THEN
        RAISE EXCEPTION 'dms: "%" is not a host name, address or socket directory', p_host
            USING ERRCODE = '22023', HINT = 'for example ''/var/run/postgresql'' or ''127.0.0.1''; NULL for this server''s own socket';
    END IF;
    IF p_port IS NOT NULL AND p_port NOT BETWEEN 1 AND 65535 THEN
        RAISE EXCEPTION 'dms: port % is out of range', p_port
            USING ERRCODE = '22023', HINT = 'from 1 to 65535; NULL for this server''s port';
    END IF;
    UPDATE dms.loopback SET host = p_host, port = p_port, set_by = session_user,
                            set_at = pg_catalog.now();
END
$fn$;
COMMENT ON FUNCTION dms.set_loopback(text, integer) IS
    'Where worker sessions connect back to this server (host or socket directory, port); NULL = this server''s own socket and port (superuser only)';

CREATE OR REPLACE FUNCTION dms.check_loopback()
RETURNS text
LANGUAGE plpgsql
VOLATILE PARALLEL UNSAFE
-- SECURITY DEFINER: tries the worker route (dblink_connect_u) as the caller.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_name text := 'dms_check_' || replace(pg_catalog.gen_random_uuid()::text, '-', '');
    v_detail text;
BEGIN
    PERFORM dms._require_role('dms_operator');
    BEGIN
        PERFORM dms._loopback_connect(v_name, session_user, 'dms check_install');
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
        RETURN SQLERRM || coalesce(': ' || nullif(v_detail, ''), '');
    END;
    EXECUTE pg_catalog.format('SELECT %I.dblink_disconnect($1)', dms._dblink_schema()) USING v_name;
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION dms.check_loopback() IS
    'Whether a worker session can log in to this server as the caller (NULL) or why not (operator role)';
