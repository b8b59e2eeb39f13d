//! Reading and validating catalog files. Every problem is reported with the
//! file, the line and what is wrong.

use super::CatalogError;
use super::model::*;
use crate::hash::Sha256Digest;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExtension {
    name: Spanned<String>,
    description: String,
    #[serde(default)]
    homepage: String,
    license: String,
    set: Set,
    version: Spanned<String>,
    pg_majors: Spanned<RawPgRange>,
    #[serde(default)]
    requires: Vec<String>,
    #[serde(default = "no_preload")]
    preload: Preload,
    #[serde(default)]
    preload_library: Option<String>,
    #[serde(default)]
    settings: BTreeMap<String, String>,
    build: Spanned<RawBuild>,
    #[serde(default)]
    base: Option<RawBase>,
    versions: Vec<Spanned<RawVersion>>,
    #[serde(default)]
    notes: Option<String>,
    #[serde(default)]
    smoke: Option<Smoke>,
}

fn no_preload() -> Preload {
    Preload::No
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPgRange {
    min: u32,
    #[serde(default)]
    max: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuild {
    kind: BuildKind,
    #[serde(default)]
    packages: Vec<String>,
    #[serde(default)]
    runtime_packages: Vec<String>,
    #[serde(default)]
    make_flags: Vec<String>,
    #[serde(default)]
    pgrx: Option<String>,
    #[serde(default)]
    features: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBase {
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    from_source: Option<BuildKind>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVersion {
    version: String,
    url: Spanned<String>,
    sha256: Spanned<String>,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    commit: Option<Spanned<String>>,
    provenance: Provenance,
    #[serde(default)]
    confirmed_by: Vec<String>,
    #[serde(default)]
    build_requires: BTreeMap<String, String>,
}

/// Parse and validate one catalog file's text. `path` is only for messages.
pub fn parse(path: &Path, text: &str) -> Result<Extension, CatalogError> {
    let at = |span: Range<usize>, message: String| CatalogError::Invalid {
        path: path.to_path_buf(),
        line: line_of(text, span.start),
        message,
    };

    let raw: RawExtension = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(1);
        CatalogError::Invalid {
            path: path.to_path_buf(),
            line,
            message: e.message().trim().to_string(),
        }
    })?;

    let name = raw.name.get_ref().clone();
    if let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        && stem != name
    {
        return Err(at(
            raw.name.span(),
            format!(
                "name = {name:?} does not match the file name {stem:?}.toml; name the file after the SQL extension"
            ),
        ));
    }
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(at(
            raw.name.span(),
            format!("{name:?} is not a valid extension name"),
        ));
    }

    let pg = raw.pg_majors.get_ref();
    if let Some(max) = pg.max
        && max < pg.min
    {
        return Err(at(
            raw.pg_majors.span(),
            format!("pg_majors: max {max} is below min {}", pg.min),
        ));
    }
    let pg_majors = PgRange {
        min: pg.min,
        max: pg.max,
    };

    let b = raw.build.get_ref();
    if b.kind == BuildKind::Pgrx && b.pgrx.is_none() {
        return Err(at(
            raw.build.span(),
            "build.kind = \"pgrx\" needs build.pgrx, the cargo-pgrx version".into(),
        ));
    }
    let build = Build {
        kind: b.kind,
        packages: b.packages.clone(),
        runtime_packages: b.runtime_packages.clone(),
        make_flags: b.make_flags.clone(),
        pgrx: b.pgrx.clone(),
        features: b.features.clone(),
    };
    let base = raw.base.map(|r| BaseProvided {
        min_version: r.min_version,
        from_source: r.from_source,
    });
    if build.kind == BuildKind::Base && base.is_none() {
        return Err(at(
            raw.build.span(),
            "build.kind = \"base\" needs a [base] table (min_version, from_source)".into(),
        ));
    }

    if raw.versions.is_empty() {
        return Err(at(
            raw.version.span(),
            "no [[versions]]: every extension needs at least one pinned source".into(),
        ));
    }
    let mut versions = Vec::new();
    for v in raw.versions {
        let span = v.span();
        let v = v.into_inner();
        if versions.iter().any(|x: &Version| x.version == v.version) {
            return Err(at(span, format!("version {} is listed twice", v.version)));
        }
        let sha256: Sha256Digest = v.sha256.get_ref().parse().map_err(|_| {
            at(
                v.sha256.span(),
                format!("sha256 = {:?} is not 64 hex characters", v.sha256.get_ref()),
            )
        })?;
        let url = v.url.get_ref();
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() < 12 {
            return Err(at(v.url.span(), format!("url = {url:?} is not an http(s) URL")));
        }
        if let Some(c) = &v.commit
            && (c.get_ref().len() != 40 || !c.get_ref().bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(at(
                c.span(),
                format!("commit = {:?} is not a 40-character git commit id", c.get_ref()),
            ));
        }
        if v.tag.is_none() && v.commit.is_none() {
            return Err(at(
                span,
                format!(
                    "version {}: say which tag or commit the archive stands for",
                    v.version
                ),
            ));
        }
        versions.push(Version {
            version: v.version,
            source: Source {
                url: url.clone(),
                sha256,
                tag: v.tag,
                commit: v.commit.map(Spanned::into_inner),
                provenance: v.provenance,
                confirmed_by: v.confirmed_by,
            },
            build_requires: v.build_requires,
        });
    }
    let version = raw.version.get_ref().clone();
    if !versions.iter().any(|v| v.version == version) {
        return Err(at(
            raw.version.span(),
            format!(
                "version = {version:?} has no [[versions]] entry (listed: {})",
                versions
                    .iter()
                    .map(|v| v.version.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }

    Ok(Extension {
        name,
        description: raw.description,
        homepage: raw.homepage,
        license: raw.license,
        set: raw.set,
        version,
        pg_majors,
        requires: raw.requires,
        preload: raw.preload,
        preload_library: raw.preload_library,
        settings: raw.settings,
        build,
        base,
        versions,
        notes: raw.notes,
        smoke: raw.smoke,
    })
}

/// 1-based line number of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
