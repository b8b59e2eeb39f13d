//! The image's build manifest (`/etc/pgha/build-manifest.json`, written by
//! `pgha-image generate`): the server settings the deployment must set, so
//! that they cannot drift from the image.
//!
//! Read from the image itself through the engine (`create` + `cp`, nothing
//! runs), or from a file given with `--image-manifest` for offline
//! rendering (the file copied out of the image, or a `generate` output's
//! `manifest.json`).

use super::ManifestsError;
use crate::engine::Engine;
use std::io::Read;
use std::path::Path;

use crate::contract::BuildManifest;
pub use crate::contract::layout::BUILD_MANIFEST as IMAGE_MANIFEST_PATH;

pub fn from_file(path: &Path) -> Result<BuildManifest, ManifestsError> {
    let bytes = crate::fsutil::read_limited(path, crate::fsutil::SMALL_FILE_MAX_BYTES).map_err(|source| {
        ManifestsError::Read {
            path: path.to_path_buf(),
            source,
        }
    })?;
    BuildManifest::from_json(&bytes).map_err(|detail| ManifestsError::BadImageManifest {
        path: path.to_path_buf(),
        detail,
    })
}

/// The outcome of looking into an image.
pub enum FromImage {
    Found(Box<BuildManifest>),
    /// The image exists but has no manifest: not built by pgha-image.
    NoManifest,
    NotFound,
}

/// Copy the manifest out of the image: `create` a container (never
/// started), `cp` the file out as a tar stream, remove the container.
pub fn from_image(engine: &Engine, image: &str) -> Result<FromImage, ManifestsError> {
    if !engine.exists(image)? {
        return Ok(FromImage::NotFound);
    }
    let name = format!("pgha-manifests-read-{}", std::process::id());
    // A command is given so that an image without CMD can be created too; it never runs.
    engine.run_ok(&["create", "--name", &name, image, "/pgha-manifests-never-runs"])?;
    let result = copy_out(engine, &name, image);
    let _ = engine.run_raw(&["rm", "-f", &name]);
    result
}

fn copy_out(engine: &Engine, container: &str, image: &str) -> Result<FromImage, ManifestsError> {
    let Some(tar) = engine.copy_out(container, IMAGE_MANIFEST_PATH)? else {
        return Ok(FromImage::NoManifest);
    };
    let bad = |detail: String| ManifestsError::BadImageFile {
        image: image.to_string(),
        detail,
    };
    let mut archive = tar::Archive::new(&tar[..]);
    for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
        let entry = entry.map_err(|e| bad(e.to_string()))?;
        if entry.header().entry_type().is_file() {
            let mut bytes = Vec::new();
            let limit = crate::fsutil::SMALL_FILE_MAX_BYTES;
            entry
                .take(limit + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| bad(e.to_string()))?;
            if bytes.len() as u64 > limit {
                return Err(bad(format!("it is larger than {limit} bytes")));
            }
            return BuildManifest::from_json(&bytes)
                .map(|m| FromImage::Found(Box::new(m)))
                .map_err(bad);
        }
    }
    Ok(FromImage::NoManifest)
}
