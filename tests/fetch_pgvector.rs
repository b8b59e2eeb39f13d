//! The real pgvector 0.8.0 source (Debian's orig tarball, byte-identical to
//! the GitHub archive) fetched through `--mirror`, as a directory and over
//! HTTP, and verified against the embedded catalog's own digest.

mod common;

use assert_cmd::Command;
use common::http::{Reply, Server, files_under};
use common::prereq::{fixtures_dir, require_file};
use pgha_image::catalog::Catalog;
use std::path::PathBuf;

fn tarball() -> Vec<u8> {
    let p = require_file(
        &fixtures_dir().join("upstream/pgvector_0.8.0.orig.tar.gz"),
        "the pgvector 0.8.0 source tarball (Debian source package pgvector)",
    );
    std::fs::read(p).unwrap()
}

fn catalog_digest() -> String {
    let c = Catalog::embedded().unwrap();
    c.get("vector")
        .unwrap()
        .version("0.8.0")
        .unwrap()
        .source
        .sha256
        .to_hex()
}

fn pgha(cache: &std::path::Path) -> Command {
    let mut c = common::cli::pgha();
    c.env_remove("PGHA_CATALOG")
        .env_remove("PGHA_MIRROR")
        .arg("--cache-dir")
        .arg(cache);
    c
}

fn fetched(out: &std::process::Output) -> serde_json::Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = v["sources"].as_array().unwrap();
    assert_eq!(s.len(), 1, "{v}");
    s[0].clone()
}

#[test]
fn pgvector_from_a_mirror_directory_verifies_against_the_catalog() {
    let bytes = tarball();
    let tmp = tempfile::tempdir().unwrap();
    let mirror = tmp.path().join("mirror");
    std::fs::create_dir(&mirror).unwrap();
    std::fs::write(mirror.join("vector-0.8.0.tar.gz"), &bytes).unwrap();
    let cache = tmp.path().join("cache");
    let out = pgha(&cache)
        .args(["fetch", "-e", "vector@0.8.0", "--json", "--mirror"])
        .arg(&mirror)
        .output()
        .unwrap();
    let s = fetched(&out);
    assert_eq!(s["origin"], "mirror");
    assert_eq!(s["sha256"], catalog_digest().as_str());
    assert_eq!(
        s["sha256"],
        "867a2c328d4928a5a9d6f052cd3bc78c7d60228a9b914ad32aa3db88e9de27b0"
    );
    let path = PathBuf::from(s["path"].as_str().unwrap());
    assert_eq!(std::fs::read(&path).unwrap(), bytes);

    // The build unpacks it: the real archive passes the safety checks.
    let summary = pgha_image::archive::check(&path).unwrap();
    assert_eq!(summary.top_level.as_deref(), Some("pgvector-0.8.0"));
    // ... and unpacks as the builder stage does.
    let dest = tmp.path().join("src");
    std::fs::create_dir(&dest).unwrap();
    let st = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&path)
        .arg("-C")
        .arg(&dest)
        .args(["--strip-components=1", "--no-same-owner"])
        .status()
        .unwrap();
    assert!(st.success());
    let control = std::fs::read_to_string(dest.join("vector.control")).unwrap();
    assert!(control.contains("default_version = '0.8.0'"), "{control}");
    assert!(dest.join("Makefile").is_file());
}

#[test]
fn pgvector_over_an_http_mirror_verifies_and_a_changed_byte_is_caught() {
    let bytes = tarball();
    let server = Server::start();
    server.route("/pub/vector-0.8.0.tar.gz", Reply::Bytes(bytes.clone()));
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    // A loopback mirror the user names may be plain http without --allow-http.
    let out = pgha(&cache)
        .args(["fetch", "-e", "vector", "--json", "--mirror", &server.url("/pub")])
        .output()
        .unwrap();
    let s = fetched(&out);
    assert_eq!(s["origin"], "mirror");
    assert_eq!(s["sha256"], catalog_digest().as_str());
    assert_eq!(s["from"], server.url("/pub/vector-0.8.0.tar.gz").as_str());
    assert_eq!(server.requests("/pub/vector-0.8.0.tar.gz"), 1);

    let mut bad = bytes.clone();
    bad[bytes.len() / 2] ^= 0x01;
    server.route("/pub/vector-0.8.0.tar.gz", Reply::Bytes(bad));
    let cache2 = tmp.path().join("cache2");
    let out = pgha(&cache2)
        .args(["fetch", "-e", "vector", "--mirror", &server.url("/pub")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&catalog_digest()) && err.contains("vector 0.8.0"),
        "{err}"
    );
    assert!(files_under(&cache2).is_empty());
}
