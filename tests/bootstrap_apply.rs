//! A fresh apply establishes the whole contract (checked from the catalogs
//! and by behaviour), `check` agrees, and a second run changes nothing —
//! on PostgreSQL 15 (the host's) and 17 (in a container of its Spilo
//! stand-in: PostgreSQL 16 changed what CREATEROLE may do).

mod bootstrap_support;
mod common;

use bootstrap_support::{CREATE, REQUIRED, run, snapshot, sql_checksums, write_config};
use common::pg::PgCluster;

fn q(pg: &PgCluster, sql: &str) -> String {
    pg.psql(sql)
}

#[test]
#[ignore = "slow tier: needs PostgreSQL (root, to run it as postgres)"]
fn fresh_apply_establishes_the_contract_and_a_second_run_changes_nothing() {
    fresh_apply_then_nothing(15);
}

#[test]
#[ignore = "slow tier: needs root, Podman and the PostgreSQL 17 stand-in"]
fn fresh_apply_establishes_the_contract_and_a_second_run_changes_nothing_17() {
    fresh_apply_then_nothing(17);
}

fn fresh_apply_then_nothing(major: u32) {
    let pg = PgCluster::start_major(major);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &pg, &tmp.path().join("no-secrets"), CREATE, REQUIRED);
    let cfg = cfg.to_str().unwrap();

    // What a base image (Spilo) leaves in public, granted to PUBLIC.
    pg.psql("CREATE TABLE public.base_thing (x int); GRANT SELECT ON public.base_thing TO PUBLIC");

    // Before: check finds the contract missing.
    let before = run(&["--config", cfg, "check", "--dsn", &pg.dsn()], &[]);
    assert_eq!(before.code, 3, "{}", before.all());
    assert!(
        before
            .stdout
            .contains("MISSING/DIFFERENT: role supabase_admin exists"),
        "{}",
        before.stdout
    );

    let r = run(&["--config", cfg, "apply", "--dsn", &pg.dsn()], &[]).ok();
    for (name, _) in sql_checksums() {
        assert!(
            r.stdout.contains(&format!("applied {name} (")),
            "{name} not applied:\n{}",
            r.all()
        );
    }
    assert!(
        r.stdout
            .contains("extension pgha_no_such_ext: not installed in this image; recorded as pending")
    );
    assert!(
        r.stdout
            .contains("role authenticator: LOGIN role without a password"),
        "{}",
        r.stdout
    );

    // The ledger: every migration once, with the SHA-256 of its exact text.
    let ledger = q(
        &pg,
        "SELECT name || ' ' || checksum || ' ' || kind || ' ' || tool_version \
                         FROM pgha_bootstrap.migrations ORDER BY version",
    );
    let expected: Vec<String> = sql_checksums()
        .into_iter()
        .map(|(n, c)| {
            let kind = if n == "0010_supabase_database" {
                "database:_supabase"
            } else {
                "transaction"
            };
            format!("{n} {c} {kind} {}", env!("CARGO_PKG_VERSION"))
        })
        .collect();
    assert_eq!(ledger, expected.join("\n"));

    // Role attributes: super, createdb, createrole, replication, bypassrls, login, inherit.
    let attrs = |role: &str| {
        q(
            &pg,
            &format!(
                "SELECT concat_ws(',', rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, \
                 rolcanlogin, rolinherit) FROM pg_roles WHERE rolname = '{role}'"
            ),
        )
    };
    assert_eq!(attrs("supabase_admin"), "t,t,t,t,t,t,t");
    assert_eq!(attrs("postgres"), "t,t,t,t,t,t,t", "postgres must stay SUPERUSER");
    assert_eq!(attrs("authenticator"), "f,f,f,f,f,t,f");
    assert_eq!(attrs("anon"), "f,f,f,f,f,f,t");
    assert_eq!(attrs("authenticated"), "f,f,f,f,f,f,t");
    assert_eq!(attrs("service_role"), "f,f,f,f,t,f,t");
    assert_eq!(attrs("supabase_auth_admin"), "f,f,f,f,f,t,f");
    assert_eq!(attrs("supabase_storage_admin"), "f,f,t,f,f,t,f");
    assert_eq!(attrs("supabase_functions_admin"), "f,f,t,f,f,t,f");
    assert_eq!(attrs("supabase_replication_admin"), "f,f,f,t,f,t,t");
    assert_eq!(attrs("supabase_read_only_user"), "f,f,f,f,t,t,t");
    assert_eq!(attrs("dashboard_user"), "f,t,t,t,f,f,t");
    assert_eq!(attrs("pgbouncer"), "f,f,f,f,f,t,t");

    let members = |role: &str| {
        q(
            &pg,
            &format!(
                "SELECT string_agg(g.rolname, ',' ORDER BY g.rolname) FROM pg_auth_members m \
                 JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = '{role}'"
            ),
        )
    };
    assert_eq!(
        members("postgres"),
        "anon,authenticated,pg_monitor,pg_read_all_data,pg_signal_backend,service_role"
    );
    assert_eq!(members("authenticator"), "anon,authenticated,service_role");
    assert_eq!(members("supabase_storage_admin"), "authenticator");
    assert_eq!(members("supabase_read_only_user"), "pg_read_all_data");

    let rolconfig = |role: &str| {
        q(
            &pg,
            &format!("SELECT rolconfig FROM pg_roles WHERE rolname = '{role}'"),
        )
    };
    assert_eq!(rolconfig("anon"), "{statement_timeout=3s}");
    assert_eq!(rolconfig("authenticated"), "{statement_timeout=8s}");
    assert_eq!(
        rolconfig("authenticator"),
        "{statement_timeout=8s,lock_timeout=8s}"
    );
    assert_eq!(
        rolconfig("supabase_auth_admin"),
        "{search_path=auth,idle_in_transaction_session_timeout=60s}"
    );
    assert_eq!(rolconfig("supabase_storage_admin"), "{search_path=storage}");
    assert_eq!(
        rolconfig("supabase_admin"),
        r#"{"search_path=\"$user\", public, auth, extensions"}"#
    );
    assert_eq!(
        rolconfig("postgres"),
        r#"{"search_path=\"$user\", public, extensions"}"#
    );

    assert_eq!(
        q(
            &pg,
            "SELECT string_agg(nspname || ':' || pg_get_userbyid(nspowner), ' ' ORDER BY nspname) FROM pg_namespace \
             WHERE nspname IN ('extensions','auth','storage','realtime','_realtime','graphql_public',\
             'supabase_functions','pgbouncer')"
        ),
        "_realtime:supabase_admin auth:supabase_admin extensions:postgres graphql_public:supabase_admin \
         pgbouncer:pgbouncer realtime:supabase_admin storage:supabase_admin supabase_functions:supabase_admin"
    );
    for role in ["anon", "authenticated", "service_role"] {
        for schema in ["public", "extensions", "auth", "storage", "graphql_public"] {
            assert_eq!(
                q(
                    &pg,
                    &format!("SELECT has_schema_privilege('{role}', '{schema}', 'USAGE')")
                ),
                "t",
                "{role} USAGE on {schema}"
            );
        }
        assert_eq!(
            q(
                &pg,
                &format!("SELECT has_schema_privilege('{role}', 'public', 'CREATE')")
            ),
            "f"
        );
        assert_eq!(
            q(
                &pg,
                &format!("SELECT has_table_privilege('{role}', 'auth.users', 'SELECT')")
            ),
            "f"
        );
        assert_eq!(
            q(
                &pg,
                &format!("SELECT has_table_privilege('{role}', 'storage.objects', 'SELECT')")
            ),
            "t"
        );
        assert_eq!(
            q(
                &pg,
                &format!("SELECT has_table_privilege('{role}', 'public.base_thing', 'SELECT')")
            ),
            "f"
        );
        assert_eq!(
            q(
                &pg,
                &format!("SELECT has_function_privilege('{role}', 'auth.uid()', 'EXECUTE')")
            ),
            "t"
        );
        assert_eq!(
            q(
                &pg,
                &format!("SELECT has_function_privilege('{role}', 'pgbouncer.get_auth(text)', 'EXECUTE')")
            ),
            "f"
        );
    }
    assert_eq!(
        q(
            &pg,
            "SELECT has_function_privilege('pgbouncer', 'pgbouncer.get_auth(text)', 'EXECUTE')"
        ),
        "t"
    );
    assert_eq!(
        q(
            &pg,
            "SELECT has_schema_privilege('supabase_auth_admin', 'auth', 'CREATE')"
        ),
        "t"
    );
    assert_eq!(
        q(
            &pg,
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'auth.users'::regclass"
        ),
        "supabase_auth_admin"
    );
    assert_eq!(
        q(
            &pg,
            "SELECT pg_get_userbyid(relowner) || relrowsecurity FROM pg_class WHERE oid = 'storage.objects'::regclass"
        ),
        "supabase_storage_admintrue"
    );
    assert_eq!(q(&pg, "SELECT count(*) FROM auth.schema_migrations"), "7");
    // A table postgres creates later in public reaches the API roles through default privileges.
    pg.psql("CREATE TABLE public.later (x int)");
    assert_eq!(
        q(
            &pg,
            "SELECT has_table_privilege('anon', 'public.later', 'SELECT')"
        ),
        "t"
    );
    pg.psql("DROP TABLE public.later");

    for f in [
        "auth.uid()",
        "auth.role()",
        "auth.email()",
        "auth.jwt()",
        "storage.foldername(text)",
        "storage.filename(text)",
        "storage.extension(text)",
        "storage.search(text,text,integer,integer,integer)",
        "extensions.grant_pg_cron_access()",
        "extensions.grant_pg_net_access()",
        "extensions.grant_pg_graphql_access()",
        "extensions.pgrst_ddl_watch()",
        "extensions.pgrst_drop_watch()",
        "graphql_public.graphql(text,text,jsonb,jsonb)",
        "pgbouncer.get_auth(text)",
    ] {
        assert_eq!(
            q(&pg, &format!("SELECT to_regprocedure('{f}') IS NOT NULL")),
            "t",
            "{f}"
        );
    }
    assert_eq!(
        q(
            &pg,
            "SELECT prosecdef FROM pg_proc WHERE oid = 'pgbouncer.get_auth(text)'::regprocedure"
        ),
        "t"
    );
    assert_eq!(
        q(
            &pg,
            "SELECT string_agg(evtname, ',' ORDER BY evtname) FROM pg_event_trigger"
        ),
        "issue_graphql_placeholder,issue_pg_cron_access,issue_pg_graphql_access,issue_pg_net_access,\
         pgrst_ddl_watch,pgrst_drop_watch"
    );
    assert_eq!(
        q(
            &pg,
            "SELECT count(*) FROM pg_publication WHERE pubname = 'supabase_realtime'"
        ),
        "1"
    );
    assert_eq!(
        q(
            &pg,
            "SELECT count(*) FROM pg_publication_tables WHERE pubname = 'supabase_realtime'"
        ),
        "0"
    );
    assert_eq!(
        q(
            &pg,
            "SELECT string_agg(extname || ':' || extnamespace::regnamespace, ' ' ORDER BY extname) FROM pg_extension \
                WHERE extname <> 'plpgsql'"
        ),
        "pg_stat_statements:extensions pgcrypto:extensions pgtap:extensions uuid-ossp:extensions"
    );
    assert_eq!(
        q(
            &pg,
            "SELECT string_agg(name || ':' || status, ' ' ORDER BY name) FROM pgha_bootstrap.extensions"
        ),
        "pg_stat_statements:created pgcrypto:created pgha_no_such_ext:pending pgtap:created uuid-ossp:created"
    );
    assert_eq!(
        q(
            &pg,
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '_supabase'"
        ),
        "supabase_admin"
    );
    assert_eq!(
        pg.psql_db(
            "_supabase",
            "SELECT string_agg(nspname || ':' || pg_get_userbyid(nspowner), ' ' ORDER BY nspname) FROM pg_namespace \
             WHERE nspname IN ('_analytics', '_supavisor')"
        ),
        "_analytics:supabase_admin _supavisor:supabase_admin"
    );
    // anon sees nothing of the ledger.
    assert_eq!(
        q(
            &pg,
            "SELECT has_schema_privilege('anon', 'pgha_bootstrap', 'USAGE')"
        ),
        "f"
    );

    // Behaviour: anon cannot read auth.users.
    let e = pg
        .try_psql_as(
            "postgres",
            "postgres",
            "SET ROLE anon; SELECT count(*) FROM auth.users",
        )
        .unwrap_err();
    assert!(e.contains("permission denied for table users"), "{e}");
    // authenticator (NOINHERIT) has nothing by itself, but can become authenticated.
    let e = pg
        .try_psql_as(
            "authenticator",
            "postgres",
            "SELECT count(*) FROM storage.objects",
        )
        .unwrap_err();
    assert!(e.contains("permission denied"), "{e}");
    assert_eq!(
        pg.try_psql_as(
            "authenticator",
            "postgres",
            "SET ROLE authenticated; SELECT current_user"
        )
        .unwrap(),
        "authenticated"
    );
    // service_role bypasses row level security on storage.objects; anon and authenticated see nothing.
    pg.psql(
        "INSERT INTO storage.buckets (id, name) VALUES ('b', 'b'); \
         INSERT INTO storage.objects (bucket_id, name) VALUES ('b', 'folder/file.tar.gz')",
    );
    for (role, n) in [("anon", "0"), ("authenticated", "0"), ("service_role", "1")] {
        assert_eq!(
            pg.try_psql_as(
                "authenticator",
                "postgres",
                &format!("SET ROLE {role}; SELECT count(*) FROM storage.objects")
            )
            .unwrap(),
            n,
            "{role}"
        );
    }
    assert_eq!(
        q(
            &pg,
            "SELECT storage.foldername('a/b/c.txt')::text || storage.filename('a/b/c.txt') || storage.extension('x/a.tar.gz')"
        ),
        "{a,b}c.txtgz"
    );
    assert_eq!(
        q(&pg, "SELECT name FROM storage.search('folder/', 'b', 100, 2)"),
        "file.tar.gz"
    );
    // auth.uid() returns the sub of request.jwt.claims (and falls back to the older setting).
    let sub = "0c3a9f2e-52c8-4d8e-9a3e-1f2d3c4b5a69";
    assert_eq!(
        pg.try_psql_as(
            "authenticator",
            "postgres",
            &format!(
                "SET ROLE authenticated; SELECT set_config('request.jwt.claims', \
                 '{{\"sub\":\"{sub}\",\"role\":\"authenticated\",\"email\":\"a@example.org\"}}', false); \
                 SELECT auth.uid() || ' ' || auth.role() || ' ' || auth.email() || ' ' || (auth.jwt() ->> 'sub')"
            )
        )
        .unwrap()
        .lines()
        .last()
        .unwrap(),
        format!("{sub} authenticated a@example.org {sub}")
    );
    assert_eq!(
        pg.try_psql_as(
            "authenticator",
            "postgres",
            &format!(
                "SET ROLE anon; SELECT set_config('request.jwt.claim.sub', '{sub}', false); SELECT auth.uid()"
            )
        )
        .unwrap()
        .lines()
        .last()
        .unwrap(),
        sub
    );
    assert_eq!(
        q(
            &pg,
            "SELECT graphql_public.graphql() ->> 'errors' LIKE '%pg_graphql extension is not enabled%'"
        ),
        "t"
    );

    // check agrees.
    let c = run(&["--config", cfg, "check", "--dsn", &pg.dsn()], &[]).ok();
    assert!(
        c.stdout
            .contains("checks passed: the database meets the contract"),
        "{}",
        c.stdout
    );
    assert!(
        c.stdout
            .contains("optional extension pgha_no_such_ext is not installed"),
        "{}",
        c.stdout
    );

    // A second run (also in the bare hook form Patroni uses) changes nothing.
    let before = snapshot(&pg);
    let again = run(&["--config", cfg, &pg.dsn()], &[]).ok();
    assert!(again.stdout.contains("nothing to do"), "{}", again.all());
    assert!(!again.stdout.contains("applied "), "{}", again.stdout);
    let after = snapshot(&pg);
    assert_eq!(before, after, "the second run changed the catalogs or the ledger");

    // status and plan agree that nothing is pending.
    let s = run(&["--config", cfg, "status", "--json", "--dsn", &pg.dsn()], &[]).ok();
    let v: serde_json::Value = serde_json::from_str(&s.stdout).unwrap();
    assert_eq!(v["pending_migrations"].as_array().unwrap().len(), 0);
    assert_eq!(
        v["ledger"]["migrations"].as_array().unwrap().len(),
        sql_checksums().len()
    );
    assert_eq!(v["pending_extensions"], serde_json::json!(["pgha_no_such_ext"]));
    let p = run(&["--config", cfg, "plan", "--dsn", &pg.dsn()], &[]).ok();
    assert!(!p.stdout.contains("would apply"), "{}", p.stdout);

    // Something changed by hand is reported by check (exit 3), naming it.
    pg.psql("REVOKE USAGE ON SCHEMA auth FROM anon; DROP FUNCTION auth.email()");
    let c = run(&["--config", cfg, "check", "--dsn", &pg.dsn()], &[]);
    assert_eq!(c.code, 3, "{}", c.all());
    assert!(
        c.stdout
            .contains("MISSING/DIFFERENT: anon has USAGE on schema auth"),
        "{}",
        c.stdout
    );
    assert!(
        c.stdout
            .contains("MISSING/DIFFERENT: function auth.email() exists"),
        "{}",
        c.stdout
    );
    assert!(c.stderr.contains("2 problem(s) found"), "{}", c.stderr);
}

#[test]
#[ignore = "slow tier: needs PostgreSQL (root, to run it as postgres)"]
fn plan_on_a_fresh_database_lists_everything_and_writes_nothing() {
    plan_writes_nothing(15);
}

#[test]
#[ignore = "slow tier: needs root, Podman and the PostgreSQL 17 stand-in"]
fn plan_on_a_fresh_database_lists_everything_and_writes_nothing_17() {
    plan_writes_nothing(17);
}

fn plan_writes_nothing(major: u32) {
    let pg = PgCluster::start_major(major);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &pg, &tmp.path().join("none"), CREATE, REQUIRED);
    let p = run(
        &["--config", cfg.to_str().unwrap(), "plan", "--dsn", &pg.dsn()],
        &[],
    )
    .ok();
    assert!(
        p.stdout.contains("would apply migration 0001_roles"),
        "{}",
        p.stdout
    );
    assert!(
        p.stdout
            .contains("would create extension uuid-ossp in schema extensions"),
        "{}",
        p.stdout
    );
    assert!(
        p.stdout.contains("extension pgha_no_such_ext is not installed"),
        "{}",
        p.stdout
    );
    assert_eq!(
        pg.psql("SELECT to_regnamespace('pgha_bootstrap') IS NULL AND to_regrole('anon') IS NULL"),
        "t"
    );
}
