//! Engine commands as calls, for the parts of the crate that run containers
//! (verify, manifests, ship): a command with its output, a command that must
//! succeed, a file copied out of a container. Every failure comes back as
//! one [`EngineError`] mapping: the program could not be started
//! ([`EngineError::Spawn`]), or it failed ([`EngineError::Command`], with the
//! end of its stderr); "no such file" from `cp` is an answer (`None`), not an
//! error. The process itself ([`Engine::command`]) stays inside this module.

use super::{Engine, EngineError};
use std::ffi::OsStr;
use std::io::Write;
use std::process::{Child, Command, Output, Stdio};

impl Engine {
    /// `ENGINE ARGS` with nothing on stdin; its output, whatever its status
    /// (for callers that judge the status themselves, e.g. `exec` of a check).
    pub fn run_raw<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<Output, EngineError> {
        self.command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| self.spawn_error(e))
    }

    /// [`Engine::run_raw`] with `input` on the command's stdin (`exec -i`).
    pub fn run_raw_with_input<S: AsRef<OsStr>>(
        &self,
        args: &[S],
        input: &[u8],
    ) -> Result<Output, EngineError> {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(e))?;
        let mut stdin = child.stdin.take().expect("piped");
        // An input larger than the pipe is written while the output is read.
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().map_err(|e| self.spawn_error(e))?;
        let _ = writer.join();
        Ok(out)
    }

    /// `ENGINE ARGS` started with stdout and stderr piped (stdin too when
    /// `stdin`), for a caller that bounds how much it reads and how long it
    /// waits (verify: what runs in an image controls its output).
    pub fn spawn_piped<S: AsRef<OsStr>>(&self, args: &[S], stdin: bool) -> Result<Child, EngineError> {
        self.command()
            .args(args)
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(e))
    }

    /// `ENGINE ARGS`, which must succeed: its stdout, or
    /// [`EngineError::Command`] naming the command and the end of its stderr.
    pub fn run_ok<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<String, EngineError> {
        let out = self.run_raw(args)?;
        if !out.status.success() {
            let shown: Vec<String> = args
                .iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned())
                .collect();
            return Err(self.command_failed(&shown.join(" "), &out));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `ENGINE cp CONTAINER:PATH -`: the file as the engine's tar stream, or
    /// `None` when the container has no such file.
    pub fn copy_out(&self, container: &str, path: &str) -> Result<Option<Vec<u8>>, EngineError> {
        let from = format!("{container}:{path}");
        let out = self.run_raw(&["cp", from.as_str(), "-"])?;
        if out.status.success() {
            return Ok(Some(out.stdout));
        }
        let stderr = String::from_utf8_lossy(&out.stderr).to_ascii_lowercase();
        if stderr.contains("no such file")
            || stderr.contains("could not find")
            || stderr.contains("not found")
        {
            return Ok(None);
        }
        Err(self.command_failed(&format!("cp {from} -"), &out))
    }

    /// Give another program's command the engine's environment (a script
    /// that runs the engine itself, e.g. verify's watcher).
    pub fn env_into(&self, cmd: &mut Command) {
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
    }
}
