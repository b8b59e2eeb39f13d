//! An image's labels are its own build's, even when the engine reuses a
//! stage cached by an earlier build of another extension set on the same
//! base. Podman 4.3 writes `podman build --label` values into the config of
//! every stage it commits; when `pgha-image build` passed the image's
//! labels as `--label`, the run-time stage (`pgha-runtime`: the same
//! packages for both sets) came from the cache with the first set's labels,
//! and the second image carried `io.pgha.extension.*` labels of extensions
//! it does not have (verify then failed its label check). The labels now
//! come from the Dockerfile's LABEL; only the build's inputs go as
//! `--label`, a key every build sets.

mod common;

use common::images;
use common::sources;
use std::process::Command;

const BOOTSTRAP: &str = env!("CARGO_BIN_EXE_pgha-bootstrap");

fn build(base: &str, tag: &str, extensions: &str, out: &std::path::Path) {
    let o = Command::new(env!("CARGO_BIN_EXE_pgha-image"))
        .args(["--progress", "plain", "build", "--engine", "podman", "--tag", tag])
        .args(["--base-image", base, "--extensions", extensions])
        .args(["--bootstrap-bin", BOOTSTRAP])
        .arg("--cache-dir")
        .arg(out.parent().unwrap().join("cache"))
        .arg("--out")
        .arg(out)
        .args(sources::fetch_args())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "build of {extensions}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn extension_labels(image: &str) -> Vec<String> {
    let text = images::run(images::podman_cmd().args([
        "image",
        "inspect",
        "--format",
        "{{range $k, $v := .Config.Labels}}{{$k}}\n{{end}}",
        image,
    ]));
    text.lines()
        .filter(|l| l.starts_with("io.pgha.extension."))
        .map(str::to_string)
        .collect()
}

#[test]
#[ignore = "slow tier: needs root and Podman"]
fn labels_are_the_builds_own_after_a_build_of_more_extensions() {
    let standin = images::spilo_standin();
    let _engine = images::engine_lock();
    let dir = tempfile::tempdir().unwrap();
    let pid = std::process::id();
    let tag = |name: &str| images::TestImage {
        reference: format!("localhost/pgha-test/{name}:{pid}"),
    };
    // A base of its own (the stand-in and one label): no stage cached by
    // an earlier run on this engine is reused.
    let base = tag("labels-base");
    std::fs::write(
        dir.path().join("Containerfile"),
        format!(
            "FROM {standin}\nLABEL io.pgha.test-nonce=\"{pid}-{:?}\"\n",
            std::time::SystemTime::now()
        ),
    )
    .unwrap();
    images::run(
        images::podman_cmd()
            .args(["build", "-q", "-t", &base.reference])
            .arg(dir.path()),
    );
    let (more, fewer) = (tag("labels-more"), tag("labels-fewer"));
    // Both need the same run-time package (libsodium23): one `pgha-runtime` stage.
    build(
        &base.reference,
        &more.reference,
        "pg_hashids,pgsodium",
        &dir.path().join("more"),
    );
    assert_eq!(
        extension_labels(&more.reference),
        ["io.pgha.extension.pg_hashids", "io.pgha.extension.pgsodium"]
    );
    build(
        &base.reference,
        &fewer.reference,
        "pgsodium",
        &dir.path().join("fewer"),
    );
    assert_eq!(
        extension_labels(&fewer.reference),
        ["io.pgha.extension.pgsodium"],
        "the second image carries the first one's labels through a cached stage"
    );
}
