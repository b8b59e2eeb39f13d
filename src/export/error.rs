//! What can go wrong exporting, verifying and loading, with what to do about it.

use crate::engine::EngineError;
use crate::error::{Diagnostic, ExitCode};
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Engine(#[from] EngineError),

    #[error("{what}: {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The output exists and --force was not given.
    #[error("{path} already exists; nothing was exported")]
    Exists { path: PathBuf },

    /// The output cannot be written there, whatever --force says.
    #[error("cannot export to {path}: {reason}; nothing was exported")]
    Target { path: PathBuf, reason: String },

    #[error("no checksum file {path} next to the export")]
    NoChecksum { path: PathBuf },

    #[error("checksum file {path} cannot be used: {reason}")]
    BadChecksumFile { path: PathBuf, reason: String },

    #[error("{file} does not match its checksum: expected sha256 {expected}, the file has {actual}")]
    Mismatch {
        file: PathBuf,
        expected: String,
        actual: String,
    },

    #[error("the manifest {path} disagrees with the file: {detail}")]
    ManifestMismatch { path: PathBuf, detail: String },

    #[error("the manifest {path} is not a pgha-image export manifest: {detail}")]
    BadManifest { path: PathBuf, detail: String },

    #[error("{path} is not an image archive (neither gzip, zstd nor tar)")]
    NotAnArchive { path: PathBuf },

    /// Decompressed, but what came out is not a tar, or it ends early.
    #[error("{path} is not a complete image archive: {detail}")]
    Corrupt { path: PathBuf, detail: String },

    #[error("the loaded image {reference} has id {actual}, but the manifest says {expected}")]
    LoadedIdMismatch {
        reference: String,
        expected: String,
        actual: String,
    },

    #[error("export stopped by a signal; no file was written")]
    Stopped,

    #[error("cannot derive a file name from the tag {0:?}")]
    BadTag(String),
}

impl ExportError {
    pub(crate) fn io(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ExportError + use<> {
        let path = path.to_path_buf();
        move |source| ExportError::Io { what, path, source }
    }
}

impl Diagnostic for ExportError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            ExportError::Engine(EngineError::Command { .. }) => {
                "read the engine's message above; an export needs free space next to FILE for the \
                 engine's temporary copy of the image and for the export itself, a load needs it in \
                 the engine's storage"
                    .into()
            }
            ExportError::Engine(e) => return e.hint(),
            ExportError::Io { .. } => {
                "check that the directory is writable and has room for the export (about the image's \
                 size while the engine saves it); no file was left under the final name"
                    .into()
            }
            ExportError::Exists { .. } => "choose another -o FILE, or pass --force to replace the file \
                 and its .sha256 and .manifest.json"
                .into(),
            ExportError::Target { .. } => "give -o a file name in an existing, writable directory \
                 (e.g. -o DIR/NAME.tar.zst)"
                .into(),
            ExportError::NoChecksum { .. } => {
                "copy the `.sha256` file (and the `.manifest.json`) written by \
                 `pgha-image export` next to the tarball"
                    .into()
            }
            ExportError::BadChecksumFile { .. } => "FILE.sha256 must be the `sha256sum` line written by \
                 `pgha-image export` (\"<64 hex>  <name>\"): copy it again; nothing was loaded"
                .into(),
            ExportError::Mismatch { .. } | ExportError::ManifestMismatch { .. } => {
                "the file was changed or truncated after export: copy it again from the machine that \
                 exported it; nothing was loaded"
                    .into()
            }
            ExportError::BadManifest { .. } => "FILE.manifest.json must be the one `pgha-image export` \
                 wrote: copy it again, or remove it to check against FILE.sha256 alone; nothing was loaded"
                .into(),
            ExportError::NotAnArchive { .. } | ExportError::Corrupt { .. } => {
                "load takes a file written by `pgha-image export` (or `docker save` / `podman save`, \
                 plain or compressed); if it is one, it was damaged before its checksum was made: \
                 export it again; nothing was loaded"
                    .into()
            }
            ExportError::LoadedIdMismatch { .. } => "the engine rewrote the image on load; check the engine \
                 version, or remove the image and load again"
                .into(),
            ExportError::Stopped => "run the export again; nothing was left behind".into(),
            ExportError::BadTag(_) => "give the output file with -o FILE".into(),
        })
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            ExportError::Engine(e) => e.exit_code(),
            ExportError::NoChecksum { .. }
            | ExportError::BadChecksumFile { .. }
            | ExportError::Mismatch { .. }
            | ExportError::ManifestMismatch { .. }
            | ExportError::BadManifest { .. }
            | ExportError::LoadedIdMismatch { .. } => ExitCode::Verification,
            ExportError::NotAnArchive { .. }
            | ExportError::Corrupt { .. }
            | ExportError::BadTag(_)
            | ExportError::Exists { .. }
            | ExportError::Target { .. } => ExitCode::Usage,
            ExportError::Io { .. } | ExportError::Stopped => ExitCode::Failure,
        }
    }
}
