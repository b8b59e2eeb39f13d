//! Digests one can stand behind: each catalog version says what confirmed
//! its sha256 (`provenance`, `confirmed_by`), the loader refuses a claim
//! without records (and records without the claim), `extensions show`
//! marks an unconfirmed digest, and `generate`/`build` warn when a source
//! whose digest nobody confirmed is selected — and only then.

mod common;

use assert_cmd::Command;
use common::images;
use common::sources;
use pgha_image::catalog::Catalog;

const BOOTSTRAP: &str = env!("CARGO_BIN_EXE_pgha-bootstrap");

fn pgha() -> Command {
    Command::cargo_bin("pgha-image").unwrap()
}

/// The first unconfirmed and the first confirmed pinned C/SQL source of the
/// shipped catalog (from the catalog, so that confirming one later keeps
/// the test meaningful).
fn one_of_each() -> (String, String) {
    let catalog = Catalog::embedded().unwrap();
    let buildable = |confirmed: bool| {
        catalog
            .iter()
            .filter(|e| e.pg_majors.contains(15) && e.build.kind != pgha_image::catalog::BuildKind::Pgrx)
            .filter(|e| e.build.kind != pgha_image::catalog::BuildKind::Base)
            .find(|e| e.pinned().source.is_confirmed() == confirmed)
            .map(|e| e.name.clone())
            .expect("the catalog has both kinds")
    };
    (buildable(false), buildable(true))
}

/// The base does not exist: `generate` takes its facts from flags, not a probe.
const NO_PROBE: [&str; 5] = [
    "--no-probe",
    "--base-glibc",
    "2.36",
    "--base-preload",
    "pg_stat_statements",
];

fn generate_args(dir: &std::path::Path, extensions: &str) -> Vec<std::ffi::OsString> {
    let mut a: Vec<std::ffi::OsString> = vec![
        "--base-image".into(),
        format!("localhost/pgha-test/no-such-base-{}:1", std::process::id()).into(),
        "--pg".into(),
        "15".into(),
        "--base-lib".into(),
        "libcurl=7.88".into(),
        "--extensions".into(),
        extensions.into(),
        "--bootstrap-bin".into(),
        BOOTSTRAP.into(),
        "--cache-dir".into(),
        dir.join("cache").into(),
    ];
    a.extend(sources::fetch_args());
    a
}

#[test]
fn generate_warns_for_an_unconfirmed_digest_only() {
    let (unconfirmed, confirmed) = one_of_each();
    let dir = tempfile::tempdir().unwrap();
    let out = pgha()
        .args(["generate", "--json", "--progress", "plain", "--out"])
        .arg(dir.path().join("a"))
        .args(generate_args(dir.path(), &format!("{unconfirmed},{confirmed}")))
        .args(NO_PROBE)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let warned: Vec<&str> = stderr.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(warned.len(), 1, "{stderr}");
    assert!(
        warned[0].starts_with(&format!("warning: {unconfirmed} ")) && warned[0].contains("is unconfirmed"),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["warnings"].as_array().unwrap().len(), 1, "{json}");

    // Only the confirmed one: no warning.
    let out = pgha()
        .args(["generate", "--json", "--progress", "plain", "--out"])
        .arg(dir.path().join("b"))
        .args(generate_args(dir.path(), &confirmed))
        .args(NO_PROBE)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("warning: "), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["warnings"], serde_json::json!([]), "{json}");

    // `extensions show` marks it.
    let out = pgha()
        .args(["extensions", "show", &unconfirmed])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("UNCONFIRMED"), "{text}");
}

/// `build` says so too, on the real stand-in base (a missing base now fails
/// before any plan is made, so it cannot be the base here).
#[test]
#[ignore = "slow tier: needs root and Podman"]
fn build_warns_for_an_unconfirmed_digest() {
    let base = images::spilo_standin();
    let _engine = images::engine_lock();
    let (unconfirmed, _) = one_of_each();
    let dir = tempfile::tempdir().unwrap();
    let image = images::unique_image("provenance");
    let mut args = generate_args(dir.path(), &unconfirmed);
    let at = args.iter().position(|a| a == "--base-image").unwrap();
    args[at + 1] = base.into();
    let out = pgha()
        .args(["build", "--progress", "plain", "--engine", "podman", "--tag"])
        .arg(&image.reference)
        .arg("--out")
        .arg(dir.path().join("build"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with(&format!("warning: {unconfirmed} ")) && l.contains("is unconfirmed")),
        "{stderr}"
    );
}

#[test]
fn the_loader_wants_records_for_an_independent_digest_and_none_otherwise() {
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("extensions/pgjwt.toml"),
    )
    .unwrap();
    assert!(shipped.contains("provenance = \"independent\""));
    let no_records: String = shipped
        .lines()
        .map(|l| {
            if l.starts_with("confirmed_by") {
                "confirmed_by = []"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let cases = [
        (no_records, "needs confirmed_by"),
        (
            shipped.replace("provenance = \"independent\"", "provenance = \"reproduced-only\""),
            "confirmed_by lists records",
        ),
    ];
    for (text, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pgjwt.toml"), &text).unwrap();
        let out = pgha()
            .args(["extensions", "list", "--catalog"])
            .arg(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(want), "{want}: {stderr}");
        assert!(stderr.contains("hint:"), "{stderr}");
    }
}
