//! The full extension set, end to end, from the real upstream archives
//! (`common::sources`): one image (`images::full_set_image`, built once per
//! context digest and shared with the other tests that need it) of the
//! default C/SQL set plus supabase_vault and pgtap on the Spilo stand-in,
//! then, in running members of it:
//! - the plain run (only the secrets mounted) elects a leader and bootstraps,
//!   with the image's default settings (nothing from the deployment);
//! - every extension's catalog smoke, as the build manifest carries it, twice;
//! - the image is lean: no build tools, no -dev packages, no apt lists or caches;
//! - two members started from the image with the same key file derive the
//!   same keys, and read each other's vault secrets.
//!
//! (The grants Supabase relies on, by behaviour, and the preload-missing
//! path come with the bootstrap's grants and pending-extension work.)

mod common;

use common::images::{self, Container};
use pgha_image::catalog::{SMOKE_PSQL_ARGS, Smoke};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

const ROOT_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// The secrets a deployment mounts at /run/secrets/supabase (readable by
/// the container's postgres user).
fn secrets() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("pgha-full-set-secrets")
        .tempdir()
        .unwrap();
    for (name, value) in [
        ("password", "full-set-pw"),
        ("jwt_secret", "super-secret-jwt-token-with-at-least-32-characters"),
        ("pgsodium_root_key", ROOT_KEY),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, format!("{value}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn mount(secrets: &tempfile::TempDir) -> String {
    format!("{}:/run/secrets/supabase:ro", secrets.path().display())
}

/// psql as the superuser over the socket, the script on stdin; (ok, output).
fn psql(c: &Container, args: &[&str], script: &str) -> (bool, String) {
    let mut child = images::podman_cmd()
        .args(["exec", "-i", &c.name, "runuser", "-u", "postgres", "--"])
        .args(["psql", "-h", "/run/postgresql", "-d", "postgres"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
    if !o.status.success() {
        s.push_str(&String::from_utf8_lossy(&o.stderr));
    }
    (o.status.success(), s)
}

/// Run SQL (psql -XAtq, stop on error) and return its output, or panic.
fn sql(c: &Container, script: &str) -> String {
    let (ok, out) = psql(c, &["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"], script);
    assert!(
        ok,
        "SQL failed:\n{script}\n---\n{out}\n--- container log:\n{}",
        log_tail(c)
    );
    out.trim().to_string()
}

fn log_tail(c: &Container) -> String {
    let log = c.logs();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// A member of the image with only the secrets mounted, leader and bootstrapped.
fn plain_member(name: &str, image: &str, secrets: &tempfile::TempDir) -> Container {
    let c = Container::run(name, image, &["-v", &mount(secrets)]);
    c.wait_for("the plain run's leader", Duration::from_secs(240), |c| {
        c.exec(&["curl", "-fsS", "http://127.0.0.1:8008/primary"]).0
    });
    c
}

fn bootstrap_status(c: &Container) -> serde_json::Value {
    let (ok, out) = c.exec(&[
        "runuser",
        "-u",
        "postgres",
        "--",
        "/usr/local/bin/pgha-bootstrap",
        "status",
        "--json",
    ]);
    assert!(ok, "pgha-bootstrap status failed:\n{out}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("status --json ({e}):\n{out}"))
}

#[test]
fn full_set_plain_run_smokes_and_keys() {
    let engine = images::engine_lock();
    let start = Instant::now();
    let image = images::full_set_image(&engine);
    eprintln!("full-set image {image} ready after {:?}", start.elapsed());
    let secrets = secrets();

    // The plain run: only the secrets. The image's own defaults preload
    // pg_net, pgsodium, supabase_vault and pg_cron, so the bootstrap creates
    // its extensions and Patroni elects the member.
    let t = Instant::now();
    let a = plain_member("full-set-a", &image, &secrets);
    eprintln!("plain run: leader after {:?}", t.elapsed());
    let status = bootstrap_status(&a);
    assert_eq!(status["in_recovery"], false, "{status}");
    for empty in ["pending_migrations", "pending_extensions", "problems"] {
        assert_eq!(status[empty], serde_json::json!([]), "{empty}: {status}");
    }
    let preload = sql(&a, "SHOW shared_preload_libraries;");
    for lib in [
        "pg_stat_statements",
        "pg_cron",
        "pg_net",
        "pgsodium",
        "supabase_vault",
    ] {
        assert!(
            preload.split(',').any(|l| l.trim() == lib),
            "{lib} not preloaded: {preload}"
        );
    }
    assert_eq!(sql(&a, "SHOW wal_level;"), "logical");
    assert_eq!(sql(&a, "SHOW cron.database_name;"), "postgres");

    // Lean: no compiler, no build tools, no -dev headers, no apt lists or caches.
    let (_, lean) = a.exec(&[
        "sh",
        "-c",
        "command -v gcc cc make || true; ls /usr/include/postgresql/15/server 2>/dev/null | head -1; \
         ls /var/lib/apt/lists | grep -v -e '^lock$' -e '^partial$'; ls /var/cache/apt/*.bin 2>/dev/null; \
         dpkg -l | awk '/^ii/ && $2 ~ /-dev(:|$)/ {print $2}'",
    ]);
    assert_eq!(lean.trim(), "", "left in the image: {lean}");

    // Every smoke of the image, as the build manifest carries it.
    let (ok, manifest) = a.exec(&["cat", "/etc/pgha/build-manifest.json"]);
    assert!(ok, "{manifest}");
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let mut ran = Vec::new();
    for e in manifest["extensions"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        let smoke: Smoke = serde_json::from_value(e["smoke"].clone())
            .unwrap_or_else(|err| panic!("{name}: no smoke in the manifest ({err}): {e}"));
        // Twice: a smoke leaves nothing behind.
        for round in 1..=2 {
            let (ok, out) = psql(&a, SMOKE_PSQL_ARGS, &smoke.script(name));
            assert!(ok, "smoke of {name} (round {round}) failed:\n{out}");
            if let Err(diff) = smoke.check(&out) {
                panic!("smoke of {name} (round {round}): {diff}");
            }
        }
        ran.push(name.to_string());
    }
    ran.sort();
    let mut want: Vec<_> = images::FULL_SET.split(',').map(str::to_string).collect();
    want.sort();
    assert_eq!(ran, want);

    // A vault secret (as the superuser here; service_role's grants are
    // `supabase_grants_by_behaviour`), to be read by a second member.
    let out = sql(
        &a,
        "SELECT vault.create_secret('vault value', 'pgha-full-set-secret') IS NOT NULL;",
    );
    assert_eq!(out, "t");

    // A second member of the image with the same key file derives the same
    // keys (a failover keeps encrypted data readable).
    let b = plain_member("full-set-b", &image, &secrets);
    let derive = "SELECT encode(pgsodium.derive_key(7), 'hex');";
    let (ka, kb) = (sql(&a, derive), sql(&b, derive));
    assert_eq!(ka.len(), 64, "{ka}");
    assert_eq!(ka, kb, "the same root key file, the same derived keys");
    // And a vault secret written by one is read by the other.
    let row = sql(
        &a,
        "SELECT id || '|' || encode(nonce, 'hex') || '|' || secret \
         FROM vault.secrets WHERE name = 'pgha-full-set-secret';",
    );
    let f: Vec<&str> = row.split('|').collect();
    assert_eq!(f.len(), 3, "{row}");
    let out = sql(
        &b,
        &format!(
            "INSERT INTO vault.secrets (id, name, secret, nonce) VALUES \
             ('{}', 'copied', '{}', decode('{}', 'hex'));\n\
             SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = 'copied';",
            f[0], f[2], f[1]
        ),
    );
    assert_eq!(out, "vault value");
    eprintln!("full-set test done in {:?}", start.elapsed());
}
