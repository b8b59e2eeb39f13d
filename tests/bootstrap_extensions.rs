//! The extension contract by behaviour, against the real extensions built
//! from their upstream archives (scripts/install-test-prereqs.sh installs
//! pgsodium, pg_net 0.9.2, supabase_vault and pgjwt into PostgreSQL 15):
//! service_role encrypts and decrypts with a derived key and uses Vault, a
//! pg_net request made as `authenticated` reaches an HTTP server on
//! 127.0.0.1; an extension whose library is not preloaded is pending, not a
//! failed bootstrap, until the setting is fixed; `check` and `status` know
//! the selection `apply` was given.

mod bootstrap_support;
mod common;

use bootstrap_support::{REQUIRED, run, write_config};
use common::pg::{PgCluster, PgDir, as_postgres};
use common::prereq::require_program;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Fail (never skip) with an install hint when the built extensions are missing.
fn require_built_extensions() {
    for ext in ["pgsodium", "pg_net", "supabase_vault", "pgjwt"] {
        let control = format!("/usr/share/postgresql/15/extension/{ext}.control");
        assert!(
            Path::new(&control).exists(),
            "{control} is missing: run scripts/install-test-prereqs.sh (as root), which builds {ext} from \
             the upstream archive in PGHA_TEST_SOURCES (default ../shared/sources) and installs it"
        );
    }
}

fn restart(pg: &PgCluster) {
    as_postgres(
        &pg.bin().join("pg_ctl"),
        &[
            "-D",
            pg.data.to_str().unwrap(),
            "-l",
            pg.log_file.to_str().unwrap(),
            "-w",
            "-t",
            "60",
            "restart",
        ],
    );
}

/// A one-connection-at-a-time HTTP server on 127.0.0.1 that answers every
/// request with `body` and remembers the request lines; bounded in count.
fn http_server(body: &'static str) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut s) = stream else { continue };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            seen2
                .lock()
                .unwrap()
                .push(req.lines().next().unwrap_or_default().to_string());
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, seen)
}

#[test]
#[ignore = "slow tier: needs PostgreSQL (root, to run it as postgres)"]
fn supabase_extension_grants_work_by_behaviour() {
    require_built_extensions();
    require_program(
        "pg_config",
        "postgresql-server-dev-15",
        &["/usr/lib/postgresql/15/bin"],
    );
    // The root key every member would read from a mounted secret.
    let keydir = PgDir::new("pgha-h1-key-");
    let getkey = keydir.path.join("getkey.sh");
    std::fs::write(
        &getkey,
        "#!/bin/sh\necho 6b1a1c2a9d1f0e3c5b7a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&getkey, std::fs::Permissions::from_mode(0o755)).unwrap();
    let pg = PgCluster::start_with(&format!(
        "shared_preload_libraries = 'pg_stat_statements,pgsodium,supabase_vault,pg_net,pg_cron'\n\
         pgsodium.getkey_script = '{k}'\nvault.getkey_script = '{k}'\ncron.database_name = 'postgres'\n",
        k = getkey.display()
    ));
    let tmp = tempfile::tempdir().unwrap();
    let create = [
        "uuid-ossp",
        "pgcrypto",
        "pg_stat_statements",
        "pgjwt",
        "pgsodium",
        "supabase_vault",
        "pg_net",
        "pg_cron",
    ];
    let cfg = write_config(tmp.path(), &pg, &tmp.path().join("none"), &create, REQUIRED);
    let cfg = cfg.to_str().unwrap();
    let r = run(&["--config", cfg, "apply", "--dsn", &pg.dsn()], &[]).ok();
    for e in &create[3..] {
        assert!(
            r.stdout.contains(&format!("extension {e}: created")),
            "{}",
            r.stdout
        );
    }
    // pgsodium: service_role encrypts and decrypts with a key derived from the root key.
    let key = pg.psql("SELECT id FROM pgsodium.create_key(name := 'h1-test')");
    let sql = format!(
        "SET ROLE service_role; SELECT convert_from(pgsodium.crypto_aead_det_decrypt(\
           pgsodium.crypto_aead_det_encrypt(convert_to('attack at dawn', 'utf8'), 'ad'::bytea, '{key}'::uuid, NULL),\
           'ad'::bytea, '{key}'::uuid, NULL), 'utf8'), length(pgsodium.crypto_aead_det_keygen())"
    );
    assert_eq!(pg.psql(&sql), "attack at dawn|32");
    let e = pg
        .try_psql_as(
            "postgres",
            "postgres",
            "SET ROLE anon; SELECT pgsodium.crypto_aead_det_keygen()",
        )
        .unwrap_err();
    assert!(e.contains("permission denied"), "{e}");

    // supabase_vault: a secret created and read back as service_role; not by anon.
    let id = pg.psql("SET ROLE service_role; SELECT vault.create_secret('the-h1-vault-secret', 'h1_secret')");
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(
        pg.psql("SET ROLE service_role; SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = 'h1_secret'"),
        "the-h1-vault-secret"
    );
    assert_ne!(
        pg.psql("SELECT secret FROM vault.secrets WHERE name = 'h1_secret'"),
        "the-h1-vault-secret",
        "stored encrypted"
    );
    let e = pg
        .try_psql_as(
            "postgres",
            "postgres",
            "SET ROLE anon; SELECT * FROM vault.decrypted_secrets",
        )
        .unwrap_err();
    assert!(e.contains("permission denied"), "{e}");

    // pg_net: a request made as `authenticated` reaches our server; its response row appears.
    let (port, seen) = http_server("hello from 127.0.0.1");
    let req = pg.psql(&format!(
        "SET ROLE authenticated; SELECT net.http_get('http://127.0.0.1:{port}/h1-probe')"
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    let row = loop {
        let row = pg.psql(&format!(
            "SELECT status_code || ' ' || content FROM net._http_response WHERE id = {req}"
        ));
        if !row.is_empty() {
            break row;
        }
        assert!(
            Instant::now() < deadline,
            "no pg_net response within 60 s; server log:\n{}",
            pg.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(row, "200 hello from 127.0.0.1");
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("GET /h1-probe")),
        "{:?}",
        seen.lock().unwrap()
    );
    assert_eq!(
        pg.psql(
            "SELECT bool_and(prosecdef AND proconfig = '{search_path=net}') FROM pg_proc \
                 WHERE pronamespace = 'net'::regnamespace AND proname IN ('http_get', 'http_post')"
        ),
        "t"
    );

    // pg_cron: postgres may schedule; pgjwt signs and verifies from schema extensions.
    assert_eq!(
        pg.psql("SELECT cron.schedule('h1', '0 0 1 1 *', 'SELECT 1') > 0"),
        "t"
    );
    assert_eq!(
        pg.psql(
            "SELECT valid FROM extensions.verify(extensions.sign('{\"sub\":\"1\"}'::json, 'k3y'), 'k3y')"
        ),
        "t"
    );
    // check agrees with the behaviour.
    let c = run(&["--config", cfg, "check", "--dsn", &pg.dsn()], &[]);
    assert_eq!(c.code, 0, "{}", c.all());
    let j = run(&["--config", cfg, "check", "--json", "--dsn", &pg.dsn()], &[]).ok();
    for needle in [
        "service_role may execute pgsodium.crypto_aead_det_keygen()",
        "service_role may read vault.decrypted_secrets",
        "authenticated may use schema net",
        "postgres has USAGE on schema cron WITH GRANT OPTION",
        "pgjwt is in schema extensions",
    ] {
        // Passed findings are counted, not printed: --json lists them.
        assert!(j.stdout.contains(needle), "{needle}: {}", j.stdout);
    }

    // A second run changes nothing.
    let r = run(&["--config", cfg, "apply", "--dsn", &pg.dsn()], &[]).ok();
    assert!(r.stdout.contains("nothing to do"), "{}", r.stdout);
}

#[test]
#[ignore = "slow tier: needs PostgreSQL (root, to run it as postgres)"]
fn an_extension_whose_library_is_not_preloaded_is_pending_until_the_setting_is_fixed() {
    require_built_extensions();
    let pg = PgCluster::start();
    let tmp = tempfile::tempdir().unwrap();
    let create = ["uuid-ossp", "pgcrypto", "pg_stat_statements", "pg_net"];
    // Required, it cannot wait: exit 4 naming the setting, nothing written.
    let strict = write_config(tmp.path(), &pg, &tmp.path().join("none"), &create, &create);
    let r = run(
        &["--config", strict.to_str().unwrap(), "hook", "admin", &pg.dsn()],
        &[],
    );
    assert_eq!(r.code, 4, "{}", r.all());
    assert!(
        r.stderr
            .contains("pg_net (shared_preload_libraries must include pg_net)")
            && r.stderr
                .contains("hint: add the library to shared_preload_libraries"),
        "{}",
        r.stderr
    );
    assert_eq!(pg.psql("SELECT to_regnamespace('pgha_bootstrap') IS NULL"), "t");
    let cfg = write_config(tmp.path(), &pg, &tmp.path().join("none"), &create, REQUIRED);
    let cfg = cfg.to_str().unwrap();
    // Second line of defence: a configuration that does not know pg_net
    // needs preloading; CREATE EXTENSION fails and the extension is pending anyway.
    let bare = tmp.path().join("no-preload-knowledge.toml");
    std::fs::write(
        &bare,
        std::fs::read_to_string(cfg).unwrap() + "[extensions.preload]\n",
    )
    .unwrap();
    let r = run(
        &["--config", bare.to_str().unwrap(), "hook", "admin", &pg.dsn()],
        &[],
    );
    assert_eq!(
        r.code,
        0,
        "a first bootstrap must not fail on a server setting:\n{}",
        r.all()
    );
    assert!(
        r.stdout.contains(
            "warning: extension pg_net: installed, but shared_preload_libraries must include pg_net"
        ),
        "{}",
        r.stdout
    );
    assert_eq!(
        pg.psql("SELECT status || ' ' || reason FROM pgha_bootstrap.extensions WHERE name = 'pg_net'"),
        "pending shared_preload_libraries must include pg_net"
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_extension WHERE extname = 'pg_net'"),
        "0"
    );

    // With the knowledge in the configuration: decided before trying, same record.
    let r = run(&["--config", cfg, "apply", "--dsn", &pg.dsn()], &[]).ok();
    assert!(r.stdout.contains("nothing to do"), "{}", r.stdout);
    let s = run(&["--config", cfg, "status", "--dsn", &pg.dsn()], &[]).ok();
    assert!(
        s.stdout
            .contains("extension pg_net: pending (shared_preload_libraries must include pg_net)"),
        "{}",
        s.stdout
    );
    assert!(
        s.stdout
            .contains("warning: extension pg_net is pending: shared_preload_libraries must include pg_net"),
        "{}",
        s.stdout
    );
    let c = run(&["--config", cfg, "check", "--dsn", &pg.dsn()], &[]);
    assert_eq!(c.code, 0, "{}", c.all());
    assert!(
        c.stdout
            .contains("warning: extension pg_net is pending: shared_preload_libraries must include pg_net"),
        "{}",
        c.stdout
    );

    // The setting fixed, the next promotion creates it, with its grants.
    pg.psql("ALTER SYSTEM SET shared_preload_libraries = 'pg_net'");
    restart(&pg);
    let r = run(&["--config", cfg, "on_role_change", "master", "s"], &[]).ok();
    assert!(r.stdout.contains("extension pg_net: created"), "{}", r.stdout);
    assert_eq!(
        pg.psql("SELECT status FROM pgha_bootstrap.extensions WHERE name = 'pg_net'"),
        "created"
    );
    assert_eq!(
        pg.psql("SELECT has_function_privilege('anon', 'net.http_get(text,jsonb,jsonb,integer)', 'EXECUTE')"),
        "t"
    );
    let c = run(&["--config", cfg, "check", "--dsn", &pg.dsn()], &[]);
    assert_eq!(c.code, 0, "{}", c.all());
    assert!(!c.stdout.contains("pending"), "{}", c.stdout);
}

#[test]
#[ignore = "slow tier: needs PostgreSQL (root, to run it as postgres)"]
fn check_and_status_know_the_selection_apply_was_given() {
    let pg = PgCluster::start();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        &pg,
        &tmp.path().join("none"),
        &["uuid-ossp", "pgcrypto", "pg_stat_statements", "pgtap"],
        REQUIRED,
    );
    let cfg = cfg.to_str().unwrap();
    run(
        &[
            "--config",
            cfg,
            "apply",
            "--extensions",
            "uuid-ossp,pgcrypto",
            "--dsn",
            &pg.dsn(),
        ],
        &[],
    )
    .ok();
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'"),
        "0"
    );
    // A bare check verifies what apply was asked for.
    let c = run(&["--config", cfg, "check", "--dsn", &pg.dsn()], &[]);
    assert_eq!(c.code, 0, "{}", c.all());
    let s = run(&["--config", cfg, "status", "--json", "--dsn", &pg.dsn()], &[]).ok();
    let v: serde_json::Value = serde_json::from_str(&s.stdout).unwrap();
    assert_eq!(
        v["ledger"]["selection"]["extensions"]["create"],
        serde_json::json!(["uuid-ossp", "pgcrypto"])
    );
    assert_eq!(v["pending_extensions"], serde_json::json!([]));
    // check --extensions is accepted like apply's.
    let c = run(
        &[
            "--config",
            cfg,
            "check",
            "--extensions",
            "uuid-ossp,pgcrypto,pg_stat_statements",
            "--dsn",
            &pg.dsn(),
        ],
        &[],
    );
    assert_eq!(c.code, 3, "{}", c.all());
    assert!(
        c.stdout
            .contains("MISSING/DIFFERENT: extension pg_stat_statements is created"),
        "{}",
        c.stdout
    );
    // A bare apply (the promotion hook) keeps the selection.
    let r = run(&["--config", cfg, "apply", "--dsn", &pg.dsn()], &[]).ok();
    assert!(r.stdout.contains("nothing to do"), "{}", r.stdout);
    // A new --extensions changes it.
    let r = run(
        &[
            "--config",
            cfg,
            "apply",
            "--extensions",
            "uuid-ossp,pgcrypto,pg_stat_statements",
            "--dsn",
            &pg.dsn(),
        ],
        &[],
    )
    .ok();
    assert!(
        r.stdout.contains("extension pg_stat_statements: created"),
        "{}",
        r.stdout
    );
    run(&["--config", cfg, "check", "--dsn", &pg.dsn()], &[]).ok();
    // A selection from the configuration follows the configuration: a newer
    // image listing one more extension gets it at the next bare apply.
    let pg2 = PgCluster::start();
    let tmp2 = tempfile::tempdir().unwrap();
    let mut list = vec!["uuid-ossp", "pgcrypto", "pg_stat_statements"];
    let cfg2 = write_config(tmp2.path(), &pg2, &tmp2.path().join("none"), &list, REQUIRED);
    let cfg2 = cfg2.to_str().unwrap();
    run(&["--config", cfg2, "apply", "--dsn", &pg2.dsn()], &[]).ok();
    list.push("pgtap");
    write_config(tmp2.path(), &pg2, &tmp2.path().join("none"), &list, REQUIRED);
    let r = run(&["--config", cfg2, "apply", "--dsn", &pg2.dsn()], &[]).ok();
    assert!(r.stdout.contains("extension pgtap: created"), "{}", r.stdout);
}
