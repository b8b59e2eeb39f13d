//! `FILE.manifest.json`: what an export holds, and the names of the files
//! written next to it.

use super::{Compression, ExportError};
use crate::hash::Sha256Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Labels the build sets, read back into the manifest.
pub const LABEL_BASE_IMAGE: &str = "io.pgha.base-image";
pub const LABEL_EXTENSIONS: &str = "io.pgha.extensions";
pub const LABEL_TOOL_VERSION: &str = "io.pgha.tool-version";
pub const LABEL_CONTEXT_DIGEST: &str = "io.pgha.context-digest";

/// Format of the manifest; bumped when fields change meaning.
pub const MANIFEST_VERSION: u32 = 1;

/// The JSON manifest written next to an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportManifest {
    pub manifest_version: u32,
    pub tag: String,
    pub image_id: String,
    /// File name of the tarball (no directory).
    pub file: String,
    pub compression: Compression,
    /// Size of the file as written (compressed).
    pub size: u64,
    /// Size of the engine's `save` tar before compression.
    pub uncompressed_size: u64,
    /// SHA-256 of the file as written.
    pub sha256: Sha256Digest,
    /// From the image's `io.pgha.base-image` label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_image: Option<String>,
    /// From the image's `io.pgha.extensions` label (JSON), as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<serde_json::Value>,
    /// The pgha-image version that built the image (`io.pgha.tool-version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tool_version: Option<String>,
    /// The build context digest (`io.pgha.context-digest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_digest: Option<String>,
    /// Every image in the file when it holds several (`export --spec`: a
    /// deployment's images, `tag` the first); `load` checks each one's id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ExportedImage>,
    /// The pgha-image version that exported it.
    pub exported_by: String,
    pub engine: String,
}

/// One image of a file holding several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedImage {
    pub tag: String,
    pub image_id: String,
}

/// What was written: the file's sha256 and size, and the size of the tar in it.
pub(crate) struct Written {
    pub sha256: Sha256Digest,
    pub size: u64,
    pub uncompressed_size: u64,
}

impl ExportManifest {
    /// The manifest of `file`, just written from `tag` by `engine`; the
    /// image's labels fill the optional fields. (`export` and `export --since`.)
    pub(crate) fn new(
        engine: &crate::engine::Engine,
        tag: &str,
        image_id: String,
        file: String,
        compression: Compression,
        written: Written,
        labels: &BTreeMap<String, String>,
    ) -> Self {
        let mut m = ExportManifest {
            manifest_version: MANIFEST_VERSION,
            tag: tag.to_string(),
            image_id,
            file,
            compression,
            size: written.size,
            uncompressed_size: written.uncompressed_size,
            sha256: written.sha256,
            base_image: None,
            extensions: None,
            image_tool_version: None,
            context_digest: None,
            images: Vec::new(),
            exported_by: crate::TOOL_VERSION.to_string(),
            engine: engine.kind().to_string(),
        };
        m.fill_from_labels(labels);
        m
    }

    fn fill_from_labels(&mut self, labels: &BTreeMap<String, String>) {
        self.base_image = labels.get(LABEL_BASE_IMAGE).cloned();
        self.extensions = labels
            .get(LABEL_EXTENSIONS)
            .map(|s| serde_json::from_str(s).unwrap_or_else(|_| serde_json::Value::String(s.clone())));
        self.image_tool_version = labels.get(LABEL_TOOL_VERSION).cloned();
        self.context_digest = labels.get(LABEL_CONTEXT_DIGEST).cloned();
    }

    /// Read a manifest, refusing one that is not the tool's (unknown shape or version).
    pub fn read(path: &Path) -> Result<Option<ExportManifest>, ExportError> {
        let bytes = match crate::fsutil::read_limited(path, crate::fsutil::SMALL_FILE_MAX_BYTES) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ExportError::io("reading", path)(e)),
        };
        let bad = |detail: String| ExportError::BadManifest {
            path: path.to_path_buf(),
            detail,
        };
        let m: ExportManifest = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        if m.manifest_version != MANIFEST_VERSION {
            return Err(bad(format!(
                "manifest_version {} (this pgha-image reads {MANIFEST_VERSION})",
                m.manifest_version
            )));
        }
        Ok(Some(m))
    }

    pub(crate) fn to_json(&self) -> Vec<u8> {
        let mut json = serde_json::to_vec_pretty(self).expect("manifest serializes");
        json.push(b'\n');
        json
    }
}

/// `supabase-patroni:v1.0` → `supabase-patroni_v1.0.tar.zst`; registry and
/// path parts are dropped (`ghcr.io/acme/x:1` → `x_1.tar.zst`), a missing tag is `latest`.
pub fn default_file_name(tag: &str, compression: Compression) -> Result<String, ExportError> {
    let no_digest = tag.split('@').next().unwrap_or(tag);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    let (name, t) = match last.split_once(':') {
        Some((n, t)) => (n, t),
        None => (last, "latest"),
    };
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let (name, t) = (clean(name), clean(t));
    if name.is_empty() || name.starts_with('.') {
        return Err(ExportError::BadTag(tag.to_string()));
    }
    Ok(format!("{name}_{t}{}", compression.extension()))
}

/// `FILE.sha256` and `FILE.manifest.json` for a tarball path.
pub fn sidecar_paths(file: &Path) -> (PathBuf, PathBuf) {
    let mut c = file.as_os_str().to_owned();
    c.push(".sha256");
    let mut m = file.as_os_str().to_owned();
    m.push(".manifest.json");
    (PathBuf::from(c), PathBuf::from(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_from_tags() {
        assert_eq!(
            default_file_name("supabase-patroni:v1.0", Compression::Zstd).unwrap(),
            "supabase-patroni_v1.0.tar.zst"
        );
        assert_eq!(
            default_file_name("ghcr.io/acme/db:16-x", Compression::Gzip).unwrap(),
            "db_16-x.tar.gz"
        );
        assert_eq!(
            default_file_name("localhost:5000/db", Compression::None).unwrap(),
            "db_latest.tar"
        );
        assert!(default_file_name("", Compression::Zstd).is_err());
    }
}
