//! Packing the build context: byte-identical output for the same inputs,
//! a different digest for a different source or SOURCE_DATE_EPOCH, verified
//! sources, and an output directory replaced only when complete.

mod common;

use common::prereq::{fixtures_dir, require_file};
use pgha_image::ExitCode;
use pgha_image::catalog::Catalog;
use pgha_image::context::{self, BuildPlan, ContextError, Inputs, PlanRequest, SourceFile};
use pgha_image::hash::Sha256Digest;
use std::io::Write;
use std::path::{Path, PathBuf};

const BOOTSTRAP: &str = env!("CARGO_BIN_EXE_pgha-bootstrap");

/// A gzipped tarball of a small SQL-only PGXS extension, `<name>-<version>/...`.
fn sql_extension_tarball(dir: &Path, name: &str, version: &str, body: &str) -> (PathBuf, Sha256Digest) {
    let mut tar = tar::Builder::new(Vec::new());
    let top = format!("{name}-{version}");
    let files = [
        (
            "Makefile".to_string(),
            format!(
                "EXTENSION = {name}\nDATA = {name}--{version}.sql\nPG_CONFIG ?= pg_config\n\
                 PGXS := $(shell $(PG_CONFIG) --pgxs)\ninclude $(PGXS)\n"
            ),
        ),
        (
            format!("{name}.control"),
            format!("default_version = '{version}'\nrelocatable = true\n"),
        ),
        (format!("{name}--{version}.sql"), body.to_string()),
    ];
    for (path, text) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(text.len() as u64);
        h.set_mtime(0);
        tar.append_data(&mut h, format!("{top}/{path}"), text.as_bytes())
            .unwrap();
    }
    let raw = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    gz.write_all(&raw).unwrap();
    let bytes = gz.finish().unwrap();
    let path = dir.join(format!("{name}-{version}.tar.gz"));
    std::fs::write(&path, &bytes).unwrap();
    (path, Sha256Digest::of(&bytes))
}

/// A one-extension catalog for that tarball.
fn catalog_for(dir: &Path, name: &str, version: &str, sha: &Sha256Digest) -> Catalog {
    let cat = dir.join("catalog");
    std::fs::create_dir_all(&cat).unwrap();
    std::fs::write(
        cat.join(format!("{name}.toml")),
        format!(
            "name = \"{name}\"\ndescription = \"made by the tests\"\nlicense = \"PostgreSQL\"\n\
             set = \"default\"\nversion = \"{version}\"\npg_majors = {{ min = 10 }}\n\n\
             [build]\nkind = \"sql\"\n\n[[versions]]\nversion = \"{version}\"\ntag = \"v{version}\"\n\
             url = \"http://127.0.0.1/{name}-{version}.tar.gz\"\nsha256 = \"{sha}\"\n\
             provenance = \"reproduced-only\"\n"
        ),
    )
    .unwrap();
    Catalog::from_dir(&cat).unwrap()
}

struct Fixture {
    dir: tempfile::TempDir,
    catalog: Catalog,
    source: SourceFile,
}

fn fixture(body: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (path, sha) = sql_extension_tarball(dir.path(), "testext", "1.0", body);
    let catalog = catalog_for(dir.path(), "testext", "1.0", &sha);
    Fixture {
        source: SourceFile {
            extension: "testext".into(),
            version: "1.0".into(),
            sha256: sha,
            file_name: path.file_name().unwrap().to_string_lossy().into_owned(),
            path,
        },
        dir,
        catalog,
    }
}

fn plan(catalog: &Catalog) -> BuildPlan {
    BuildPlan::new(
        catalog,
        &PlanRequest {
            base_image: Some("localhost/pgha-test/spilo-standin:15".into()),
            pg_majors: vec![15],
            extensions: Some(vec!["testext".into()]),
            ..Default::default()
        },
    )
    .unwrap()
}

fn generate(f: &Fixture, out: &Path, epoch: Option<u64>) -> Result<context::Generated, ContextError> {
    context::generate(
        &plan(&f.catalog),
        &Inputs {
            sources: std::slice::from_ref(&f.source),
            bootstrap_bin: Path::new(BOOTSTRAP),
            source_date_epoch: epoch,
        },
        out,
    )
}

#[test]
fn same_inputs_give_a_byte_identical_context() {
    let f = fixture("CREATE FUNCTION testext_one() RETURNS int LANGUAGE sql AS 'SELECT 1';\n");
    let (a, b) = (f.dir.path().join("a"), f.dir.path().join("b"));
    let ga = generate(&f, &a, None).unwrap();
    let gb = generate(&f, &b, None).unwrap();
    assert_eq!(ga.digest, gb.digest);
    let (ta, tb) = (
        std::fs::read(&ga.context_tar).unwrap(),
        std::fs::read(&gb.context_tar).unwrap(),
    );
    assert_eq!(ta, tb, "the tars differ");
    // The digest is the tar's SHA-256, and is what the manifest and labels say.
    assert_eq!(Sha256Digest::of(&ta), ga.digest);
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["context_digest"], format!("sha256:{}", ga.digest));
    assert_eq!(
        m["labels"]["io.pgha.context-digest"],
        format!("sha256:{}", ga.digest)
    );
    assert_eq!(
        m["build_args"]["PGHA_CONTEXT_DIGEST"],
        format!("sha256:{}", ga.digest)
    );

    // Entries: sorted, owned by 0, fixed mtime, fixed modes; and the same bytes as the directory.
    let mut archive = tar::Archive::new(&ta[..]);
    let mut names = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut e = entry.unwrap();
        let h = e.header().clone();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            (h.uid().unwrap(), h.gid().unwrap(), h.mtime().unwrap()),
            (0, 0, 0),
            "{name}"
        );
        let mode = h.mode().unwrap();
        if h.entry_type().is_dir() {
            assert_eq!(mode, 0o755, "{name}");
        } else {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut bytes).unwrap();
            assert_eq!(
                bytes,
                std::fs::read(ga.context_dir.join(&name)).unwrap(),
                "{name}"
            );
            let exec = name.starts_with("bin/") || name.starts_with("hook/");
            assert_eq!(mode, if exec { 0o755 } else { 0o644 }, "{name}");
        }
        names.push(name.trim_end_matches('/').to_string());
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    for want in [
        "Dockerfile",
        "bin/pgha-bootstrap",
        "config/bootstrap.toml",
        "hook/post_init.sh",
        "pgha-manifest.json",
        "sources/testext-1.0.tar.gz",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }
    // The shipped binary is the one given.
    assert_eq!(
        std::fs::read(ga.context_dir.join("bin/pgha-bootstrap")).unwrap(),
        std::fs::read(BOOTSTRAP).unwrap()
    );

    // Generating again into the same directory replaces it with the same bytes.
    let again = generate(&f, &a, None).unwrap();
    assert_eq!(again.digest, ga.digest);
}

#[test]
fn a_different_source_or_epoch_changes_the_digest() {
    let one = fixture("SELECT 1;\n");
    let two = fixture("SELECT 2;\n");
    assert_ne!(one.source.sha256, two.source.sha256);
    let d1 = generate(&one, &one.dir.path().join("out"), None).unwrap().digest;
    let d2 = generate(&two, &two.dir.path().join("out"), None).unwrap().digest;
    assert_ne!(d1, d2, "a different source must change the context digest");

    let g = generate(&one, &one.dir.path().join("epoch"), Some(1_700_000_000)).unwrap();
    assert_ne!(g.digest, d1, "SOURCE_DATE_EPOCH must change the digest");
    let bytes = std::fs::read(&g.context_tar).unwrap();
    let mut archive = tar::Archive::new(&bytes[..]);
    for entry in archive.entries().unwrap() {
        assert_eq!(entry.unwrap().header().mtime().unwrap(), 1_700_000_000);
    }
    assert_eq!(g.manifest.manifest.source_date_epoch, 1_700_000_000);
}

#[test]
fn a_tampered_source_is_refused_and_the_previous_output_kept() {
    let f = fixture("SELECT 1;\n");
    let out = f.dir.path().join("out");
    let good = generate(&f, &out, None).unwrap();

    // The file changes after it was verified (same declared digest): caught while copying.
    std::fs::write(&f.source.path, b"not the pinned archive").unwrap();
    let e = generate(&f, &out, None).unwrap_err();
    assert!(matches!(e, ContextError::SourceMismatch { .. }), "{e}");
    assert_eq!(
        pgha_image::error::Diagnostic::exit_code(&e),
        pgha_image::ExitCode::Verification
    );
    // The previous output is untouched, and no temporary directory is left behind.
    assert_eq!(Sha256Digest::of_file(&good.context_tar).unwrap().0, good.digest);
    let leftovers: Vec<_> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("pgha-tmp") || n.contains("pgha-old"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A source whose declared digest is not the catalog's.
    let mut wrong = f.source.clone();
    wrong.sha256 = Sha256Digest::of(b"x");
    let e = context::generate(
        &plan(&f.catalog),
        &Inputs {
            sources: &[wrong],
            bootstrap_bin: Path::new(BOOTSTRAP),
            source_date_epoch: None,
        },
        &f.dir.path().join("other"),
    )
    .unwrap_err();
    assert!(matches!(e, ContextError::SourceMismatch { .. }), "{e}");
    assert!(!f.dir.path().join("other").exists());

    // No source at all.
    let e = context::generate(
        &plan(&f.catalog),
        &Inputs {
            sources: &[],
            bootstrap_bin: Path::new(BOOTSTRAP),
            source_date_epoch: None,
        },
        &f.dir.path().join("other"),
    )
    .unwrap_err();
    assert!(matches!(e, ContextError::MissingSource { .. }), "{e}");
}

#[test]
fn an_unrelated_directory_is_not_replaced() {
    let f = fixture("SELECT 1;\n");
    let out = f.dir.path().join("mine");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("precious.txt"), b"keep me").unwrap();
    let e = generate(&f, &out, None).unwrap_err();
    assert!(matches!(e, ContextError::OutDirNotOurs { .. }), "{e}");
    assert_eq!(std::fs::read(out.join("precious.txt")).unwrap(), b"keep me");
    // An empty directory is fine.
    let empty = f.dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    generate(&f, &empty, None).unwrap();
    assert!(empty.join("context.tar").is_file());
}

/// The CLI with the real upstream tarballs, fetched through `--mirror` into a
/// fresh cache: the printed digest is the tar's, and the same run twice prints
/// the same digest.
#[test]
fn cli_generates_from_real_upstream_sources() {
    let up = fixtures_dir().join("upstream");
    let vector = require_file(
        &up.join("pgvector_0.8.0.orig.tar.gz"),
        "pgvector 0.8.0 upstream tarball",
    );
    let pgtap = require_file(
        &up.join("pgtap_1.3.3.orig.tar.gz"),
        "pgtap 1.3.3 upstream tarball",
    );
    let dir = tempfile::tempdir().unwrap();
    let sources = dir.path().join("sources");
    std::fs::create_dir_all(&sources).unwrap();
    std::fs::copy(vector, sources.join("vector-0.8.0.tar.gz")).unwrap();
    std::fs::copy(pgtap, sources.join("pgtap-1.3.3.tar.gz")).unwrap();

    let run = |out: &str| {
        let o = assert_cmd::Command::cargo_bin("pgha-image")
            .unwrap()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["generate", "--out"])
            .arg(dir.path().join(out))
            .args([
                "--base-image",
                "localhost/pgha-test/spilo-standin:15",
                "--pg",
                "15",
                "--extensions",
                "vector,pg_cron,pgtap",
                "--from-source",
                "vector",
                "--bootstrap-bin",
                BOOTSTRAP,
                "--cache-dir",
            ])
            .arg(dir.path().join("cache"))
            .arg("--mirror")
            .arg(&sources)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    };
    let d1 = run("one");
    let d2 = run("two");
    assert_eq!(d1, d2);
    let tar = dir.path().join("one/context.tar");
    assert_eq!(d1, format!("sha256:{}", Sha256Digest::of_file(&tar).unwrap().0));

    // --json names the extensions and the digest.
    let o = assert_cmd::Command::cargo_bin("pgha-image")
        .unwrap()
        .args(["generate", "--json", "--out"])
        .arg(dir.path().join("three"))
        .args([
            "--base-image",
            "localhost/x:1",
            "--pg",
            "15",
            "--extensions",
            "vector,pgtap",
        ])
        .args(["--bootstrap-bin", BOOTSTRAP, "--cache-dir"])
        .arg(dir.path().join("cache"))
        .arg("--mirror")
        .arg(&sources)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["context_digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(v["extensions"][1]["name"], "vector");
    assert_eq!(
        v["extensions"][1]["sha256"],
        "867a2c328d4928a5a9d6f052cd3bc78c7d60228a9b914ad32aa3db88e9de27b0"
    );

    // A wrong file under the right name (and not yet in the cache): verification failure,
    // exit 3, nothing written.
    std::fs::write(sources.join("pgtap-1.3.3.tar.gz"), b"tampered").unwrap();
    let fresh_cache = dir.path().join("fresh-cache");
    let o = assert_cmd::Command::cargo_bin("pgha-image")
        .unwrap()
        .args(["generate", "--out"])
        .arg(dir.path().join("four"))
        .args([
            "--base-image",
            "localhost/x:1",
            "--pg",
            "15",
            "--extensions",
            "pgtap",
        ])
        .args(["--bootstrap-bin", BOOTSTRAP, "--cache-dir"])
        .arg(&fresh_cache)
        .arg("--mirror")
        .arg(&sources)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("pgtap") && err.contains("1.3.3"), "{err}");
    assert!(!dir.path().join("four").exists());

    // An unknown extension: bad input, exit 2, with a suggestion.
    let o = assert_cmd::Command::cargo_bin("pgha-image")
        .unwrap()
        .args(["generate", "--out"])
        .arg(dir.path().join("five"))
        .args(["--extensions", "vectr", "--bootstrap-bin", BOOTSTRAP])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("did you mean \"vector\""));
}

/// A gzipped tar whose entry names are written as given (no checks), for
/// archives a well-behaved writer would refuse to make.
fn raw_tarball(dir: &Path, files: &[(&str, &str)]) -> (PathBuf, Sha256Digest) {
    let mut b = tar::Builder::new(Vec::new());
    for (name, text) in files {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(text.len() as u64);
        h.set_mtime(0);
        h.set_cksum();
        b.append(&h, text.as_bytes()).unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    gz.write_all(&b.into_inner().unwrap()).unwrap();
    let bytes = gz.finish().unwrap();
    let path = dir.join("testext-1.0.tar.gz");
    std::fs::write(&path, &bytes).unwrap();
    (path, Sha256Digest::of(&bytes))
}

/// The builder stage unpacks each source: an archive pinned by its digest but
/// escaping its tree, or without the one top-level directory the build
/// strips, never enters a context; the error names the extension.
#[test]
fn unsafe_or_scattered_archives_never_enter_a_context() {
    for (files, want_exit, want) in [
        (
            &[
                ("testext-1.0/Makefile", "all:\n"),
                ("testext-1.0/../../etc/evil", "x"),
            ][..],
            ExitCode::Verification,
            "cannot be unpacked safely",
        ),
        (
            &[
                ("Makefile", "all:\n"),
                ("testext.control", "default_version = '1.0'\n"),
            ][..],
            ExitCode::Usage,
            "no single top-level directory",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (path, sha) = raw_tarball(dir.path(), files);
        let f = Fixture {
            catalog: catalog_for(dir.path(), "testext", "1.0", &sha),
            source: SourceFile {
                extension: "testext".into(),
                version: "1.0".into(),
                sha256: sha,
                file_name: "testext-1.0.tar.gz".into(),
                path,
            },
            dir,
        };
        let out = f.dir.path().join("out");
        let err = generate(&f, &out, Some(0)).unwrap_err();
        let msg = pgha_image::Error::from(err);
        assert_eq!(msg.exit_code(), want_exit, "{msg:?}");
        let report = msg.report();
        assert!(
            report.contains("testext 1.0") && report.contains(want),
            "{report}"
        );
        assert!(report.contains("hint:"), "{report}");
        assert!(!out.exists(), "nothing is written for a refused source");
    }
}

/// The whole of `generate` (plan → fetch from a mirror into a cache → render
/// → pack) is one library call, with the same result as packing the same
/// inputs by hand; and the output directory is checked before any fetch.
#[test]
fn the_generate_pipeline_is_one_library_call() {
    use pgha_image::fetch::{FetchOptions, Mirror};
    use pgha_image::pipeline::{self, GenerateRequest};
    use pgha_image::progress::Progress;

    let f = fixture("SELECT 1;");
    let mirror = f.dir.path().join("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    std::fs::copy(&f.source.path, mirror.join("testext-1.0.tar.gz")).unwrap();
    let request = |out: PathBuf, offline: bool| GenerateRequest {
        plan: PlanRequest {
            base_image: Some("localhost/pgha-test/spilo-standin:15".into()),
            pg_majors: vec![15],
            extensions: Some(vec!["testext".into()]),
            ..Default::default()
        },
        bootstrap_bin: PathBuf::from(BOOTSTRAP),
        fetch: FetchOptions {
            cache_dir: f.dir.path().join(if offline { "empty-cache" } else { "cache" }),
            offline,
            mirror: Some(Mirror::Dir(mirror.clone())),
            ..Default::default()
        },
        out,
        source_date_epoch: Some(0),
    };
    let done = pipeline::generate(
        &f.catalog,
        &request(f.dir.path().join("out"), false),
        &Progress::quiet(),
    )
    .unwrap();
    let direct = generate(&f, &f.dir.path().join("direct"), Some(0)).unwrap();
    assert_eq!(done.generated.digest, direct.digest);
    assert_eq!(
        done.summary()["context_digest"],
        format!("sha256:{}", direct.digest)
    );

    // Offline with an empty cache the fetch would fail (exit 4); the output
    // directory holding a user file is refused first (exit 2).
    let mine = f.dir.path().join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("keep.txt"), b"keep").unwrap();
    let e = pipeline::generate(&f.catalog, &request(mine.clone(), true), &Progress::quiet()).unwrap_err();
    assert_eq!(e.exit_code(), ExitCode::Usage, "{}", e.report());
    assert!(e.report().contains("has no .pgha-output.json"), "{}", e.report());
    assert_eq!(std::fs::read(mine.join("keep.txt")).unwrap(), b"keep");
}

/// The one build manifest (pgha_image::contract): what the context builder
/// writes reads back the same with every reader, `verify`'s (the image's
/// file as its probe prints it) and `manifests`' (`--image-manifest FILE`,
/// the context's copy and the output's manifest.json alike); and a manifest
/// of the format before the version field still reads.
#[test]
fn the_written_manifest_reads_with_every_reader() {
    use pgha_image::contract::{BUILD_MANIFEST_VERSION, BuildManifest};
    let f = fixture("SELECT 1;");
    let out = f.dir.path().join("out");
    let done = generate(&f, &out, Some(0)).unwrap();
    let written = &done.manifest.manifest;
    assert_eq!(written.version, BUILD_MANIFEST_VERSION);
    let inner = out
        .join("context")
        .join(pgha_image::contract::layout::CONTEXT_MANIFEST);
    let outer = out.join("manifest.json");

    for file in [&inner, &outer] {
        let read = pgha_image::manifests::image::from_file(file).unwrap();
        assert_eq!(&read, written, "manifests' reader of {}", file.display());
    }
    let probe = format!(
        "@@manifest\n{}\n@@bootstrap\n\n@@launch\n1\n",
        std::fs::read_to_string(&inner).unwrap()
    );
    let config = pgha_image::verify::image::parse_config("localhost/x:y", &probe).unwrap();
    assert_eq!(&config.manifest, written, "verify's reader");
    assert!(config.launch_wrapper);

    // Today's format without the version field: version 0, everything else as written.
    let mut old: serde_json::Value = serde_json::from_slice(&std::fs::read(&inner).unwrap()).unwrap();
    old.as_object_mut().unwrap().remove("version");
    let read = BuildManifest::from_json(old.to_string().as_bytes()).unwrap();
    assert_eq!(read.version, 0);
    assert_eq!(
        BuildManifest {
            version: BUILD_MANIFEST_VERSION,
            ..read.clone()
        },
        *written
    );
    assert_eq!(read.spilo_configuration(), written.spilo_configuration());
    let probe = format!("@@manifest\n{old}\n@@bootstrap\n\n@@launch\n0\n");
    let config = pgha_image::verify::image::parse_config("localhost/x:y", &probe).unwrap();
    assert_eq!(config.manifest.version, 0);
}
