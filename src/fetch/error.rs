//! Why a fetch failed. Every variant names the extension and where its bytes
//! came from, and says what to do.

use crate::error::{Diagnostic, ExitCode};
use crate::hash::Sha256Digest;
use crate::progress::human_bytes;
use crate::redact::RedactedUrl;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(
        "{name} {version}: digest mismatch for {url}\n  expected sha256 {expected}\n  actual   sha256 {actual} ({size} bytes)"
    )]
    DigestMismatch {
        name: String,
        version: String,
        url: RedactedUrl,
        expected: Sha256Digest,
        /// Boxed to keep the error small.
        actual: Box<Sha256Digest>,
        size: u64,
    },
    #[error("{name} {version}: {url} answered HTTP {status}")]
    Status {
        name: String,
        version: String,
        url: RedactedUrl,
        status: u16,
    },
    #[error("{name} {version}: the body of {url} ended after {got} of {expected} bytes (truncated)")]
    Truncated {
        name: String,
        version: String,
        url: RedactedUrl,
        got: u64,
        expected: u64,
    },
    #[error("{name} {version}: {url} is larger than the limit of {} ({size})", human_bytes(*limit))]
    TooLarge {
        name: String,
        version: String,
        url: RedactedUrl,
        limit: u64,
        /// What the server announced or what had arrived when the limit was crossed.
        size: String,
    },
    #[error("{name} {version}: {url} sent nothing for {}s (stalled after {got} bytes)", stall.as_secs_f32())]
    Stalled {
        name: String,
        version: String,
        url: RedactedUrl,
        stall: Duration,
        got: u64,
    },
    #[error("{name} {version}: downloading {url} took longer than {}s (--timeout)", limit.as_secs_f32())]
    TimedOut {
        name: String,
        version: String,
        url: RedactedUrl,
        limit: Duration,
    },
    #[error("{name} {version}: redirects from {url} not followed: {reason}")]
    Redirect {
        name: String,
        version: String,
        url: RedactedUrl,
        reason: String,
    },
    #[error("{name} {version}: cannot download {url}: {message}")]
    Network {
        name: String,
        version: String,
        url: RedactedUrl,
        message: String,
        /// Whether the failure is worth retrying (connect errors, resets, timeouts).
        transient: bool,
    },
    #[error("{name} {version}: refusing plain http:// URL {url}")]
    InsecureUrl {
        name: String,
        version: String,
        url: RedactedUrl,
    },
    #[error("{name} {version} (sha256 {sha256}) is not in the cache at {cache}, and --offline forbids downloading it{}",
        if *corrupted { " (the cached copy was corrupted and has been removed)" } else { "" })]
    Offline {
        name: String,
        version: String,
        sha256: Sha256Digest,
        cache: PathBuf,
        corrupted: bool,
    },
    #[error("{name} {version}: the mirror directory has no {path}")]
    MirrorMissing {
        name: String,
        version: String,
        path: PathBuf,
    },
    #[error("{name} {version}: {path} in the mirror directory is not a regular file")]
    MirrorNotFile {
        name: String,
        version: String,
        path: PathBuf,
    },
    #[error("the mirror directory {path} {reason}")]
    MirrorOut { path: PathBuf, reason: String },
    #[error("invalid --mirror {value:?}: {reason}")]
    BadMirror {
        /// As given, credentials hidden.
        value: RedactedUrl,
        reason: String,
    },
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot use {path} as the source cache: {source}")]
    CacheDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: its Cargo.lock {reason}")]
    BadLock { what: String, reason: String },
    #[error("{what}: its Cargo.lock takes {name} {version} {source_kind} ({origin}), which no checksum pins")]
    UnpinnedCrate {
        what: String,
        name: String,
        version: String,
        source_kind: &'static str,
        origin: String,
    },
    #[error("cannot start the download runtime")]
    Runtime(#[source] std::io::Error),
    #[error("{} sources failed:\n{}", .0.len(), .0.iter().map(|e| format!("- {e}")).collect::<Vec<_>>().join("\n"))]
    Several(Vec<FetchError>),
}

impl FetchError {
    /// Worth another attempt: resets, timeouts, stalls, 5xx, truncated bodies.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            FetchError::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            FetchError::Truncated { .. } | FetchError::Stalled { .. } => true,
            FetchError::Network { transient, .. } => *transient,
            _ => false,
        }
    }

    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| FetchError::Io { what, path, source }
    }
}

impl Diagnostic for FetchError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            FetchError::DigestMismatch { .. } => "the bytes are not the ones the catalog pins. Upstream may have \
                re-generated the archive or re-pointed the tag, or the mirror holds another file: check the \
                source and, only once you trust the new bytes, update sha256 in the catalog. Nothing was cached."
                .into(),
            FetchError::Status { status: 404, .. } => "the file does not exist there: check the catalog's url \
                (or the mirror's file name, <extension>-<version><suffix>)"
                .into(),
            FetchError::Status { .. } => "the server refused or failed; retry later, or use --mirror".into(),
            FetchError::Truncated { .. } => "the connection broke off mid-download (after retries); retry, \
                or raise --retries"
                .into(),
            FetchError::TooLarge { .. } => {
                "raise --max-size if the source really is that large; nothing was cached".into()
            }
            FetchError::Stalled { .. } => {
                "the server stopped sending; retry, raise --stall-timeout, or use --mirror".into()
            }
            FetchError::TimedOut { .. } => "the server sends too slowly; raise --timeout if the link \
                really is that slow, or use --mirror. Nothing was cached."
                .into(),
            FetchError::Redirect { .. } => {
                "raise --max-redirects, or point the catalog at the final URL (https only unless --allow-http)"
                    .into()
            }
            FetchError::Network { .. } => "check the network (or proxy settings), or use --mirror".into(),
            FetchError::InsecureUrl { .. } => "use an https:// URL; pass --allow-http only for a source you \
                trust (the digest is still checked)"
                .into(),
            FetchError::Offline { .. } => "run `pgha-image fetch` where the network or a --mirror is \
                reachable, or copy a mirror made by `pgha-image mirror DIR` and use --mirror DIR"
                .into(),
            FetchError::MirrorMissing { .. } => {
                "`pgha-image mirror DIR` writes the files a mirror directory must hold".into()
            }
            FetchError::MirrorNotFile { .. } => "a mirror holds plain files (or symlinks to them), \
                as `pgha-image mirror DIR` writes them: replace it"
                .into(),
            FetchError::BadMirror { .. } => "give --mirror (or PGHA_MIRROR) an https:// base URL (http:// on \
                127.0.0.1/localhost), a file:///path URL or an existing directory"
                .into(),
            FetchError::MirrorOut { .. } => "give `pgha-image mirror` a directory (it is created if \
                missing) that this user can write"
                .into(),
            FetchError::Io { .. } => "check the path's permissions and free space".into(),
            FetchError::CacheDir { .. } => "give --cache-dir (or PGHA_CACHE_DIR) a directory this user can \
                write, or leave it out for the default cache"
                .into(),
            FetchError::BadLock { .. } => "the build vendors exactly the crates of the extension's own Cargo.lock \
                (and cargo-pgrx's): pin a release whose archive carries a Cargo.lock with a checksum for every \
                crates.io crate (lock file version 3 or 4)"
                .into(),
            FetchError::UnpinnedCrate { .. } => "the build is offline and verifies every crate against the sha256 \
                its Cargo.lock records; a git or other-registry dependency has none. Pin a release that takes its \
                crates from crates.io only (or build this extension elsewhere and pin the result as a prebuilt package)"
                .into(),
            FetchError::Runtime(_) => "the system refused threads or file descriptors: check the process \
                limits (ulimit -n, -u)"
                .into(),
            FetchError::Several(errs) => {
                // Each distinct fix once, in the order of the failures.
                let mut hints: Vec<String> = Vec::new();
                for h in errs.iter().filter_map(|e| e.hint()) {
                    if !hints.contains(&h) {
                        hints.push(h);
                    }
                }
                hints.join("\n  hint: ")
            }
        })
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            FetchError::DigestMismatch { .. } => ExitCode::Verification,
            FetchError::Offline { .. } => ExitCode::Prerequisite,
            FetchError::BadLock { .. } | FetchError::UnpinnedCrate { .. } => ExitCode::Usage,
            FetchError::InsecureUrl { .. }
            | FetchError::BadMirror { .. }
            | FetchError::MirrorNotFile { .. }
            | FetchError::MirrorOut { .. } => ExitCode::Usage,
            FetchError::CacheDir { source, .. } => match source.kind() {
                std::io::ErrorKind::NotADirectory
                | std::io::ErrorKind::AlreadyExists
                | std::io::ErrorKind::PermissionDenied
                | std::io::ErrorKind::ReadOnlyFilesystem => ExitCode::Usage,
                _ => ExitCode::Failure,
            },
            FetchError::Several(errs) => errs
                .iter()
                .map(|e| e.exit_code())
                .max_by_key(|c| *c as u8)
                .unwrap_or(ExitCode::Failure),
            _ => ExitCode::Failure,
        }
    }
}
