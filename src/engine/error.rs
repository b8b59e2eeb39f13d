//! What can go wrong talking to a container engine, with what to do about it.

use super::EngineKind;
use crate::error::{Diagnostic, ExitCode};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No engine program on PATH.
    #[error("no container engine found: {tried}")]
    NotFound { tried: String },

    /// The program exists but its daemon/service does not answer.
    #[error("the container engine {kind} ({program}) does not answer: {detail}")]
    Unreachable {
        kind: EngineKind,
        program: PathBuf,
        detail: String,
    },

    /// Auto-detection found nothing that works; both attempts are reported.
    #[error("no working container engine: docker: {docker}; podman: {podman}")]
    NoneWorks { docker: String, podman: String },

    #[error("could not run `{program}`")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },

    /// A command of the engine exited with an error.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },

    #[error("{reference:?} is not a valid image reference: {reason}")]
    BadReference { reference: String, reason: String },

    #[error("--network {network:?} is not a network mode or name: {reason}")]
    BadNetwork { network: String, reason: String },

    #[error("{path} is not a build context: it has no Dockerfile")]
    NoContext { path: PathBuf },

    #[error("image {reference} is not in the {kind} image store")]
    ImageNotFound { kind: EngineKind, reference: String },

    /// The base image is not in the store and could not be pulled.
    #[error("the base image {reference} is not in the {kind} image store and could not be pulled: {words}")]
    BaseUnavailable {
        kind: EngineKind,
        reference: String,
        /// The engine's own words.
        words: String,
    },

    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },

    #[error("unexpected output from `{command}`: {output}")]
    Unexpected { command: String, output: String },

    /// The image build failed. `stage` is the Dockerfile stage whose step
    /// failed, when the log names it (extension stages are `ext-<name>`).
    #[error("{}", build_failed_message(.tag, .stage, .status, .tail, .log_path))]
    BuildFailed {
        tag: String,
        stage: Option<String>,
        status: String,
        tail: Vec<String>,
        log_path: PathBuf,
    },
}

fn build_failed_message(
    tag: &str,
    stage: &Option<String>,
    status: &str,
    tail: &[String],
    log_path: &std::path::Path,
) -> String {
    let mut m = format!("building {tag} failed ({status})");
    match stage.as_deref() {
        Some(s) => match stage_extension(s) {
            Some(ext) => m.push_str(&format!(" in stage `{s}`: the build of extension `{ext}` failed")),
            None => m.push_str(&format!(" in stage `{s}`")),
        },
        None => m.push_str(" (the log does not say which stage)"),
    }
    m.push_str(&format!("\n  last {} lines of the engine log:\n", tail.len()));
    for l in tail {
        m.push_str("    | ");
        m.push_str(l);
        m.push('\n');
    }
    m.push_str(&format!("  full log: {}", log_path.display()));
    m
}

/// The extension an `ext-<name>` stage builds (`ext-<name>-deps`: its
/// system packages, a stage of its own for Rust extensions).
fn stage_extension(stage: &str) -> Option<&str> {
    stage
        .strip_prefix("ext-")
        .map(|e| e.strip_suffix("-deps").unwrap_or(e))
}

impl EngineError {
    /// [`check_reference`](super::check_reference) as an error.
    pub fn check_reference(reference: &str) -> Result<(), EngineError> {
        super::check_reference(reference).map_err(|reason| EngineError::BadReference {
            reference: reference.to_string(),
            reason,
        })
    }

    /// [`check_network`](super::check_network) as an error.
    pub fn check_network(network: &str) -> Result<(), EngineError> {
        super::check_network(network).map_err(|reason| EngineError::BadNetwork {
            network: network.to_string(),
            reason,
        })
    }

    /// The extension whose stage failed, for a build failure in an `ext-<name>` stage.
    pub fn failed_extension(&self) -> Option<&str> {
        match self {
            EngineError::BuildFailed { stage: Some(s), .. } => stage_extension(s),
            _ => None,
        }
    }
}

const FIX_ENGINE: &str = "install Podman (`apt-get install podman`) or Docker; for Docker start the daemon \
     (`systemctl start docker`) or point DOCKER_HOST at a reachable one (e.g. Podman's API: \
     `podman system service --time=0 unix:///run/podman.sock &` and \
     DOCKER_HOST=unix:///run/podman.sock); or choose the other engine with --engine";

impl Diagnostic for EngineError {
    fn hint(&self) -> Option<String> {
        match self {
            EngineError::NotFound { .. } | EngineError::NoneWorks { .. } => Some(FIX_ENGINE.into()),
            EngineError::Unreachable {
                kind: EngineKind::Docker,
                ..
            } => Some(
                "start the Docker daemon (`systemctl start docker`), check DOCKER_HOST / `docker context`, \
                 or use Podman with --engine podman"
                    .into(),
            ),
            EngineError::Unreachable {
                kind: EngineKind::Podman,
                ..
            } => Some(
                "check that `podman info` works for this user (rootless setup, CONTAINER_HOST), \
                 or use Docker with --engine docker"
                    .into(),
            ),
            EngineError::Spawn { .. } => Some(FIX_ENGINE.into()),
            EngineError::ImageNotFound { kind, .. } => Some(format!(
                "build it first (`pgha-image build --tag …`), or check the name with `{} images`",
                kind.program_name()
            )),
            EngineError::BaseUnavailable { kind, reference, .. } => Some(format!(
                "load it into the {kind} image store first (`{k} load -i FILE`, or `{k} tag IMAGE {reference}` \
                 for a local copy under another name), or give the image the store has with --base-image \
                 (`{k} images` lists them); nothing was fetched or written",
                k = kind.program_name()
            )),
            EngineError::BadReference { .. } => Some(
                "an image reference is [REGISTRY[:PORT]/]NAME[:TAG] with a lowercase NAME, \
                 e.g. supabase-patroni:v1.0 or ghcr.io/acme/supabase-patroni:16-1"
                    .into(),
            ),
            EngineError::BadNetwork { .. } => Some(
                "give a mode of the engine's build, e.g. --network host (RUN steps use the host's \
                 network) or --network none, or the name of an existing network"
                    .into(),
            ),
            EngineError::BuildFailed { stage, log_path, .. } => {
                Some(match stage.as_deref().and_then(stage_extension) {
                    Some(ext) => format!(
                        "read {} for the whole build of `{ext}`; build without it (--extensions) to go on meanwhile",
                        log_path.display()
                    ),
                    None => format!("read {} for the whole engine output", log_path.display()),
                })
            }
            EngineError::Command { .. } => Some(
                "read the engine's message above; a full disk (the engine's storage or temporary \
                 directory) is a common cause"
                    .into(),
            ),
            EngineError::NoContext { .. } => {
                Some("give the context directory `pgha-image generate` wrote (DIR/context)".into())
            }
            EngineError::Io { .. } => Some("check that the path is writable and has room".into()),
            EngineError::Unexpected { .. } => Some(
                "the engine answered in a way this tool does not know: check its version \
                 (`podman version` / `docker version`) and report it"
                    .into(),
            ),
        }
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            EngineError::NotFound { .. }
            | EngineError::Unreachable { .. }
            | EngineError::NoneWorks { .. }
            | EngineError::Spawn { .. }
            | EngineError::BaseUnavailable { .. } => ExitCode::Prerequisite,
            EngineError::ImageNotFound { .. }
            | EngineError::NoContext { .. }
            | EngineError::BadReference { .. }
            | EngineError::BadNetwork { .. } => ExitCode::Usage,
            _ => ExitCode::Failure,
        }
    }
}
