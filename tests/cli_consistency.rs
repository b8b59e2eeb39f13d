//! The command line behaves the same in every subcommand (issue 18): the
//! image is positional, the output option has one spelling, the catalog and
//! cache options exist only where they apply, `PGHA_ENGINE` reaches every
//! engine-using subcommand, and an output path is checked before any work.
//!
//! Fast tier: nothing here needs root, an engine daemon or PostgreSQL. The
//! `PGHA_ENGINE` tests point the Docker client at a socket that does not
//! exist, so the answer shows which engine the subcommand went to.

mod common;

use common::cli::pgha;
use std::process::Output;
use std::time::{Duration, Instant};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_exit(out: &Output, code: i32, needles: &[&str]) {
    let t = text(out);
    assert_eq!(out.status.code(), Some(code), "exit code of:\n{t}");
    for n in needles {
        assert!(t.contains(n), "expected {n:?} in:\n{t}");
    }
}

/// The Docker client, which the engine tests need on PATH.
fn require_docker_client() {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("docker").is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "the docker client is not on PATH: install it with `apt-get install -y docker.io` \
         (scripts/install-test-prereqs.sh does)"
    );
}

#[test]
fn verify_junit_in_a_missing_directory_fails_at_once_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("missing-dir/x.xml");
    let started = Instant::now();
    // An image that does not exist: had the check come after the run, the
    // answer would be about the image (or the engine), not the report file.
    let out = pgha()
        .args(["verify", "localhost/pgha-no-such-image:cli"])
        .arg("--junit")
        .arg(&junit)
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_exit(&out, 2, &["missing-dir", "does not exist", "hint:"]);
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(!junit.exists());
}

#[test]
fn verify_junit_naming_a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = pgha()
        .args(["verify", "localhost/pgha-no-such-image:cli", "--junit"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_exit(&out, 2, &["is a directory", "hint:"]);
}

#[test]
fn export_output_in_a_missing_directory_fails_before_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    for spelling in ["-o", "--out", "--output"] {
        let target = dir.path().join("missing-dir/x.tar.zst");
        let out = pgha()
            // No engine answers at this socket: the target is checked first.
            .env("PGHA_ENGINE", "docker")
            .env("DOCKER_HOST", "unix:///nonexistent/pgha-cli-test.sock")
            .args(["export", "localhost/pgha-no-such-image:cli", spelling])
            .arg(&target)
            .output()
            .unwrap();
        assert_exit(&out, 2, &["does not exist", "nothing was exported"]);
    }
}

#[test]
fn manifests_out_that_is_a_file_fails_before_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("taken");
    std::fs::write(&file, "mine").unwrap();
    let out = pgha()
        .env("PGHA_ENGINE", "docker")
        .env("DOCKER_HOST", "unix:///nonexistent/pgha-cli-test.sock")
        .args(["manifests", "--spec", "/nonexistent/spec.toml", "-o"])
        .arg(&file)
        .output()
        .unwrap();
    assert_exit(&out, 2, &["not written by `pgha-image manifests`", "hint:"]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
}

#[test]
fn export_takes_the_image_positionally_and_with_the_old_tag_option() {
    let dir = tempfile::tempdir().unwrap();
    // A malformed image reference is refused before any engine, naming it:
    // the same answer whichever way the image is given.
    for args in [
        vec!["export", "Not A Reference"],
        vec!["export", "--tag", "Not A Reference"],
        vec!["export", "-t", "Not A Reference"],
    ] {
        let out = pgha().current_dir(dir.path()).args(&args).output().unwrap();
        assert_exit(&out, 2, &["Not A Reference"]);
    }
    let out = pgha().args(["export"]).output().unwrap();
    assert_exit(&out, 2, &["<IMAGE>"]);
    let out = pgha().args(["export", "a:b", "--tag", "c:d"]).output().unwrap();
    assert_exit(&out, 2, &["cannot be used with"]);
}

#[test]
fn help_shows_the_image_positional_and_one_output_spelling() {
    for cmd in ["export", "ship", "verify"] {
        let out = pgha().args([cmd, "--help"]).output().unwrap();
        assert_exit(&out, 0, &[]);
        let usage = text(&out)
            .lines()
            .find(|l| l.starts_with("Usage:"))
            .unwrap_or_default()
            .to_string();
        assert!(usage.contains("IMAGE"), "{cmd}: {usage}");
        assert!(!text(&out).contains("--tag"), "{cmd} --help shows --tag");
    }
    for cmd in ["export", "generate", "build", "manifests"] {
        let out = pgha().args([cmd, "--help"]).output().unwrap();
        assert_exit(&out, 0, &["-o, --out"]);
    }
}

#[test]
fn catalog_and_cache_options_only_where_they_apply() {
    for cmd in ["extensions", "fetch", "mirror", "generate", "build"] {
        let out = pgha().args([cmd, "--help"]).output().unwrap();
        assert_exit(&out, 0, &["--catalog", "--cache-dir"]);
    }
    for cmd in ["export", "ship"] {
        let out = pgha().args([cmd, "--help"]).output().unwrap();
        assert_exit(&out, 0, &["--cache-dir"]);
        assert!(!text(&out).contains("--catalog"), "{cmd} --help shows --catalog");
    }
    for cmd in ["load", "verify", "manifests"] {
        let out = pgha().args([cmd, "--help"]).output().unwrap();
        let t = text(&out);
        assert!(
            !t.contains("--catalog") && !t.contains("--cache-dir"),
            "{cmd} --help:\n{t}"
        );
        // Given after the subcommand: clap refuses an unknown option.
        let out = pgha().args([cmd, "--catalog", "/tmp"]).output().unwrap();
        assert_exit(&out, 2, &["--catalog"]);
    }
    let out = pgha().args(["--help"]).output().unwrap();
    assert!(
        !text(&out).contains("--catalog"),
        "the top-level help shows --catalog"
    );
}

#[test]
fn catalog_before_the_subcommand_still_works_and_is_refused_where_it_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-catalog");
    // Where it applies, before or after the subcommand, it is read.
    for args in [
        vec![
            "--catalog".into(),
            missing.clone().into_os_string(),
            "extensions".into(),
            "list".into(),
        ],
        vec![
            "extensions".into(),
            "list".into(),
            "--catalog".into(),
            missing.clone().into_os_string(),
        ],
        vec![
            "extensions".into(),
            "--catalog".into(),
            missing.clone().into_os_string(),
            "list".into(),
        ],
    ] {
        let out = pgha().args(&args).output().unwrap();
        assert_exit(&out, 2, &["no-such-catalog", "does not exist"]);
    }
    // Where it does nothing, it is refused before the subcommand runs.
    for (opt, cmd, rest) in [
        ("--catalog", "verify", &["localhost/x:y"][..]),
        ("--cache-dir", "load", &["x.tar"][..]),
        ("--catalog", "ship", &["localhost/x:y", "--to", "127.0.0.1"][..]),
    ] {
        let out = pgha().args([opt, "/tmp", cmd]).args(rest).output().unwrap();
        assert_exit(
            &out,
            2,
            &[&format!("{opt} does not apply to `pgha-image {cmd}`"), "hint:"],
        );
    }
}

/// Each engine-using subcommand, with `PGHA_ENGINE=docker` and a Docker
/// socket nobody listens on, answers that Docker does not answer: it went to
/// Docker. With `PGHA_ENGINE=podman` the same command never mentions Docker's socket.
#[test]
fn pgha_engine_reaches_every_engine_using_subcommand() {
    require_docker_client();
    let dir = tempfile::tempdir().unwrap();
    let socket = "unix:///nonexistent/pgha-cli-test.sock";
    let cases: Vec<Vec<String>> = vec![
        vec!["verify".into(), "localhost/pgha-no-such-image:cli".into()],
        vec!["export".into(), "localhost/pgha-no-such-image:cli".into()],
        vec!["load".into(), dir.path().join("x.tar").display().to_string()],
        vec![
            "ship".into(),
            "localhost/pgha-no-such-image:cli".into(),
            "--to".into(),
            "127.0.0.1".into(),
        ],
        vec![
            "manifests".into(),
            "--spec".into(),
            dir.path().join("spec.toml").display().to_string(),
            "-o".into(),
            dir.path().join("out").display().to_string(),
        ],
    ];
    std::fs::write(dir.path().join("x.tar"), b"not a tarball").unwrap();
    std::fs::write(
        dir.path().join("spec.toml"),
        "scope = \"s\"\nimage = \"localhost/pgha-no-such-image:cli\"\ndcs = \"etcd\"\nhaproxy = \"members\"\n\
         [[member]]\nname = \"pg1\"\naddress = \"192.0.2.11\"\n",
    )
    .unwrap();
    for args in &cases {
        let out = pgha()
            .current_dir(dir.path())
            .env("PGHA_ENGINE", "docker")
            .env("DOCKER_HOST", socket)
            .args(args)
            .output()
            .unwrap();
        let t = text(&out);
        assert!(
            t.contains("docker") && t.contains("/nonexistent/pgha-cli-test.sock"),
            "{args:?} with PGHA_ENGINE=docker did not go to Docker:\n{t}"
        );
        assert_eq!(out.status.code(), Some(4), "{args:?}:\n{t}");
    }
}
