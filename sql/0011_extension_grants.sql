-- 0011_extension_grants: the grants Supabase gives on what pgsodium,
-- supabase_vault, pg_net and pg_cron create, in one function the bootstrap
-- calls after it creates (or first finds) one of them.
--
-- Why: Supabase's services and its own contract tests rely on them —
-- service_role encrypts with pgsodium's derived keys, reads and writes Vault
-- secrets, and the API roles queue HTTP requests through pg_net. The event
-- triggers of 0008 cover an extension created later by a user; this covers
-- the ones the bootstrap creates or finds already created (Spilo's
-- post-init creates pg_cron before the bootstrap runs, so no trigger fires).
--
-- Written for PostgreSQL 14-17 and for the extensions' varying versions:
-- every object is looked up before it is granted, an absent extension is a
-- no-op. Idempotent: GRANT of what is granted changes nothing that matters.
--
-- pg_net: as Supabase does, net.http_get/net.http_post themselves become
-- SECURITY DEFINER with search_path = net and EXECUTE for postgres, anon,
-- authenticated, service_role (and supabase_functions_admin, for webhooks).
-- Wrappers in schema `extensions` would collide with pgsql-http's own
-- extensions.http_get/http_post when that extension is installed there.

CREATE OR REPLACE FUNCTION extensions.pgha_grant_extension_access(ext text) RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $fn$
DECLARE
  f regprocedure;
  r text;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = ext) THEN
    RETURN;
  END IF;
  IF ext = 'pgsodium' THEN
    -- service_role holds keys; postgres may hand out all three key roles.
    IF to_regrole('pgsodium_keyholder') IS NOT NULL THEN
      GRANT pgsodium_keyholder TO service_role;
      GRANT pgsodium_keyholder TO postgres WITH ADMIN OPTION;
    END IF;
    FOREACH r IN ARRAY ARRAY['pgsodium_keyiduser', 'pgsodium_keymaker'] LOOP
      IF to_regrole(r) IS NOT NULL THEN
        EXECUTE format('GRANT %I TO postgres WITH ADMIN OPTION', r);
      END IF;
    END LOOP;
    -- The three functions Supabase's contract tests assert for service_role.
    FOREACH r IN ARRAY ARRAY[
      'pgsodium.crypto_aead_det_encrypt(bytea,bytea,uuid,bytea)',
      'pgsodium.crypto_aead_det_decrypt(bytea,bytea,uuid,bytea)',
      'pgsodium.crypto_aead_det_keygen()'
    ] LOOP
      IF to_regprocedure(r) IS NOT NULL THEN
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO service_role', to_regprocedure(r));
      END IF;
    END LOOP;
  ELSIF ext = 'supabase_vault' THEN
    GRANT USAGE ON SCHEMA vault TO postgres WITH GRANT OPTION;
    GRANT USAGE ON SCHEMA vault TO service_role;
    FOREACH r IN ARRAY ARRAY['vault.secrets', 'vault.decrypted_secrets'] LOOP
      IF to_regclass(r) IS NOT NULL THEN
        EXECUTE format('GRANT SELECT, DELETE ON %s TO postgres WITH GRANT OPTION', to_regclass(r));
        EXECUTE format('GRANT SELECT ON %s TO service_role', to_regclass(r));
      END IF;
    END LOOP;
    -- create_secret/update_secret (SECURITY DEFINER), and the decryption
    -- the decrypted_secrets view calls with its reader's rights (0.3.x).
    FOR f IN
      SELECT p.oid::regprocedure FROM pg_catalog.pg_proc AS p
      JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
      WHERE n.nspname = 'vault' AND p.proname IN ('create_secret', 'update_secret', '_crypto_aead_det_decrypt')
    LOOP
      EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO postgres WITH GRANT OPTION', f);
      EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO service_role', f);
    END LOOP;
  ELSIF ext = 'pg_net' THEN
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
  ELSIF ext = 'pg_cron' THEN
    GRANT USAGE ON SCHEMA cron TO postgres WITH GRANT OPTION;
    ALTER DEFAULT PRIVILEGES IN SCHEMA cron GRANT ALL ON TABLES TO postgres WITH GRANT OPTION;
    ALTER DEFAULT PRIVILEGES IN SCHEMA cron GRANT ALL ON FUNCTIONS TO postgres WITH GRANT OPTION;
    ALTER DEFAULT PRIVILEGES IN SCHEMA cron GRANT ALL ON SEQUENCES TO postgres WITH GRANT OPTION;
    GRANT ALL PRIVILEGES ON ALL TABLES IN SCHEMA cron TO postgres WITH GRANT OPTION;
    GRANT ALL PRIVILEGES ON ALL SEQUENCES IN SCHEMA cron TO postgres WITH GRANT OPTION;
  END IF;
END
$fn$;

REVOKE ALL ON FUNCTION extensions.pgha_grant_extension_access(text) FROM PUBLIC;

-- Extensions created before this migration (by an earlier bootstrap or by
-- the base image) get their grants now.
SELECT extensions.pgha_grant_extension_access(e.extname::text)
FROM pg_catalog.pg_extension AS e
WHERE e.extname IN ('pgsodium', 'supabase_vault', 'pg_net', 'pg_cron');
