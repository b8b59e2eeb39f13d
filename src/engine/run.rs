//! Running a base image once, and making sure it is there: what the base
//! probe ([`crate::context::probe`]) needs from the engine.
//!
//! The probe runs as `run --rm -i --network none --entrypoint /bin/sh IMAGE -s`
//! with the script on stdin: no network (a probe reads files, it never
//! fetches), no container left behind, and nothing in the image's CMD or
//! ENTRYPOINT (Spilo's `/launch.sh init` would start Patroni) runs.

use super::{Engine, EngineError, last_lines};
use std::time::Duration;

/// How long a pull may take before it is given up (a registry that does not
/// answer must not hold the build for minutes before anything is fetched).
const PULL_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the probe may run: it reads a few files.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

impl Engine {
    /// Make sure `reference` is in the image store (pull it when it is
    /// not) and return its id. A failed pull is
    /// [`EngineError::BaseUnavailable`] with the engine's own words.
    pub fn ensure_image(&self, reference: &str) -> Result<String, EngineError> {
        match self.image_id(reference) {
            Err(EngineError::ImageNotFound { .. }) => {}
            other => return other,
        }
        let mut cmd = self.command();
        cmd.args(["pull", "-q", reference]);
        let out = super::run_with_timeout(cmd, PULL_TIMEOUT).map_err(|e| self.spawn_error(e))?;
        match out {
            Some(o) if o.status.success() => self.image_id(reference),
            Some(o) => Err(EngineError::BaseUnavailable {
                kind: self.kind,
                reference: reference.to_string(),
                words: last_lines(&o.stderr, 2),
            }),
            None => Err(EngineError::BaseUnavailable {
                kind: self.kind,
                reference: reference.to_string(),
                words: format!("the pull did not finish within {}s", PULL_TIMEOUT.as_secs()),
            }),
        }
    }

    /// Run `script` with `/bin/sh -s` in a throw-away container of `image`,
    /// without network, and return what it printed on stdout.
    pub fn run_script(&self, image: &str, script: &str) -> Result<String, EngineError> {
        let what = format!("run --rm --network none {image} (the base probe)");
        let mut cmd = self.command();
        cmd.args([
            "run",
            "--rm",
            "-i",
            "--network",
            "none",
            "--user",
            "0",
            "--entrypoint",
            "/bin/sh",
            image,
            "-s",
        ]);
        let out = super::run_with_input(cmd, Some(script.as_bytes()), RUN_TIMEOUT)
            .map_err(|e| self.spawn_error(e))?
            .ok_or_else(|| EngineError::Command {
                command: format!("{} {what}", self.kind),
                status: format!("did not finish within {}s", RUN_TIMEOUT.as_secs()),
                stderr: String::new(),
            })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(self.command_failed(&what, &out))
        }
    }
}
