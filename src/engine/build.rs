//! `build`: run the engine's image build, keep its full log in a file, pass
//! each line to the caller (for a spinner), and on failure say which stage.

use super::stage::StageTracker;
use super::{Engine, EngineError, EngineKind, normalize_id};
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::Stdio;

/// Lines of the log kept for the failure report.
pub const TAIL_LINES: usize = 30;

/// What to build. The context directory holds the `Dockerfile` at its root.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub context_dir: PathBuf,
    pub tag: String,
    pub platform: Option<String>,
    pub build_args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// Where the full engine log goes (created or truncated; parents are made).
    pub log_path: PathBuf,
    pub no_cache: bool,
    /// Push the tag after a successful build.
    pub push: bool,
    /// Stages built at the same time (Podman's `--jobs`; BuildKit builds
    /// independent stages in parallel by itself). None: one per CPU.
    pub jobs: Option<usize>,
    /// The network of the build's RUN steps (`--network MODE` to the
    /// engine's build), e.g. `host` where the engine's default bridge has no
    /// route or DNS. None: the engine's default. See [`check_network`].
    pub network: Option<String>,
}

/// A `--network` value both engines' builds take: a mode (`host`, `none`,
/// `bridge`, …), a network's name, or `container:NAME` / `ns:PATH`. Refused:
/// empty, starting with `-` (it would be read as a flag), whitespace or
/// other characters no network name or mode has.
pub fn check_network(mode: &str) -> Result<(), String> {
    if mode.is_empty() {
        return Err("it is empty".into());
    }
    if mode.starts_with('-') {
        return Err("it starts with '-'".into());
    }
    if let Some(c) = mode
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':' | '/' | '=' | ',')))
    {
        return Err(format!("it contains {c:?}"));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// `sha256:<hex>`.
    pub image_id: String,
    pub log_path: PathBuf,
}

impl Engine {
    /// Build the image. Docker gets the context as a tar on stdin
    /// (`docker build -`); Podman reads the directory itself.
    pub fn build(
        &self,
        req: &BuildRequest,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<BuiltImage, EngineError> {
        let io_err = |what: String| move |e: io::Error| EngineError::Io { what, source: e };
        if !req.context_dir.join("Dockerfile").is_file() {
            return Err(EngineError::NoContext {
                path: req.context_dir.clone(),
            });
        }
        if let Some(parent) = req.log_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io_err(format!("creating {}", parent.display())))?;
        }
        let mut log = BufWriter::new(
            File::create(&req.log_path)
                .map_err(io_err(format!("creating the log {}", req.log_path.display())))?,
        );
        let iid_dir = tempfile::tempdir().map_err(io_err("creating a temporary directory".into()))?;
        let iidfile = iid_dir.path().join("iid");

        let mut cmd = self.command();
        cmd.arg("build")
            .arg("--tag")
            .arg(&req.tag)
            .arg("--iidfile")
            .arg(&iidfile);
        if let Some(p) = &req.platform {
            cmd.arg("--platform").arg(p);
        }
        for (k, v) in &req.build_args {
            cmd.arg("--build-arg").arg(format!("{k}={v}"));
        }
        for (k, v) in &req.labels {
            cmd.arg("--label").arg(format!("{k}={v}"));
        }
        if req.no_cache {
            cmd.arg("--no-cache");
        }
        if let Some(n) = &req.network {
            EngineError::check_network(n)?;
            cmd.arg("--network").arg(n);
        }
        match self.kind {
            EngineKind::Docker => {
                // BuildKit (when the client has it) prints step lines we can read.
                cmd.env("BUILDKIT_PROGRESS", "plain");
                cmd.arg("-").stdin(Stdio::piped());
            }
            EngineKind::Podman => {
                let jobs = req
                    .jobs
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
                cmd.arg("--jobs").arg(jobs.max(1).to_string());
                cmd.arg("--layers").arg(&req.context_dir).stdin(Stdio::null());
            }
        }
        // One pipe for stdout and stderr keeps the log in the engine's order.
        let (reader, writer) = io::pipe().map_err(io_err("creating a pipe".into()))?;
        let writer2 = writer.try_clone().map_err(io_err("creating a pipe".into()))?;
        cmd.stdout(writer).stderr(writer2);
        let mut child = cmd.spawn().map_err(|e| EngineError::Spawn {
            program: self.program.display().to_string(),
            source: e,
        })?;
        drop(cmd); // closes our copies of the pipe's write end

        let feeder = child.stdin.take().map(|stdin| {
            let dir = req.context_dir.clone();
            std::thread::spawn(move || -> io::Result<()> {
                let mut w = BufWriter::with_capacity(1 << 20, stdin);
                // Sorted, owners 0, time 0, modes 0644/0755, symlinks kept.
                crate::fsutil::write_dir_tar(&dir, 0, &mut w)?;
                w.flush()
            })
        });

        let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES + 1);
        let mut stages = StageTracker::new();
        let mut log_err: Option<io::Error> = None;
        let mut r = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log_err.get_or_insert(e);
                    break;
                }
            }
            if let Err(e) = log.write_all(&buf) {
                log_err.get_or_insert(e);
            }
            let text = String::from_utf8_lossy(&buf);
            // Progress redraws use \r: the last segment is what shows.
            let line = text
                .trim_end_matches(['\n', '\r'])
                .rsplit('\r')
                .next()
                .unwrap_or("")
                .to_string();
            stages.feed(&line);
            on_line(&line);
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        let status = child
            .wait()
            .map_err(io_err("waiting for the engine's build".into()))?;
        let fed = feeder.map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(io::Error::other("tar writer panicked")))
        });
        if let Err(e) = log.flush() {
            log_err.get_or_insert(e);
        }
        if let Some(e) = log_err {
            return Err(EngineError::Io {
                what: format!("writing the build log {}", req.log_path.display()),
                source: e,
            });
        }
        if !status.success() {
            return Err(EngineError::BuildFailed {
                tag: req.tag.clone(),
                stage: stages.failed_stage().map(str::to_string),
                status: status.to_string(),
                tail: tail.into_iter().collect(),
                log_path: req.log_path.clone(),
            });
        }
        if let Some(Err(e)) = fed {
            return Err(EngineError::Io {
                what: format!(
                    "streaming the context {} to docker build",
                    req.context_dir.display()
                ),
                source: e,
            });
        }
        let image_id = match std::fs::read_to_string(&iidfile) {
            Ok(s) if !s.trim().is_empty() => normalize_id(&s),
            _ => self.image_id(&req.tag)?,
        };
        if req.push {
            let mut log = std::fs::OpenOptions::new()
                .append(true)
                .open(&req.log_path)
                .map_err(io_err(format!("opening the log {}", req.log_path.display())))?;
            self.push(&req.tag, &mut |l| {
                let _ = writeln!(log, "{l}");
                on_line(l);
            })?;
        }
        Ok(BuiltImage {
            image_id,
            log_path: req.log_path.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::check_network;

    #[test]
    fn network_modes_and_names_pass() {
        for ok in [
            "host",
            "none",
            "bridge",
            "private",
            "my-net_1.a",
            "container:pg1",
            "ns:/run/netns/x",
        ] {
            assert_eq!(check_network(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn network_values_that_are_no_mode_are_refused() {
        assert_eq!(check_network(""), Err("it is empty".into()));
        assert_eq!(check_network("--privileged"), Err("it starts with '-'".into()));
        assert_eq!(check_network("host none"), Err("it contains ' '".into()));
        assert_eq!(check_network("host\n"), Err("it contains '\\n'".into()));
        assert_eq!(check_network("a;b"), Err("it contains ';'".into()));
    }
}
