-- 0012_monitor_role: pgha_monitor, the role the PostgreSQL exporter of
-- each member logs in as (pgha-image manifests, [monitoring]).
--
-- Why: an exporter that logs in as a superuser holds the keys to the
-- cluster on every VM. pg_monitor (PostgreSQL's own) grants exactly what
-- monitoring reads: pg_stat_* views, pg_settings, replication state,
-- pg_database_size. Besides it, SELECT on the bootstrap's ledger, so that
-- the migrations applied show up in the metrics. NOSUPERUSER, NOINHERIT of
-- nothing else, no BYPASSRLS. Its password comes from a secret file (the
-- runner sets it, like every LOGIN role's), never from SQL.

DO $role$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'pgha_monitor') THEN
    CREATE ROLE pgha_monitor;
  END IF;
END
$role$;

ALTER ROLE pgha_monitor NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS LOGIN INHERIT;
GRANT pg_monitor TO pgha_monitor;
ALTER ROLE pgha_monitor SET statement_timeout = '10s';

GRANT USAGE ON SCHEMA pgha_bootstrap TO pgha_monitor;
GRANT SELECT ON pgha_bootstrap.migrations TO pgha_monitor;
