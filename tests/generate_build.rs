//! `pgha-image build` with real Podman against the Spilo stand-in (Debian
//! bookworm, PostgreSQL 15, pg_cron from Debian): real pgvector 0.8.0
//! compiled in its builder stage from the upstream tarball served through
//! `--mirror`, a SQL-only extension made here, pg_cron checked in the base;
//! the extensions then work in a PostgreSQL started from the image. And a
//! failure in a builder stage names the extension. (A base-provided
//! extension older than the catalog's minimum is found by the base probe at
//! plan time and built from source: tests/base_probe.rs.)
//!
//! (Patroni with the wrapped hook and the real pgha-bootstrap is the whole
//! cluster test's job.)

mod common;

use common::images::{self, TestImage};
use common::prereq::{fixtures_dir, require_file};
use pgha_image::hash::Sha256Digest;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BOOTSTRAP: &str = env!("CARGO_BIN_EXE_pgha-bootstrap");

/// A gzipped tarball `<name>-<version>/{Makefile,<files>}`.
fn tarball(dir: &Path, name: &str, version: &str, files: &[(String, String)]) -> Sha256Digest {
    let top = format!("{name}-{version}");
    let files: Vec<(&str, &[u8])> = files.iter().map(|(p, t)| (p.as_str(), t.as_bytes())).collect();
    common::tarball::save(
        dir,
        &format!("{top}.tar.gz"),
        &common::tarball::tar_gz(&top, &files),
    )
}

fn catalog_entry(cat: &Path, name: &str, kind: &str, sha: &Sha256Digest) {
    std::fs::write(
        cat.join(format!("{name}.toml")),
        format!(
            "name = \"{name}\"\ndescription = \"made by the tests\"\nlicense = \"PostgreSQL\"\n\
             set = \"optional\"\nversion = \"1.0\"\npg_majors = {{ min = 10 }}\n\n\
             [build]\nkind = \"{kind}\"\n\n[[versions]]\nversion = \"1.0\"\ntag = \"v1.0\"\n\
             url = \"http://127.0.0.1/{name}-1.0.tar.gz\"\nsha256 = \"{sha}\"\n\
             provenance = \"reproduced-only\"\n"
        ),
    )
    .unwrap();
}

struct Setup {
    dir: tempfile::TempDir,
    catalog: PathBuf,
    mirror: PathBuf,
    standin: String,
    /// Held for the whole test; declared last, so dropped after the test's
    /// images and containers are gone.
    _engine: images::ImageLock,
}

/// A catalog with the real vector and pg_cron entries (pg_cron's minimum
/// lowered to Debian bookworm's 1.4), a SQL-only extension and one whose
/// build fails; a mirror directory holding their sources.
fn setup() -> Setup {
    let engine = images::engine_lock();
    let standin = images::spilo_standin();
    let vector_src = require_file(
        &fixtures_dir().join("upstream/pgvector_0.8.0.orig.tar.gz"),
        "pgvector 0.8.0 upstream tarball",
    );
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog");
    let mirror = dir.path().join("mirror");
    std::fs::create_dir_all(&catalog).unwrap();
    std::fs::create_dir_all(&mirror).unwrap();
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("extensions");
    std::fs::copy(real.join("vector.toml"), catalog.join("vector.toml")).unwrap();
    let cron = std::fs::read_to_string(real.join("pg_cron.toml")).unwrap();
    assert!(cron.contains("min_version = \"1.6\""));
    std::fs::write(
        catalog.join("pg_cron.toml"),
        cron.replace("min_version = \"1.6\"", "min_version = \"1.4\""),
    )
    .unwrap();
    std::fs::copy(&vector_src, mirror.join("vector-0.8.0.tar.gz")).unwrap();

    let sql = "CREATE FUNCTION pgha_testsql_one() RETURNS int LANGUAGE sql AS 'SELECT 1';\n";
    let sha = tarball(
        &mirror,
        "pgha_testsql",
        "1.0",
        &[
            (
                "Makefile".into(),
                "EXTENSION = pgha_testsql\nDATA = pgha_testsql--1.0.sql\nPG_CONFIG ?= pg_config\n\
                 PGXS := $(shell $(PG_CONFIG) --pgxs)\ninclude $(PGXS)\n"
                    .into(),
            ),
            (
                "pgha_testsql.control".into(),
                "default_version = '1.0'\nrelocatable = true\n".into(),
            ),
            ("pgha_testsql--1.0.sql".into(), sql.into()),
        ],
    );
    catalog_entry(&catalog, "pgha_testsql", "sql", &sha);

    let sha = tarball(
        &mirror,
        "pgha_broken",
        "1.0",
        &[(
            "Makefile".into(),
            "all:\n\t@echo 'pgha_broken.c:1: error: this extension does not compile' >&2; false\n\
             install:\n\ttrue\n"
                .into(),
        )],
    );
    catalog_entry(&catalog, "pgha_broken", "pgxs", &sha);
    Setup {
        dir,
        catalog,
        mirror,
        standin,
        _engine: engine,
    }
}

fn build(s: &Setup, tag: &str, out: &str, extensions: &str, catalog: Option<&Path>) -> Output {
    build_with(s, tag, out, extensions, catalog, None)
}

/// `pgha-image build` with Podman, or with the Docker CLI when `docker` is
/// given (Podman's Docker-compatible API).
fn build_with(
    s: &Setup,
    tag: &str,
    out: &str,
    extensions: &str,
    catalog: Option<&Path>,
    docker: Option<&images::DockerApi>,
) -> Output {
    let mut cmd = assert_cmd::Command::cargo_bin("pgha-image").unwrap();
    let engine = match docker {
        Some(api) => {
            cmd.env("DOCKER_HOST", api.docker_host());
            "docker"
        }
        None => "podman",
    };
    cmd.args(["--progress", "plain", "build", "--engine", engine, "--tag", tag])
        .args([
            "--base-image",
            &s.standin,
            "--pg",
            "15",
            "--extensions",
            extensions,
        ])
        .args(["--bootstrap-bin", BOOTSTRAP])
        .arg("--out")
        .arg(s.dir.path().join(out))
        .arg("--cache-dir")
        .arg(s.dir.path().join("cache"))
        .arg("--mirror")
        .arg(&s.mirror)
        .env("SOURCE_DATE_EPOCH", "1700000000");
    if let Some(c) = catalog {
        cmd.arg("--catalog").arg(c);
    }
    cmd.timeout(std::time::Duration::from_secs(1500))
        .output()
        .unwrap()
}

fn podman_out(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new(images::podman())
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let o = child.wait_with_output().unwrap();
    let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&o.stderr));
    (o.status.success(), s)
}

#[test]
#[ignore = "slow tier: needs root and Podman"]
fn builds_real_extensions_on_the_standin_and_they_work() {
    let s = setup();
    let image = TestImage {
        reference: format!("localhost/pgha-test/generate-e2e:{}", std::process::id()),
    };
    let o = build(
        &s,
        &image.reference,
        "ok",
        "vector,pg_cron,pgha_testsql",
        Some(&s.catalog),
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "build failed:\n{stderr}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let id = stdout.split_whitespace().nth(1).unwrap_or_default().to_string();
    assert!(id.starts_with("sha256:"), "{stdout}");
    assert!(s.dir.path().join("ok/build.log").is_file());

    // Labels: the context digest is the generated tar's; each extension's source digest.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.dir.path().join("ok/manifest.json")).unwrap()).unwrap();
    let (ok, labels) = podman_out(
        &[
            "image",
            "inspect",
            "--format",
            "{{json .Config.Labels}}",
            &image.reference,
        ],
        None,
    );
    assert!(ok, "{labels}");
    let labels: serde_json::Value = serde_json::from_str(labels.trim()).unwrap();
    assert_eq!(labels["io.pgha.context-digest"], manifest["context_digest"]);
    assert_eq!(
        labels["io.pgha.extension.vector"],
        "0.8.0@sha256:867a2c328d4928a5a9d6f052cd3bc78c7d60228a9b914ad32aa3db88e9de27b0"
    );
    assert_eq!(labels["io.pgha.extension.pg_cron"], "base>=1.4");
    assert_eq!(labels["io.pgha.base-image"], s.standin);
    let ext: serde_json::Value =
        serde_json::from_str(labels["io.pgha.extensions"].as_str().unwrap()).unwrap();
    assert_eq!(ext["pgha_testsql"]["recipe"], "sql");
    // The base's CMD is kept.
    let (_, cmd) = podman_out(
        &[
            "image",
            "inspect",
            "--format",
            "{{json .Config.Cmd}}",
            &image.reference,
        ],
        None,
    );
    assert_eq!(cmd.trim(), r#"["/bin/sh","/launch.sh","init"]"#);

    // Files: the hook wrapped (Spilo's kept beside it), no build tools, no apt lists.
    let (ok, files) = podman_out(
        &[
            "run",
            "--rm",
            &image.reference,
            "sh",
            "-c",
            "grep -c 'pgha-image post_init wrapper' /scripts/post_init.sh; \
             test -x /scripts/post_init.spilo.sh && echo spilo-kept; \
             test -x /usr/local/bin/pgha-bootstrap && echo bootstrap-there; \
             cat /etc/pgha/bootstrap.toml; \
             command -v gcc || echo no-gcc; command -v make || echo no-make; \
             test -e /usr/include/postgresql/15/server/postgres.h || echo no-server-dev; \
             ls /var/lib/apt/lists | grep -v -e '^lock$' -e '^partial$' | wc -l",
        ],
        None,
    );
    assert!(ok, "{files}");
    for want in [
        "spilo-kept",
        "bootstrap-there",
        "no-gcc",
        "no-make",
        "no-server-dev",
    ] {
        assert!(
            files.lines().any(|l| l.trim() == want),
            "{want} missing in:\n{files}"
        );
    }
    assert!(files.starts_with("1\n"), "{files}");
    assert!(
        files.contains("create = [\"uuid-ossp\", \"pgcrypto\", \"pg_stat_statements\"]"),
        "{files}"
    );
    assert_eq!(
        files.lines().last().unwrap().trim(),
        "0",
        "apt lists left:\n{files}"
    );

    // The extensions work in a PostgreSQL started from the image.
    let script = "set -e; runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -A trust -D /tmp/d >/dev/null; \
                  runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /tmp/d -l /tmp/log \
                    -o '-k /tmp -c listen_addresses= -c shared_preload_libraries=pg_cron' -w start >/dev/null; \
                  runuser -u postgres -- psql -X -h /tmp -d postgres -Atq -v ON_ERROR_STOP=1 -f -";
    let sql = "CREATE EXTENSION vector;\n\
               SELECT extversion FROM pg_extension WHERE extname = 'vector';\n\
               SELECT '[1,2,3]'::vector <-> '[1,2,5]'::vector;\n\
               CREATE EXTENSION pgha_testsql;\n\
               SELECT pgha_testsql_one();\n\
               CREATE EXTENSION pg_cron;\n\
               SELECT count(*) FROM cron.job;\n";
    let (ok, out) = podman_out(
        &["run", "--rm", "-i", &image.reference, "sh", "-c", script],
        Some(sql),
    );
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    assert_eq!(lines, ["0.8.0", "2", "1", "0"], "{out}");

    // Run the image as the base runs it: Patroni bootstraps the cluster and
    // calls the wrapped hook, which runs the base's post_init.sh and then the
    // real pgha-bootstrap. Then the bootstrap's own `check` passes inside.
    let c = images::Container::run("generate-e2e", &image.reference, &[]);
    c.wait_for("the leader", std::time::Duration::from_secs(180), |c| {
        c.exec(&["curl", "-fsS", "http://127.0.0.1:8008/primary"]).0
    });
    let (ok, calls) = c.exec(&["cat", "/run/postgresql/post_init.calls"]);
    assert!(
        ok && calls.contains("post_init.sh ok"),
        "the base's post_init.sh ran: {calls}"
    );
    let (ok, status) = c.exec(&[
        "runuser",
        "-u",
        "postgres",
        "--",
        "/usr/local/bin/pgha-bootstrap",
        "status",
        "--json",
    ]);
    assert!(ok, "pgha-bootstrap status failed inside the image:\n{status}");
    let status: serde_json::Value = serde_json::from_str(status.trim())
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}):\n{status}"));
    assert_eq!(status["in_recovery"], false, "{status}");
    let applied = status["ledger"]["migrations"]
        .as_array()
        .unwrap_or_else(|| panic!("no ledger in status: {status}"));
    assert_eq!(
        applied.len(),
        pgha_image::bootstrap::migrations::MigrationSet::embedded().len(),
        "every migration applied by the hook: {status}"
    );
    for empty in ["pending_migrations", "pending_extensions", "problems"] {
        assert_eq!(status[empty], serde_json::json!([]), "{empty}: {status}");
    }
    let (ok, check) = c.exec(&[
        "runuser",
        "-u",
        "postgres",
        "--",
        "/usr/local/bin/pgha-bootstrap",
        "check",
    ]);
    assert!(
        ok,
        "pgha-bootstrap check failed inside the image:\n{check}\n{}",
        c.logs()
    );
    // The extensions of the image can be created in the bootstrapped cluster.
    let (ok, out) = c.exec(&[
        "runuser",
        "-u",
        "postgres",
        "--",
        "psql",
        "-X",
        "-h",
        "/run/postgresql",
        "-d",
        "postgres",
        "-Atq",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        "CREATE EXTENSION IF NOT EXISTS vector",
        "-c",
        "CREATE EXTENSION IF NOT EXISTS pgha_testsql",
        "-c",
        "SELECT pgha_testsql_one()",
    ]);
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "1", "{out}");
}

#[test]
#[ignore = "slow tier: needs root and Podman"]
fn a_failing_builder_stage_names_the_extension() {
    let s = setup();
    let image = TestImage {
        reference: format!("localhost/pgha-test/generate-broken:{}", std::process::id()),
    };
    let o = build(&s, &image.reference, "broken", "pgha_broken", Some(&s.catalog));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("stage `ext-pgha_broken`") && stderr.contains("extension `pgha_broken`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("this extension does not compile"),
        "the log's last lines: {stderr}"
    );
    let log = s.dir.path().join("broken/build.log");
    assert!(stderr.contains(&log.display().to_string()), "{stderr}");
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("this extension does not compile")
    );
}

/// The wrapped hook under real Patroni (the stand-in's): Patroni's post_init
/// call runs the base's post_init.sh first, then `pgha-bootstrap hook` with
/// the same arguments (the human role and Patroni's DSN). The bootstrap here
/// is a small ELF program that records its arguments (the real one belongs to
/// the bootstrap work; the cluster test runs it).
#[test]
#[ignore = "slow tier: needs root and Podman"]
fn patroni_runs_the_wrapped_hook_in_order() {
    let s = setup();
    let cc = common::prereq::require_program("gcc", "gcc", &[]);
    let src = s.dir.path().join("recorder.c");
    std::fs::write(
        &src,
        r#"#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    char buf[8192]; size_t n = 0; int spilo_done = 0;
    FILE *calls = fopen("/run/postgresql/post_init.calls", "r");
    if (calls) { n = fread(buf, 1, sizeof buf - 1, calls); buf[n] = 0; fclose(calls);
                 spilo_done = strstr(buf, "post_init.sh ok") != NULL; }
    FILE *f = fopen("/run/postgresql/pgha-bootstrap.calls", "a");
    if (!f) return 1;
    fprintf(f, "spilo_done=%d", spilo_done);
    for (int i = 1; i < argc; i++) fprintf(f, "|%s", argv[i]);
    fprintf(f, "\n");
    fclose(f);
    return 0;
}
"#,
    )
    .unwrap();
    let recorder = s.dir.path().join("recorder");
    let o = Command::new(cc)
        .arg(&src)
        .arg("-o")
        .arg(&recorder)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let image = TestImage {
        reference: format!("localhost/pgha-test/generate-hook:{}", std::process::id()),
    };
    let mut cmd = assert_cmd::Command::cargo_bin("pgha-image").unwrap();
    let o = cmd
        .args([
            "--progress",
            "plain",
            "build",
            "--engine",
            "podman",
            "--tag",
            &image.reference,
        ])
        .args([
            "--base-image",
            &s.standin,
            "--pg",
            "15",
            "--extensions",
            "pgha_testsql",
        ])
        .arg("--bootstrap-bin")
        .arg(&recorder)
        .arg("--out")
        .arg(s.dir.path().join("hook"))
        .arg("--cache-dir")
        .arg(s.dir.path().join("cache"))
        .arg("--mirror")
        .arg(&s.mirror)
        .arg("--catalog")
        .arg(&s.catalog)
        .timeout(std::time::Duration::from_secs(1500))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let c = images::Container::run("generate-hook", &image.reference, &[]);
    let read = |c: &images::Container| c.exec(&["cat", "/run/postgresql/pgha-bootstrap.calls"]);
    c.wait_for(
        "the wrapped post_init hook",
        std::time::Duration::from_secs(180),
        |c| read(c).0,
    );
    let (_, calls) = read(&c);
    let first = calls.lines().next().unwrap_or_default();
    let fields: Vec<&str> = first.split('|').collect();
    assert_eq!(
        fields[0], "spilo_done=1",
        "the base's post_init.sh must run first: {calls}"
    );
    assert_eq!(fields.get(1), Some(&"hook"), "{calls}");
    assert_eq!(fields.get(2), Some(&"zalandos"), "the human role: {calls}");
    let dsn = fields.get(3).copied().unwrap_or_default();
    assert!(
        dsn.contains("dbname=postgres") && dsn.contains("user=postgres"),
        "Patroni's DSN: {calls}"
    );
    assert_eq!(fields.len(), 4, "{calls}");
    // Patroni goes on: the member becomes the leader.
    c.wait_for("the leader", std::time::Duration::from_secs(120), |c| {
        c.exec(&["curl", "-fsS", "http://127.0.0.1:8008/primary"]).0
    });
}

/// The same build through the Docker CLI (the Docker code path: the context
/// goes to `docker build -` as a tar stream), here against Podman's
/// Docker-compatible API: the same context digest, the labels, and working
/// extensions.
#[test]
#[ignore = "slow tier: needs root and Podman"]
fn the_same_build_through_the_docker_cli() {
    let s = setup();
    let api = images::docker_via_podman();
    let image = TestImage {
        reference: format!("localhost/pgha-test/generate-docker:{}", std::process::id()),
    };
    let podman = build(
        &s,
        &image.reference,
        "via-podman",
        "vector,pg_cron,pgha_testsql",
        Some(&s.catalog),
    );
    assert!(
        podman.status.success(),
        "{}",
        String::from_utf8_lossy(&podman.stderr)
    );
    let o = build_with(
        &s,
        &image.reference,
        "via-docker",
        "vector,pg_cron,pgha_testsql",
        Some(&s.catalog),
        Some(&api),
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success(),
        "build through the Docker CLI failed:\n{stderr}"
    );
    let digest = |dir: &str| -> serde_json::Value {
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(s.dir.path().join(dir).join("manifest.json")).unwrap())
                .unwrap();
        m["context_digest"].clone()
    };
    assert_eq!(
        digest("via-docker"),
        digest("via-podman"),
        "one context, whichever engine"
    );

    let inspect = api
        .docker()
        .args([
            "image",
            "inspect",
            "--format",
            "{{json .Config.Labels}}",
            &image.reference,
        ])
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let labels: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(labels["io.pgha.context-digest"], digest("via-docker"));
    assert_eq!(
        labels["io.pgha.extension.vector"],
        "0.8.0@sha256:867a2c328d4928a5a9d6f052cd3bc78c7d60228a9b914ad32aa3db88e9de27b0"
    );

    let script = "set -e; runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -A trust -D /tmp/d >/dev/null; \
                  runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /tmp/d -l /tmp/log \
                    -o '-k /tmp -c listen_addresses=' -w start >/dev/null; \
                  runuser -u postgres -- psql -X -h /tmp -d postgres -Atq -v ON_ERROR_STOP=1 \
                    -c 'CREATE EXTENSION vector' -c \"SELECT '[1,2,3]'::vector <-> '[1,2,5]'::vector\"";
    let run = api
        .docker()
        .args(["run", "--rm", &image.reference, "sh", "-c", script])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(out.trim(), "2");
}
