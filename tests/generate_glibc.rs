//! The pgha-bootstrap binary must run on the base image's glibc (Spilo 3.x:
//! Ubuntu 22.04, glibc 2.35): the real binary passes; a binary that needs a
//! newer glibc (compiled here against this machine's 2.36) is refused.

mod common;

use common::prereq::require_program;
use pgha_image::context::glibc::elf_needs;
use pgha_image::context::{BaseImage, BaseOverrides, ContextError, DEFAULT_BASE_IMAGE, check_bootstrap_bin};
use pgha_image::error::Diagnostic;
use std::path::Path;
use std::process::Command;

const BOOTSTRAP: &str = env!("CARGO_BIN_EXE_pgha-bootstrap");

fn spilo() -> BaseImage {
    BaseImage::resolve(DEFAULT_BASE_IMAGE, &BaseOverrides::default(), None).unwrap()
}

#[test]
fn the_real_bootstrap_binary_runs_on_spilo() {
    let needs = elf_needs(Path::new(BOOTSTRAP)).unwrap();
    assert!(needs.dynamic);
    let max = needs
        .max_glibc
        .clone()
        .expect("a glibc binary needs GLIBC_ versions");
    assert!(
        needs.glibc_versions.iter().any(|v| v == "2.2.5" || v == "2.17"),
        "{needs:?}"
    );
    assert!(
        needs.runs_on_glibc("2.35"),
        "pgha-bootstrap needs glibc {max}: it would not run on Spilo"
    );
    assert_eq!(
        needs.platform_arch(),
        Some(if cfg!(target_arch = "x86_64") {
            "amd64"
        } else {
            "arm64"
        })
    );
    let checked = check_bootstrap_bin(Path::new(BOOTSTRAP), &spilo()).unwrap();
    assert_eq!(checked, needs);
    // And the check agrees with binutils' view of the same file.
    let readelf = require_program("readelf", "binutils", &[]);
    let out = Command::new(readelf).args(["-V", BOOTSTRAP]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut theirs: Vec<&str> = text
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    theirs.sort_by(|a, b| pgha_image::catalog::compare_versions(a, b));
    theirs.dedup();
    assert_eq!(theirs, needs.glibc_versions);
}

#[test]
fn a_binary_needing_a_newer_glibc_is_refused_with_a_hint() {
    let cc = require_program("gcc", "gcc", &[]);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("new.c");
    // arc4random appeared in glibc 2.36 (this machine's): the binary needs GLIBC_2.36.
    std::fs::write(
        &src,
        "#include <stdlib.h>\nint main(void) { return (int)(arc4random() & 1); }\n",
    )
    .unwrap();
    let bin = dir.path().join("new");
    let o = Command::new(cc).arg(&src).arg("-o").arg(&bin).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let needs = elf_needs(&bin).unwrap();
    assert_eq!(needs.max_glibc.as_deref(), Some("2.36"), "{needs:?}");
    let e = check_bootstrap_bin(&bin, &spilo()).unwrap_err();
    match &e {
        ContextError::GlibcTooNew { needed, have, .. } => {
            assert_eq!((needed.as_str(), have.as_str()), ("2.36", "2.35"))
        }
        other => panic!("{other}"),
    }
    assert_eq!(e.exit_code(), pgha_image::ExitCode::Prerequisite);
    let hint = e.hint().unwrap();
    assert!(hint.contains("glibc ≤ 2.35") && hint.contains("musl"), "{hint}");

    // A base told to have glibc 2.36 takes it.
    let newer = BaseImage::resolve(
        "localhost/other:1",
        &BaseOverrides {
            glibc: Some("2.36".into()),
            ..Default::default()
        },
        None,
    )
    .unwrap();
    check_bootstrap_bin(&bin, &newer).unwrap();

    // Through the CLI: refused before anything is written.
    let out = dir.path().join("out");
    let o = assert_cmd::Command::cargo_bin("pgha-image")
        .unwrap()
        .args(["generate", "--no-probe", "--extensions", "pg_cron", "--out"])
        .arg(&out)
        .arg("--bootstrap-bin")
        .arg(&bin)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs glibc 2.36"));
    assert!(!out.exists());
}

#[test]
fn not_an_executable_or_missing() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("script");
    std::fs::write(&f, "#!/bin/sh\necho hi\n").unwrap();
    let e = check_bootstrap_bin(&f, &spilo()).unwrap_err();
    assert!(matches!(e, ContextError::BootstrapUnreadable { .. }), "{e}");
    let e = check_bootstrap_bin(&dir.path().join("absent"), &spilo()).unwrap_err();
    assert!(matches!(e, ContextError::BootstrapMissing { .. }), "{e}");
    assert!(e.hint().unwrap().contains("--bootstrap-bin"));
}

#[test]
fn build_refuses_a_platform_the_binary_is_not_for() {
    let needs = elf_needs(Path::new(BOOTSTRAP)).unwrap();
    let other = if needs.platform_arch() == Some("amd64") {
        "linux/arm64"
    } else {
        "linux/amd64"
    };
    let own = format!("linux/{}", needs.platform_arch().unwrap());
    for platform in [other.to_string(), format!("{own},{other}")] {
        let dir = tempfile::tempdir().unwrap();
        let o = assert_cmd::Command::cargo_bin("pgha-image")
            .unwrap()
            .args([
                "build",
                "--tag",
                "localhost/never:1",
                "--extensions",
                "pg_cron",
                "--platform",
                &platform,
            ])
            .args(["--bootstrap-bin", BOOTSTRAP, "--out"])
            .arg(dir.path().join("out"))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("does not match the pgha-bootstrap binary"), "{err}");
        assert!(
            !dir.path().join("out").exists(),
            "nothing is generated before the check"
        );
    }
}
