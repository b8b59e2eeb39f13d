#!/bin/bash
# Stand-in for Spilo's /scripts/post_init.sh: a small, honest part of what
# Spilo's does. Patroni calls it with $1 = the human role and $2 = a libpq DSN
# (bootstrap), or $2 = the word `postgres` (after a promotion: psql -d takes
# it as a database name). Any SQL error fails it, as in Spilo.
set -Eeu
HUMAN_ROLE=${1:?usage: post_init.sh HUMAN_ROLE DSN}
DSN=${2:?usage: post_init.sh HUMAN_ROLE DSN}
echo "$(date -u +%FT%TZ) post_init.sh $HUMAN_ROLE $DSN" >> /run/postgresql/post_init.calls
# What Patroni gave the hook (tests check PGPASSFILE, PGOPTIONS, the stripped rest).
env | sort > /run/postgresql/post_init.env

psql -X -q -v ON_ERROR_STOP=1 -v human="$HUMAN_ROLE" -d "$DSN" <<'SQL'
SET synchronous_commit = 'local';
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'admin') THEN
        CREATE ROLE admin CREATEDB NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'cron_admin') THEN
        CREATE ROLE cron_admin NOLOGIN;
    END IF;
END
$$;
SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = :'human') AS need_human \gset
\if :need_human
CREATE ROLE :"human" CREATEDB CREATEROLE LOGIN IN ROLE admin;
\endif
CREATE EXTENSION IF NOT EXISTS pg_stat_statements SCHEMA public;
CREATE EXTENSION IF NOT EXISTS pg_cron SCHEMA pg_catalog;
GRANT USAGE ON SCHEMA cron TO admin, cron_admin;
CREATE SCHEMA IF NOT EXISTS metric_helpers AUTHORIZATION postgres;
GRANT USAGE ON SCHEMA metric_helpers TO admin;
CREATE OR REPLACE FUNCTION metric_helpers.pg_stat_statements(showtext boolean = true)
    RETURNS SETOF public.pg_stat_statements LANGUAGE sql IMMUTABLE SECURITY DEFINER STRICT
    AS $$ SELECT * FROM public.pg_stat_statements(showtext) $$;
SQL
echo "$(date -u +%FT%TZ) post_init.sh ok" >> /run/postgresql/post_init.calls
