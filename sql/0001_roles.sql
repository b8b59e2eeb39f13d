-- 0001_roles: the roles of the Supabase contract, their attributes,
-- memberships and per-role settings.
--
-- Why: every Supabase service connects as (or SET ROLEs to) one of these
-- roles, and PostgREST relies on authenticator being NOINHERIT and a member
-- of anon/authenticated/service_role. Roles are created only when missing
-- (Spilo or an operator may have made some already), then their attributes
-- are set explicitly so a pre-existing role ends up exactly as specified.
-- `postgres` is Patroni's superuser inside Spilo: it stays SUPERUSER (unlike
-- Supabase's own image, which demotes it). Passwords are NOT set here: they
-- come from secret files and are set by the runner, never written in SQL.

DO $roles$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY[
    'supabase_admin', 'authenticator', 'anon', 'authenticated', 'service_role',
    'supabase_auth_admin', 'supabase_storage_admin', 'supabase_functions_admin',
    'supabase_replication_admin', 'supabase_read_only_user', 'dashboard_user', 'pgbouncer'
  ] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
      EXECUTE format('CREATE ROLE %I', r);
    END IF;
  END LOOP;
END
$roles$;

-- Attributes (the contract's table, column "attributes").
ALTER ROLE supabase_admin             SUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS LOGIN;
ALTER ROLE authenticator              NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS LOGIN NOINHERIT;
ALTER ROLE anon                       NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOLOGIN INHERIT;
ALTER ROLE authenticated              NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOLOGIN INHERIT;
ALTER ROLE service_role               NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION BYPASSRLS NOLOGIN INHERIT;
-- Newer GoTrue contracts dropped CREATEROLE from supabase_auth_admin: we follow them.
ALTER ROLE supabase_auth_admin        NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS LOGIN NOINHERIT;
ALTER ROLE supabase_storage_admin     NOSUPERUSER NOCREATEDB CREATEROLE NOREPLICATION NOBYPASSRLS LOGIN NOINHERIT;
ALTER ROLE supabase_functions_admin   NOSUPERUSER NOCREATEDB CREATEROLE NOREPLICATION NOBYPASSRLS LOGIN NOINHERIT;
ALTER ROLE supabase_replication_admin NOSUPERUSER NOCREATEDB NOCREATEROLE REPLICATION NOBYPASSRLS LOGIN;
ALTER ROLE supabase_read_only_user    NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION BYPASSRLS LOGIN;
ALTER ROLE dashboard_user             NOSUPERUSER CREATEDB CREATEROLE REPLICATION NOBYPASSRLS NOLOGIN;
ALTER ROLE pgbouncer                  NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS LOGIN;
-- postgres: deliberately untouched attributes (it is Spilo's/Patroni's superuser).

-- Memberships (the contract's column "member of").
GRANT anon, authenticated, service_role TO postgres;
GRANT pg_read_all_data, pg_signal_backend, pg_monitor TO postgres;
GRANT anon, authenticated, service_role TO authenticator;
GRANT authenticator TO supabase_storage_admin;
GRANT pg_read_all_data TO supabase_read_only_user;

-- Per-role settings (the contract's column "per-role settings").
ALTER ROLE supabase_admin SET search_path = "$user", public, auth, extensions;
ALTER ROLE postgres SET search_path = "$user", public, extensions;
ALTER ROLE authenticator SET statement_timeout = '8s';
ALTER ROLE authenticator SET lock_timeout = '8s';
ALTER ROLE anon SET statement_timeout = '3s';
ALTER ROLE authenticated SET statement_timeout = '8s';
ALTER ROLE supabase_auth_admin SET search_path = auth;
ALTER ROLE supabase_auth_admin SET idle_in_transaction_session_timeout = '60s';
ALTER ROLE supabase_storage_admin SET search_path = storage;
ALTER ROLE supabase_functions_admin SET search_path = supabase_functions;
