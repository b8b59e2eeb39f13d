//! Fetching over HTTP from the fixture server: concurrency, the cache,
//! retries, stalls, truncation, size cap, redirects, digest mismatches.

mod common;

use common::http::{Entry, Reply, Server, files_under, filler, sha256_hex, write_catalog};
use common::tarball::tar_gz;
use pgha_image::catalog::{Catalog, SelectRequest};
use pgha_image::error::{Diagnostic, ExitCode};
use pgha_image::fetch::{FetchError, FetchOptions, Fetched, Mirror, Origin, fetch_blocking};
use pgha_image::hash::Sha256Digest;
use pgha_image::progress::Progress;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Fixture {
    tmp: tempfile::TempDir,
    server: Server,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            tmp: tempfile::tempdir().unwrap(),
            server: Server::start(),
        }
    }

    fn cache(&self) -> PathBuf {
        self.tmp.path().join("cache")
    }

    fn catalog(&self, entries: &[Entry<'_>]) -> PathBuf {
        write_catalog(&self.tmp.path().join("catalog"), entries)
    }

    fn opts(&self) -> FetchOptions {
        FetchOptions {
            cache_dir: self.cache(),
            allow_http: true,
            retries: 2,
            retry_backoff: Duration::from_millis(20),
            stall_timeout: Duration::from_secs(5),
            ..FetchOptions::default()
        }
    }

    /// Serve `body` at `/<name>.tar.gz` and return a catalog entry pinning `pinned`.
    fn entry<'a>(&self, name: &'a str, reply: Reply, pinned: &[u8]) -> Entry<'a> {
        let path = format!("/{name}.tar.gz");
        self.server.route(&path, reply);
        Entry {
            name,
            version: "1.0",
            url: self.server.url(&path),
            sha256: sha256_hex(pinned),
        }
    }
}

fn fetch(catalog: &Path, opts: &FetchOptions) -> Result<Vec<Fetched>, FetchError> {
    let c = Catalog::from_dir(catalog).unwrap();
    let sel = c.select(&SelectRequest::default()).unwrap();
    fetch_blocking(&sel, opts, &Progress::quiet())
}

fn body(seed: u8) -> Vec<u8> {
    tar_gz(&format!("ext{seed}-1.0"), &[("data.bin", &filler(200_000, seed))])
}

/// Nothing but empty directories in the cache.
fn assert_cache_empty(cache: &Path) {
    let files = files_under(cache);
    assert!(files.is_empty(), "cache should hold nothing, has {files:?}");
}

#[test]
fn downloads_run_concurrently_and_land_verified_in_the_cache() {
    let f = Fixture::new();
    let names = ["a", "b", "c", "d"];
    let bodies: Vec<Vec<u8>> = (0..4).map(|i| body(i as u8)).collect();
    let entries: Vec<Entry> = names
        .iter()
        .zip(&bodies)
        .map(|(n, b)| {
            f.entry(
                n,
                Reply::Slow {
                    body: b.clone(),
                    delay: Duration::from_millis(800),
                },
                b,
            )
        })
        .collect();
    let cat = f.catalog(&entries);
    let got = fetch(
        &cat,
        &FetchOptions {
            concurrency: 4,
            ..f.opts()
        },
    )
    .unwrap();
    assert!(
        f.server.max_in_flight() >= 3,
        "the server saw at most {} downloads at once",
        f.server.max_in_flight()
    );
    assert_eq!(got.len(), 4);
    for (fetched, b) in got.iter().zip(&bodies) {
        assert_eq!(fetched.origin, Origin::Upstream);
        assert_eq!(fetched.sha256, Sha256Digest::of(b));
        assert_eq!(fetched.size, b.len() as u64);
        assert_eq!(&std::fs::read(&fetched.path).unwrap(), b);
        assert_eq!(
            fetched.path,
            f.cache().join("sha256").join(Sha256Digest::of(b).to_hex())
        );
        assert_eq!(fetched.file_name, format!("{}-1.0.tar.gz", fetched.name));
    }
    // No temp files left behind.
    assert_eq!(files_under(&f.cache().join("tmp")), Vec::<PathBuf>::new());
}

#[test]
fn concurrency_limit_is_respected() {
    let f = Fixture::new();
    let bodies: Vec<Vec<u8>> = (0..3).map(|i| body(10 + i as u8)).collect();
    let entries: Vec<Entry> = ["x", "y", "z"]
        .iter()
        .zip(&bodies)
        .map(|(n, b)| {
            f.entry(
                n,
                Reply::Slow {
                    body: b.clone(),
                    delay: Duration::from_millis(200),
                },
                b,
            )
        })
        .collect();
    let cat = f.catalog(&entries);
    fetch(
        &cat,
        &FetchOptions {
            concurrency: 1,
            ..f.opts()
        },
    )
    .unwrap();
    assert_eq!(f.server.max_in_flight(), 1);
    assert_eq!(f.server.total_requests(), 3);
}

#[test]
fn a_cache_hit_makes_no_request() {
    let f = Fixture::new();
    let b = body(1);
    let cat = f.catalog(&[f.entry("a", Reply::Bytes(b.clone()), &b)]);
    let first = fetch(&cat, &f.opts()).unwrap();
    assert_eq!(first[0].origin, Origin::Upstream);
    assert_eq!(f.server.total_requests(), 1);
    let second = fetch(&cat, &f.opts()).unwrap();
    assert_eq!(second[0].origin, Origin::Cache);
    assert_eq!(second[0].path, first[0].path);
    assert_eq!(
        f.server.total_requests(),
        1,
        "a cached source was requested again"
    );
    // Offline works from the cache too.
    let third = fetch(
        &cat,
        &FetchOptions {
            offline: true,
            ..f.opts()
        },
    )
    .unwrap();
    assert_eq!(third[0].origin, Origin::Cache);
    assert_eq!(f.server.total_requests(), 1);
}

#[test]
fn offline_with_an_empty_cache_names_the_missing_source() {
    let f = Fixture::new();
    let b = body(2);
    let cat = f.catalog(&[f.entry("a", Reply::Bytes(b.clone()), &b)]);
    let err = fetch(
        &cat,
        &FetchOptions {
            offline: true,
            ..f.opts()
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, FetchError::Offline { ref name, corrupted: false, .. } if name == "a"),
        "{err:?}"
    );
    assert!(err.to_string().contains(&sha256_hex(&b)), "{err}");
    assert_eq!(err.exit_code(), ExitCode::Prerequisite);
    assert_eq!(f.server.total_requests(), 0);
}

#[test]
fn a_tampered_cache_entry_is_detected_and_replaced() {
    let f = Fixture::new();
    let b = body(3);
    let cat = f.catalog(&[f.entry("a", Reply::Bytes(b.clone()), &b)]);
    let first = fetch(&cat, &f.opts()).unwrap();
    let mut bad = b.clone();
    bad[1000] ^= 0xff;
    std::fs::write(&first[0].path, &bad).unwrap();

    // Offline: the corrupted entry is not used, and is removed.
    let err = fetch(
        &cat,
        &FetchOptions {
            offline: true,
            ..f.opts()
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, FetchError::Offline { corrupted: true, .. }),
        "{err:?}"
    );
    assert!(
        !first[0].path.exists(),
        "the corrupted entry was left in the cache"
    );

    // Online: fetched again and verified.
    std::fs::write(&first[0].path, &bad).unwrap();
    let again = fetch(&cat, &f.opts()).unwrap();
    assert_eq!(again[0].origin, Origin::Upstream);
    assert_eq!(f.server.total_requests(), 2);
    assert_eq!(std::fs::read(&again[0].path).unwrap(), b);
}

#[test]
fn a_digest_mismatch_names_everything_and_caches_nothing() {
    let f = Fixture::new();
    let good = body(4);
    let mut tampered = good.clone();
    tampered[500] ^= 1;
    let cat = f.catalog(&[f.entry("a", Reply::Bytes(tampered.clone()), &good)]);
    let err = fetch(&cat, &f.opts()).unwrap_err();
    match &err {
        FetchError::DigestMismatch {
            name,
            url,
            expected,
            actual,
            ..
        } => {
            assert_eq!(name, "a");
            assert_eq!(url.expose(), f.server.url("/a.tar.gz"));
            assert_eq!(*expected, Sha256Digest::of(&good));
            assert_eq!(**actual, Sha256Digest::of(&tampered));
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    let msg = err.to_string();
    for part in [
        "a 1.0",
        &f.server.url("/a.tar.gz"),
        &sha256_hex(&good),
        &sha256_hex(&tampered),
    ] {
        assert!(msg.contains(part), "{part:?} missing from: {msg}");
    }
    assert_eq!(err.exit_code(), ExitCode::Verification);
    assert!(err.hint().is_some());
    assert_eq!(f.server.requests("/a.tar.gz"), 1, "a mismatch is not retried");
    assert_cache_empty(&f.cache());
}

#[test]
fn server_errors_are_retried_until_the_source_arrives() {
    let f = Fixture::new();
    let b = body(5);
    let cat = f.catalog(&[f.entry(
        "a",
        Reply::FailThen {
            fails: 2,
            status: 500,
            body: b.clone(),
        },
        &b,
    )]);
    let got = fetch(
        &cat,
        &FetchOptions {
            retries: 2,
            ..f.opts()
        },
    )
    .unwrap();
    assert_eq!(got[0].sha256, Sha256Digest::of(&b));
    assert_eq!(f.server.requests("/a.tar.gz"), 3);
}

#[test]
fn retries_give_up_after_the_limit() {
    let f = Fixture::new();
    let b = body(6);
    let cat = f.catalog(&[f.entry(
        "a",
        Reply::FailThen {
            fails: 5,
            status: 503,
            body: b.clone(),
        },
        &b,
    )]);
    let err = fetch(
        &cat,
        &FetchOptions {
            retries: 1,
            ..f.opts()
        },
    )
    .unwrap_err();
    assert!(matches!(err, FetchError::Status { status: 503, .. }), "{err:?}");
    assert_eq!(f.server.requests("/a.tar.gz"), 2);
    assert_cache_empty(&f.cache());
}

#[test]
fn not_found_is_not_retried_and_names_the_url() {
    let f = Fixture::new();
    let b = body(7);
    let cat = f.catalog(&[f.entry("a", Reply::Status(404), &b)]);
    let err = fetch(&cat, &f.opts()).unwrap_err();
    assert!(matches!(err, FetchError::Status { status: 404, .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("404") && msg.contains(&f.server.url("/a.tar.gz")) && msg.contains("a 1.0"),
        "{msg}"
    );
    assert_eq!(f.server.requests("/a.tar.gz"), 1);
    assert_cache_empty(&f.cache());
}

#[test]
fn a_stalled_download_times_out() {
    let f = Fixture::new();
    let b = body(8);
    let cat = f.catalog(&[f.entry(
        "a",
        Reply::Stall {
            body: b.clone(),
            after: 1000,
            stall: Duration::from_secs(20),
        },
        &b,
    )]);
    let start = Instant::now();
    let err = fetch(
        &cat,
        &FetchOptions {
            stall_timeout: Duration::from_millis(400),
            retries: 1,
            ..f.opts()
        },
    )
    .unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, FetchError::Stalled { got: 1000, .. }), "{err:?}");
    assert!(took < Duration::from_secs(8), "stall detection took {took:?}");
    assert_eq!(f.server.requests("/a.tar.gz"), 2, "a stall counts as transient");
    assert_cache_empty(&f.cache());
}

#[test]
fn a_truncated_body_is_an_error_and_leaves_nothing() {
    let f = Fixture::new();
    let b = body(9);
    let half = b[..b.len() / 2].to_vec();
    let cat = f.catalog(&[f.entry(
        "a",
        Reply::Truncated {
            body: half.clone(),
            claimed: b.len() as u64,
        },
        &b,
    )]);
    let err = fetch(
        &cat,
        &FetchOptions {
            retries: 1,
            ..f.opts()
        },
    )
    .unwrap_err();
    match &err {
        FetchError::Truncated {
            got, expected, url, ..
        } => {
            assert_eq!(*expected, b.len() as u64);
            assert_eq!(*got, half.len() as u64);
            assert_eq!(url.expose(), f.server.url("/a.tar.gz"));
        }
        other => panic!("expected truncated, got {other:?}"),
    }
    assert_eq!(f.server.requests("/a.tar.gz"), 2);
    assert_cache_empty(&f.cache());
}

#[test]
fn a_source_over_the_size_cap_is_refused() {
    let f = Fixture::new();
    let b = body(10);
    let cat = f.catalog(&[f.entry("a", Reply::Bytes(b.clone()), &b)]);
    let err = fetch(
        &cat,
        &FetchOptions {
            max_size: 10_000,
            ..f.opts()
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, FetchError::TooLarge { limit: 10_000, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&f.server.url("/a.tar.gz")));
    assert_cache_empty(&f.cache());
}

#[test]
fn redirect_chains_are_followed_up_to_the_limit() {
    let f = Fixture::new();
    let b = body(11);
    f.server.route("/final.tar.gz", Reply::Bytes(b.clone()));
    let start = f.server.redirect_chain("/r", 3, "/final.tar.gz");
    let cat = f.catalog(&[Entry {
        name: "a",
        version: "1.0",
        url: f.server.url(&start),
        sha256: sha256_hex(&b),
    }]);
    let got = fetch(
        &cat,
        &FetchOptions {
            max_redirects: 3,
            ..f.opts()
        },
    )
    .unwrap();
    assert_eq!(got[0].sha256, Sha256Digest::of(&b));
    assert_eq!(f.server.requests("/final.tar.gz"), 1);

    let f2 = Fixture::new();
    f2.server.route("/final.tar.gz", Reply::Bytes(b.clone()));
    let start = f2.server.redirect_chain("/r", 4, "/final.tar.gz");
    let cat = f2.catalog(&[Entry {
        name: "a",
        version: "1.0",
        url: f2.server.url(&start),
        sha256: sha256_hex(&b),
    }]);
    let err = fetch(
        &cat,
        &FetchOptions {
            max_redirects: 2,
            ..f2.opts()
        },
    )
    .unwrap_err();
    assert!(matches!(err, FetchError::Redirect { .. }), "{err:?}");
    assert!(err.to_string().contains("redirects"), "{err}");
    assert_eq!(f2.server.requests("/final.tar.gz"), 0);
    assert_cache_empty(&f2.cache());
}

#[test]
fn plain_http_upstream_is_refused_unless_allowed() {
    let f = Fixture::new();
    let b = body(12);
    let cat = f.catalog(&[f.entry("a", Reply::Bytes(b.clone()), &b)]);
    let err = fetch(
        &cat,
        &FetchOptions {
            allow_http: false,
            ..f.opts()
        },
    )
    .unwrap_err();
    assert!(matches!(err, FetchError::InsecureUrl { .. }), "{err:?}");
    assert_eq!(err.exit_code(), ExitCode::Usage);
    assert_eq!(f.server.total_requests(), 0, "a refused URL was requested");
}

#[test]
fn a_loopback_http_mirror_is_used_instead_of_upstream() {
    let f = Fixture::new();
    let b = body(13);
    f.server.route("/mirror/a-1.0.tar.gz", Reply::Bytes(b.clone()));
    let cat = f.catalog(&[Entry {
        name: "a",
        version: "1.0",
        // Never contacted: the mirror replaces upstream.
        url: "https://upstream.invalid/a/archive/refs/tags/v1.0.tar.gz".into(),
        sha256: sha256_hex(&b),
    }]);
    let opts = FetchOptions {
        allow_http: false,
        mirror: Some(Mirror::parse(&f.server.url("/mirror/")).unwrap()),
        ..f.opts()
    };
    let got = fetch(&cat, &opts).unwrap();
    assert_eq!(got[0].origin, Origin::Mirror);
    assert_eq!(got[0].from, f.server.url("/mirror/a-1.0.tar.gz"));
    assert_eq!(f.server.requests("/mirror/a-1.0.tar.gz"), 1);
}

#[test]
fn several_failures_are_all_reported() {
    let f = Fixture::new();
    let (a, b, c) = (body(14), body(15), body(16));
    let cat = f.catalog(&[
        f.entry("a", Reply::Status(404), &a),
        f.entry("b", Reply::Bytes(a.clone()), &b),
        f.entry("c", Reply::Bytes(c.clone()), &c),
    ]);
    let err = fetch(&cat, &f.opts()).unwrap_err();
    let FetchError::Several(errs) = &err else {
        panic!("expected several errors, got {err:?}");
    };
    assert_eq!(errs.len(), 2);
    let msg = err.to_string();
    assert!(
        msg.contains("a 1.0") && msg.contains("b 1.0") && !msg.contains("c 1.0"),
        "{msg}"
    );
    assert_eq!(err.exit_code(), ExitCode::Verification);
    // Each failure's fix is named (the 404's and the mismatch's).
    let hint = err.hint().unwrap();
    assert!(
        hint.contains("catalog's url") && hint.contains("update sha256"),
        "{hint}"
    );
    // The good one still made it into the cache.
    let files = files_under(&f.cache().join("sha256"));
    assert_eq!(files, vec![f.cache().join("sha256").join(sha256_hex(&c))]);
}
