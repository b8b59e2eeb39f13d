-- 0005_storage: the Storage API's starting point in schema `storage`:
-- tables buckets, objects (row level security on) and migrations, and the
-- path helpers foldername(), filename(), extension() and search().
--
-- Why: Storage policies are written against storage.objects and these
-- helpers; the API roles get table privileges and row level security
-- decides what each sees (service_role bypasses it). Tables and functions
-- are owned by supabase_storage_admin, the role the Storage API uses.
-- Object ids default to gen_random_uuid() (core PostgreSQL) rather than
-- uuid-ossp, because extensions are created after the migrations and the
-- list of extensions is configurable.

CREATE TABLE storage.buckets (
  id text NOT NULL,
  name text NOT NULL,
  owner uuid NULL,
  created_at timestamptz NULL DEFAULT now(),
  updated_at timestamptz NULL DEFAULT now(),
  CONSTRAINT buckets_pkey PRIMARY KEY (id),
  CONSTRAINT buckets_owner_fkey FOREIGN KEY (owner) REFERENCES auth.users (id)
);
CREATE UNIQUE INDEX bname ON storage.buckets USING btree (name);

CREATE TABLE storage.objects (
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  bucket_id text NULL,
  name text NULL,
  owner uuid NULL,
  created_at timestamptz NULL DEFAULT now(),
  updated_at timestamptz NULL DEFAULT now(),
  last_accessed_at timestamptz NULL DEFAULT now(),
  metadata jsonb NULL,
  CONSTRAINT objects_pkey PRIMARY KEY (id),
  CONSTRAINT "objects_bucketId_fkey" FOREIGN KEY (bucket_id) REFERENCES storage.buckets (id),
  CONSTRAINT objects_owner_fkey FOREIGN KEY (owner) REFERENCES auth.users (id)
);
CREATE UNIQUE INDEX bucketid_objname ON storage.objects USING btree (bucket_id, name);
CREATE INDEX name_prefix_search ON storage.objects (name text_pattern_ops);
ALTER TABLE storage.objects ENABLE ROW LEVEL SECURITY;

CREATE TABLE storage.migrations (
  id integer NOT NULL,
  name varchar(100) NOT NULL,
  hash varchar(40) NOT NULL,
  executed_at timestamp NULL DEFAULT current_timestamp,
  CONSTRAINT migrations_pkey PRIMARY KEY (id),
  CONSTRAINT migrations_name_key UNIQUE (name)
);

CREATE FUNCTION storage.foldername(name text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE
AS $fn$
DECLARE
  _parts text[];
BEGIN
  _parts := string_to_array(name, '/');
  RETURN _parts[1:array_length(_parts, 1) - 1];
END
$fn$;

CREATE FUNCTION storage.filename(name text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
AS $fn$
DECLARE
  _parts text[];
BEGIN
  _parts := string_to_array(name, '/');
  RETURN _parts[array_length(_parts, 1)];
END
$fn$;

-- The part after the LAST dot of the file name ("a.tar.gz" -> "gz"), or ''
-- when there is none (Supabase's first version took the part after the first dot).
CREATE FUNCTION storage.extension(name text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
AS $fn$
DECLARE
  _parts text[];
  _filename text;
BEGIN
  _parts := string_to_array(name, '/');
  _filename := _parts[array_length(_parts, 1)];
  IF position('.' IN _filename) = 0 THEN
    RETURN '';
  END IF;
  RETURN reverse(split_part(reverse(_filename), '.', 1));
END
$fn$;

-- Lists the files and folders one level below `prefix` in a bucket.
CREATE FUNCTION storage.search(prefix text, bucketname text, limits int DEFAULT 100,
                               levels int DEFAULT 1, offsets int DEFAULT 0)
RETURNS TABLE (name text, id uuid, updated_at timestamptz, created_at timestamptz,
               last_accessed_at timestamptz, metadata jsonb)
LANGUAGE plpgsql STABLE
AS $fn$
DECLARE
  _bucket_id text;
BEGIN
  SELECT b.id INTO _bucket_id FROM storage.buckets AS b WHERE b.name = bucketname LIMIT 1;
  RETURN QUERY
    WITH files_folders AS (
      SELECT (string_to_array(o.name, '/'))[levels] AS folder
      FROM storage.objects AS o
      WHERE o.name ILIKE prefix || '%' AND o.bucket_id = _bucket_id
      GROUP BY folder
      ORDER BY folder
      LIMIT limits OFFSET offsets
    )
    SELECT ff.folder, o.id, o.updated_at, o.created_at, o.last_accessed_at, o.metadata
    FROM files_folders AS ff
    LEFT JOIN storage.objects AS o
      ON prefix || ff.folder = o.name AND o.bucket_id = _bucket_id;
END
$fn$;

ALTER TABLE storage.buckets OWNER TO supabase_storage_admin;
ALTER TABLE storage.objects OWNER TO supabase_storage_admin;
ALTER TABLE storage.migrations OWNER TO supabase_storage_admin;
ALTER FUNCTION storage.foldername(text) OWNER TO supabase_storage_admin;
ALTER FUNCTION storage.filename(text) OWNER TO supabase_storage_admin;
ALTER FUNCTION storage.extension(text) OWNER TO supabase_storage_admin;
ALTER FUNCTION storage.search(text, text, int, int, int) OWNER TO supabase_storage_admin;

-- The API roles work on the tables; row level security filters the rows.
GRANT ALL ON TABLE storage.buckets, storage.objects TO postgres, anon, authenticated, service_role;
GRANT ALL ON TABLE storage.migrations TO postgres;
GRANT EXECUTE ON FUNCTION storage.foldername(text), storage.filename(text), storage.extension(text),
  storage.search(text, text, int, int, int) TO postgres, anon, authenticated, service_role;
