-- pgha: database=_supabase owner=supabase_admin
-- 0010_supabase_database: the database `_supabase` (owner supabase_admin)
-- with schemas `_analytics` and `_supavisor`, owned by supabase_admin.
--
-- Why: self-hosted Analytics (Logflare) and Supavisor keep their own tables
-- there, apart from the application's database. CREATE DATABASE cannot run
-- in a transaction: the directive above makes the runner create the
-- database first (only if missing, so a run interrupted after it is safe),
-- then run the statements below inside `_supabase`, in one transaction, and
-- record the step in the ledger like any other migration. The statements are
-- idempotent for the same reason.

CREATE SCHEMA IF NOT EXISTS _analytics AUTHORIZATION supabase_admin;
ALTER SCHEMA _analytics OWNER TO supabase_admin;
CREATE SCHEMA IF NOT EXISTS _supavisor AUTHORIZATION supabase_admin;
ALTER SCHEMA _supavisor OWNER TO supabase_admin;
