//! What can go wrong turning a cluster spec into deployment files.

use crate::engine::EngineError;
use crate::error::{Diagnostic, ExitCode};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ManifestsError {
    /// A field of the spec is wrong; `line` is 1-based, in `path`.
    #[error("{}:{line}: {field}: {message}", .path.display())]
    Spec {
        path: PathBuf,
        line: usize,
        field: String,
        message: String,
        hint: String,
        code: ExitCode,
    },

    /// An image of the deployment cannot be pinned (see [`super::pin`]).
    #[error("{}: {field}: {message}", .path.display())]
    Image {
        path: PathBuf,
        field: String,
        message: String,
        hint: String,
        code: ExitCode,
    },

    #[error("cannot read {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// `--image-manifest FILE` is not a build manifest.
    #[error("{} is not a pgha-image build manifest: {detail}", .path.display())]
    BadImageManifest { path: PathBuf, detail: String },

    /// The manifest read from the image does not parse.
    #[error("the image {image} holds an unreadable /etc/pgha/build-manifest.json: {detail}")]
    BadImageFile { image: String, detail: String },

    #[error(transparent)]
    Engine(#[from] EngineError),

    /// The output directory holds files this tool did not write.
    #[error("{} is not empty (or not a directory) and was not written by `pgha-image manifests` ({reason})", .path.display())]
    OutNotOurs { path: PathBuf, reason: String },

    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },

    #[error("rendering {template} failed: {detail}")]
    Render { template: String, detail: String },
}

impl Diagnostic for ManifestsError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::Spec { hint, .. } | Self::Image { hint, .. } => Some(hint.clone()),
            Self::Read { .. } => Some("check the path given to --spec".into()),
            Self::BadImageManifest { .. } => Some(
                "give the image's /etc/pgha/build-manifest.json (or the manifest.json of a \
                 `pgha-image generate` output)"
                    .into(),
            ),
            Self::BadImageFile { .. } => {
                Some("rebuild the image with `pgha-image build`, or pass --image-manifest FILE".into())
            }
            Self::Engine(e) => e.hint(),
            Self::OutNotOurs { .. } => Some(
                "give an empty or new directory to --out, or move your files out of it, or add --force \
                      to replace its contents (what you added is then deleted); nothing was written"
                    .into(),
            ),
            Self::Io { .. } => None,
            Self::Render { .. } => Some("this is a bug in pgha-image's templates: please report it".into()),
        }
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            Self::Spec { code, .. } | Self::Image { code, .. } => *code,
            Self::Read { .. } | Self::BadImageManifest { .. } | Self::OutNotOurs { .. } => ExitCode::Usage,
            Self::BadImageFile { .. } => ExitCode::Usage,
            Self::Engine(e) => e.exit_code(),
            Self::Io { .. } | Self::Render { .. } => ExitCode::Failure,
        }
    }
}
