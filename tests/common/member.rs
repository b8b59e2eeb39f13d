//! A running member of an image of this tool, for the tests that run SQL in
//! it: the secrets a deployment mounts, psql as the superuser over the
//! socket, the bootstrap's status, and every catalog smoke the image's build
//! manifest carries.

use super::images::Container;
use pgha_image::catalog::{SMOKE_PSQL_ARGS, Smoke};
use std::os::unix::fs::PermissionsExt;

pub const ROOT_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// The secrets a deployment mounts at /run/secrets/supabase (readable by
/// the container's postgres user).
pub fn secrets() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("pgha-member-secrets")
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

pub fn mount(secrets: &tempfile::TempDir) -> String {
    format!("{}:/run/secrets/supabase:ro", secrets.path().display())
}

/// psql as the superuser over the socket, the script on stdin; (ok, output).
pub fn psql(c: &Container, args: &[&str], script: &str) -> (bool, String) {
    c.psql(args, script)
}

/// Run SQL (psql -XAtq, stop on error) and return its output, or panic.
pub fn sql(c: &Container, script: &str) -> String {
    let (ok, out) = psql(c, &["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"], script);
    assert!(
        ok,
        "SQL failed:\n{script}\n---\n{out}\n--- container log:\n{}",
        log_tail(c)
    );
    out.trim().to_string()
}

pub fn log_tail(c: &Container) -> String {
    let log = c.logs();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

pub fn bootstrap_status(c: &Container) -> serde_json::Value {
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

/// One extension of an image whose catalog smoke passed in a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmokeRun {
    pub name: String,
    pub version: String,
    /// The recipe the manifest records (`pgxs`, `sql`, `base`, ...).
    pub recipe: String,
}

/// Run every extension's smoke from the image's build manifest in member
/// `c`, twice each (a smoke leaves nothing behind); panics on the first
/// failure with psql's output or the difference from the expected output.
pub fn run_smokes(c: &Container) -> Vec<SmokeRun> {
    let (ok, manifest) = c.exec(&["cat", "/etc/pgha/build-manifest.json"]);
    assert!(ok, "{manifest}");
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let mut ran = Vec::new();
    for e in manifest["extensions"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        let smoke: Smoke = serde_json::from_value(e["smoke"].clone())
            .unwrap_or_else(|err| panic!("{name}: no smoke in the manifest ({err}): {e}"));
        for round in 1..=2 {
            let (ok, out) = psql(c, SMOKE_PSQL_ARGS, &smoke.script(name));
            assert!(ok, "smoke of {name} (round {round}) failed:\n{out}");
            if let Err(diff) = smoke.check(&out) {
                panic!("smoke of {name} (round {round}): {diff}");
            }
        }
        ran.push(SmokeRun {
            name: name.to_string(),
            version: e["version"].as_str().unwrap_or_default().to_string(),
            recipe: e["recipe"].as_str().unwrap_or_default().to_string(),
        });
    }
    ran
}
