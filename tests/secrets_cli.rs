//! `pgha-image secrets`, run as a user runs it: the files a cluster needs,
//! their modes and group, API keys that verify with the JWT secret (checked
//! here with HMAC-SHA256, not with the tool's code), certificates that
//! openssl's own verifier accepts for each address a client may dial, and
//! the refusals (an existing DIR, a bad spec) that lose nothing.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

const SPEC: &str = "scope = \"s16\"\nimage = \"localhost/pgha-test/unused:1\"\nsecrets_dir = \"/etc/pgha/secrets\"\n\
[[member]]\nname = \"pg1\"\naddress = \"192.0.2.11\"\n\
[[member]]\nname = \"pg2\"\naddress = \"192.0.2.12\"\n\
[[member]]\nname = \"pg3\"\naddress = \"192.0.2.13\"\n";

fn gid() -> u32 {
    unsafe { libc::getegid() }
}

fn secrets(args: &[&str], dir: &Path) -> std::process::Output {
    assert_cmd::Command::cargo_bin("pgha-image")
        .unwrap()
        .current_dir(dir)
        .arg("secrets")
        .args(args)
        .output()
        .unwrap()
}

fn read(dir: &Path, f: &str) -> String {
    std::fs::read_to_string(dir.join(f)).unwrap()
}

fn env_value(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in\n{text}"))
        .to_string()
}

/// The claims of an HS256 JWT whose signature checks with `secret`.
fn verified_claims(token: &str, secret: &str) -> serde_json::Value {
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    mac.verify_slice(&B64URL.decode(sig).unwrap())
        .unwrap_or_else(|_| panic!("{token} does not verify with the jwt_secret"));
    let (header, claims) = input.split_once('.').unwrap();
    let header: serde_json::Value = serde_json::from_slice(&B64URL.decode(header).unwrap()).unwrap();
    assert_eq!(header["alg"], "HS256");
    serde_json::from_slice(&B64URL.decode(claims).unwrap()).unwrap()
}

fn openssl_verify(dir: &Path, cert: &str, ip: &str) -> (bool, String) {
    let openssl = common::prereq::require_program("openssl", "openssl", &["/usr/bin"]);
    let o = Command::new(openssl)
        .args(["verify", "-CAfile"])
        .arg(dir.join("ca.crt"))
        .args(["-verify_ip", ip])
        .arg(dir.join(cert))
        .output()
        .unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn makes_every_secret_consistent_private_and_verifiable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("cluster.toml"), SPEC).unwrap();
    let g = gid().to_string();
    let o = secrets(
        &["--spec", "cluster.toml", "--out", "sec", "--gid", &g, "--json"],
        dir,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let out = dir.join("sec");

    // Every file, its group and mode; nothing world-readable, ca.key root's alone.
    let files: Vec<&str> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for f in [
        "password",
        "jwt_secret",
        "pgsodium_root_key",
        "patroni.env",
        "haproxy.env",
        "anon_key",
        "service_role_key",
        "api.env",
        "ca.crt",
        "ca.key",
        "tls/pg1.crt",
        "tls/pg1.key",
        "tls/pg3.key",
    ] {
        assert!(files.contains(&f), "{f} not reported: {files:?}");
        let meta = std::fs::metadata(out.join(f)).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        assert_eq!(mode, if f == "ca.key" { 0o400 } else { 0o440 }, "{f}");
        if f != "ca.key" {
            assert_eq!(meta.gid(), gid(), "{f}");
        }
    }
    let dir_mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o750);
    // No temporary leftovers beside it.
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Values: the right shapes, all different, none printed.
    let jwt_secret = read(&out, "jwt_secret").trim().to_string();
    let key = read(&out, "pgsodium_root_key").trim().to_string();
    assert_eq!(key.len(), 64);
    assert!(key.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(jwt_secret.len() >= 32);
    let patroni = read(&out, "patroni.env");
    let su = env_value(&patroni, "PGPASSWORD_SUPERUSER");
    let repl = env_value(&patroni, "PGPASSWORD_STANDBY");
    let rest = env_value(&patroni, "PGHA_RESTAPI_PASSWORD");
    let stats = env_value(&read(&out, "haproxy.env"), "PGHA_STATS_PASSWORD");
    let password = read(&out, "password").trim().to_string();
    let all = [&jwt_secret, &key, &su, &repl, &rest, &stats, &password];
    for (i, a) in all.iter().enumerate() {
        assert!(a.len() >= 32, "{i}");
        for b in &all[i + 1..] {
            assert_ne!(a, b);
        }
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!printed.contains(a.as_str()), "a secret was printed");
    }

    // The API keys verify with jwt_secret and carry the roles PostgREST switches to.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for (f, role) in [("anon_key", "anon"), ("service_role_key", "service_role")] {
        let c = verified_claims(read(&out, f).trim(), &jwt_secret);
        assert_eq!(c["role"], role);
        assert_eq!(c["iss"], "supabase");
        assert!(c["exp"].as_u64().unwrap() > now + 5 * 365 * 24 * 3600, "{c}");
        assert!(c["iat"].as_u64().unwrap() <= now);
    }

    // api.env: the same values, and connection strings through every HAProxy with verify-full.
    let api = read(&out, "api.env");
    assert_eq!(env_value(&api, "JWT_SECRET"), jwt_secret);
    assert_eq!(env_value(&api, "ANON_KEY"), read(&out, "anon_key").trim());
    assert_eq!(
        env_value(&api, "SERVICE_ROLE_KEY"),
        read(&out, "service_role_key").trim()
    );
    let uri = env_value(&api, "PGRST_DB_URI");
    assert_eq!(
        uri,
        format!(
            "postgres://authenticator:{password}@192.0.2.11:5000,192.0.2.12:5000,192.0.2.13:5000/postgres\
             ?sslmode=verify-full&sslrootcert=/etc/pgha/secrets/ca.crt&target_session_attrs=read-write"
        )
    );

    // Certificates: each member's verifies for its own address and every
    // HAProxy address (all members here), not for another address.
    for m in ["tls/pg1.crt", "tls/pg2.crt", "tls/pg3.crt"] {
        for ip in ["192.0.2.11", "192.0.2.12", "192.0.2.13"] {
            let (ok, text) = openssl_verify(&out, m, ip);
            assert!(ok, "{m} for {ip}: {text}");
        }
        let (ok, text) = openssl_verify(&out, m, "192.0.2.99");
        assert!(!ok, "{m} must not verify for an address it does not name: {text}");
    }
}

#[test]
fn per_role_writes_a_password_per_login_role() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("cluster.toml"), SPEC).unwrap();
    let g = gid().to_string();
    let o = secrets(
        &[
            "--spec",
            "cluster.toml",
            "--out",
            "sec",
            "--gid",
            &g,
            "--per-role",
        ],
        dir,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = dir.join("sec");
    assert!(!out.join("password").exists());
    let auth = read(&out, "authenticator").trim().to_string();
    let admin = read(&out, "supabase_admin").trim().to_string();
    assert_ne!(auth, admin);
    let api = read(&out, "api.env");
    assert!(env_value(&api, "PGRST_DB_URI").starts_with(&format!("postgres://authenticator:{auth}@")));
    assert!(env_value(&api, "GOTRUE_DB_DATABASE_URL").starts_with(&format!(
        "postgres://supabase_auth_admin:{}@",
        read(&out, "supabase_auth_admin").trim()
    )));
}

#[test]
fn never_replaces_secrets_without_force_and_loses_nothing_on_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("cluster.toml"), SPEC).unwrap();
    let g = gid().to_string();
    let args = ["--spec", "cluster.toml", "--out", "sec", "--gid", &g];
    assert!(secrets(&args, dir).status.success());
    let before = read(&dir.join("sec"), "jwt_secret");

    let o = secrets(&args, dir);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("sec is not empty") && err.contains("hint:") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(read(&dir.join("sec"), "jwt_secret"), before);

    // A bad spec: exit 2 naming the field; the secrets stay.
    std::fs::write(dir.join("bad.toml"), SPEC.replace("192.0.2.12", "not an address")).unwrap();
    let o = secrets(
        &["--spec", "bad.toml", "--out", "sec", "--gid", &g, "--force"],
        dir,
    );
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("address"));
    assert_eq!(read(&dir.join("sec"), "jwt_secret"), before);

    // A user file where DIR should be is not touched.
    std::fs::write(dir.join("notes"), "mine").unwrap();
    let o = secrets(&["--spec", "cluster.toml", "--out", "notes", "--gid", &g], dir);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(dir.join("notes")).unwrap(), "mine");

    // --force replaces them whole.
    let mut forced: Vec<&str> = args.to_vec();
    forced.push("--force");
    let o = secrets(&forced, dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_ne!(read(&dir.join("sec"), "jwt_secret"), before);
}
