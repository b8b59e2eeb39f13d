//! What can go wrong shipping an image, with what to do about it.

use crate::engine::EngineError;
use crate::error::{Diagnostic, ExitCode};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error(transparent)]
    Engine(#[from] EngineError),

    #[error("{what}: {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("bad target {target:?}: {why}")]
    BadTarget { target: String, why: String },

    #[error("no target: give at least one host with --to")]
    NoTarget,

    #[error("the engine's save of {tag} did not hold {what}")]
    SaveIncomplete { tag: String, what: String },

    #[error("{tag} ({id}) has layers that are not sha256 diff ids: {detail}")]
    BadImage { tag: String, id: String, detail: String },

    #[error("{} of {} host(s) failed: {}", .failed.len(), .total, summary(.failed))]
    HostsFailed {
        total: usize,
        /// (host, reason, exit code of the failure)
        failed: Vec<(String, String, ExitCode)>,
    },

    #[error("{file} is a delta on top of {base_tag} ({base_id}), which is not in the {engine} image store")]
    DeltaBaseMissing {
        file: PathBuf,
        base_tag: String,
        base_id: String,
        engine: String,
    },

    #[error("{file} is not a delta written by `pgha-image export --since`: {why}")]
    BadDelta { file: PathBuf, why: String },

    /// The file matches its checksum, but what it holds does not verify.
    #[error(
        "{file} matches its checksum but its content does not verify: {why}; nothing was loaded or tagged"
    )]
    DeltaTampered { file: PathBuf, why: String },

    #[error("the loaded image {reference} has id {actual}, but the delta says {expected}; it was removed")]
    LoadedIdMismatch {
        reference: String,
        expected: String,
        actual: String,
    },

    #[error(transparent)]
    Verify(#[from] crate::export::ExportError),

    #[error("{new} shares no layer with {old}: a delta would hold the whole image")]
    NothingShared { old: String, new: String },

    /// `ship --spec` can only send images it can tag on the hosts.
    #[error("{field} = {reference:?} is pinned without a name: ship needs the name to tag it on the hosts")]
    Unnamed { field: String, reference: String },

    #[error("--ssh-option {option:?} turns host-key checking off: {why}")]
    WeakHostKeyOption { option: String, why: &'static str },
}

fn summary(failed: &[(String, String, ExitCode)]) -> String {
    failed
        .iter()
        .map(|(h, why, _)| format!("{h}: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Diagnostic for ShipError {
    fn hint(&self) -> Option<String> {
        match self {
            ShipError::Engine(e) => e.hint(),
            ShipError::Verify(e) => e.hint(),
            ShipError::BadTarget { .. } | ShipError::NoTarget => {
                Some("targets are [USER@]HOST[:PORT], comma-separated, e.g. --to root@vm1,vm2:2222".into())
            }
            ShipError::HostsFailed { .. } => Some(
                "run the same command again: layers that arrived are kept on each host and are not sent again; \
                 hosts that succeeded only check their image"
                    .into(),
            ),
            ShipError::DeltaBaseMissing { base_tag, .. } => Some(format!(
                "load the full image {base_tag} on this host first (`pgha-image load` of its full export), \
                 or bring a full export of the new image instead of the delta"
            )),
            ShipError::NothingShared { .. } => Some("export the full image (without --since)".into()),
            ShipError::Unnamed { .. } => Some(
                "name the image in the spec by its tag (manifests pins it to its id), or ship it by tag".into(),
            ),
            ShipError::DeltaTampered { .. } => Some(
                "the delta was altered after it was written and its checksum files re-made to match: \
                 do not use it; export it again on the build machine (`pgha-image export --since`) \
                 and bring it by a trusted way"
                    .into(),
            ),
            ShipError::WeakHostKeyOption { .. } => Some(
                "add the host's key to known_hosts (`ssh-keyscan HOST >> ~/.ssh/known_hosts`, then compare \
                 its fingerprint), or use StrictHostKeyChecking=accept-new for a first contact; \
                 --insecure-host-keys accepts the option anyway; nothing was sent"
                    .into(),
            ),
            _ => None,
        }
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            ShipError::Engine(e) => e.exit_code(),
            ShipError::Verify(e) => e.exit_code(),
            ShipError::Io { .. } | ShipError::SaveIncomplete { .. } | ShipError::BadImage { .. } => {
                ExitCode::Failure
            }
            ShipError::BadTarget { .. }
            | ShipError::NoTarget
            | ShipError::NothingShared { .. }
            | ShipError::WeakHostKeyOption { .. } => ExitCode::Usage,
            ShipError::BadDelta { .. } | ShipError::Unnamed { .. } => ExitCode::Usage,
            ShipError::DeltaTampered { .. } => ExitCode::Verification,
            ShipError::DeltaBaseMissing { .. } => ExitCode::Prerequisite,
            ShipError::LoadedIdMismatch { .. } => ExitCode::Verification,
            // One kind of failure on every failed host: its code; mixed: 1.
            ShipError::HostsFailed { failed, .. } => {
                let first = failed.first().map(|f| f.2).unwrap_or(ExitCode::Failure);
                if failed.iter().all(|f| f.2 == first) {
                    first
                } else {
                    ExitCode::Failure
                }
            }
        }
    }
}

pub(crate) fn io_err(
    what: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> ShipError + use<> {
    let path = path.to_path_buf();
    move |source| ShipError::Io { what, path, source }
}
