//! What can go wrong making a cluster's secret files.

use crate::engine::EngineError;
use crate::error::{Diagnostic, ExitCode};
use crate::manifests::ManifestsError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The cluster spec is wrong (its error names the field and line).
    #[error(transparent)]
    Spec(#[from] ManifestsError),

    /// The output directory holds files already; they are secrets a cluster may use.
    #[error("{} is not empty: it may hold the secrets a running cluster uses", .path.display())]
    OutExists { path: PathBuf },

    /// The group of the image's `postgres` user could not be found.
    #[error("cannot find the group of the `postgres` user in the image {image}: {detail}")]
    ImageGroup { image: String, detail: String },

    #[error(transparent)]
    Engine(#[from] EngineError),

    /// The files cannot be given the image's group (only root can).
    #[error("cannot give {} to group {gid}", .path.display())]
    Chown {
        path: PathBuf,
        gid: u32,
        #[source]
        source: std::io::Error,
    },

    #[error("making the TLS certificates failed: {0}")]
    Tls(String),

    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Diagnostic for SecretsError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::Spec(e) => e.hint(),
            Self::OutExists { .. } => Some(
                "give a new directory, or --force to replace these secrets (every member, and the \
                 Supabase API services, then need the new ones)"
                    .into(),
            ),
            Self::ImageGroup { .. } => Some(
                "load the spec's image first (`pgha-image load`), or give the group id of the \
                 image's postgres user with --gid (Spilo's is 103)"
                    .into(),
            ),
            Self::Engine(e) => e.hint(),
            Self::Chown { .. } => Some(
                "run as root (the files belong to root and the image's postgres group, mode 0440), \
                 or give --gid with your own group"
                    .into(),
            ),
            Self::Tls(_) => None,
            Self::Io { .. } => Some("check that the output's parent directory exists and is writable".into()),
        }
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            Self::Spec(e) => e.exit_code(),
            Self::OutExists { .. } => ExitCode::Usage,
            Self::ImageGroup { .. } => ExitCode::Prerequisite,
            Self::Engine(e) => e.exit_code(),
            Self::Chown { .. } => ExitCode::Prerequisite,
            Self::Tls(_) | Self::Io { .. } => ExitCode::Failure,
        }
    }
}
