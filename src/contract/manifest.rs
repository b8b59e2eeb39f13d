//! The build manifest: what went into an image, written once by the context
//! builder (`context::pack`, into the context as
//! [`super::layout::CONTEXT_MANIFEST`], which the Dockerfile copies to
//! [`super::layout::BUILD_MANIFEST`]) and read by `verify`, `manifests` and
//! `ship`.
//!
//! **Versioned, read leniently.** [`BuildManifest::version`] is
//! [`BUILD_MANIFEST_VERSION`] in what this tool writes; manifests written
//! before it was recorded read as version 0. Readers ignore fields they do
//! not know and take the default of a field that is absent, so an image of
//! an older or newer tool version can still be verified and deployed. Only
//! `tool_version` and a non-empty `pg_majors` are required.

use crate::hash::Sha256Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The version of the manifest format this tool writes. 1: the first with a
/// `version` field (the format before it reads as 0, and is otherwise the same).
pub const BUILD_MANIFEST_VERSION: u32 = 1;

/// One file of the build context.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestFile {
    pub path: String,
    pub sha256: Sha256Digest,
    pub size: u64,
    pub mode: String,
}

/// One extension as it went in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestExtension {
    pub name: String,
    pub version: String,
    pub recipe: String,
    /// The verified source (absent for base-provided extensions).
    #[serde(default)]
    pub sha256: Option<Sha256Digest>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub stage: Option<String>,
    #[serde(default)]
    pub min_version: Option<String>,
    /// The catalog's smoke test ([`crate::catalog::Smoke`]) as JSON: read
    /// when `verify` runs it, so that a smoke this tool cannot read fails
    /// that extension's check only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smoke: Option<serde_json::Value>,
}

/// What went into the image (stored in the context, so without its own digest).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BuildManifest {
    /// The format's version ([`BUILD_MANIFEST_VERSION`]; 0 when absent).
    #[serde(default)]
    pub version: u32,
    pub tool_version: String,
    #[serde(default)]
    pub base_image: String,
    #[serde(default)]
    pub base: serde_json::Value,
    pub pg_majors: Vec<u32>,
    #[serde(default)]
    pub extensions: Vec<ManifestExtension>,
    #[serde(default)]
    pub shared_preload_libraries: Vec<String>,
    /// Local parameters (`postgresql.parameters`), the preload list included.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// Cluster-wide parameters (`bootstrap.dcs.postgresql.parameters`).
    #[serde(default)]
    pub dcs_parameters: BTreeMap<String, String>,
    /// The image's default Patroni configuration ([`super::layout::SPILO_DEFAULTS`]):
    /// the settings above as the launch wrapper merges them under the
    /// deployment's `SPILO_CONFIGURATION` ([`spilo_configuration`]).
    #[serde(default)]
    pub spilo_configuration: serde_json::Value,
    #[serde(default)]
    pub runtime_packages: Vec<String>,
    #[serde(default)]
    pub bootstrap_bin: serde_json::Value,
    #[serde(default)]
    pub source_date_epoch: u64,
    #[serde(default)]
    pub notes: Vec<String>,
    #[serde(default)]
    pub files: Vec<ManifestFile>,
}

/// The Patroni configuration that applies the image's server settings: the
/// local ones under `postgresql.parameters`, the cluster-wide ones under
/// `bootstrap.dcs.postgresql.parameters` (left out when there are none).
/// Spilo merges it over its generated configuration.
pub fn spilo_configuration(
    local: &BTreeMap<String, String>,
    dcs: &BTreeMap<String, String>,
) -> serde_json::Value {
    let mut root = serde_json::Map::new();
    if !dcs.is_empty() {
        root.insert(
            "bootstrap".into(),
            serde_json::json!({ "dcs": { "postgresql": { "parameters": dcs } } }),
        );
    }
    root.insert("postgresql".into(), serde_json::json!({ "parameters": local }));
    serde_json::Value::Object(root)
}

impl BuildManifest {
    /// Read a manifest: the image's [`super::layout::BUILD_MANIFEST`], the
    /// context's copy, or a `generate` output's `manifest.json` (the same
    /// fields with the output's own around them, or under `manifest`).
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let inner = match v.get("manifest") {
            Some(m) if m.is_object() => m.clone(),
            _ => v,
        };
        let m: BuildManifest = serde_json::from_value(inner).map_err(|e| e.to_string())?;
        if m.pg_majors.is_empty() {
            return Err("it lists no PostgreSQL major (pg_majors)".into());
        }
        Ok(m)
    }

    /// `SPILO_CONFIGURATION` for members of this image (JSON, which is
    /// YAML): the recorded configuration, or, for a manifest that does not
    /// record it, one made from the settings as the builder makes it.
    pub fn spilo_configuration(&self) -> String {
        match &self.spilo_configuration {
            serde_json::Value::Null => {
                let mut local = self.parameters.clone();
                local
                    .entry("shared_preload_libraries".into())
                    .or_insert_with(|| self.shared_preload_libraries.join(","));
                spilo_configuration(&local, &self.dcs_parameters).to_string()
            }
            serde_json::Value::String(s) => s.clone(),
            v => v.to_string(),
        }
    }

    /// Every server setting the image needs, local and cluster-wide, in one
    /// list (the operator's); a setting in both is the local one, as in Patroni.
    pub fn all_parameters(&self) -> BTreeMap<String, String> {
        let mut all = self.dcs_parameters.clone();
        all.extend(self.parameters.clone());
        all
    }

    pub fn has_extension(&self, name: &str) -> bool {
        self.extensions.iter().any(|e| e.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_without_the_newer_fields_reads_and_makes_the_configuration() {
        let m = BuildManifest::from_json(
            serde_json::json!({
                "tool_version": "0.1.0", "base_image": "b", "pg_majors": [15, 16],
                "extensions": [
                    {"name": "vector", "version": "0.8.0", "recipe": "pgxs",
                     "sha256": "867a2c32b3d4e0a0e5eda7e0d4f1c0d1e0c9f7b0a4c8f7e6d5c4b3a291807f6e",
                     "smoke": {"sql": "SELECT 1", "expect": "1", "create": false}},
                    {"name": "pg_cron", "version": "1.6", "recipe": "base", "min_version": "1.6"}
                ],
                "shared_preload_libraries": ["pg_cron"],
                "parameters": {"cron.database_name": "postgres", "wal_level": "replica"},
                "dcs_parameters": {"wal_level": "logical"},
                "some_future_field": 1
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(m.version, 0);
        let smoke: crate::catalog::Smoke =
            serde_json::from_value(m.extensions[0].smoke.clone().unwrap()).unwrap();
        assert_eq!((smoke.expect.as_str(), smoke.create), ("1", false));
        let c: serde_json::Value = serde_json::from_str(&m.spilo_configuration()).unwrap();
        assert_eq!(
            c["postgresql"]["parameters"]["shared_preload_libraries"],
            "pg_cron"
        );
        assert_eq!(
            c["bootstrap"]["dcs"]["postgresql"]["parameters"]["wal_level"],
            "logical"
        );
        // The local setting wins over the cluster-wide one.
        assert_eq!(m.all_parameters()["wal_level"], "replica");
        assert!(m.has_extension("pg_cron") && !m.has_extension("pgsodium"));
    }

    #[test]
    fn a_manifest_without_majors_is_refused() {
        let e = BuildManifest::from_json(br#"{"tool_version": "0.1.0", "pg_majors": []}"#).unwrap_err();
        assert!(e.contains("pg_majors"), "{e}");
    }
}
