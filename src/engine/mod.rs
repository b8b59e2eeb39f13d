//! Docker or Podman, through their command-line clients.
//!
//! Nothing here links against an engine API: every operation is one run of
//! `docker …` or `podman …` (std::process), so whatever the user's client is
//! configured for (DOCKER_HOST, contexts, rootless Podman, Podman's
//! Docker-compatible API service) is what we use.
//!
//! Build contexts: `docker build -` reads the context as a tar stream on
//! stdin, which is what we give it (the daemon may be remote). Podman 4 has
//! no stdin context (its `-` is only for `-f -`, a Containerfile), and it is
//! daemonless: it reads the context directory itself, in-process, so handing
//! it the directory *is* streaming it, without an extra copy.

mod build;
mod error;
mod exec;
mod podman_conf;
mod reference;
mod run;
pub mod stage;

pub use build::{BuildRequest, BuiltImage, check_network};
pub use error::EngineError;
pub use reference::check_reference;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// What the user asked for with `--engine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EngineChoice {
    /// A Docker that answers, else Podman.
    #[default]
    Auto,
    Docker,
    Podman,
}

impl fmt::Display for EngineChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = clap::ValueEnum::to_possible_value(self).expect("no skipped variants");
        f.write_str(v.get_name())
    }
}

impl FromStr for EngineChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        <Self as clap::ValueEnum>::from_str(s, true)
            .map_err(|_| format!("unknown engine {s:?}: use auto, docker or podman"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Docker,
    Podman,
}

impl EngineKind {
    pub fn program_name(self) -> &'static str {
        match self {
            Self::Docker => "docker",
            Self::Podman => "podman",
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.program_name())
    }
}

/// How long `docker version` / `podman version` may take to answer during detection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// A container engine: its client program and extra environment for it.
#[derive(Debug, Clone)]
pub struct Engine {
    kind: EngineKind,
    program: PathBuf,
    env: Vec<(OsString, OsString)>,
}

impl Engine {
    /// An engine at a known program path, not probed. Most callers want [`Engine::detect`].
    pub fn new(kind: EngineKind, program: impl Into<PathBuf>) -> Self {
        Self {
            kind,
            program: program.into(),
            env: Vec::new(),
        }
    }

    /// Extra environment for every command (e.g. DOCKER_HOST); the process's
    /// own environment passes through as well.
    pub fn with_env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Find the engine the user chose and check that it answers.
    pub fn detect(choice: EngineChoice) -> Result<Engine, EngineError> {
        Self::detect_with_env(choice, &[])
    }

    /// [`Engine::detect`] with extra environment for the engine commands.
    pub fn detect_with_env(choice: EngineChoice, env: &[(&str, &str)]) -> Result<Engine, EngineError> {
        let make = |kind: EngineKind| -> Result<Engine, EngineError> {
            let program = find_program(kind.program_name()).ok_or_else(|| EngineError::NotFound {
                tried: format!("`{}` is not on PATH", kind.program_name()),
            })?;
            let mut e = Engine::new(kind, program);
            for (k, v) in env {
                e = e.with_env(k, v);
            }
            e.probe()?;
            Ok(e)
        };
        match choice {
            EngineChoice::Docker => make(EngineKind::Docker),
            EngineChoice::Podman => make(EngineKind::Podman),
            EngineChoice::Auto => match make(EngineKind::Docker) {
                Ok(e) => Ok(e),
                Err(docker) => make(EngineKind::Podman).map_err(|podman| EngineError::NoneWorks {
                    docker: docker.to_string(),
                    podman: podman.to_string(),
                }),
            },
        }
    }

    pub fn kind(&self) -> EngineKind {
        self.kind
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    /// A command of this engine, with its extra environment. Private to
    /// the engine module: the rest of the crate uses the calls of `exec`.
    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Does the engine answer? Docker: the daemon must report its version.
    fn probe(&self) -> Result<(), EngineError> {
        let mut cmd = self.command();
        cmd.args(["version", "--format", "{{.Server.Version}}"]);
        if self.kind == EngineKind::Podman {
            // `podman version` has no server part when local; ask for the client.
            cmd = self.command();
            cmd.args(["version", "--format", "{{.Client.Version}}"]);
        }
        let out = run_with_timeout(cmd, PROBE_TIMEOUT).map_err(|e| EngineError::Spawn {
            program: self.program.display().to_string(),
            source: e,
        })?;
        let unreachable = |detail: String| EngineError::Unreachable {
            kind: self.kind,
            program: self.program.clone(),
            detail,
        };
        match out {
            None => Err(unreachable(format!(
                "`{} version` did not answer within {}s",
                self.kind,
                PROBE_TIMEOUT.as_secs()
            ))),
            Some(o) if o.status.success() && !String::from_utf8_lossy(&o.stdout).trim().is_empty() => Ok(()),
            Some(o) => Err(unreachable(
                first_lines(&o.stderr, 3).unwrap_or_else(|| o.status.to_string()),
            )),
        }
    }

    /// The image's id, as `sha256:<64 hex>` for both engines.
    pub fn image_id(&self, reference: &str) -> Result<String, EngineError> {
        let out = self.inspect(reference, "{{.Id}}")?;
        Ok(normalize_id(out.trim()))
    }

    /// The image's labels (empty when it has none).
    pub fn labels(&self, reference: &str) -> Result<BTreeMap<String, String>, EngineError> {
        let out = self.inspect(reference, "{{json .Config.Labels}}")?;
        let out = out.trim();
        if out.is_empty() || out == "null" {
            return Ok(BTreeMap::new());
        }
        serde_json::from_str::<Option<BTreeMap<String, String>>>(out)
            .map(Option::unwrap_or_default)
            .map_err(|_| EngineError::Unexpected {
                command: format!("{} image inspect {reference}", self.kind),
                output: out.chars().take(200).collect(),
            })
    }

    pub fn exists(&self, reference: &str) -> Result<bool, EngineError> {
        match self.inspect(reference, "{{.Id}}") {
            Ok(_) => Ok(true),
            Err(EngineError::ImageNotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn inspect(&self, reference: &str, format: &str) -> Result<String, EngineError> {
        let mut cmd = self.command();
        cmd.args(["image", "inspect", "--format", format, reference]);
        let out = self.output(cmd, &format!("image inspect {reference}"))?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lower = stderr.to_ascii_lowercase();
        if lower.contains("no such image")
            || lower.contains("image not known")
            || lower.contains("no such object")
        {
            return Err(EngineError::ImageNotFound {
                kind: self.kind,
                reference: reference.to_string(),
            });
        }
        Err(self.command_failed(&format!("image inspect {reference}"), &out))
    }

    /// `save` the image as a docker-archive tar, streamed: read it, then call
    /// [`SaveStream::finish`] to learn whether the engine succeeded.
    ///
    /// The engine's own temporary files go to a private directory in
    /// `$TMPDIR` ([`save_scratch`]), removed with the stream;
    /// [`Engine::save_into`] chooses it.
    pub fn save(&self, reference: &str) -> Result<SaveStream, EngineError> {
        let scratch = save_scratch(&std::env::temp_dir()).map_err(|e| EngineError::Io {
            what: "creating a temporary directory for the engine's save".into(),
            source: e,
        })?;
        self.save_into(reference, scratch)
    }

    /// [`Engine::save`] with the engine's temporary files in `scratch`, a
    /// directory the stream owns and removes (after stopping the engine)
    /// when it is finished or dropped. Podman 4 first writes the whole
    /// archive to its `image_copy_tmp_dir` (/var/tmp, whatever TMPDIR says)
    /// and leaves it there when killed; it is pointed at `scratch` through a
    /// private `containers.conf` (the user's settings merged, that one key
    /// changed) and TMPDIR.
    pub fn save_into(&self, reference: &str, scratch: tempfile::TempDir) -> Result<SaveStream, EngineError> {
        self.save_many_into(&[reference.to_string()], scratch)
    }

    /// [`Engine::save_into`] of several images into one archive (Podman:
    /// `--multi-image-archive`; Docker's `save` takes several by itself).
    pub fn save_many_into(
        &self,
        references: &[String],
        scratch: tempfile::TempDir,
    ) -> Result<SaveStream, EngineError> {
        // Fail early and clearly on a missing image.
        for reference in references {
            self.inspect(reference, "{{.Id}}")?;
        }
        let reference = references.join(" ");
        let mut cmd = self.command();
        let dir = scratch.path();
        cmd.env("TMPDIR", dir);
        if self.kind == EngineKind::Podman {
            let conf = podman_conf::private_conf(dir).map_err(|e| EngineError::Io {
                what: format!("writing a private containers.conf in {}", dir.display()),
                source: e,
            })?;
            cmd.env("CONTAINERS_CONF", conf);
        }
        cmd.arg("save");
        if self.kind == EngineKind::Podman {
            cmd.args(["--format", "docker-archive"]);
            if references.len() > 1 {
                cmd.arg("--multi-image-archive");
            }
        }
        cmd.args(references);
        let what = format!("{} save {reference}", self.kind);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(e))?;
        let stdout = child.stdout.take().expect("piped");
        let stderr = collect_in_thread(child.stderr.take().expect("piped"));
        Ok(SaveStream {
            child,
            stdout: Some(stdout),
            stderr: Some(stderr),
            what,
            _scratch: scratch,
        })
    }

    /// Load a docker-archive tar (uncompressed or as the engine accepts it)
    /// from `input`; returns the loaded reference (a tag, or the image id
    /// when the archive names none).
    pub fn load(&self, input: &mut dyn Read) -> Result<String, EngineError> {
        let mut cmd = self.command();
        cmd.arg("load");
        let what = format!("{} load", self.kind);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(e))?;
        let stdout = collect_in_thread(child.stdout.take().expect("piped"));
        let stderr = collect_in_thread(child.stderr.take().expect("piped"));
        let mut stdin = child.stdin.take().expect("piped");
        let copied = io::copy(input, &mut stdin).and_then(|_| stdin.flush());
        drop(stdin);
        let status = child.wait().map_err(|e| EngineError::Io {
            what: format!("waiting for `{what}`"),
            source: e,
        })?;
        let stdout = stdout.join().unwrap_or_default();
        let stderr = stderr.join().unwrap_or_default();
        if !status.success() {
            return Err(EngineError::Command {
                command: what,
                status: status.to_string(),
                stderr: last_lines(&stderr, 5),
            });
        }
        if let Err(e) = copied {
            return Err(EngineError::Io {
                what: format!("streaming the archive into `{what}`"),
                source: e,
            });
        }
        let text = String::from_utf8_lossy(&stdout);
        parse_loaded(&text).ok_or_else(|| EngineError::Unexpected {
            command: what,
            output: text.trim().chars().take(300).collect(),
        })
    }

    pub fn remove_image(&self, reference: &str) -> Result<(), EngineError> {
        let mut cmd = self.command();
        cmd.args(["image", "rm", reference]);
        let out = self.output(cmd, &format!("image rm {reference}"))?;
        if out.status.success() {
            return Ok(());
        }
        let lower = String::from_utf8_lossy(&out.stderr).to_ascii_lowercase();
        if lower.contains("no such image") || lower.contains("image not known") {
            return Err(EngineError::ImageNotFound {
                kind: self.kind,
                reference: reference.to_string(),
            });
        }
        Err(self.command_failed(&format!("image rm {reference}"), &out))
    }

    /// Push an image to its registry, writing the output to `on_line`.
    pub fn push(&self, reference: &str, on_line: &mut dyn FnMut(&str)) -> Result<(), EngineError> {
        let mut cmd = self.command();
        cmd.args(["push", reference]);
        let out = self.output(cmd, &format!("push {reference}"))?;
        for l in String::from_utf8_lossy(&out.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&out.stderr).lines())
        {
            on_line(l);
        }
        if out.status.success() {
            Ok(())
        } else {
            Err(self.command_failed(&format!("push {reference}"), &out))
        }
    }

    fn output(&self, mut cmd: Command, _what: &str) -> Result<std::process::Output, EngineError> {
        cmd.stdin(Stdio::null()).output().map_err(|e| self.spawn_error(e))
    }

    fn spawn_error(&self, e: io::Error) -> EngineError {
        EngineError::Spawn {
            program: self.program.display().to_string(),
            source: e,
        }
    }

    fn command_failed(&self, what: &str, out: &std::process::Output) -> EngineError {
        EngineError::Command {
            command: format!("{} {what}", self.kind),
            status: out.status.to_string(),
            stderr: last_lines(&out.stderr, 5),
        }
    }
}

/// The output of `save`, as it comes. Read it to the end, then call
/// [`SaveStream::finish`]: a save that fails half-way may still have written
/// bytes, and only the exit status tells.
pub struct SaveStream {
    child: Child,
    stdout: Option<ChildStdout>,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
    what: String,
    /// The engine's temporary files; removed after the engine has stopped
    /// (fields drop after [`Drop::drop`] has killed and reaped it).
    _scratch: tempfile::TempDir,
}

impl Read for SaveStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.stdout {
            Some(s) => s.read(buf),
            None => Ok(0),
        }
    }
}

impl SaveStream {
    /// Wait for the engine and check that the save succeeded.
    pub fn finish(mut self) -> Result<(), EngineError> {
        // Unread output would block the engine forever; closing makes it fail instead.
        self.stdout.take();
        let status = self.child.wait().map_err(|e| EngineError::Io {
            what: format!("waiting for `{}`", self.what),
            source: e,
        })?;
        let stderr = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        if status.success() {
            Ok(())
        } else {
            Err(EngineError::Command {
                command: self.what.clone(),
                status: status.to_string(),
                stderr: last_lines(&stderr, 5),
            })
        }
    }
}

impl Drop for SaveStream {
    fn drop(&mut self) {
        // Abandoned (an error on our side): don't leave the engine writing to nobody.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A private directory for the engine's save in `tmp`, named
/// `pgha-save-<pid>-XXXXXX`. A process killed mid-save (SIGKILL, or a
/// signal to a command without a handler) cannot remove its own, about the
/// image's size: the next save removes those whose process is gone.
pub fn save_scratch(tmp: &std::path::Path) -> io::Result<tempfile::TempDir> {
    crate::fsutil::remove_stale(tmp, "pgha-save-");
    tempfile::Builder::new()
        .prefix(&format!("pgha-save-{}-", std::process::id()))
        .tempdir_in(tmp)
}

/// `sha256:<hex>` whether the engine printed it with or without the prefix.
pub fn normalize_id(id: &str) -> String {
    let id = id.trim();
    if id.starts_with("sha256:") {
        id.to_string()
    } else {
        format!("sha256:{id}")
    }
}

/// The reference named by `docker load` / `podman load` output.
fn parse_loaded(text: &str) -> Option<String> {
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        for prefix in ["Loaded image ID:", "Loaded image(s):", "Loaded image:"] {
            if let Some(rest) = line.strip_prefix(prefix) {
                // Podman may list several, comma-separated; the first names the image.
                let first = rest.split(',').next().unwrap_or("").trim();
                if !first.is_empty() && found.is_none() {
                    found = Some(first.to_string());
                }
            }
        }
    }
    found
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn collect_in_thread<R: Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

/// Run a short command; `None` when it did not finish in time (it is killed).
fn run_with_timeout(cmd: Command, timeout: Duration) -> io::Result<Option<std::process::Output>> {
    run_with_input(cmd, None, timeout)
}

/// [`run_with_timeout`], writing `input` (when given) to the command's stdin.
fn run_with_input(
    mut cmd: Command,
    input: Option<&[u8]>,
    timeout: Duration,
) -> io::Result<Option<std::process::Output>> {
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let out = collect_in_thread(child.stdout.take().expect("piped"));
    let err = collect_in_thread(child.stderr.take().expect("piped"));
    if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
        // A command that exits early closes its stdin: its status says why.
        let _ = stdin.write_all(bytes);
    }
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(std::process::Output {
                status,
                stdout: out.join().unwrap_or_default(),
                stderr: err.join().unwrap_or_default(),
            }));
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn first_lines(bytes: &[u8], n: usize) -> Option<String> {
    let s = String::from_utf8_lossy(bytes);
    let v: Vec<&str> = s
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(n)
        .collect();
    (!v.is_empty()).then(|| v.join(" / "))
}

fn last_lines(bytes: &[u8], n: usize) -> String {
    let s = String::from_utf8_lossy(bytes);
    let v: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    v[v.len().saturating_sub(n)..].join(" / ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_save_scratch_left_by_a_dead_process_is_removed_by_the_next() {
        let tmp = tempfile::tempdir().unwrap();
        // A pid that cannot be running (above the kernel's pid_max limit).
        let dead = tmp.path().join("pgha-save-4194305-abc123");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join("1234"), b"half an image").unwrap();
        let mine = tmp.path().join(format!("pgha-save-{}-live", std::process::id()));
        std::fs::create_dir(&mine).unwrap();
        let other = tmp.path().join("pgha-save-notes");
        std::fs::create_dir(&other).unwrap();

        let scratch = super::save_scratch(tmp.path()).unwrap();
        assert!(!dead.exists(), "a dead process's scratch is removed");
        assert!(mine.exists() && other.exists(), "live and foreign ones stay");
        let name = scratch.path().file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(&format!("pgha-save-{}-", std::process::id())),
            "{name}"
        );
    }

    use super::*;

    #[test]
    fn choice_parses() {
        assert_eq!(EngineChoice::Podman.to_string(), "podman");
        assert_eq!("auto".parse::<EngineChoice>(), Ok(EngineChoice::Auto));
        assert_eq!("Docker".parse::<EngineChoice>(), Ok(EngineChoice::Docker));
        assert_eq!("podman".parse::<EngineChoice>(), Ok(EngineChoice::Podman));
        assert!("containerd".parse::<EngineChoice>().is_err());
    }

    #[test]
    fn loaded_output_of_both_engines() {
        assert_eq!(
            parse_loaded("Loaded image: localhost/x:1\n").as_deref(),
            Some("localhost/x:1")
        );
        assert_eq!(
            parse_loaded("Getting image source signatures\nLoaded image(s): localhost/a:1,localhost/b:2\n")
                .as_deref(),
            Some("localhost/a:1")
        );
        assert_eq!(
            parse_loaded("Loaded image ID: sha256:abcd\n").as_deref(),
            Some("sha256:abcd")
        );
        assert_eq!(parse_loaded("nothing\n"), None);
    }

    #[test]
    fn ids_are_normalized() {
        assert_eq!(normalize_id("abc\n"), "sha256:abc");
        assert_eq!(normalize_id("sha256:abc"), "sha256:abc");
    }
}
