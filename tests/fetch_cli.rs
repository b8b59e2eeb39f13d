//! `pgha-image fetch` and `pgha-image mirror` driven as a user would: exit
//! codes, messages, JSON, the mirror round trip.

mod common;

use assert_cmd::Command;
use common::http::{Reply, Server, files_under, sha256_hex, two_sources};
use std::path::{Path, PathBuf};

struct Fixture {
    tmp: tempfile::TempDir,
    server: Server,
    bodies: Vec<(String, Vec<u8>)>,
}

impl Fixture {
    /// Two good sources `a` and `b` served at /a.tar.gz and /b.tar.gz.
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let server = Server::start();
        let bodies = two_sources(&server, &tmp.path().join("catalog"));
        Fixture { tmp, server, bodies }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    /// `pgha-image --catalog <fixture> --cache-dir <cache> --progress plain ARGS`.
    fn cmd(&self, cache: &str, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("pgha-image").unwrap();
        c.env_remove("PGHA_CATALOG")
            .env_remove("PGHA_CACHE_DIR")
            .env_remove("PGHA_MIRROR")
            .arg("--catalog")
            .arg(self.path("catalog"))
            .arg("--cache-dir")
            .arg(self.path(cache))
            .args(["--progress", "plain"])
            .args(args);
        c
    }
}

fn json(out: &[u8]) -> serde_json::Value {
    serde_json::from_slice(out).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(out)))
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn fetch_downloads_then_serves_from_cache_and_prints_json() {
    let f = Fixture::new();
    let out = f
        .cmd("cache", &["fetch", "--allow-http", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out.stdout);
    let sources = v["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 2);
    for (s, (name, body)) in sources.iter().zip(&f.bodies) {
        assert_eq!(s["name"], name.as_str());
        assert_eq!(s["origin"], "upstream");
        assert_eq!(s["sha256"], sha256_hex(body).as_str());
        assert_eq!(s["size"], body.len() as u64);
        assert_eq!(s["file_name"], format!("{name}-1.0.tar.gz").as_str());
        assert_eq!(std::fs::read(s["path"].as_str().unwrap()).unwrap(), *body);
    }
    assert_eq!(
        v["downloaded_bytes"],
        f.bodies.iter().map(|(_, b)| b.len() as u64).sum::<u64>()
    );
    assert_eq!(f.server.total_requests(), 2);

    let out = f
        .cmd("cache", &["fetch", "--offline", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out.stdout);
    assert!(
        v["sources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["origin"] == "cache")
    );
    assert_eq!(v["downloaded_bytes"], 0);
    assert_eq!(f.server.total_requests(), 2, "cache hits made requests");
}

#[test]
fn fetch_selects_by_name() {
    let f = Fixture::new();
    let out = f
        .cmd("cache", &["fetch", "--allow-http", "--extensions", "b", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out.stdout);
    let names: Vec<&str> = v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b"]);
    assert_eq!(f.server.requests("/a.tar.gz"), 0);
    // --progress plain: lines on stderr, one per step, and the total.
    let err = stderr(&out);
    assert!(
        err.contains(&format!("b 1.0: downloading {}", f.server.url("/b.tar.gz"))),
        "{err}"
    );
    assert!(
        err.contains("b 1.0: ") && err.contains("verified (upstream)"),
        "{err}"
    );
    assert!(err.contains("total: 1 sources verified"), "{err}");

    let out = f
        .cmd("cache", &["fetch", "--allow-http", "-e", "bb"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown extension \"bb\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn offline_without_cache_exits_4_naming_the_source() {
    let f = Fixture::new();
    let out = f
        .cmd("cache", &["fetch", "--offline", "-e", "a"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("a 1.0") && err.contains("--offline") && err.contains("hint:"),
        "{err}"
    );
    assert_eq!(f.server.total_requests(), 0);
}

#[test]
fn plain_http_is_refused_with_exit_2() {
    let f = Fixture::new();
    let out = f.cmd("cache", &["fetch", "-e", "a"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("http://"), "{}", stderr(&out));
    assert_eq!(f.server.total_requests(), 0);
}

#[test]
fn a_tampered_download_exits_3_and_caches_nothing() {
    let f = Fixture::new();
    let mut bad = f.bodies[0].1.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    f.server.route("/a.tar.gz", Reply::Bytes(bad.clone()));
    let out = f
        .cmd("cache", &["fetch", "--allow-http", "-e", "a"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    for part in [
        "a 1.0",
        &f.server.url("/a.tar.gz"),
        &sha256_hex(&f.bodies[0].1),
        &sha256_hex(&bad),
        "hint:",
    ] {
        assert!(err.contains(part), "{part:?} missing from:\n{err}");
    }
    assert!(files_under(&f.path("cache")).is_empty());
}

#[test]
fn not_found_exits_1_with_status_and_url() {
    let f = Fixture::new();
    f.server.route("/a.tar.gz", Reply::Status(404));
    let out = f
        .cmd("cache", &["fetch", "--allow-http", "-e", "a"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("404") && err.contains(&f.server.url("/a.tar.gz")),
        "{err}"
    );
}

#[test]
fn mirror_writes_a_directory_that_fetch_can_use() {
    let f = Fixture::new();
    let out = f.cmd("cache", &["fetch", "--allow-http"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // Write the mirror from the cache alone.
    let dir = f.path("mirror");
    let out = f
        .cmd("cache", &["mirror", dir.to_str().unwrap(), "--offline", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out.stdout);
    assert_eq!(v["files"].as_array().unwrap().len(), 2);
    let mut sums = String::new();
    for (name, body) in &f.bodies {
        let file = dir.join(format!("{name}-1.0.tar.gz"));
        assert_eq!(&std::fs::read(&file).unwrap(), body);
        sums.push_str(&format!("{}  {name}-1.0.tar.gz\n", sha256_hex(body)));
    }
    assert_eq!(std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap(), sums);
    // Readable by whoever serves or copies the mirror.
    use std::os::unix::fs::PermissionsExt;
    for p in files_under(&dir) {
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644,
            "{p:?}"
        );
    }
    let requests = f.server.total_requests();

    // A fresh cache fills from the mirror directory, without the server.
    let out = f
        .cmd("cache2", &["fetch", "--mirror", dir.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out.stdout);
    for s in v["sources"].as_array().unwrap() {
        assert_eq!(s["origin"], "mirror");
        assert!(Path::new(s["path"].as_str().unwrap()).starts_with(f.path("cache2")));
    }
    assert_eq!(f.server.total_requests(), requests);
}

#[test]
fn a_mirror_directory_without_the_file_or_with_a_bad_one_fails() {
    let f = Fixture::new();
    let dir = f.path("mirror");
    std::fs::create_dir_all(&dir).unwrap();
    let out = f
        .cmd("cache", &["fetch", "-e", "a", "--mirror", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&dir.join("a-1.0.tar.gz").display().to_string()),
        "{}",
        stderr(&out)
    );

    std::fs::write(dir.join("a-1.0.tar.gz"), b"not the pinned bytes").unwrap();
    let out = f
        .cmd("cache", &["fetch", "-e", "a", "--mirror", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&sha256_hex(b"not the pinned bytes")),
        "{}",
        stderr(&out)
    );
    assert!(files_under(&f.path("cache")).is_empty());

    let out = f
        .cmd("cache", &["fetch", "--mirror", "/no/such/mirror/dir"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(f.server.total_requests(), 0);
}
