-- 0009_realtime_publication: the empty publication `supabase_realtime`.
--
-- Why: Realtime streams changes of the tables a user adds to this
-- publication (Studio's "enable realtime" does ALTER PUBLICATION ... ADD
-- TABLE). It starts empty; CREATE PUBLICATION has no IF NOT EXISTS.

DO $pub$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = 'supabase_realtime') THEN
    CREATE PUBLICATION supabase_realtime;
  END IF;
END
$pub$;
