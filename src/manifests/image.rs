//! The image's build manifest (`/etc/pgha/build-manifest.json`, written by
//! `pgha-image generate`): the server settings the deployment must set, so
//! that they cannot drift from the image.
//!
//! Read from the image itself through the engine (`create` + `cp`, nothing
//! runs), or from a file given with `--image-manifest` for offline
//! rendering (the file copied out of the image, or a `generate` output's
//! `manifest.json`).

use super::ManifestsError;
use crate::engine::{Engine, EngineError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::Stdio;

/// Where the image keeps its manifest.
pub const IMAGE_MANIFEST_PATH: &str = "/etc/pgha/build-manifest.json";

/// What the deployment needs from the image's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageManifest {
    pub tool_version: String,
    pub pg_majors: Vec<u32>,
    pub shared_preload_libraries: Vec<String>,
    /// Local parameters (postgresql.parameters), the preload list included.
    pub parameters: BTreeMap<String, String>,
    /// Cluster-wide parameters (bootstrap.dcs.postgresql.parameters).
    pub dcs_parameters: BTreeMap<String, String>,
}

impl ImageManifest {
    /// Parse the image's manifest, or a `generate` output's `manifest.json`
    /// (which holds it under `manifest`).
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let inner = match v.get("manifest") {
            Some(m) if m.is_object() => m.clone(),
            _ => v,
        };
        let m: ImageManifest = serde_json::from_value(inner).map_err(|e| e.to_string())?;
        if m.pg_majors.is_empty() {
            return Err("it lists no PostgreSQL major (pg_majors)".into());
        }
        Ok(m)
    }

    /// Every parameter, local and cluster-wide (the operator takes them in one list).
    pub fn all_parameters(&self) -> BTreeMap<String, String> {
        let mut all = self.parameters.clone();
        all.extend(self.dcs_parameters.clone());
        all
    }
}

pub fn from_file(path: &Path) -> Result<ImageManifest, ManifestsError> {
    let bytes = crate::fsutil::read_limited(path, crate::fsutil::SMALL_FILE_MAX_BYTES).map_err(|source| {
        ManifestsError::Read {
            path: path.to_path_buf(),
            source,
        }
    })?;
    ImageManifest::from_json(&bytes).map_err(|detail| ManifestsError::BadImageManifest {
        path: path.to_path_buf(),
        detail,
    })
}

/// The outcome of looking into an image.
pub enum FromImage {
    Found(ImageManifest),
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
    let mut create = engine.command();
    // A command is given so that an image without CMD can be created too; it never runs.
    create
        .args(["create", "--name", &name, image, "/pgha-manifests-never-runs"])
        .stdin(Stdio::null());
    let out = create.output().map_err(|source| EngineError::Spawn {
        program: engine.program().display().to_string(),
        source,
    })?;
    if !out.status.success() {
        return Err(EngineError::Command {
            command: format!("{} create {image}", engine.kind()),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }
        .into());
    }
    let result = copy_out(engine, &name, image);
    let _ = engine
        .command()
        .args(["rm", "-f", &name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    result
}

fn copy_out(engine: &Engine, container: &str, image: &str) -> Result<FromImage, ManifestsError> {
    let out = engine
        .command()
        .args(["cp", &format!("{container}:{IMAGE_MANIFEST_PATH}"), "-"])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| EngineError::Spawn {
            program: engine.program().display().to_string(),
            source,
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).to_ascii_lowercase();
        if stderr.contains("no such file")
            || stderr.contains("could not find")
            || stderr.contains("not found")
        {
            return Ok(FromImage::NoManifest);
        }
        return Err(EngineError::Command {
            command: format!("{} cp {container}:{IMAGE_MANIFEST_PATH} -", engine.kind()),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }
        .into());
    }
    let bad = |detail: String| ManifestsError::BadImageFile {
        image: image.to_string(),
        detail,
    };
    let mut archive = tar::Archive::new(&out.stdout[..]);
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
            return ImageManifest::from_json(&bytes)
                .map(FromImage::Found)
                .map_err(bad);
        }
    }
    Ok(FromImage::NoManifest)
}
