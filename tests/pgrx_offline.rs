//! pg_graphql, a Rust (pgrx) extension, built with no network and run, on
//! PostgreSQL 15 (the bookworm stand-in) and 17 (the trixie one).
//!
//! - The sources: the real upstream archives of `../shared/sources`, and
//!   pg_graphql 1.5.11 from `../shared/sources/partial/`: upstream's tree
//!   less one 3.6 MB expected-output file of upstream's own regression tests
//!   (see that directory's README). Its digest is therefore not upstream's,
//!   so THIS TEST uses a copy of the catalog that pins the partial archive's
//!   digest (read from `partial/SHA256SUMS`); the shipped catalog keeps
//!   upstream's digest and rightly refuses this archive.
//! - The toolchain: a stand-in for the official Rust image made from the
//!   host's rustup toolchain (`images::rust_standin`), pinned by digest.
//! - `pgha-image mirror DIR` writes the mirror an air-gapped site carries:
//!   the archives, and the crates of pg_graphql's Cargo.lock and of
//!   cargo-pgrx's (fetched from crates.io on the host, each verified against
//!   its lock checksum).
//! - `pgha-image build -e default --mirror DIR --network none`: the engine's
//!   build has no network at all, so any download in a stage fails. The
//!   base's apt steps (the only steps that use a network: an air-gapped site
//!   serves them from its own apt mirror) are built first, with the network,
//!   as stages of their own (`--target`); everything Rust runs offline.
//! - In a running member of the image: pg_graphql's catalog smoke (from the
//!   build manifest) and Supabase's `graphql` expectations
//!   (../shared/docs/supabase-contract.md): the bootstrap created pg_graphql,
//!   `graphql_public.graphql()` resolves through it for the API roles, which
//!   have USAGE on schema `graphql`; dropping the extension puts the
//!   placeholder back.

mod common;

use common::images::{self, Container, podman_cmd, run};
use common::member::{self, psql, sql};
use common::prereq::require_program;
use pgha_image::catalog::{SMOKE_PSQL_ARGS, Smoke};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOOL: &str = env!("CARGO_BIN_EXE_pgha-image");
const PARTIAL: &str = "partial/pg_graphql-1.5.11.tar.gz";
/// pg_graphql 1.5.11's digest in the shipped catalog (upstream's archive).
const UPSTREAM_SHA256: &str = "b93d195e3306bfcfbad51b7bc24d2873e7f42223448044cb6b0aecdb9e60de45";

/// The directory holding the upstream archives and `partial/`.
fn sources_dir() -> PathBuf {
    let dir = std::env::var_os("PGHA_TEST_SOURCES")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(common::sources::shared_dir);
    assert!(
        dir.join(PARTIAL).is_file(),
        "{} is missing: this test builds pg_graphql from the archive there (../shared/sources beside the \
         checkout, or PGHA_TEST_SOURCES pointing at a directory laid out the same way)",
        dir.join(PARTIAL).display()
    );
    dir
}

/// The test catalog: the shipped catalog with pg_graphql 1.5.11 pinned to
/// the partial archive's digest (see the module docs), and nothing else changed.
fn test_catalog(sources: &Path, dir: &Path) -> PathBuf {
    let sums = std::fs::read_to_string(sources.join("partial/SHA256SUMS")).unwrap();
    let partial = sums
        .lines()
        .find_map(|l| l.strip_suffix("  pg_graphql-1.5.11.tar.gz"))
        .expect("partial/SHA256SUMS lists pg_graphql-1.5.11.tar.gz")
        .to_string();
    let catalog = dir.join("catalog");
    std::fs::create_dir_all(&catalog).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("extensions");
    for e in std::fs::read_dir(&shipped).unwrap() {
        let e = e.unwrap();
        let mut text = std::fs::read_to_string(e.path()).unwrap();
        if e.file_name() == "pg_graphql.toml" {
            assert!(
                text.contains(UPSTREAM_SHA256),
                "the shipped catalog pins upstream's digest"
            );
            text = text.replace(UPSTREAM_SHA256, &partial);
        }
        std::fs::write(catalog.join(e.file_name()), text).unwrap();
    }
    catalog
}

/// A source mirror directory: every upstream archive, and pg_graphql's partial one.
fn source_mirror(sources: &Path, dir: &Path) -> PathBuf {
    let m = dir.join("sources");
    std::fs::create_dir_all(&m).unwrap();
    for e in std::fs::read_dir(sources).unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().ends_with(".tar.gz") {
            std::os::unix::fs::symlink(e.path(), m.join(e.file_name())).unwrap();
        }
    }
    std::os::unix::fs::symlink(sources.join(PARTIAL), m.join("pg_graphql-1.5.11.tar.gz")).unwrap();
    m
}

fn tool(catalog: &Path, cache: &Path) -> Command {
    let mut c = Command::new(TOOL);
    c.env_remove("PGHA_MIRROR")
        .env_remove("PGHA_CRATES_MIRROR")
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .arg("--catalog")
        .arg(catalog)
        .arg("--cache-dir")
        .arg(cache)
        .args(["--progress", "plain"]);
    c
}

fn ok(cmd: &mut Command, what: &str) -> String {
    let o = cmd.stdin(Stdio::null()).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    let tail: Vec<&str> = err.lines().collect();
    assert!(
        o.status.success(),
        "{what} failed ({}):\n{}",
        o.status,
        tail[tail.len().saturating_sub(60)..].join("\n")
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The arguments of `generate`/`build` for the default set on the stand-in of `major`.
fn selection(major: u32, standin: &str, rust: &str, bootstrap: &Path, mirror: &Path) -> Vec<String> {
    let mut a: Vec<String> = [
        "-e",
        "default",
        "--base-image",
        standin,
        "--rust-image",
        rust,
        "--bootstrap-bin",
        bootstrap.to_str().unwrap(),
        "--mirror",
        mirror.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(images::standin_args(major));
    a
}

/// The stage names of a Dockerfile (`FROM … AS name`).
fn stages(dockerfile: &str) -> Vec<String> {
    dockerfile
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match (w.next(), w.next(), w.next(), w.next()) {
                (Some("FROM"), Some(_), Some("AS"), Some(name)) => Some(name.to_string()),
                _ => None,
            }
        })
        .collect()
}

#[test]
#[ignore = "slow tier: needs root, Podman, the host's rustup toolchain and crates.io"]
fn pg_graphql_builds_air_gapped_from_a_mirror_and_works_on_15() {
    air_gapped_pg_graphql(15);
}

#[test]
#[ignore = "slow tier: needs root, Podman, the trixie stand-in, the host's rustup toolchain and crates.io"]
fn pg_graphql_builds_air_gapped_from_a_mirror_and_works_on_17() {
    air_gapped_pg_graphql(17);
}

/// A generated context keeps the user's Rust image when Podman builds it with
/// `--layers=false` (buildah's default): Podman 4.3 then deletes the image
/// of any stage that is nothing but `FROM`, so the toolchain is copied from
/// the pinned reference itself. The Rust image here is a small one of its own
/// (a `cargo` that builds nothing, so that the cargo-pgrx stage takes
/// seconds); the engine and the generated Dockerfile are the real ones.
#[test]
#[ignore = "slow tier: needs root, Podman and the bookworm stand-in"]
fn a_build_with_layers_false_keeps_the_rust_image() {
    let sources = sources_dir();
    let work = tempfile::Builder::new()
        .prefix("pgha-pgrx-layers")
        .tempdir()
        .unwrap();
    let w = work.path();
    let catalog = test_catalog(&sources, w);
    let src_mirror = source_mirror(&sources, w);
    let engine = images::engine_lock();
    let standin = images::spilo_standin_of(15);

    // The Rust image: the official layout, a cargo whose `install --root DIR`
    // leaves a cargo-pgrx script, and a nonce so that no other tag shares it.
    let dir = w.join("rust-image");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("cargo"),
        "#!/bin/sh\nset -eu\n[ \"$1\" = install ]\nroot=\nwhile [ $# -gt 0 ]; do [ \"$1\" = --root ] && root=$2; shift; done\n\
         mkdir -p \"$root/bin\"\nprintf '#!/bin/sh\\necho cargo-pgrx-stand-in\\n' > \"$root/bin/cargo-pgrx\"\nchmod +x \"$root/bin/cargo-pgrx\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("Containerfile"),
        format!(
            "FROM {}\nCOPY cargo /usr/local/cargo/bin/cargo\nRUN chmod +x /usr/local/cargo/bin/cargo && mkdir -p /usr/local/rustup \
             && echo '{} {:?}' > /usr/local/rustup/nonce\n",
            images::debian_base(),
            std::process::id(),
            Instant::now()
        ),
    )
    .unwrap();
    let rust_image = images::TestImage {
        reference: format!("localhost/pgha-test/rust-layers-false:{}", std::process::id()),
    };
    run(podman_cmd()
        .args(["build", "-q", "-t", &rust_image.reference])
        .arg(&dir));
    let digest = run(podman_cmd().args([
        "image",
        "inspect",
        "--format",
        "{{.Digest}}",
        &rust_image.reference,
    ]));
    let pinned = format!("localhost/pgha-test/rust-layers-false@{}", digest.trim());

    let bootstrap = PathBuf::from(env!("CARGO_BIN_EXE_pgha-bootstrap"));
    let gen_dir = w.join("generated");
    ok(
        tool(&catalog, &w.join("cache"))
            .arg("generate")
            .args(selection(15, &standin, &pinned, &bootstrap, &src_mirror))
            .args(["--crates-mirror", "https://static.crates.io", "--out"])
            .arg(&gen_dir),
        "pgha-image generate",
    );
    let context = gen_dir.join("context");
    let dockerfile = std::fs::read_to_string(context.join("Dockerfile")).unwrap();
    let target = stages(&dockerfile)
        .into_iter()
        .find(|s| s.starts_with("pgha-cargo-pgrx-") && !s.ends_with("-deps"))
        .expect("a cargo-pgrx stage");
    run(podman_cmd()
        .args(["build", "-q", "--layers=false", "--no-cache", "--target", &target])
        .arg(&context));
    assert!(
        images::image_exists(&pinned) && images::image_exists(&rust_image.reference),
        "`podman build --layers=false` of the generated context deleted the Rust image {pinned}"
    );
    drop(engine);
}

fn air_gapped_pg_graphql(major: u32) {
    let start = Instant::now();
    let sources = sources_dir();
    let work = tempfile::Builder::new().prefix("pgha-pgrx").tempdir().unwrap();
    let w = work.path();
    let catalog = test_catalog(&sources, w);
    let src_mirror = source_mirror(&sources, w);

    // The mirror an air-gapped site carries, made where crates.io is reachable.
    let mirror = w.join("mirror");
    ok(
        tool(&catalog, &w.join("cache-host"))
            .arg("mirror")
            .arg(&mirror)
            .args(["-e", "default", "--pg", &major.to_string(), "--mirror"])
            .arg(&src_mirror)
            .args(["--crates-mirror", "https://static.crates.io"]),
        "pgha-image mirror",
    );
    for f in [
        "pg_graphql-1.5.11.tar.gz",
        "crates/cargo-pgrx/cargo-pgrx-0.12.9.crate",
        "crates/pgrx/pgrx-0.12.9.crate",
        "SHA256SUMS",
    ] {
        assert!(mirror.join(f).is_file(), "the mirror has no {f}");
    }
    // sha256sum -c accepts the mirror's list: every file is what it says.
    let sha256sum = require_program("sha256sum", "coreutils", &[]);
    run(Command::new(sha256sum)
        .args(["--check", "--quiet", "--strict", "SHA256SUMS"])
        .current_dir(&mirror));
    eprintln!("mirror written after {:?}", start.elapsed());

    let engine = images::engine_lock();
    let standin = images::spilo_standin_of(major);
    let rust = images::rust_standin();
    let bootstrap = w.join("pgha-bootstrap");
    let strip = require_program("strip", "binutils", &[]);
    run(Command::new(strip)
        .args(["--strip-debug", "-o"])
        .arg(&bootstrap)
        .arg(env!("CARGO_BIN_EXE_pgha-bootstrap")));
    let args = selection(major, &standin, &rust, &bootstrap, &mirror);

    // The generated context: what the air-gapped build builds.
    let gen_dir = w.join("generated");
    ok(
        tool(&catalog, &w.join("cache-site"))
            .arg("generate")
            .args(&args)
            .arg("--out")
            .arg(&gen_dir),
        "pgha-image generate",
    );
    let context = gen_dir.join("context");
    let dockerfile = std::fs::read_to_string(context.join("Dockerfile")).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(gen_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["rust_image"],
        serde_json::json!(rust),
        "the manifest records the Rust image"
    );

    // The base's apt steps, with the network: every stage that installs
    // packages and compiles no Rust (the pgrx stages' `-deps`, the C
    // extensions, the run-time packages).
    let pgrx: Vec<String> = manifest["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["recipe"] == "pgrx")
        .map(|e| e["stage"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(pgrx, ["ext-pg_graphql"]);
    let warm: Vec<String> = stages(&dockerfile)
        .into_iter()
        .filter(|s| {
            s.ends_with("-deps") || s == "pgha-runtime" || (s.starts_with("ext-") && !pgrx.contains(s))
        })
        .collect();
    assert!(warm.contains(&"ext-pg_graphql-deps".to_string()), "{warm:?}");
    let t = Instant::now();
    // With the build argument the tool's build passes, so that the layers
    // are the ones that build finds in the cache (no `--label`: the tool
    // passes none of the image's labels, and Podman would write them into
    // these cached stages for every later build to inherit).
    let mut engine_args: Vec<String> = Vec::new();
    for (k, v) in manifest["build_args"].as_object().unwrap() {
        engine_args.push("--build-arg".to_string());
        engine_args.push(format!("{k}={}", v.as_str().unwrap()));
    }
    for target in &warm {
        run(podman_cmd()
            .args(["build", "--layers", "-q", "--target", target])
            .args(&engine_args)
            .arg(&context));
    }
    eprintln!("apt stages ({}) ready after {:?}", warm.join(" "), t.elapsed());

    // The air-gapped build: no network in the engine's build, a fresh cache,
    // everything from the mirror directory.
    let tag = format!("localhost/pgha-test/pgrx-offline:{major}-{}", std::process::id());
    let image = images::TestImage {
        reference: tag.clone(),
    };
    let t = Instant::now();
    let out = ok(
        tool(&catalog, &w.join("cache-airgapped"))
            .arg("build")
            .args(&args)
            .args(["--engine", "podman", "--network", "none", "--json", "--tag", &tag])
            .arg("--out")
            .arg(w.join("build")),
        "the air-gapped pgha-image build",
    );
    eprintln!("air-gapped build of the default set after {:?}", t.elapsed());
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["tag"], serde_json::json!(tag));
    let label = run(podman_cmd().args([
        "image",
        "inspect",
        "--format",
        "{{index .Config.Labels \"io.pgha.rust-image\"}}",
        &tag,
    ]));
    assert_eq!(label.trim(), rust);

    // A member of the image, with only the secrets mounted.
    let secrets = member::secrets();
    let c = Container::run(
        &format!("pgrx-offline-{major}"),
        &image.reference,
        &["-v", &member::mount(&secrets)],
    );
    drop(engine);
    c.wait_for("the member's leader", Duration::from_secs(240), |c| {
        c.exec(&["curl", "-fsS", "http://127.0.0.1:8008/primary"]).0
    });
    c.wait_for("the bootstrap", Duration::from_secs(120), |c| {
        psql(
            c,
            &[
                "-XAtq",
                "-c",
                "SELECT 1 FROM pg_extension WHERE extname = 'pg_graphql'",
            ],
            "",
        )
        .1
        .trim()
            == "1"
    });

    // pg_graphql's catalog smoke, as the build manifest carries it, twice.
    let (okk, m) = c.exec(&["cat", "/etc/pgha/build-manifest.json"]);
    assert!(okk, "{m}");
    let m: serde_json::Value = serde_json::from_str(&m).unwrap();
    assert_eq!(m["rust_image"], serde_json::json!(rust));
    let e = m["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "pg_graphql")
        .expect("pg_graphql in the image's manifest")
        .clone();
    let smoke: Smoke = serde_json::from_value(e["smoke"].clone()).unwrap();
    for round in 1..=2 {
        let (okk, out) = psql(&c, SMOKE_PSQL_ARGS, &smoke.script("pg_graphql"));
        assert!(okk, "smoke of pg_graphql (round {round}) failed:\n{out}");
        if let Err(diff) = smoke.check(&out) {
            panic!("smoke of pg_graphql (round {round}): {diff}");
        }
    }
    assert_eq!(
        sql(
            &c,
            "SELECT extversion FROM pg_extension WHERE extname = 'pg_graphql';"
        ),
        "1.5.11"
    );

    // Supabase's expectations of `graphql`: the extension's schema, USAGE
    // for the API roles, and graphql_public.graphql() resolving through
    // pg_graphql for them (the placeholder is gone).
    assert_eq!(
        sql(
            &c,
            "SELECT string_agg(r, ',' ORDER BY r) FROM unnest(ARRAY['anon','authenticated','service_role']) AS r \
             WHERE has_schema_privilege(r, 'graphql', 'USAGE') \
               AND has_function_privilege(r, 'graphql_public.graphql(text, text, jsonb, jsonb)', 'EXECUTE');"
        ),
        "anon,authenticated,service_role"
    );
    for role in ["anon", "authenticated", "service_role"] {
        let out = sql(
            &c,
            &format!(
                "SET ROLE {role}; SELECT graphql_public.graphql(query := '{{ __typename }}')::text; RESET ROLE;"
            ),
        );
        assert_eq!(out, r#"{"data": {"__typename": "Query"}}"#, "as {role}");
    }
    // A table shows up in the schema pg_graphql reflects.
    let out = sql(
        &c,
        "CREATE TABLE public.pgha_pgrx_probe (id int PRIMARY KEY, title text); \
         INSERT INTO public.pgha_pgrx_probe VALUES (1, 'one'); \
         SELECT graphql.resolve('{ pgha_pgrx_probeCollection { edges { node { id title } } } }')::text; \
         DROP TABLE public.pgha_pgrx_probe;",
    );
    assert_eq!(
        out,
        r#"{"data": {"pgha_pgrx_probeCollection": {"edges": [{"node": {"id": 1, "title": "one"}}]}}}"#
    );
    // Dropping the extension puts the placeholder back (the contract's event trigger).
    let out = sql(
        &c,
        "DROP EXTENSION pg_graphql; SELECT graphql_public.graphql(query := '{ __typename }')::text;",
    );
    assert!(out.contains("pg_graphql extension is not enabled"), "{out}");
    eprintln!("pg_graphql on {major}, air-gapped: {:?} in all", start.elapsed());
    drop(c);
    let _engine = images::engine_lock();
    drop(image);
}
