//! What stops a verify run before or outside its checks (a failed check is
//! not an error: it is in the report, and the binary exits 3 for it).

use crate::engine::EngineError;
use crate::error::{Diagnostic, ExitCode};

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Engine(#[from] EngineError),

    /// The image carries no build manifest: not made by `pgha-image build`.
    #[error("{image} is not a pgha-image build: it has no readable {path} ({detail})")]
    NotOurImage {
        image: String,
        path: String,
        detail: String,
    },

    /// An engine command of the run failed (create, start, network, volume).
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },

    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },

    /// Ctrl-C or SIGTERM: the run's containers, networks and volumes were
    /// removed (or kept, with --keep).
    #[error("interrupted by {signal}; {cleanup}")]
    Interrupted { signal: String, cleanup: String },

    /// An output file (the JUnit report) that cannot be written there,
    /// found before the run starts.
    #[error("cannot write the report to {path}: {reason}")]
    Output {
        path: std::path::PathBuf,
        reason: String,
    },

    /// A request that cannot be run as given.
    #[error("{0}")]
    Usage(String),

    #[error("{failed} of {total} checks failed")]
    ChecksFailed { failed: usize, total: usize },
}

impl Diagnostic for VerifyError {
    fn hint(&self) -> Option<String> {
        match self {
            VerifyError::Engine(e) => e.hint(),
            VerifyError::NotOurImage { .. } => Some(
                "verify checks images made by `pgha-image build` (they carry /etc/pgha/build-manifest.json); \
                 check the image name"
                    .into(),
            ),
            VerifyError::ChecksFailed { .. } => Some(
                "the report names each failed check and what it found; `--keep` leaves the containers for a post-mortem"
                    .into(),
            ),
            VerifyError::Output { .. } => {
                Some("give a file in an existing directory (create the directory first)".into())
            }
            VerifyError::Command { .. } => {
                Some("check that the engine works (`podman info` / `docker info`) and has room".into())
            }
            _ => None,
        }
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            VerifyError::Engine(e) => e.exit_code(),
            VerifyError::NotOurImage { .. } | VerifyError::Usage(_) | VerifyError::Output { .. } => {
                ExitCode::Usage
            }
            VerifyError::ChecksFailed { .. } => ExitCode::Verification,
            _ => ExitCode::Failure,
        }
    }
}
