-- 0007_pgbouncer: pgbouncer.get_auth(p_usename), the auth_query function a
-- connection pooler (PgBouncer, Supavisor) calls as the `pgbouncer` role.
--
-- Why: the pooler must look up password verifiers without being a
-- superuser. The function is SECURITY DEFINER, owned by postgres (a
-- superuser, so it may read pg_shadow), pins its search_path, and only the
-- pgbouncer role may execute it.

CREATE FUNCTION pgbouncer.get_auth(p_usename text)
RETURNS TABLE (username text, password text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  RAISE DEBUG 'PgBouncer auth request: %', p_usename;
  RETURN QUERY
    SELECT s.usename::text, s.passwd::text
    FROM pg_catalog.pg_shadow AS s
    WHERE s.usename = p_usename;
END
$fn$;

ALTER FUNCTION pgbouncer.get_auth(text) OWNER TO postgres;
REVOKE ALL ON FUNCTION pgbouncer.get_auth(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgbouncer.get_auth(text) TO pgbouncer;
