//! The build context: from a selection of extensions to a directory (and a
//! deterministic tar of it) that Docker or Podman can build.
//!
//! Separate steps, each with its own module:
//!
//! ```text
//! base (what the base image is) ──► plan (BuildPlan: majors, extensions, recipes, settings)
//!     ──► render (Dockerfile, hook, config from dockerfiles/*.j2) ──► pack (context dir + tar + digest)
//! ```
//!
//! [`generate`] runs render and pack for a plan and the verified sources.

pub mod base;
pub mod glibc;
pub mod pack;
pub mod plan;
pub mod render;

pub use base::{BaseImage, BaseOverrides, DEFAULT_BASE_IMAGE};
pub use pack::Generated;
pub use plan::{BuildPlan, PlanRequest, PlannedExtension};

use crate::catalog::CatalogError;
use crate::error::{Diagnostic, ExitCode};
use crate::hash::Sha256Digest;
use std::path::{Path, PathBuf};

/// One verified upstream source, as the fetch step hands it over
/// (`fetch::Fetched` has the same fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub extension: String,
    pub version: String,
    pub sha256: Sha256Digest,
    /// Where the file is on disk (e.g. in the cache).
    pub path: PathBuf,
    /// The file's name (informational; the context uses `<ext>-<version><suffix>`).
    pub file_name: String,
}

/// Everything besides the plan that goes into a context.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub sources: &'a [SourceFile],
    /// The `pgha-bootstrap` executable to ship.
    pub bootstrap_bin: &'a Path,
    /// Timestamp for every tar entry (SOURCE_DATE_EPOCH); None: 0.
    pub source_date_epoch: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("{0:?} is not a usable base image reference: {1}")]
    BadBaseImage(String, String),
    #[error("the base image {image} is not one whose PostgreSQL majors are known; say which to build for")]
    UnknownBaseNeedsPg { image: String },
    #[error("PostgreSQL {major} is not in the base image {image} (it has {available})")]
    MajorNotInBase {
        major: u32,
        image: String,
        available: String,
    },
    #[error("--from-source {name}: {reason}")]
    FromSource { name: String, reason: String },
    #[error("server setting {setting} is wanted {wanted}")]
    SettingConflict {
        setting: String,
        /// e.g. `as "a" by pg_cron and as "b" by wal2json`.
        wanted: String,
    },
    #[error("no source was given for {extension} {version}{}", looked_for.as_ref().map(|p| format!(" (looked for {})", p.display())).unwrap_or_default())]
    MissingSource {
        extension: String,
        version: String,
        looked_for: Option<PathBuf>,
    },
    #[error("the source of {source_of} at {path} has sha256 {actual}, but the catalog pins {expected}")]
    SourceMismatch {
        /// `<extension> <version>`.
        source_of: String,
        path: PathBuf,
        /// Hex digests (strings keep the error small).
        expected: String,
        actual: String,
    },
    #[error("the source of {source_of} ({path}) cannot be unpacked safely by the build")]
    UnsafeSource {
        /// `<extension> <version>`.
        source_of: String,
        path: PathBuf,
        #[source]
        source: Box<crate::archive::ArchiveError>,
    },
    #[error("the source of {source_of} at {path} has no single top-level directory, which the build strips")]
    SourceLayout { source_of: String, path: PathBuf },
    #[error("the pgha-bootstrap binary {path} is missing")]
    BootstrapMissing { path: PathBuf },
    #[error("the pgha-bootstrap binary {path} cannot be checked: {reason}")]
    BootstrapUnreadable { path: PathBuf, reason: String },
    #[error(
        "the pgha-bootstrap binary {path} needs glibc {needed}, but the base image {image} has glibc {have}"
    )]
    GlibcTooNew {
        path: PathBuf,
        needed: String,
        have: String,
        image: String,
    },
    #[error("the image build failed checking extension `{extension}` provided by the base image: {detail}")]
    BaseCheckFailed {
        extension: String,
        detail: String,
        log_path: PathBuf,
    },
    #[error("{path} cannot be replaced: {reason}; nothing was changed")]
    OutDirNotOurs { path: PathBuf, reason: String },
    #[error("rendering {template} failed: {message}")]
    Render { template: String, message: String },
    #[error("cannot write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Catalog(Box<CatalogError>),
}

impl Diagnostic for ContextError {
    fn hint(&self) -> Option<String> {
        match self {
            ContextError::BadBaseImage(..) => {
                Some("give --base-image as NAME[:TAG][@sha256:DIGEST], e.g. ghcr.io/zalando/spilo-16:3.2-p2".into())
            }
            ContextError::UnknownBaseNeedsPg { .. } => Some(
                "pass --pg with the majors the base has (e.g. --pg 15); an unknown base is assumed Ubuntu-22.04-like \
                 (glibc 2.35, libcurl 7.81) unless --base-glibc / --base-lib say otherwise"
                    .into(),
            ),
            ContextError::MajorNotInBase { .. } => {
                Some("choose --pg among the base's majors, or a base image that has that major".into())
            }
            ContextError::FromSource { .. } => Some(
                "--from-source takes selected extensions that the base provides and the catalog can build \
                 (`pgha-image extensions show NAME`)"
                    .into(),
            ),
            ContextError::SettingConflict { .. } => {
                Some("leave one of the two extensions out, or fix the catalog's settings".into())
            }
            ContextError::MissingSource { .. } => {
                Some("fetch the sources first (`pgha-image fetch` with the same selection, or --mirror DIR holding <ext>-<version>.tar.gz files)".into())
            }
            ContextError::UnsafeSource { source, .. } => source.hint(),
            ContextError::SourceLayout { .. } => Some(
                "the builder stage unpacks sources with --strip-components=1: pin an archive that holds one \
                 directory (GitHub's archive/refs/tags/*.tar.gz do)"
                    .into(),
            ),
            ContextError::SourceMismatch { .. } => Some(
                "the file is not the pinned upstream archive: delete it and fetch it again; if upstream changed \
                 the archive, check why before updating the catalog"
                    .into(),
            ),
            ContextError::BootstrapMissing { .. } | ContextError::BootstrapUnreadable { .. } => Some(
                "build it with `cargo build --release --bin pgha-bootstrap` and pass --bootstrap-bin PATH \
                 (default: next to pgha-image)"
                    .into(),
            ),
            ContextError::GlibcTooNew { have, .. } => Some(format!(
                "build pgha-bootstrap on a system with glibc ≤ {have} (e.g. Ubuntu 22.04 or Debian 11), \
                 with `cargo zigbuild --target x86_64-unknown-linux-gnu.{have}`, or statically \
                 (--target x86_64-unknown-linux-musl)"
            )),
            ContextError::BaseCheckFailed {
                extension, log_path, ..
            } => Some(format!(
                "build it from its pinned source (--from-source {extension}) or leave it out (--extensions); \
                 full log: {}",
                log_path.display()
            )),
            ContextError::OutDirNotOurs { .. } => Some(
                "choose a new or empty --out directory; generate replaces only its own earlier output, \
                 unchanged (move your files out of it, or remove it yourself)"
                    .into(),
            ),
            ContextError::Render { .. } => Some("this is a bug in the templates of dockerfiles/; report it".into()),
            ContextError::Io { .. } => Some("check that the output directory is writable and has space".into()),
            ContextError::Catalog(e) => e.hint(),
        }
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            ContextError::SourceMismatch { .. } => ExitCode::Verification,
            ContextError::UnsafeSource { source, .. } => source.exit_code(),
            ContextError::MissingSource { .. }
            | ContextError::BootstrapMissing { .. }
            | ContextError::BootstrapUnreadable { .. }
            | ContextError::GlibcTooNew { .. } => ExitCode::Prerequisite,
            ContextError::Render { .. } | ContextError::Io { .. } | ContextError::BaseCheckFailed { .. } => {
                ExitCode::Failure
            }
            ContextError::Catalog(e) => e.exit_code(),
            _ => ExitCode::Usage,
        }
    }
}

impl From<CatalogError> for ContextError {
    fn from(e: CatalogError) -> Self {
        ContextError::Catalog(Box::new(e))
    }
}

/// Check that `bin` is an ELF executable that runs on the base image's glibc.
pub fn check_bootstrap_bin(bin: &Path, base: &BaseImage) -> Result<glibc::ElfNeeds, ContextError> {
    if !bin.is_file() {
        return Err(ContextError::BootstrapMissing {
            path: bin.to_path_buf(),
        });
    }
    let needs = glibc::elf_needs(bin).map_err(|reason| ContextError::BootstrapUnreadable {
        path: bin.to_path_buf(),
        reason,
    })?;
    if !needs.runs_on_glibc(&base.glibc) {
        return Err(ContextError::GlibcTooNew {
            path: bin.to_path_buf(),
            needed: needs.max_glibc.clone().unwrap_or_default(),
            have: base.glibc.clone(),
            image: base.reference.clone(),
        });
    }
    Ok(needs)
}

/// Render the plan and pack it with the sources and the bootstrap binary into `out`.
pub fn generate(plan: &BuildPlan, inputs: &Inputs<'_>, out: &Path) -> Result<Generated, ContextError> {
    let needs = check_bootstrap_bin(inputs.bootstrap_bin, &plan.base)?;
    let files = render::render(plan)?;
    pack::pack(plan, files, inputs, &needs, out)
}
