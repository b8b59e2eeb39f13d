//! The one way tests run the `pgha-image` binary: [`pgha`] gives a command
//! with plain progress lines (nothing depends on a terminal).

use assert_cmd::Command;
use std::time::Duration;

/// `pgha-image --progress plain`, ready for the test's arguments.
pub fn pgha() -> Command {
    let mut c = Command::cargo_bin("pgha-image").expect("the pgha-image binary is built with the tests");
    c.args(["--progress", "plain"]);
    c
}

/// `pgha-image ARGS`, which must succeed within two minutes (its stderr in the panic).
pub fn pgha_ok(args: &[&str]) {
    let o = pgha()
        .args(args)
        .timeout(Duration::from_secs(120))
        .output()
        .expect("run pgha-image");
    assert!(
        o.status.success(),
        "pgha-image {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
