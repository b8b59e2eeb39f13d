//! Engine::build with the real engines: Podman directly, and the Docker CLI
//! (context streamed as a tar on stdin) through Podman's Docker API.

mod common;

use common::images;
use pgha_image::engine::{BuildRequest, Engine, EngineChoice, EngineError, EngineKind};
use std::collections::BTreeMap;
use std::path::Path;

fn context(dir: &Path, body: &str) {
    std::fs::write(dir.join("Dockerfile"), body).unwrap();
    std::fs::create_dir_all(dir.join("files/sub")).unwrap();
    std::fs::write(dir.join("files/sub/hello.txt"), "hello from the context\n").unwrap();
}

/// A temporary directory whose `ctx` is a context with this Dockerfile.
fn context_dir(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("ctx")).unwrap();
    context(&dir.path().join("ctx"), dockerfile);
    dir
}

fn failing_dockerfile(base: &str, marker: &str) -> String {
    format!(
        "FROM {base} AS ext-ok\nRUN echo ok-{marker} > /ok\n\
         FROM {base} AS ext-foo\nRUN echo building foo {marker}; echo 'foo: compile error' >&2; false\n\
         FROM {base}\nCOPY --from=ext-ok /ok /ok\nCOPY --from=ext-foo /etc/hostname /foo\n"
    )
}

fn request(dir: &Path, tag: &str) -> BuildRequest {
    BuildRequest {
        context_dir: dir.join("ctx"),
        tag: tag.to_string(),
        platform: None,
        build_args: BTreeMap::from([("GREETING".to_string(), "hi".to_string())]),
        labels: BTreeMap::from([
            (
                "io.pgha.base-image".to_string(),
                "localhost/pgha-test/debian:bookworm".to_string(),
            ),
            ("io.pgha.extensions".to_string(), r#"{"foo":"1.0"}"#.to_string()),
        ]),
        log_path: dir.join("logs/build.log"),
        no_cache: false,
        push: false,
        jobs: None,
        network: None,
    }
}

fn assert_names_failed_stage(engine: &Engine, tag: &str) {
    let base = images::debian_base();
    let marker = format!("{}-{}", engine.kind(), std::process::id());
    let dir = context_dir(&failing_dockerfile(&base, &marker));
    let req = request(dir.path(), tag);
    let mut lines = Vec::new();
    let err = engine
        .build(&req, &mut |l| lines.push(l.to_string()))
        .unwrap_err();
    let EngineError::BuildFailed {
        stage,
        tail,
        log_path,
        ..
    } = &err
    else {
        panic!("expected BuildFailed, got {err}");
    };
    assert_eq!(stage.as_deref(), Some("ext-foo"), "lines:\n{}", lines.join("\n"));
    assert_eq!(err.failed_extension(), Some("foo"));
    assert!(!tail.is_empty() && tail.len() <= 30, "{tail:?}");
    assert!(tail.iter().any(|l| l.contains("foo: compile error")), "{tail:?}");
    assert_eq!(log_path, &req.log_path);
    let log = std::fs::read_to_string(log_path).unwrap();
    assert!(log.contains(&format!("building foo {marker}")), "{log}");
    assert!(log.lines().count() >= lines.len(), "the log has every line");
    let msg = err.to_string();
    assert!(
        msg.contains("extension `foo`") && msg.contains(&log_path.display().to_string()),
        "{msg}"
    );
    assert!(!images::image_exists(tag));
}

fn assert_builds(engine: &Engine, tag: &str) {
    let base = images::debian_base();
    let dir = context_dir(&format!(
        "FROM {base}\nARG GREETING\nCOPY files/ /opt/files/\n\
             RUN echo \"$GREETING {} {}\" > /opt/greeting && cat /opt/files/sub/hello.txt\n",
        engine.kind(),
        std::process::id()
    ));
    let req = request(dir.path(), tag);
    let _cleanup = images::TestImage {
        reference: tag.to_string(),
    };
    let mut lines = Vec::new();
    let built = engine.build(&req, &mut |l| lines.push(l.to_string())).unwrap();
    assert!(
        built.image_id.starts_with("sha256:") && built.image_id.len() == 71,
        "{built:?}"
    );
    assert_eq!(engine.image_id(tag).unwrap(), built.image_id);
    assert!(
        lines.iter().any(|l| l.contains("hello from the context")),
        "{lines:?}"
    );
    let labels = engine.labels(tag).unwrap();
    assert_eq!(
        labels.get("io.pgha.extensions").map(String::as_str),
        Some(r#"{"foo":"1.0"}"#)
    );
    let out = images::run(images::podman_cmd().args(["run", "--rm", tag, "cat", "/opt/greeting"]));
    assert_eq!(out.trim(), format!("hi {} {}", engine.kind(), std::process::id()));
    assert!(
        std::fs::read_to_string(&built.log_path)
            .unwrap()
            .contains("hello from the context")
    );
}

#[test]
#[ignore = "slow tier: needs root and Podman"]
fn podman_build_failure_names_the_stage() {
    let _engine = images::engine_lock();
    images::podman();
    let e = Engine::detect(EngineChoice::Podman).unwrap();
    assert_names_failed_stage(
        &e,
        &format!("localhost/pgha-test/fail-podman:{}", std::process::id()),
    );
}

#[test]
#[ignore = "slow tier: needs root and Podman"]
fn podman_build_passes_args_labels_and_context() {
    let _engine = images::engine_lock();
    images::podman();
    let e = Engine::detect(EngineChoice::Podman).unwrap();
    assert_builds(
        &e,
        &format!("localhost/pgha-test/build-podman:{}", std::process::id()),
    );
}

#[test]
#[ignore = "slow tier: needs root and Podman"]
fn docker_cli_build_through_podman_api() {
    let _engine = images::engine_lock();
    let api = images::docker_via_podman();
    let e = Engine::detect_with_env(EngineChoice::Docker, &[("DOCKER_HOST", &api.docker_host())]).unwrap();
    assert_eq!(e.kind(), EngineKind::Docker);
    assert_builds(
        &e,
        &format!("localhost/pgha-test/build-docker:{}", std::process::id()),
    );
    assert_names_failed_stage(
        &e,
        &format!("localhost/pgha-test/fail-docker:{}", std::process::id()),
    );
}

/// `network` reaches Podman's build: with `none` a RUN step sees only `lo`,
/// with the default it has the bridge's interface too.
#[test]
#[ignore = "slow tier: needs root and Podman"]
fn podman_build_runs_steps_in_the_requested_network() {
    let _engine = images::engine_lock();
    images::podman();
    let e = Engine::detect(EngineChoice::Podman).unwrap();
    let base = images::debian_base();
    let dir = context_dir(&format!(
        "FROM {base}\nRUN echo {} >/dev/null; echo \"interfaces: $(ls /sys/class/net | tr '\\n' ' ')\"\n",
        std::process::id()
    ));
    for (network, want_only_lo) in [(Some("none"), true), (None, false)] {
        let tag = format!("localhost/pgha-test/network-podman:{}", std::process::id());
        let _cleanup = images::TestImage {
            reference: tag.clone(),
        };
        let mut req = request(dir.path(), &tag);
        req.no_cache = true;
        req.network = network.map(str::to_string);
        let mut lines = Vec::new();
        e.build(&req, &mut |l| lines.push(l.to_string())).unwrap();
        let ifs = lines
            .iter()
            .find_map(|l| l.strip_prefix("interfaces: "))
            .unwrap_or_else(|| panic!("{lines:?}"))
            .trim()
            .to_string();
        assert_eq!(ifs == "lo", want_only_lo, "{network:?}: {ifs}");
    }
}
