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
    pgrx_sha256: Option<String>,
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

/// The largest catalog file read (a real one is a few KiB).
const MAX_FILE: u64 = 1 << 20;

/// Read one catalog file: a regular file (symlinks followed) of at most
/// [`MAX_FILE`] bytes of UTF-8. Opened without blocking, so that a FIFO
/// named `x.toml` cannot hang the load, and a link to `/dev/zero` cannot
/// fill memory.
pub fn read(path: &Path) -> Result<String, CatalogError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| CatalogError::Io {
        path: path.to_path_buf(),
        source,
    };
    let invalid = |message: String| CatalogError::Invalid {
        path: path.to_path_buf(),
        line: 1,
        message,
    };
    let file = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(invalid("not a regular file".into()));
    }
    if meta.len() > MAX_FILE {
        return Err(invalid(format!(
            "{} bytes is too large for a catalog file (at most {MAX_FILE})",
            meta.len()
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(invalid(format!(
            "too large for a catalog file (at most {MAX_FILE} bytes)"
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        CatalogError::Invalid {
            path: path.to_path_buf(),
            line,
            message: "not UTF-8 text".into(),
        }
    })
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
    // These words end up in the generated Dockerfile and server settings:
    // keep them to the characters their kind of word has, and no field may
    // hold a control character (a newline would start a new instruction).
    let word_err =
        |what: &str, v: &str, rule: &str| at(raw.build.span(), format!("build.{what} = {v:?}: {rule}"));
    if let Some(p) = &b.pgrx
        && !valid_version(p)
    {
        return Err(word_err("pgrx", p, "not a version"));
    }
    for f in &b.features {
        if f.is_empty()
            || !f
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-/+.".contains(c))
        {
            return Err(word_err("features", f, "not a cargo feature name"));
        }
    }
    for (what, list) in [
        ("packages", &b.packages),
        ("runtime_packages", &b.runtime_packages),
        ("make_flags", &b.make_flags),
    ] {
        for v in list {
            if v.is_empty() || v.chars().any(char::is_control) {
                return Err(word_err(what, v, "empty, or holds a control character"));
            }
        }
    }
    if b.kind == BuildKind::Pgrx && b.pgrx_sha256.is_none() {
        return Err(at(
            raw.build.span(),
            "build.kind = \"pgrx\" needs build.pgrx_sha256, the checksum of the cargo-pgrx crate \
             (the `cksum` of its version in the crates.io index)"
                .into(),
        ));
    }
    let pgrx_sha256: Option<Sha256Digest> = match &b.pgrx_sha256 {
        Some(s) => Some(s.parse().map_err(|_| {
            at(
                raw.build.span(),
                format!("build.pgrx_sha256 = {s:?} is not 64 hex characters"),
            )
        })?),
        None => None,
    };
    let top_err = |what: &str, v: &str, rule: &str| at(raw.name.span(), format!("{what} = {v:?}: {rule}"));
    if let Some(l) = &raw.preload_library
        && (l.is_empty() || !l.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)))
    {
        return Err(top_err("preload_library", l, "not a library name"));
    }
    for (k, v) in &raw.settings {
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || "_.".contains(c)) {
            return Err(top_err("settings key", k, "not a server setting name"));
        }
        if v.chars().any(char::is_control) {
            return Err(top_err(&format!("settings.{k}"), v, "holds a control character"));
        }
    }
    for (what, v) in [
        ("description", &raw.description),
        ("license", &raw.license),
        ("homepage", &raw.homepage),
    ] {
        if v.chars().any(char::is_control) {
            return Err(top_err(what, v, "holds a control character"));
        }
    }
    for r in &raw.requires {
        if r.is_empty()
            || !r
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(top_err("requires", r, "not an extension name"));
        }
    }
    if let Some(m) = raw.base.as_ref().and_then(|r| r.min_version.as_ref())
        && !valid_version(m)
    {
        return Err(top_err("base.min_version", m, "not a version"));
    }
    let build = Build {
        kind: b.kind,
        packages: b.packages.clone(),
        runtime_packages: b.runtime_packages.clone(),
        make_flags: b.make_flags.clone(),
        pgrx: b.pgrx.clone(),
        pgrx_sha256,
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
        // The version becomes part of file names (<name>-<version><suffix>
        // in a mirror and a build context): no separators, no `..`.
        if !valid_version(&v.version) {
            return Err(at(
                span,
                format!(
                    "version {:?} is not a version: use letters, digits and . _ + ~ - \
                    (not first), at most 64 characters",
                    v.version
                ),
            ));
        }
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
            return Err(at(
                v.url.span(),
                format!("url = {:?} is not an http(s) URL", crate::redact::url(url)),
            ));
        }
        if let Some(t) = &v.tag
            && (t.is_empty() || t.chars().any(|c| c.is_control() || c.is_whitespace()))
        {
            return Err(at(span, format!("tag = {t:?} is not a git tag name")));
        }
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(at(
                v.url.span(),
                format!(
                    "url = {:?} holds whitespace or a control character",
                    crate::redact::url(url)
                ),
            ));
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
        match (v.provenance, v.confirmed_by.is_empty()) {
            (Provenance::Independent, true) => {
                return Err(at(
                    span,
                    format!(
                        "version {}: provenance = \"independent\" needs confirmed_by (the records \
                         that agree with the digest); hint: say \"reproduced-only\" when none does",
                        v.version
                    ),
                ));
            }
            (Provenance::ReproducedOnly, false) => {
                return Err(at(
                    span,
                    format!(
                        "version {}: confirmed_by lists records, but provenance = \"reproduced-only\"; \
                         hint: say \"independent\"",
                        v.version
                    ),
                ));
            }
            _ => {}
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

/// A version string safe to put in a file name: `[A-Za-z0-9._+~-]`, not
/// starting with `.` or `-`, at most 64 characters.
fn valid_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && !v.starts_with(['.', '-'])
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '~' | '-'))
}

/// 1-based line number of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
