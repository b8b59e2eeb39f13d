-- 0006_supabase_functions: the bookkeeping tables of database webhooks,
-- `supabase_functions.migrations` and `supabase_functions.hooks`, owned by
-- supabase_functions_admin.
--
-- Why: Studio's database webhooks record every hook call in
-- supabase_functions.hooks; the webhook trigger function itself needs pg_net
-- and is created by Studio when a webhook is first enabled.

CREATE TABLE supabase_functions.migrations (
  version text NOT NULL,
  inserted_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT migrations_pkey PRIMARY KEY (version)
);
INSERT INTO supabase_functions.migrations (version) VALUES ('initial');

CREATE TABLE supabase_functions.hooks (
  id bigserial NOT NULL,
  hook_table_id integer NOT NULL,
  hook_name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  request_id bigint NULL,
  CONSTRAINT hooks_pkey PRIMARY KEY (id)
);
CREATE INDEX supabase_functions_hooks_request_id_idx ON supabase_functions.hooks USING btree (request_id);
CREATE INDEX supabase_functions_hooks_h_table_id_h_name_idx
  ON supabase_functions.hooks USING btree (hook_table_id, hook_name);
COMMENT ON TABLE supabase_functions.hooks IS
  'Supabase Functions Hooks: Audit trail for triggered hooks.';

ALTER TABLE supabase_functions.migrations OWNER TO supabase_functions_admin;
ALTER TABLE supabase_functions.hooks OWNER TO supabase_functions_admin;
ALTER SEQUENCE supabase_functions.hooks_id_seq OWNER TO supabase_functions_admin;
GRANT ALL ON TABLE supabase_functions.migrations, supabase_functions.hooks TO postgres;
GRANT ALL ON SEQUENCE supabase_functions.hooks_id_seq TO postgres;
