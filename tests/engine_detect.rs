//! Engine detection: absent or unreachable engines are clear errors with exit code 4.

mod common;

use assert_cmd::Command;
use common::images;
use pgha_image::engine::{Engine, EngineChoice, EngineError, EngineKind};
use pgha_image::error::Diagnostic;

#[test]
fn docker_with_an_unreachable_docker_host_is_a_clear_prerequisite_error() {
    images::docker();
    let dir = tempfile::tempdir().unwrap();
    let host = format!("unix://{}/nothing-here.sock", dir.path().display());
    let err = Engine::detect_with_env(EngineChoice::Docker, &[("DOCKER_HOST", &host)]).unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::Unreachable {
                kind: EngineKind::Docker,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.exit_code() as u8, 4);
    let hint = err.hint().unwrap();
    assert!(
        hint.contains("DOCKER_HOST") && hint.contains("--engine podman"),
        "{hint}"
    );

    // The same through the binary.
    let out = Command::cargo_bin("pgha-image")
        .unwrap()
        .args(["export", "--tag", "localhost/x:1", "--engine", "docker"])
        .env("DOCKER_HOST", &host)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not answer"), "{stderr}");
    assert!(
        stderr.contains("hint:") && stderr.contains("DOCKER_HOST"),
        "{stderr}"
    );
}

#[test]
fn no_engine_on_path_says_what_to_install() {
    let empty = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("pgha-image")
        .unwrap()
        .args(["load", "/nonexistent.tar.zst", "--engine", "auto"])
        .env("PATH", empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no working container engine"), "{stderr}");
    assert!(
        stderr.contains("`docker` is not on PATH") && stderr.contains("`podman` is not on PATH"),
        "{stderr}"
    );
    assert!(stderr.contains("apt-get install podman"), "{stderr}");

    let out = Command::cargo_bin("pgha-image")
        .unwrap()
        .args(["load", "/nonexistent.tar.zst", "--engine", "podman"])
        .env("PATH", empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
}

#[test]
#[ignore = "slow tier: needs root and Podman"]
fn auto_falls_back_to_podman_and_follows_docker_host() {
    images::podman();
    images::docker();
    // No daemon behind the default socket here: auto must pick Podman.
    let dir = tempfile::tempdir().unwrap();
    let host = format!("unix://{}/nothing-here.sock", dir.path().display());
    let e = Engine::detect_with_env(EngineChoice::Auto, &[("DOCKER_HOST", &host)]).unwrap();
    assert_eq!(e.kind(), EngineKind::Podman);
    // With Podman's Docker API behind DOCKER_HOST, a Docker that answers wins.
    let api = images::docker_via_podman();
    let e = Engine::detect_with_env(EngineChoice::Auto, &[("DOCKER_HOST", &api.docker_host())]).unwrap();
    assert_eq!(e.kind(), EngineKind::Docker);
    let base = images::debian_base();
    assert_eq!(
        e.image_id(&base).unwrap(),
        format!("sha256:{}", images::image_id(&base))
    );
}

#[test]
#[ignore = "slow tier: needs root and Podman"]
fn missing_image_is_a_usage_error_naming_it() {
    images::podman();
    let e = Engine::detect(EngineChoice::Podman).unwrap();
    assert!(!e.exists("localhost/pgha-test/does-not-exist:0").unwrap());
    let err = e.image_id("localhost/pgha-test/does-not-exist:0").unwrap_err();
    assert!(matches!(err, EngineError::ImageNotFound { .. }), "{err}");
    assert_eq!(err.exit_code() as u8, 2);
}
