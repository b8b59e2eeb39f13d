//! The one way tests run the `pgha-image` binary: [`pgha`] gives a command
//! with plain progress lines (nothing depends on a terminal).

use assert_cmd::Command;

/// `pgha-image --progress plain`, ready for the test's arguments.
pub fn pgha() -> Command {
    let mut c = Command::cargo_bin("pgha-image").expect("the pgha-image binary is built with the tests");
    c.args(["--progress", "plain"]);
    c
}
