-- 0008_event_triggers: event-trigger functions in schema `extensions` and
-- their event triggers:
--   * grant_pg_cron_access / grant_pg_net_access / grant_pg_graphql_access
--     give the API roles access when pg_cron, pg_net or pg_graphql is created
--     later (by a user, or by a later pgha-bootstrap run once the extension
--     is installed in the image);
--   * set_graphql_placeholder keeps a placeholder graphql_public.graphql()
--     while pg_graphql is absent (installed now, re-installed on DROP);
--   * pgrst_ddl_watch / pgrst_drop_watch tell PostgREST to reload its schema
--     cache after DDL (NOTIFY pgrst, 'reload schema').
--
-- Why: Supabase's API expects these grants no matter when an extension
-- arrives, and PostgREST must see schema changes without a restart.
-- Function bodies look objects up in the catalogs rather than naming fixed
-- signatures, because pg_net's and pg_graphql's signatures change between
-- versions.

CREATE OR REPLACE FUNCTION extensions.grant_pg_cron_access() RETURNS event_trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
  IF EXISTS (
    SELECT 1 FROM pg_event_trigger_ddl_commands() AS ev
    JOIN pg_catalog.pg_extension AS ext ON ev.objid = ext.oid
    WHERE ext.extname = 'pg_cron'
  ) THEN
    GRANT USAGE ON SCHEMA cron TO postgres WITH GRANT OPTION;
    ALTER DEFAULT PRIVILEGES IN SCHEMA cron GRANT ALL ON TABLES TO postgres WITH GRANT OPTION;
    ALTER DEFAULT PRIVILEGES IN SCHEMA cron GRANT ALL ON FUNCTIONS TO postgres WITH GRANT OPTION;
    ALTER DEFAULT PRIVILEGES IN SCHEMA cron GRANT ALL ON SEQUENCES TO postgres WITH GRANT OPTION;
    ALTER DEFAULT PRIVILEGES FOR ROLE supabase_admin IN SCHEMA cron
      GRANT ALL ON TABLES TO postgres WITH GRANT OPTION;
    ALTER DEFAULT PRIVILEGES FOR ROLE supabase_admin IN SCHEMA cron
      GRANT ALL ON FUNCTIONS TO postgres WITH GRANT OPTION;
    ALTER DEFAULT PRIVILEGES FOR ROLE supabase_admin IN SCHEMA cron
      GRANT ALL ON SEQUENCES TO postgres WITH GRANT OPTION;
    GRANT ALL PRIVILEGES ON ALL TABLES IN SCHEMA cron TO postgres WITH GRANT OPTION;
  END IF;
END
$fn$;

CREATE OR REPLACE FUNCTION extensions.grant_pg_net_access() RETURNS event_trigger
LANGUAGE plpgsql
AS $fn$
DECLARE
  f regprocedure;
BEGIN
  IF EXISTS (
    SELECT 1 FROM pg_event_trigger_ddl_commands() AS ev
    JOIN pg_catalog.pg_extension AS ext ON ev.objid = ext.oid
    WHERE ext.extname = 'pg_net'
  ) THEN
    GRANT USAGE ON SCHEMA net TO supabase_functions_admin, postgres, anon, authenticated, service_role;
    FOR f IN
      SELECT p.oid::regprocedure FROM pg_catalog.pg_proc AS p
      JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
      WHERE n.nspname = 'net' AND p.proname IN ('http_get', 'http_post')
    LOOP
      EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER', f);
      EXECUTE format('ALTER FUNCTION %s SET search_path = net', f);
      EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
      EXECUTE format(
        'GRANT EXECUTE ON FUNCTION %s TO supabase_functions_admin, postgres, anon, authenticated, service_role', f);
    END LOOP;
  END IF;
END
$fn$;

CREATE OR REPLACE FUNCTION extensions.grant_pg_graphql_access() RETURNS event_trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
  IF EXISTS (
    SELECT 1 FROM pg_event_trigger_ddl_commands() AS ev
    JOIN pg_catalog.pg_extension AS ext ON ev.objid = ext.oid
    WHERE ext.extname = 'pg_graphql'
  ) THEN
    CREATE OR REPLACE FUNCTION graphql_public.graphql(
      "operationName" text DEFAULT NULL, query text DEFAULT NULL,
      variables jsonb DEFAULT NULL, extensions jsonb DEFAULT NULL)
    RETURNS jsonb LANGUAGE sql
    AS $inner$
      SELECT graphql.resolve(query := query, variables := coalesce(variables, '{}'),
                             "operationName" := "operationName", extensions := extensions);
    $inner$;
    GRANT USAGE ON SCHEMA graphql TO postgres, anon, authenticated, service_role;
    GRANT ALL ON ALL FUNCTIONS IN SCHEMA graphql TO postgres, anon, authenticated, service_role;
    GRANT ALL ON ALL TABLES IN SCHEMA graphql TO postgres, anon, authenticated, service_role;
    GRANT ALL ON ALL SEQUENCES IN SCHEMA graphql TO postgres, anon, authenticated, service_role;
    GRANT EXECUTE ON FUNCTION graphql_public.graphql(text, text, jsonb, jsonb)
      TO postgres, anon, authenticated, service_role;
  END IF;
END
$fn$;

-- The placeholder, shared by this migration (pg_graphql absent now) and the
-- DROP EXTENSION trigger below.
CREATE OR REPLACE FUNCTION extensions.install_graphql_placeholder() RETURNS void
LANGUAGE plpgsql
AS $fn$
BEGIN
  CREATE OR REPLACE FUNCTION graphql_public.graphql(
    "operationName" text DEFAULT NULL, query text DEFAULT NULL,
    variables jsonb DEFAULT NULL, extensions jsonb DEFAULT NULL)
  RETURNS jsonb LANGUAGE plpgsql
  AS $inner$
  BEGIN
    RETURN jsonb_build_object('errors', jsonb_build_array(jsonb_build_object(
      'message', 'pg_graphql extension is not enabled.')));
  END
  $inner$;
  GRANT EXECUTE ON FUNCTION graphql_public.graphql(text, text, jsonb, jsonb)
    TO postgres, anon, authenticated, service_role;
END
$fn$;

CREATE OR REPLACE FUNCTION extensions.set_graphql_placeholder() RETURNS event_trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects() AS ev
             WHERE ev.object_type = 'extension' AND ev.object_identity = 'pg_graphql') THEN
    PERFORM extensions.install_graphql_placeholder();
  END IF;
END
$fn$;

CREATE OR REPLACE FUNCTION extensions.pgrst_ddl_watch() RETURNS event_trigger
LANGUAGE plpgsql
AS $fn$
DECLARE
  cmd record;
BEGIN
  FOR cmd IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
    IF cmd.command_tag IN (
      'CREATE SCHEMA', 'ALTER SCHEMA', 'CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO',
      'ALTER TABLE', 'CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE', 'CREATE VIEW', 'ALTER VIEW',
      'CREATE MATERIALIZED VIEW', 'ALTER MATERIALIZED VIEW', 'CREATE FUNCTION', 'ALTER FUNCTION',
      'CREATE TRIGGER', 'CREATE TYPE', 'ALTER TYPE', 'CREATE RULE', 'COMMENT')
      AND cmd.schema_name IS DISTINCT FROM 'pg_temp'
    THEN
      NOTIFY pgrst, 'reload schema';
    END IF;
  END LOOP;
END
$fn$;

CREATE OR REPLACE FUNCTION extensions.pgrst_drop_watch() RETURNS event_trigger
LANGUAGE plpgsql
AS $fn$
DECLARE
  obj record;
BEGIN
  FOR obj IN SELECT * FROM pg_event_trigger_dropped_objects() LOOP
    IF obj.object_type IN ('schema', 'table', 'foreign table', 'view', 'materialized view',
                           'function', 'trigger', 'type', 'rule')
      AND obj.is_temporary IS false
    THEN
      NOTIFY pgrst, 'reload schema';
    END IF;
  END LOOP;
END
$fn$;

-- Event triggers have no IF NOT EXISTS: create each only when missing.
DO $et$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = 'issue_pg_cron_access') THEN
    CREATE EVENT TRIGGER issue_pg_cron_access ON ddl_command_end
      WHEN TAG IN ('CREATE EXTENSION') EXECUTE FUNCTION extensions.grant_pg_cron_access();
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = 'issue_pg_net_access') THEN
    CREATE EVENT TRIGGER issue_pg_net_access ON ddl_command_end
      WHEN TAG IN ('CREATE EXTENSION') EXECUTE FUNCTION extensions.grant_pg_net_access();
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = 'issue_pg_graphql_access') THEN
    CREATE EVENT TRIGGER issue_pg_graphql_access ON ddl_command_end
      WHEN TAG IN ('CREATE EXTENSION') EXECUTE FUNCTION extensions.grant_pg_graphql_access();
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = 'issue_graphql_placeholder') THEN
    CREATE EVENT TRIGGER issue_graphql_placeholder ON sql_drop
      WHEN TAG IN ('DROP EXTENSION') EXECUTE FUNCTION extensions.set_graphql_placeholder();
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = 'pgrst_ddl_watch') THEN
    CREATE EVENT TRIGGER pgrst_ddl_watch ON ddl_command_end
      EXECUTE FUNCTION extensions.pgrst_ddl_watch();
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = 'pgrst_drop_watch') THEN
    CREATE EVENT TRIGGER pgrst_drop_watch ON sql_drop
      EXECUTE FUNCTION extensions.pgrst_drop_watch();
  END IF;
END
$et$;

-- pg_graphql is not there yet (extensions come after the migrations): the
-- placeholder answers until it is; the access trigger replaces it then.
DO $ph$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_graphql') THEN
    PERFORM extensions.install_graphql_placeholder();
  END IF;
END
$ph$;
