//! The crates of a Rust (pgrx) extension, driven as a user would: `fetch`
//! reads the Cargo.lock inside the extension's verified archive and the one
//! inside the pinned cargo-pgrx crate, fetches every crate from a crates
//! mirror served on 127.0.0.1 (the layout of static.crates.io), verifies each
//! against its lock checksum, and `mirror DIR` writes them so that `--mirror
//! DIR` alone serves them; `generate` vendors them into the context. A
//! tampered crate, a git dependency and an unpinned Rust image are refused.

mod common;

use assert_cmd::Command;
use common::http::{Reply, Server, sha256_hex};
use common::tarball::tar_gz as tarball;
use std::path::{Path, PathBuf};

const PGRX: &str = "0.12.9";

fn crate_bytes(name: &str, version: &str, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let toml = format!("[package]\nname = \"{name}\"\nversion = \"{version}\"\n");
    let mut files: Vec<(&str, &[u8])> = vec![("Cargo.toml", toml.as_bytes())];
    files.extend_from_slice(extra);
    tarball(&format!("{name}-{version}"), &files)
}

fn lock(root: &str, deps: &[(&str, &str, String)]) -> String {
    let mut s = format!("version = 3\n\n[[package]]\nname = \"{root}\"\nversion = \"1.0.0\"\n");
    for (name, version, source_and_sum) in deps {
        s.push_str(&format!(
            "\n[[package]]\nname = \"{name}\"\nversion = \"{version}\"\n{source_and_sum}\n"
        ));
    }
    s
}

fn crates_io(sum: &str) -> String {
    format!("source = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{sum}\"")
}

struct Fixture {
    tmp: tempfile::TempDir,
    server: Server,
    /// (mirror path, bytes) of every crate served.
    crates: Vec<(String, Vec<u8>)>,
}

impl Fixture {
    /// A pgrx extension `demo` 1.0 whose Cargo.lock takes foo 1.0.0 and bar
    /// 0.2.0 from crates.io, and a cargo-pgrx crate whose Cargo.lock takes
    /// baz 3.0.0; `lock_extra` is appended to demo's lock. Crates are
    /// served under /m/crates/…; `served_bar` replaces bar's bytes as served.
    fn new(lock_extra: &str, served_bar: Option<Vec<u8>>) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let server = Server::start();
        let c_foo = crate_bytes("foo", "1.0.0", &[]);
        let bar = crate_bytes("bar", "0.2.0", &[("src/lib.rs", b"pub fn bar() {}")]);
        let c_baz = crate_bytes("baz", "3.0.0", &[]);
        let pgrx_lock = lock("cargo-pgrx", &[("baz", "3.0.0", crates_io(&sha256_hex(&c_baz)))]);
        let cargo_pgrx = crate_bytes("cargo-pgrx", PGRX, &[("Cargo.lock", pgrx_lock.as_bytes())]);
        let demo_lock = lock(
            "demo",
            &[
                ("bar", "0.2.0", crates_io(&sha256_hex(&bar))),
                ("foo", "1.0.0", crates_io(&sha256_hex(&c_foo))),
            ],
        ) + lock_extra;
        let archive = tarball(
            "demo-1.0",
            &[
                ("Cargo.toml", b"[package]\nname = \"demo\"\n".as_slice()),
                ("Cargo.lock", demo_lock.as_bytes()),
            ],
        );
        server.route("/demo.tar.gz", Reply::Bytes(archive.clone()));
        let mut crates = Vec::new();
        for (name, version, bytes) in [
            ("foo", "1.0.0", c_foo),
            ("bar", "0.2.0", bar),
            ("baz", "3.0.0", c_baz),
            ("cargo-pgrx", PGRX, cargo_pgrx.clone()),
        ] {
            let path = format!("crates/{name}/{name}-{version}.crate");
            let served = match (name, &served_bar) {
                ("bar", Some(b)) => b.clone(),
                _ => bytes.clone(),
            };
            server.route(&format!("/m/{path}"), Reply::Bytes(served));
            crates.push((path, bytes));
        }
        let catalog = tmp.path().join("catalog");
        std::fs::create_dir_all(&catalog).unwrap();
        std::fs::write(
            catalog.join("demo.toml"),
            format!(
                r#"name = "demo"
description = "fixture pgrx extension"
license = "MIT"
set = "default"
version = "1.0"
pg_majors = {{ min = 14 }}

[build]
kind = "pgrx"
pgrx = "{PGRX}"
pgrx_sha256 = "{}"

[[versions]]
version = "1.0"
tag = "v1.0"
url = "{}"
sha256 = "{}"
provenance = "reproduced-only"
"#,
                sha256_hex(&cargo_pgrx),
                server.url("/demo.tar.gz"),
                sha256_hex(&archive)
            ),
        )
        .unwrap();
        Fixture { tmp, server, crates }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    fn cmd(&self, cache: &str, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("pgha-image").unwrap();
        c.env_remove("PGHA_CATALOG")
            .env_remove("PGHA_CACHE_DIR")
            .env_remove("PGHA_MIRROR")
            .env_remove("PGHA_CRATES_MIRROR")
            .env_remove("PGHA_RUST_IMAGE")
            .arg("--catalog")
            .arg(self.path("catalog"))
            .arg("--cache-dir")
            .arg(self.path(cache))
            .args(["--progress", "plain"])
            .args(args)
            // The fixture's upstream is on 127.0.0.1 over plain http.
            .arg("--allow-http");
        c
    }

    fn crates_mirror(&self) -> String {
        self.server.url("/m")
    }
}

fn json(out: &[u8]) -> serde_json::Value {
    serde_json::from_slice(out).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(out)))
}

fn set_names(v: &serde_json::Value, set: &str) -> Vec<String> {
    let s = v["crates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["set"] == set)
        .unwrap_or_else(|| panic!("no set {set}: {v}"));
    s["crates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["name"].as_str().unwrap(),
                c["version"].as_str().unwrap()
            )
        })
        .collect()
}

fn cached(cache: &Path, bytes: &[u8]) -> bool {
    cache.join("sha256").join(sha256_hex(bytes)).exists()
}

#[test]
fn fetch_mirror_and_vendor_the_crates_of_both_locks() {
    let f = Fixture::new("", None);
    let out = f
        .cmd(
            "cache",
            &[
                "fetch",
                "-e",
                "demo",
                "--json",
                "--crates-mirror",
                &f.crates_mirror(),
            ],
        )
        .assert()
        .success();
    let v = json(&out.get_output().stdout);
    assert_eq!(set_names(&v, "demo-1.0"), ["bar 0.2.0", "foo 1.0.0"]);
    assert_eq!(
        set_names(&v, "cargo-pgrx-0.12.9"),
        ["baz 3.0.0", "cargo-pgrx 0.12.9"]
    );
    for (path, bytes) in &f.crates {
        assert_eq!(f.server.requests(&format!("/m/{path}")), 1, "{path}");
        assert!(cached(&f.path("cache"), bytes), "{path} not in the cache");
    }

    // `mirror DIR`: the crates under crates/NAME/, listed in SHA256SUMS.
    let dir = f.path("mirror");
    f.cmd(
        "cache",
        &[
            "mirror",
            dir.to_str().unwrap(),
            "-e",
            "demo",
            "--crates-mirror",
            &f.crates_mirror(),
        ],
    )
    .assert()
    .success();
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    for (path, bytes) in &f.crates {
        assert_eq!(&std::fs::read(dir.join(path)).unwrap(), bytes, "{path}");
        assert!(
            sums.contains(&format!("{}  {path}\n", sha256_hex(bytes))),
            "{sums}"
        );
    }
    // The mirror directory alone serves everything (a fresh cache, no server).
    let before = f.server.total_requests();
    f.cmd(
        "cache2",
        &["fetch", "-e", "demo", "--mirror", dir.to_str().unwrap()],
    )
    .assert()
    .success();
    assert_eq!(
        f.server.total_requests(),
        before,
        "the mirror directory was not enough"
    );
    for (path, bytes) in &f.crates {
        assert!(cached(&f.path("cache2"), bytes), "{path} not in the cache");
    }

    // `generate`: the crates vendored per lock, with a SHA256SUMS each, and
    // cargo's source replacement.
    let out = f.path("gen");
    f.cmd(
        "cache2",
        &[
            "generate",
            "-e",
            "demo",
            "--offline",
            "--base-image",
            "localhost/pgha-test/demo-base:1",
            // No such base: its facts from flags, not a probe.
            "--no-probe",
            "--base-glibc",
            "2.36",
            "--base-preload",
            "pg_stat_statements",
            "--pg",
            "15",
            "--rust-image",
            &format!("localhost/pgha-test/rust@sha256:{}", "a".repeat(64)),
            "--bootstrap-bin",
            env!("CARGO_BIN_EXE_pgha-bootstrap"),
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .assert()
    .success();
    let ctx = out.join("context");
    let sums = std::fs::read_to_string(ctx.join("crates/demo-1.0/SHA256SUMS")).unwrap();
    let want: String = [&f.crates[1], &f.crates[0]]
        .iter()
        .map(|(p, b)| format!("{}  {}\n", sha256_hex(b), p.rsplit('/').next().unwrap()))
        .collect();
    assert_eq!(sums, want);
    let pgrx_sums = std::fs::read_to_string(ctx.join("crates/cargo-pgrx-0.12.9/SHA256SUMS")).unwrap();
    assert_eq!(pgrx_sums.lines().count(), 2, "{pgrx_sums}");
    for (path, bytes) in &f.crates {
        let file = path.rsplit('/').next().unwrap();
        let set = if ["foo", "bar"].iter().any(|n| file.starts_with(n)) {
            "demo-1.0"
        } else {
            "cargo-pgrx-0.12.9"
        };
        assert_eq!(
            &std::fs::read(ctx.join("crates").join(set).join(file)).unwrap(),
            bytes
        );
    }
    let config = std::fs::read_to_string(ctx.join("cargo/config.toml")).unwrap();
    let config: toml::Value = toml::from_str(&config).unwrap();
    assert_eq!(
        config["source"]["crates-io"]["replace-with"].as_str(),
        Some("pgha-vendored")
    );
    assert_eq!(config["net"]["offline"].as_bool(), Some(true));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["rust_image"].as_str().unwrap(),
        format!("localhost/pgha-test/rust@sha256:{}", "a".repeat(64))
    );
    assert_eq!(manifest["cargo_pgrx"][0]["version"], PGRX);
}

#[test]
fn a_tampered_crate_is_refused_and_not_cached() {
    let bad = crate_bytes("bar", "0.2.0", &[("src/lib.rs", b"pub fn bar() { evil() }")]);
    let f = Fixture::new("", Some(bad.clone()));
    let out = f
        .cmd(
            "cache",
            &["fetch", "-e", "demo", "--crates-mirror", &f.crates_mirror()],
        )
        .assert()
        .code(3);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("bar 0.2.0: digest mismatch"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    assert!(
        !cached(&f.path("cache"), &bad),
        "the tampered crate entered the cache"
    );
}

#[test]
fn a_git_dependency_is_refused_naming_it() {
    let f = Fixture::new(
        "\n[[package]]\nname = \"gitdep\"\nversion = \"0.1.0\"\n\
         source = \"git+https://example.invalid/gitdep?rev=1234#1234abcd\"\n",
        None,
    );
    let out = f
        .cmd(
            "cache",
            &["fetch", "-e", "demo", "--crates-mirror", &f.crates_mirror()],
        )
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("gitdep 0.1.0 a git dependency"), "{err}");
    assert!(err.contains("hint:") && err.contains("crates.io"), "{err}");
    // No crate of the extension's lock was fetched.
    assert_eq!(f.server.requests("/m/crates/foo/foo-1.0.0.crate"), 0);
}

#[test]
fn a_rust_image_not_pinned_by_digest_is_refused() {
    let f = Fixture::new("", None);
    let out = f
        .cmd(
            "cache",
            &[
                "generate",
                "-e",
                "demo",
                "--base-image",
                "localhost/pgha-test/demo-base:1",
                // No such base: its facts from flags, not a probe.
                "--no-probe",
                "--base-glibc",
                "2.36",
                "--base-preload",
                "pg_stat_statements",
                "--pg",
                "15",
                "--rust-image",
                "rust:1.85.0-bookworm",
                "--bootstrap-bin",
                env!("CARGO_BIN_EXE_pgha-bootstrap"),
                "--out",
                f.path("gen").to_str().unwrap(),
            ],
        )
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("not pinned by digest"), "{err}");
    assert!(err.contains("hint:") && err.contains("@sha256:"), "{err}");
    assert_eq!(
        f.server.total_requests(),
        0,
        "nothing is fetched for a refused plan"
    );
    assert!(!f.path("gen").exists());
}
