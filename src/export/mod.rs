//! Export an image for machines without a registry, and load it there.
//!
//! `export` checks the target first (an existing file is refused unless
//! `--force`; a directory or an unwritable place always), then streams the
//! engine's `save` (a docker-archive tar) through compression into a hidden
//! temporary file next to the destination, hashing the compressed bytes as
//! they are written. The engine's own temporary files go to a private
//! directory next to it that is removed on success, failure and SIGINT/SIGTERM.
//! Then `FILE.sha256` (`sha256sum -c` compatible) and `FILE.manifest.json` are
//! written, and the tarball is renamed to its final name last. A killed export
//! leaves only hidden `.FILE.*` names, never a file that looks finished.
//!
//! `load` checks the file against its checksum file (and the manifest, when
//! present) before anything reaches the engine, then decompresses it itself
//! (gzip, zstd or plain tar, by magic bytes) and streams it into the
//! engine's `load`, so it works whatever compressions the engine reads.
//!
//! One concern per file: [`target`] (where it goes), [`compress`] (the
//! streaming threads), [`write`] (`export`), [`verify`], [`load`],
//! [`manifest`], [`signal`], [`error`].

mod compress;
mod error;
mod load;
mod manifest;
mod signal;
mod target;
mod verify;
mod write;

pub use error::ExportError;
pub use load::{LoadOutcome, detect_compression, load};
pub use manifest::{
    ExportManifest, ExportedImage, LABEL_BASE_IMAGE, LABEL_CONTEXT_DIGEST, LABEL_EXTENSIONS,
    LABEL_TOOL_VERSION, MANIFEST_VERSION, default_file_name, sidecar_paths,
};
pub use signal::stop_on_signals;
pub use verify::{Verified, verify};
pub use write::{ExportOutcome, ExportRequest, check_request, export};
// For `export --since` (src/ship/delta.rs): the same target checks and commits.
pub(crate) use manifest::Written;
pub(crate) use signal::stopped;
pub(crate) use target::Target;
pub(crate) use write::put_in_place;

use serde::{Deserialize, Serialize};
use std::fmt;

/// zstd level 1: keeps the export near the speed of the engine's own `save`
/// (benches/export.sh) at about the size of `gzip -6`.
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;
pub const DEFAULT_GZIP_LEVEL: u32 = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Fast and small; read by Podman and current Docker
    #[default]
    #[value(alias = "zst")]
    Zstd,
    /// For old Docker daemons (Podman 4.3 cannot load it)
    #[value(alias = "gz")]
    Gzip,
    /// Plain tar, for any loader
    None,
}

impl Compression {
    /// File name suffix after `.tar`.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Zstd => ".tar.zst",
            Self::Gzip => ".tar.gz",
            Self::None => ".tar",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = clap::ValueEnum::to_possible_value(self).expect("no skipped variants");
        f.write_str(v.get_name())
    }
}
