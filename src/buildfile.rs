//! The build file, `pgha.toml`: the inputs of `generate`, `plan` and `build`
//! written down once, so that every upgrade and every CI job builds the same
//! thing without retyping ten flags.
//!
//! ```toml
//! base = "ghcr.io/zalando/spilo-16:3.2-p2"   # --base-image
//! majors = [16]                               # --pg
//! extensions = ["default", "-pg_graphql"]     # --extensions
//! from_source = ["pg_cron"]                   # --from-source
//! mirror = "sources"                          # --mirror (a directory: relative to this file)
//! platform = "linux/amd64"                    # --platform
//! tag = "supabase-patroni:{pg}-{base_tag}"    # --tag, with {pg} and {base_tag} filled in
//! engine = "podman"                           # --engine
//! base_preload = ["pg_stat_statements"]       # --base-preload
//! base_glibc = "2.36"                         # --base-glibc
//! base_libs = { libcurl = "7.88" }            # --base-lib
//! ```
//!
//! Layers, lowest first: the defaults, then the build file (`pgha.toml` in
//! the working directory, or `--config FILE`) or, with `build --like`, the
//! inputs an earlier build recorded, then the command line. A flag replaces
//! the value below it; an `--extensions` list made only of `+NAME` / `-NAME`
//! items changes the list below it instead. An unknown key is an error with
//! the file and line.

use crate::engine::EngineChoice;
use crate::error::{Diagnostic, ExitCode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The build file's name in the working directory.
pub const FILE_NAME: &str = "pgha.toml";

/// Every input a build file, a recorded build or the command line can give.
/// None: not given at this layer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub majors: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_source: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The tag, or a pattern of it with `{pg}` and `{base_tag}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_preload: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_glibc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_libs: Option<BTreeMap<String, String>>,
    /// The Rust image of pgrx stages, pinned by digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rust_image: Option<String>,
    /// The timestamp of the context's entries (SOURCE_DATE_EPOCH wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_date_epoch: Option<u64>,
}

/// Is `list` made only of `+NAME` / `-NAME` changes?
pub fn is_change_list(list: &[String]) -> bool {
    !list.is_empty()
        && list
            .iter()
            .all(|n| n.trim().starts_with('+') || n.trim().starts_with('-'))
}

impl BuildSettings {
    /// `self` over `lower`: each value given here wins; an extension list of
    /// only `+NAME` / `-NAME` items is appended to the one below.
    pub fn over(self, lower: BuildSettings) -> BuildSettings {
        let extensions = match (self.extensions, lower.extensions) {
            (Some(changes), Some(mut below)) if is_change_list(&changes) => {
                below.extend(changes);
                Some(below)
            }
            (Some(changes), None) if is_change_list(&changes) => {
                Some(std::iter::once("default".to_string()).chain(changes).collect())
            }
            (mine, below) => mine.or(below),
        };
        BuildSettings {
            base: self.base.or(lower.base),
            majors: self.majors.or(lower.majors),
            extensions,
            from_source: self.from_source.or(lower.from_source),
            mirror: self.mirror.or(lower.mirror),
            platform: self.platform.or(lower.platform),
            tag: self.tag.or(lower.tag),
            engine: self.engine.or(lower.engine),
            base_preload: self.base_preload.or(lower.base_preload),
            base_glibc: self.base_glibc.or(lower.base_glibc),
            rust_image: self.rust_image.or(lower.rust_image),
            base_libs: match (self.base_libs, lower.base_libs) {
                (Some(mine), Some(mut below)) => {
                    below.extend(mine);
                    Some(below)
                }
                (mine, below) => mine.or(below),
            },
            source_date_epoch: self.source_date_epoch.or(lower.source_date_epoch),
        }
    }

    /// Parse a build file's text; `path` names it in errors and anchors a
    /// relative `mirror` directory.
    pub fn parse(path: &Path, text: &str) -> Result<Self, BuildFileError> {
        let mut s: BuildSettings = toml::from_str(text).map_err(|e| BuildFileError::Invalid {
            path: path.to_path_buf(),
            line: e
                .span()
                .map(|s| crate::catalog::line_of(text, s.start))
                .unwrap_or(1),
            message: e.message().to_string(),
        })?;
        if let Some(e) = &s.engine {
            e.parse::<EngineChoice>()
                .map_err(|message| BuildFileError::Invalid {
                    path: path.to_path_buf(),
                    line: line_of_key(text, "engine"),
                    message,
                })?;
        }
        // A relative directory is relative to the file, not to where the build runs.
        if let Some(m) = &s.mirror
            && !m.contains("://")
            && Path::new(m).is_relative()
        {
            let dir = crate::fsutil::parent_dir(path);
            s.mirror = Some(dir.join(m).display().to_string());
        }
        Ok(s)
    }

    /// The build file: `explicit` (it must exist), else `pgha.toml` in
    /// `cwd` when there is one.
    pub fn load(explicit: Option<&Path>, cwd: &Path) -> Result<Option<(PathBuf, Self)>, BuildFileError> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => {
                let p = cwd.join(FILE_NAME);
                if !p.is_file() {
                    return Ok(None);
                }
                p
            }
        };
        let text = std::fs::read_to_string(&path).map_err(|source| BuildFileError::Read {
            path: path.clone(),
            source,
        })?;
        Ok(Some((path.clone(), Self::parse(&path, &text)?)))
    }

    /// The engine, parsed (checked when the file was read).
    pub fn engine_choice(&self) -> Option<EngineChoice> {
        self.engine.as_deref().and_then(|e| e.parse().ok())
    }

    /// The tag with `{pg}` (the majors joined by `-`) and `{base_tag}` (the
    /// base reference's tag, `latest` without one) filled in.
    pub fn expand_tag(pattern: &str, majors: &[u32], base: &str) -> String {
        let pg = majors.iter().map(|m| m.to_string()).collect::<Vec<_>>().join("-");
        let base_tag = crate::context::base::ImageRef::parse(base)
            .ok()
            .and_then(|r| r.tag)
            .unwrap_or_else(|| "latest".into());
        pattern.replace("{pg}", &pg).replace("{base_tag}", &base_tag)
    }
}

fn line_of_key(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| l.trim_start().starts_with(key))
        .map(|i| i + 1)
        .unwrap_or(1)
}

/// The label that records the inputs which are not in the context
/// (mirror, platform, engine, tag): `build --like IMAGE` reads it.
pub const INPUTS_LABEL: &str = "io.pgha.build-inputs";

/// The inputs an earlier build recorded, from its manifest (`DIR/manifest.json`
/// of `generate`/`build`, or a copy of the image's
/// `/etc/pgha/build-manifest.json`) or from the image itself (its manifest
/// and its [`INPUTS_LABEL`]).
pub fn recorded(like: &str, engine: EngineChoice) -> Result<BuildSettings, crate::Error> {
    let path = Path::new(like);
    let (manifest, label) = if path.is_file() {
        let bytes = std::fs::read(path).map_err(|source| BuildFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        (bytes, None)
    } else {
        let engine = crate::engine::Engine::detect(engine)?;
        if !engine.exists(like)? {
            return Err(BuildFileError::LikeNotFound { like: like.into() }.into());
        }
        let text = engine.run_script(like, "cat /etc/pgha/build-manifest.json\n")?;
        (text.into_bytes(), engine.labels(like)?.remove(INPUTS_LABEL))
    };
    let bad = |detail: String| BuildFileError::NoInputs {
        like: like.into(),
        detail,
    };
    let v: serde_json::Value = serde_json::from_slice(&manifest).map_err(|e| bad(e.to_string()))?;
    let inputs = v.get("inputs").filter(|i| i.is_object()).ok_or_else(|| {
        bad("it records no inputs (built by an older pgha-image, or not a build manifest)".into())
    })?;
    let mut s: BuildSettings = serde_json::from_value(inputs.clone()).map_err(|e| bad(e.to_string()))?;
    s.source_date_epoch = v.get("source_date_epoch").and_then(|e| e.as_u64());
    if let Some(label) = label {
        let env: BuildSettings =
            serde_json::from_str(&label).map_err(|e| bad(format!("{INPUTS_LABEL}: {e}")))?;
        s = env.over(s);
    }
    Ok(s)
}

#[derive(Debug, thiserror::Error)]
pub enum BuildFileError {
    #[error("--like {like}: neither a file nor an image in the engine's store")]
    LikeNotFound { like: String },
    #[error("--like {like}: {detail}")]
    NoInputs { like: String, detail: String },
    #[error("{}:{line}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("cannot read the build file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Diagnostic for BuildFileError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            BuildFileError::Invalid { .. } => "the build file's keys are base, majors, extensions, from_source, \
                 mirror, platform, tag, engine, base_preload, base_glibc, base_libs (README: \"The build file\")"
                .into(),
            BuildFileError::Read { .. } => "give an existing file with --config FILE".into(),
            BuildFileError::LikeNotFound { .. } => "give the image (as `podman images` / `docker images` list it) \
                 or the manifest.json of its build directory"
                .into(),
            BuildFileError::NoInputs { .. } => "rebuild it once with this pgha-image, giving the inputs as \
                 flags or in pgha.toml; later builds can then use --like"
                .into(),
        })
    }

    fn exit_code(&self) -> ExitCode {
        ExitCode::Usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_errors_with_file_and_line() {
        let e =
            BuildSettings::parse(Path::new("/x/pgha.toml"), "base = \"a:1\"\n\nmajor = [15]\n").unwrap_err();
        let m = e.to_string();
        assert!(m.starts_with("/x/pgha.toml:3: ") && m.contains("major"), "{m}");
        let e = BuildSettings::parse(Path::new("p.toml"), "majors = [15]\nengine = \"lxc\"\n").unwrap_err();
        assert!(e.to_string().starts_with("p.toml:2: "), "{e}");
    }

    #[test]
    fn flags_win_and_change_lists_append() {
        let file = BuildSettings::parse(
            Path::new("/w/pgha.toml"),
            "base = \"b:1\"\nextensions = [\"default\", \"-pg_graphql\"]\nmirror = \"src\"\n",
        )
        .unwrap();
        assert_eq!(file.mirror.as_deref(), Some("/w/src"));
        let flags = BuildSettings {
            extensions: Some(vec!["+pgtap".into()]),
            base: Some("c:2".into()),
            ..Default::default()
        };
        let s = flags.over(file.clone());
        assert_eq!(s.base.as_deref(), Some("c:2"));
        assert_eq!(s.extensions.unwrap(), ["default", "-pg_graphql", "+pgtap"]);
        let flags = BuildSettings {
            extensions: Some(vec!["vector".into()]),
            ..Default::default()
        };
        assert_eq!(flags.over(file).extensions.unwrap(), ["vector"]);
        assert_eq!(
            BuildSettings::expand_tag("s:{pg}-{base_tag}", &[15, 17], "x/spilo:3.2"),
            "s:15-17-3.2"
        );
    }
}
