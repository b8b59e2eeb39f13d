//! Running a base image once, and making sure it is there: what the base
//! probe ([`crate::context::probe`]) needs from the engine.
//!
//! The probe runs as `run --rm -i --network none --entrypoint /bin/sh IMAGE -s`
//! with the script on stdin: no network (a probe reads files, it never
//! fetches), no container left behind, and nothing in the image's CMD or
//! ENTRYPOINT (Spilo's `/launch.sh init` would start Patroni) runs.

use super::{Engine, EngineError, collect_in_thread, last_lines};
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// How long a pull may take before it is given up (a registry that does not
/// answer must not hold the build for minutes before anything is fetched).
const PULL_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the probe may run: it reads a few files.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

impl Engine {
    /// Make sure `reference` is in the image store: pull it when it is not.
    /// Returns whether it was pulled. A failed pull is
    /// [`EngineError::BaseUnavailable`] with the engine's own words.
    pub fn ensure_image(&self, reference: &str) -> Result<bool, EngineError> {
        if self.exists(reference)? {
            return Ok(false);
        }
        let mut cmd = self.command();
        cmd.args(["pull", "-q", reference]);
        let out = super::run_with_timeout(cmd, PULL_TIMEOUT).map_err(|e| self.spawn_error(e))?;
        match out {
            Some(o) if o.status.success() => Ok(true),
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
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(e))?;
        let stdout = collect_in_thread(child.stdout.take().expect("piped"));
        let stderr = collect_in_thread(child.stderr.take().expect("piped"));
        let mut stdin = child.stdin.take().expect("piped");
        // A container that exits early closes its stdin: the status says why.
        let _ = stdin.write_all(script.as_bytes());
        drop(stdin);
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().map_err(|e| self.spawn_error(e))? {
                break s;
            }
            if start.elapsed() > RUN_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                return Err(EngineError::Command {
                    command: format!("{} {what}", self.kind),
                    status: format!("did not finish within {}s", RUN_TIMEOUT.as_secs()),
                    stderr: String::new(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = std::process::Output {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        };
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(self.command_failed(&what, &out))
        }
    }
}
