//! Everything a verify run creates under the engine, and its removal.
//!
//! Each container, network and volume gets the run's name as a prefix and
//! the label `io.pgha.verify.run=<run>`; removal goes by that label, so it
//! also finds what was being created when the run was interrupted.
//!
//! A watcher process (a small shell script in its own process group) holds
//! the read end of a pipe whose write end only this process has: when this
//! process dies without saying `done` (SIGKILL, a crash), the pipe closes and
//! the watcher removes everything with the label, repeating for a while in
//! case an engine command was still creating something.
//!
//! The run's files (its secrets, the engine's scratch space for the layer
//! scan, half a gigabyte while it runs) live in one private directory,
//! `$TMPDIR/<run>-XXXXXX`, removed at the end of the run, on a signal, and
//! by the watcher when this process is killed.
//!
//! Creation and removal take turns through one lock: once a run is aborted
//! (Ctrl-C, SIGTERM) no further create command starts, and the removal
//! waits for one already in flight to finish, so nothing is created after
//! the sweep. The sweep runs on success, failure and panic (the guard's
//! Drop) and on a signal ([`Resources::abort`]); `--keep` skips it and
//! prints how to do it by hand instead.

use super::error::VerifyError;
use crate::engine::Engine;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// The most an engine command of a verify run may print on stdout or on
/// stderr (a member's whole log fits many times over).
pub const OUTPUT_MAX_BYTES: u64 = 64 * 1024 * 1024;

pub const RUN_LABEL: &str = "io.pgha.verify.run";

pub struct Resources {
    engine: Engine,
    run: String,
    /// The run's private directory (0700); see the module docs.
    dir: tempfile::TempDir,
    keep: bool,
    state: Mutex<State>,
    watcher: Mutex<Option<Child>>,
}

/// The watcher: `$1` the engine program, `$2` the label filter, `$3` how
/// long to keep sweeping, `$4` the run's directory. It ends at once when it
/// reads `done`; at end of file (its parent died) it removes what carries the
/// label, until two sweeps in a row found nothing and [`WATCH_SECONDS`] have
/// passed (an engine command of the dead process may still be creating a
/// container), then the run's directory.
pub(crate) const WATCHER: &str = include_str!("watcher.sh");
/// How long the watcher keeps removing after its parent died.
const WATCH_SECONDS: u32 = 20;

#[derive(Default)]
struct State {
    aborted: bool,
    swept: bool,
}

impl Resources {
    /// The run's resources, with its private directory made (0700).
    pub fn new(engine: Engine, run: String, keep: bool) -> Result<Self, VerifyError> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{run}-"))
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(|source| VerifyError::Io {
                what: "creating the run's private directory (in $TMPDIR)".into(),
                source,
            })?;
        Ok(Self {
            engine,
            run,
            dir,
            keep,
            state: Mutex::new(State::default()),
            watcher: Mutex::new(None),
        })
    }

    /// The run's private directory: secrets and the engine's scratch space go in it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Remove the run's directory now, whoever still holds files in it
    /// (after a signal the worker may still be saving the image into it).
    /// The secrets directory is read-only by then: make it writable first.
    pub fn remove_dir(&self) {
        fn writable(p: &Path) {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700));
            if let Ok(entries) = std::fs::read_dir(p) {
                for e in entries.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        writable(&e.path());
                    }
                }
            }
        }
        writable(self.dir.path());
        let _ = std::fs::remove_dir_all(self.dir.path());
    }

    /// Start the watcher that removes the run's objects if this process
    /// dies without removing them itself (see the module docs).
    pub fn start_watcher(&self) -> Result<(), VerifyError> {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", WATCHER, "pgha-verify-watcher"])
            .arg(self.engine.program())
            .arg(format!("label={}", self.label_arg()))
            .arg(WATCH_SECONDS.to_string())
            .arg(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Not in the terminal's process group: Ctrl-C reaches only verify,
            // which removes everything itself and then releases the watcher.
            .process_group(0);
        self.engine.env_into(&mut cmd);
        let child = cmd.spawn().map_err(|source| VerifyError::Io {
            what: "starting the watcher that removes the run's objects should verify be killed".into(),
            source,
        })?;
        *self.watcher.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        Ok(())
    }

    /// Tell the watcher the run cleaned up (or kept) its objects itself.
    fn release_watcher(&self) {
        use std::io::Write;
        let mut w = self.watcher.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut child) = w.take() {
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(b"done\n");
            }
            let _ = child.wait();
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn run(&self) -> &str {
        &self.run
    }

    pub fn keep(&self) -> bool {
        self.keep
    }

    /// `<run>-<suffix>`: the name of one of the run's objects.
    pub fn name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.run)
    }

    pub fn label_arg(&self) -> String {
        format!("{RUN_LABEL}={}", self.run)
    }

    /// Run an engine command that creates something (`run`, `network
    /// create`, `volume create`); the caller adds `--label` [`Self::label_arg`].
    pub fn create(&self, args: &[String]) -> Result<Output, VerifyError> {
        let out = self.create_output(args)?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(VerifyError::Command {
                command: format!("{} {}", self.engine.kind(), args.join(" ")),
                detail: last_line(&out),
            })
        }
    }

    /// [`Self::create`] that returns the output whether the command succeeded or not.
    pub fn create_output(&self, args: &[String]) -> Result<Output, VerifyError> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.aborted {
            return Err(VerifyError::Interrupted {
                signal: "a signal".into(),
                cleanup: "not creating anything more".into(),
            });
        }
        self.output(args)
    }

    /// Run an engine command that creates nothing (exec, inspect, logs, stop, start).
    pub fn output(&self, args: &[String]) -> Result<Output, VerifyError> {
        let child = self.engine.spawn_piped(args, false)?;
        self.bounded(args, child, None)
    }

    /// What an engine command printed, at most [`OUTPUT_MAX_BYTES`] on each
    /// stream: what runs in the image controls it.
    fn bounded(
        &self,
        args: &[String],
        child: Child,
        time_limit: Option<Duration>,
    ) -> Result<Output, VerifyError> {
        use crate::fsutil::{BoundedReadError, output_bounded};
        output_bounded(child, OUTPUT_MAX_BYTES, time_limit).map_err(|e| match e {
            BoundedReadError::Io(source) => VerifyError::Io {
                what: format!("running {}", self.engine.program().display()),
                source,
            },
            BoundedReadError::TimedOut { seconds } => VerifyError::Command {
                command: format!("{} {}", self.engine.kind(), args.join(" ")),
                detail: format!("stopped: not finished after {seconds} s"),
            },
            other => VerifyError::Command {
                command: format!("{} {}", self.engine.kind(), args.join(" ")),
                detail: format!("its output is {other} (the image writes without end?)"),
            },
        })
    }

    /// Like [`Self::output`], with `input` on the command's stdin (`exec -i`).
    /// It is stopped after `time_limit`.
    pub fn output_with_input(
        &self,
        args: &[String],
        input: &[u8],
        time_limit: Duration,
    ) -> Result<Output, VerifyError> {
        use std::io::Write;
        let mut child = self.engine.spawn_piped(args, true)?;
        let mut stdin = child.stdin.take().expect("piped");
        // A script larger than the pipe is written while the output is read.
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = self.bounded(args, child, Some(time_limit));
        let _ = writer.join();
        out
    }

    /// Stop creating; remove everything unless --keep. Called on a signal.
    pub fn abort(&self) -> String {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.aborted = true;
        if self.keep {
            self.release_watcher();
            return format!(
                "kept for a post-mortem; remove with: {}",
                self.removal_commands().join("; ")
            );
        }
        let left = self.sweep_locked();
        state.swept = true;
        self.release_watcher();
        match left.is_empty() {
            true => format!(
                "removed the run's containers, networks and volumes ({}*)",
                self.run
            ),
            false => format!("could not remove: {}", left.join(", ")),
        }
    }

    /// Remove everything (unless --keep, or already done). Returns what could not be removed.
    pub fn sweep(&self) -> Vec<String> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if self.keep || state.swept {
            self.release_watcher();
            return Vec::new();
        }
        state.swept = true;
        let left = self.sweep_locked();
        self.release_watcher();
        left
    }

    fn list(&self, what: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = what.iter().map(|s| s.to_string()).collect();
        args.push("--filter".into());
        args.push(format!("label={}", self.label_arg()));
        args.push("--format".into());
        args.push("{{.Name}}".into());
        if what[0] == "ps" {
            args.pop();
            args.push("{{.Names}}".into());
        }
        match self.output(&args) {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect(),
            _ => Vec::new(),
        }
    }

    fn containers(&self) -> Vec<String> {
        self.list(&["ps", "-a"])
    }
    fn networks(&self) -> Vec<String> {
        self.list(&["network", "ls"])
    }
    fn volumes(&self) -> Vec<String> {
        self.list(&["volume", "ls"])
    }

    fn sweep_locked(&self) -> Vec<String> {
        let mut left = Vec::new();
        let rm = |args: Vec<String>, names: Vec<String>, left: &mut Vec<String>| {
            if names.is_empty() {
                return;
            }
            let mut a = args;
            a.extend(names.iter().cloned());
            match self.output(&a) {
                Ok(o) if o.status.success() => {}
                _ => left.extend(names),
            }
        };
        rm(
            vec!["rm".into(), "-f".into(), "-v".into()],
            self.containers(),
            &mut left,
        );
        rm(vec!["network".into(), "rm".into()], self.networks(), &mut left);
        rm(
            vec!["volume".into(), "rm".into(), "-f".into()],
            self.volumes(),
            &mut left,
        );
        left
    }

    /// Commands that remove what the run left (for --keep).
    pub fn removal_commands(&self) -> Vec<String> {
        let e = self.engine.kind().program_name();
        let mut out = Vec::new();
        let c = self.containers();
        if !c.is_empty() {
            out.push(format!("{e} rm -f -v {}", c.join(" ")));
        }
        let n = self.networks();
        if !n.is_empty() {
            out.push(format!("{e} network rm {}", n.join(" ")));
        }
        let v = self.volumes();
        if !v.is_empty() {
            out.push(format!("{e} volume rm {}", v.join(" ")));
        }
        out
    }
}

/// Sweeps when dropped: the normal end of a run, a failure, a panic.
pub struct SweepGuard<'a>(pub &'a Resources);

impl Drop for SweepGuard<'_> {
    fn drop(&mut self) {
        self.0.sweep();
    }
}

pub fn last_line(out: &Output) -> String {
    let s = String::from_utf8_lossy(&out.stderr);
    let l = s
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("")
        .to_string();
    if l.is_empty() { out.status.to_string() } else { l }
}

/// stdout + stderr of a command, as text.
pub fn text(out: &Output) -> String {
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    s
}
