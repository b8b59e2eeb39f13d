//! Secrets from files: awkward characters work, nothing leaks into output,
//! the server log or the ledger; re-runs keep verifiers; rotation works; a
//! LOGIN role without a secret is reported. Connections: PGPASSFILE over
//! TCP with SCRAM, PGOPTIONS, URLs.

mod bootstrap_support;
mod common;

use bootstrap_support::{CREATE, REQUIRED, run, write_config};
use common::pg::PgCluster;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

/// Log in over TCP (SCRAM) as `user` with `password`; Ok(current_user).
fn login(pg: &PgCluster, user: &str, password: &str) -> Result<String, String> {
    let out = Command::new(pg.bin().join("psql"))
        .args([
            "-X",
            "-A",
            "-t",
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
            "-U",
            user,
            "-d",
            "postgres",
        ])
        .args(["-c", "SELECT current_user"])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

#[test]
#[ignore = "slow tier: needs PostgreSQL (root, to run it as postgres)"]
fn awkward_secrets_work_and_never_leak() {
    // Log every statement, so a secret sent in SQL text would show in the server log.
    let pg = PgCluster::start_with("log_statement = 'all'\nlog_min_error_statement = 'debug5'\n");
    let tmp = tempfile::tempdir().unwrap();
    let secrets = tmp.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    let auth_pw = "pa'ss\"wo\\rd ünï€ 🐘 $$ -- ;";
    let shared_pw = "sh@red'\\'' \"pw\" Ω\\\\";
    let jwt = "jwt-'sec\"ret\\ é $1 %s {}-of-at-least-32-characters";
    std::fs::write(secrets.join("authenticator"), format!("{auth_pw}\n")).unwrap();
    std::fs::write(secrets.join("password"), shared_pw).unwrap();
    std::fs::write(secrets.join("jwt_secret"), format!("{jwt}\n")).unwrap();
    let cfg = write_config(tmp.path(), &pg, &tmp.path().join("elsewhere"), CREATE, REQUIRED);
    let cfg = cfg.to_str().unwrap();
    let dir = secrets.to_str().unwrap();
    let check = || {
        run(
            &["--config", cfg, "check", "--secrets-dir", dir, "--dsn", &pg.dsn()],
            &[],
        )
    };

    let r = run(
        &["--config", cfg, "apply", "--secrets-dir", dir, "--dsn", &pg.dsn()],
        &[],
    )
    .ok();
    assert!(r.stdout.contains(&format!(
        "role authenticator: password set from file {dir}/authenticator"
    )));
    assert!(r.stdout.contains(&format!(
        "role pgbouncer: password set from shared file {dir}/password"
    )));
    assert!(
        r.stdout.contains("app.settings.jwt_secret / jwt_exp: set"),
        "{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("LOGIN role without a password"),
        "{}",
        r.stdout
    );

    assert_eq!(login(&pg, "authenticator", auth_pw).unwrap(), "authenticator");
    for role in [
        "pgbouncer",
        "supabase_admin",
        "supabase_auth_admin",
        "supabase_storage_admin",
    ] {
        assert_eq!(login(&pg, role, shared_pw).unwrap(), role);
    }
    assert!(
        login(&pg, "authenticator", shared_pw)
            .unwrap_err()
            .contains("password authentication failed")
    );
    assert_eq!(pg.psql("SELECT current_setting('app.settings.jwt_secret')"), jwt);
    assert_eq!(pg.psql("SELECT current_setting('app.settings.jwt_exp')"), "3600");
    assert_eq!(
        pg.psql(
            "SELECT rolpassword LIKE 'SCRAM-SHA-256$4096:%' FROM pg_authid WHERE rolname = 'authenticator'"
        ),
        "t"
    );

    // A re-run keeps the verifiers (no new salt) and says so.
    let verifiers = pg.psql("SELECT string_agg(rolname || rolpassword, ',' ORDER BY rolname) FROM pg_authid");
    let settings = pg.psql("SELECT setconfig, xmin FROM pg_db_role_setting WHERE setrole = 0");
    let r2 = run(
        &["--config", cfg, "apply", "--secrets-dir", dir, "--dsn", &pg.dsn()],
        &[],
    )
    .ok();
    assert!(r2.stdout.contains("nothing to do"), "{}", r2.stdout);
    assert_eq!(
        pg.psql("SELECT string_agg(rolname || rolpassword, ',' ORDER BY rolname) FROM pg_authid"),
        verifiers
    );
    assert_eq!(
        pg.psql("SELECT setconfig, xmin FROM pg_db_role_setting WHERE setrole = 0"),
        settings
    );

    // Rotation: a changed file sets the new password on the next run.
    let rotated = "n€w'pass\\word";
    std::fs::write(secrets.join("authenticator"), rotated).unwrap();
    // check sees the difference (without showing either password).
    let c = check();
    assert_eq!(c.code, 3, "{}", c.all());
    assert!(
        c.stdout.contains(&format!(
            "MISSING/DIFFERENT: the password of role authenticator is the one in file {dir}/authenticator"
        )),
        "{}",
        c.stdout
    );
    assert!(!c.all().contains(rotated) && !c.all().contains(auth_pw));
    let r3 = run(
        &["--config", cfg, "apply", "--secrets-dir", dir, "--dsn", &pg.dsn()],
        &[],
    )
    .ok();
    assert!(
        r3.stdout.contains("role authenticator: password set"),
        "{}",
        r3.stdout
    );
    assert!(
        !r3.stdout.contains("role pgbouncer: password set"),
        "{}",
        r3.stdout
    );
    assert_eq!(login(&pg, "authenticator", rotated).unwrap(), "authenticator");
    assert!(login(&pg, "authenticator", auth_pw).is_err());

    // The JWT expiry changed behind the bootstrap's back: check and apply
    // decide alike (one rule: the secret and its expiry), check names it,
    // apply sets it again.
    pg.psql("ALTER DATABASE postgres SET app.settings.jwt_exp = '60'");
    let c = check();
    assert_eq!(c.code, 3, "{}", c.all());
    assert!(
        c.stdout.contains(&format!(
            "MISSING/DIFFERENT: app.settings.jwt_secret is the one in {dir}/jwt_secret (and app.settings.jwt_exp the configured 3600)"
        )),
        "{}",
        c.stdout
    );
    let r4 = run(
        &["--config", cfg, "apply", "--secrets-dir", dir, "--dsn", &pg.dsn()],
        &[],
    )
    .ok();
    assert!(
        r4.stdout.contains("app.settings.jwt_secret / jwt_exp: set"),
        "{}",
        r4.stdout
    );
    assert_eq!(pg.psql("SELECT current_setting('app.settings.jwt_exp')"), "3600");
    let c = check();
    assert_eq!(c.code, 0, "{}", c.all());

    // No secret anywhere: captured output, the server log, the ledger.
    let ledger = pg.psql("SELECT * FROM pgha_bootstrap.secrets");
    assert!(
        ledger.contains("authenticator") && ledger.contains("app.settings.jwt_secret"),
        "{ledger}"
    );
    let log = pg.log();
    assert!(log.contains("pgha_bootstrap"), "statement logging is not on?");
    for secret in [auth_pw, shared_pw, jwt, rotated] {
        for (what, text) in [
            ("output", r.all()),
            ("output", r2.all()),
            ("output", r3.all()),
            ("output", r4.all()),
            ("server log", log.clone()),
            ("ledger", ledger.clone()),
        ] {
            assert!(!text.contains(secret), "a secret appears in the {what}");
        }
    }
    // Not even the password part that is plain ASCII.
    assert!(
        !log.contains("pa'ss"),
        "a secret fragment appears in the server log"
    );
}

#[test]
#[ignore = "slow tier: needs PostgreSQL (root, to run it as postgres)"]
fn login_roles_without_a_secret_are_created_without_password_and_reported() {
    let pg = PgCluster::start();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &pg, &tmp.path().join("missing-dir"), CREATE, REQUIRED);
    let r = run(
        &["--config", cfg.to_str().unwrap(), "apply", "--dsn", &pg.dsn()],
        &[],
    )
    .ok();
    for role in bootstrap_support_login_roles() {
        assert!(
            r.stdout
                .contains(&format!("role {role}: LOGIN role without a password")),
            "{role}: {}",
            r.stdout
        );
    }
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_authid WHERE rolname = 'authenticator' AND rolpassword IS NULL"),
        "1"
    );
    let c = run(
        &["--config", cfg.to_str().unwrap(), "check", "--dsn", &pg.dsn()],
        &[],
    )
    .ok();
    assert!(
        c.stdout
            .contains("note: LOGIN role authenticator has no password"),
        "{}",
        c.stdout
    );
    // An empty secret file is a mistake, not "no password".
    std::fs::create_dir(tmp.path().join("missing-dir")).unwrap();
    std::fs::write(tmp.path().join("missing-dir").join("password"), "\n").unwrap();
    let r = run(
        &["--config", cfg.to_str().unwrap(), "apply", "--dsn", &pg.dsn()],
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("password is empty"), "{}", r.stderr);
}

fn bootstrap_support_login_roles() -> &'static [&'static str] {
    pgha_image::bootstrap::secrets::LOGIN_ROLES
}

#[test]
#[ignore = "slow tier: needs PostgreSQL (root, to run it as postgres)"]
fn pgpassfile_pgoptions_and_urls_over_tcp() {
    let pg = PgCluster::start();
    let tmp = tempfile::tempdir().unwrap();
    let pw = "su:per\\secret";
    pg.psql("SET password_encryption = 'scram-sha-256'; ALTER ROLE postgres PASSWORD 'su:per\\secret'");
    let passfile = tmp.path().join("pgpass");
    std::fs::write(
        &passfile,
        format!("127.0.0.1:{}:*:postgres:su\\:per\\\\secret\n", pg.port),
    )
    .unwrap();
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = write_config(tmp.path(), &pg, &tmp.path().join("none"), CREATE, REQUIRED);
    let cfg = cfg.to_str().unwrap();
    let dsn = format!("dbname=postgres user=postgres host=127.0.0.1 port={}", pg.port);
    let pf = passfile.to_str().unwrap();

    // No password anywhere: a clear connection error.
    let r = run(&["--config", cfg, &dsn], &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr
            .contains("cannot connect to PostgreSQL at dbname=postgres host=127.0.0.1"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("PGPASSFILE"), "{}", r.stderr);

    // PGOPTIONS is honoured: a read-only default makes the run fail, and writes nothing.
    // (Spilo's wrapper form: `hook HUMAN_ROLE DSN`.)
    let r = run(
        &["--config", cfg, "hook", "admin", &dsn],
        &[
            ("PGPASSFILE", pf),
            ("PGOPTIONS", "-c default_transaction_read_only=on"),
        ],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("read-only transaction"), "{}", r.stderr);
    assert_eq!(pg.psql("SELECT to_regnamespace('pgha_bootstrap') IS NULL"), "t");

    // As Patroni/Spilo run it: bare DSN, PGPASSFILE, Spilo's PGOPTIONS.
    let r = run(
        &["--config", cfg, &dsn],
        &[
            ("PGPASSFILE", pf),
            ("PGOPTIONS", "-c synchronous_commit=local -c statement_timeout=0"),
        ],
    )
    .ok();
    assert!(r.stdout.contains("applied 0001_roles"), "{}", r.stdout);
    assert!(!r.all().contains(pw));

    // A URL, with the password from the file too.
    let url = format!(
        "postgresql://postgres@127.0.0.1:{}/postgres?application_name=pgha-test",
        pg.port
    );
    let s = run(&["--config", cfg, "status", "--dsn", &url], &[("PGPASSFILE", pf)]).ok();
    assert!(
        s.stdout.contains("applied  0010_supabase_database"),
        "{}",
        s.stdout
    );
    // A password in a URL is never echoed.
    let bad = format!(
        "postgresql://postgres:wrong-{}@127.0.0.1:{}/postgres",
        "Zq9", pg.port
    );
    let r = run(&["--config", cfg, "status", "--dsn", &bad], &[]);
    assert_eq!(r.code, 1);
    assert!(!r.all().contains("wrong-Zq9"), "{}", r.all());
    assert!(r.stderr.contains("password=***"), "{}", r.stderr);
}
