//! The extension catalog: one TOML file per extension in `extensions/`,
//! embedded in the binary as the default; `--catalog DIR` replaces it.
//!
//! The catalog answers "which sources, at which digests, built how" for the
//! stages after it ([`crate::fetch`], [`crate::context`]).

mod load;
pub(crate) use load::line_of;
pub mod model;

pub use model::*;

use crate::error::{Diagnostic, ExitCode};
use include_dir::{Dir, include_dir};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

static EMBEDDED: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/extensions");

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot read the catalog at {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the catalog directory {path} {reason}")]
    NotADirectory { path: PathBuf, reason: String },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("the catalog at {path} has no extension files (*.toml)")]
    Empty { path: PathBuf },
    #[error("extension {name:?} is defined twice: {first} and {second}")]
    Duplicate {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("extensions require each other in a cycle: {} (in {})", cycle.join(" → "), files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    RequiresCycle {
        /// The names around the cycle, the first repeated at the end.
        cycle: Vec<String>,
        files: Vec<PathBuf>,
    },
    #[error("unknown extension {name:?}{}", did_you_mean(suggestion))]
    Unknown {
        name: String,
        suggestion: Option<String>,
    },
    #[error("unknown extensions: {}", names.iter().map(|(n, s)| format!("{n:?}{}", did_you_mean(s))).collect::<Vec<_>>().join(", "))]
    UnknownNames {
        /// Each unknown name and the closest known one.
        names: Vec<(String, Option<String>)>,
    },
    #[error("{name} is left out (-{name}) but {by} requires it")]
    ExcludedButRequired { name: String, by: String },
    #[error("conflicting versions of {name}: {name}@{first} and {name}@{second}")]
    Conflict {
        name: String,
        first: String,
        second: String,
    },
    #[error("{name} has no pinned source for version {version} (the catalog has {available})")]
    UnknownVersion {
        name: String,
        version: String,
        available: String,
    },
    #[error("{name} {version} does not support PostgreSQL {major} (supported: {range})")]
    UnsupportedMajor {
        name: String,
        version: String,
        major: u32,
        range: PgRange,
    },
    #[error("{name} {version} needs {lib} ≥ {needed} to build, but the base image has {lib} {have}")]
    BaseTooOld {
        name: String,
        version: String,
        lib: String,
        needed: String,
        have: String,
    },
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(" (did you mean {s:?}?)"))
        .unwrap_or_default()
}

impl Diagnostic for CatalogError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            CatalogError::Io { .. } => {
                "check that --catalog names a readable directory of *.toml files".into()
            }
            CatalogError::NotADirectory { .. } => "give --catalog (or PGHA_CATALOG) a directory holding one \
                <name>.toml per extension, or leave it out for the built-in catalog"
                .into(),
            CatalogError::Invalid { .. } => {
                "fix that line of the catalog file; `pgha-image extensions show vector` shows a valid entry"
                    .into()
            }
            CatalogError::Empty { .. } => {
                "point --catalog at a directory holding one <name>.toml per extension".into()
            }
            CatalogError::Duplicate { .. } => "keep one file per extension".into(),
            CatalogError::RequiresCycle { .. } => "an extension cannot be created before itself: remove one \
                of these `requires` entries (a `requires` names what must exist first)"
                .into(),
            CatalogError::Unknown { .. } | CatalogError::UnknownNames { .. } => {
                "`pgha-image extensions list` shows the catalog's extensions; contrib extensions \
                (pgcrypto, uuid-ossp, pg_stat_statements, …) come with PostgreSQL and are not listed"
                    .into()
            }
            CatalogError::ExcludedButRequired { name, by } => {
                format!("leave {by} out as well (-{by}), or keep {name}")
            }
            CatalogError::Conflict { name, .. } => format!(
                "an image holds one version of each extension: ask for one (--extensions {name}@VERSION)"
            ),
            CatalogError::UnknownVersion { name, .. } => {
                format!(
                    "ask for one of the listed versions (e.g. --extensions {name}@VERSION), or add its source and digest to the catalog"
                )
            }
            CatalogError::UnsupportedMajor { .. } => {
                "leave the extension out (--extensions), or choose PostgreSQL majors it supports (--pg)"
                    .into()
            }
            CatalogError::BaseTooOld { name, .. } => format!(
                "leave the version unpinned so that the newest version that builds on this base is chosen, or ask for an older {name} explicitly"
            ),
        })
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            CatalogError::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
                ExitCode::Usage
            }
            CatalogError::Io { .. } => ExitCode::Failure,
            _ => ExitCode::Usage,
        }
    }
}

impl Extension {
    /// The entry for version `v`, or an error listing the versions there are.
    pub fn require_version(&self, v: &str) -> Result<&Version, CatalogError> {
        self.version(v).ok_or_else(|| CatalogError::UnknownVersion {
            name: self.name.clone(),
            version: v.to_string(),
            available: self
                .versions
                .iter()
                .map(|v| v.version.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

/// The set of known extensions, by SQL name.
#[derive(Debug, Clone)]
pub struct Catalog {
    extensions: BTreeMap<String, Extension>,
}

/// One extension chosen for a build, at a resolved version.
#[derive(Debug, Clone)]
pub struct Selected<'a> {
    pub extension: &'a Extension,
    pub version: &'a Version,
    /// Why a version other than the pinned one was chosen, if it was.
    pub note: Option<String>,
}

/// What to select from the catalog.
#[derive(Debug, Clone, Default)]
pub struct SelectRequest {
    /// `name`, `+name` or `name@version`, the words `default` / `all`, or
    /// `-name` (left out of what the others select). None: the default set.
    pub names: Option<Vec<String>>,
    /// The PostgreSQL majors the image is built for; each selected extension must support them all.
    pub pg_majors: Vec<u32>,
    /// Versions of libraries in the base image (e.g. `libcurl = 7.81`), for
    /// versions whose build needs a minimum. Empty: assume any is fine.
    pub base_libs: BTreeMap<String, String>,
}

/// Refuse a catalog whose `requires` (among its own extensions; others are
/// contrib) go round in a cycle: no order creates them. The first cycle
/// found (in name order) is named, with the files that hold it.
fn check_requires_acyclic(exts: &BTreeMap<String, (PathBuf, Extension)>) -> Result<(), CatalogError> {
    // 0 unvisited, 1 on the current path, 2 done.
    fn visit(
        name: &str,
        exts: &BTreeMap<String, (PathBuf, Extension)>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(name).copied().unwrap_or(0) {
            2 => return None,
            1 => {
                let from = path.iter().position(|n| n == name).unwrap_or(0);
                let mut cycle = path[from..].to_vec();
                cycle.push(name.to_string());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(name.to_string(), 1);
        path.push(name.to_string());
        for r in &exts[name].1.requires {
            if exts.contains_key(r)
                && let Some(c) = visit(r, exts, state, path)
            {
                return Some(c);
            }
        }
        path.pop();
        state.insert(name.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for name in exts.keys() {
        if let Some(cycle) = visit(name, exts, &mut state, &mut Vec::new()) {
            let mut files: Vec<PathBuf> = cycle[..cycle.len() - 1]
                .iter()
                .map(|n| exts[n].0.clone())
                .collect();
            files.sort();
            return Err(CatalogError::RequiresCycle { cycle, files });
        }
    }
    Ok(())
}

impl Catalog {
    /// The catalog built into the binary.
    pub fn embedded() -> Result<Self, CatalogError> {
        let mut files: Vec<_> = EMBEDDED
            .files()
            .filter(|f| f.path().extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort_by_key(|f| f.path().to_path_buf());
        let mut exts = BTreeMap::new();
        for f in files {
            let path = Path::new("extensions").join(f.path());
            let text = f.contents_utf8().ok_or_else(|| CatalogError::Invalid {
                path: path.clone(),
                line: 1,
                message: "not UTF-8".into(),
            })?;
            let ext = load::parse(&path, text)?;
            exts.insert(ext.name.clone(), (path, ext));
        }
        check_requires_acyclic(&exts)?;
        Ok(Self {
            extensions: exts.into_iter().map(|(k, (_, e))| (k, e)).collect(),
        })
    }

    /// The catalog in `dir`: every `*.toml` file in it.
    pub fn from_dir(dir: &Path) -> Result<Self, CatalogError> {
        let io = |source| CatalogError::Io {
            path: dir.to_path_buf(),
            source,
        };
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(CatalogError::NotADirectory {
                    path: dir.to_path_buf(),
                    reason: "is not a directory".into(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CatalogError::NotADirectory {
                    path: dir.to_path_buf(),
                    reason: "does not exist".into(),
                });
            }
            Err(e) => return Err(io(e)),
        }
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(io)?
            .into_iter()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(CatalogError::Empty {
                path: dir.to_path_buf(),
            });
        }
        let mut exts: BTreeMap<String, (PathBuf, Extension)> = BTreeMap::new();
        for p in paths {
            let text = load::read(&p)?;
            let ext = load::parse(&p, &text)?;
            if let Some((first, _)) = exts.get(&ext.name) {
                return Err(CatalogError::Duplicate {
                    name: ext.name,
                    first: first.clone(),
                    second: p,
                });
            }
            exts.insert(ext.name.clone(), (p, ext));
        }
        check_requires_acyclic(&exts)?;
        Ok(Self {
            extensions: exts.into_iter().map(|(k, (_, e))| (k, e)).collect(),
        })
    }

    /// `dir` if given, else the embedded catalog.
    pub fn load(dir: Option<&Path>) -> Result<Self, CatalogError> {
        match dir {
            Some(d) => Self::from_dir(d),
            None => Self::embedded(),
        }
    }

    /// All extensions, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Extension> {
        self.extensions.values()
    }

    pub fn len(&self) -> usize {
        self.extensions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.extensions.is_empty()
    }

    /// One extension by SQL name; an unknown name suggests the closest one.
    pub fn get(&self, name: &str) -> Result<&Extension, CatalogError> {
        self.extensions.get(name).ok_or_else(|| CatalogError::Unknown {
            name: name.to_string(),
            suggestion: self.closest(name),
        })
    }

    fn closest(&self, name: &str) -> Option<String> {
        let lower = name.to_ascii_lowercase();
        self.extensions
            .keys()
            .map(|k| (strsim::jaro_winkler(&lower, k), k))
            .filter(|(score, _)| *score > 0.7)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, k)| k.clone())
    }

    /// The extensions of the default Supabase set.
    pub fn default_set(&self) -> impl Iterator<Item = &Extension> {
        self.iter().filter(|e| e.set == Set::Default)
    }

    /// Resolve a selection: names (with optional `@version`), plus the
    /// catalog extensions they require, each at a version that supports every
    /// requested major and builds on the base.
    pub fn select(&self, req: &SelectRequest) -> Result<Vec<Selected<'_>>, CatalogError> {
        // name -> explicitly requested version
        let mut wanted: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut excluded: Vec<String> = Vec::new();
        match &req.names {
            None => {
                for e in self.default_set() {
                    wanted.insert(e.name.clone(), None);
                }
            }
            Some(names) => {
                let mut unknown: Vec<(String, Option<String>)> = Vec::new();
                for n in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
                    if let Some(name) = n.strip_prefix('-') {
                        let name = name.trim();
                        if !self.extensions.contains_key(name) {
                            if !unknown.iter().any(|(u, _)| u == name) {
                                unknown.push((name.to_string(), self.closest(name)));
                            }
                        } else if !excluded.iter().any(|e| e == name) {
                            excluded.push(name.to_string());
                        }
                        continue;
                    }
                    let n = n.strip_prefix('+').map(str::trim).unwrap_or(n);
                    match n {
                        "default" => self.default_set().for_each(|e| {
                            wanted.entry(e.name.clone()).or_insert(None);
                        }),
                        "all" => self.iter().for_each(|e| {
                            wanted.entry(e.name.clone()).or_insert(None);
                        }),
                        _ => {
                            let (name, version) = match n.split_once('@') {
                                Some((n, v)) => {
                                    (n.trim(), Some(v.trim().trim_start_matches('v').to_string()))
                                }
                                None => (n, None),
                            };
                            if !self.extensions.contains_key(name) {
                                if !unknown.iter().any(|(u, _)| u == name) {
                                    unknown.push((name.to_string(), self.closest(name)));
                                }
                                continue;
                            }
                            // A version asked for wins over a bare name; two
                            // different versions of one extension conflict.
                            match (wanted.get(name), version) {
                                (Some(Some(first)), Some(second)) if *first != second => {
                                    return Err(CatalogError::Conflict {
                                        name: name.to_string(),
                                        first: first.clone(),
                                        second,
                                    });
                                }
                                (_, Some(v)) => {
                                    wanted.insert(name.to_string(), Some(v));
                                }
                                (None, None) => {
                                    wanted.insert(name.to_string(), None);
                                }
                                (Some(_), None) => {}
                            }
                        }
                    }
                }
                match unknown.len() {
                    0 => {}
                    1 => {
                        let (name, suggestion) = unknown.pop().expect("one");
                        return Err(CatalogError::Unknown { name, suggestion });
                    }
                    _ => return Err(CatalogError::UnknownNames { names: unknown }),
                }
            }
        }
        if wanted.is_empty() && !excluded.is_empty() {
            // Only `-name`s: they leave names out of the default set.
            for e in self.default_set() {
                wanted.insert(e.name.clone(), None);
            }
        }
        for name in &excluded {
            wanted.remove(name);
        }
        // Close over requirements that the catalog knows (others, like pgcrypto, are contrib).
        let mut queue: Vec<String> = wanted.keys().cloned().collect();
        while let Some(n) = queue.pop() {
            for r in &self.get(&n)?.requires {
                if excluded.contains(r) {
                    return Err(CatalogError::ExcludedButRequired {
                        name: r.clone(),
                        by: n.clone(),
                    });
                }
                if self.extensions.contains_key(r) && !wanted.contains_key(r) {
                    wanted.insert(r.clone(), None);
                    queue.push(r.clone());
                }
            }
        }

        let mut out = Vec::new();
        for (name, explicit) in wanted {
            let ext = self.get(&name)?;
            out.push(self.resolve(ext, explicit.as_deref(), req)?);
        }
        Ok(out)
    }

    fn resolve<'a>(
        &'a self,
        ext: &'a Extension,
        explicit: Option<&str>,
        req: &SelectRequest,
    ) -> Result<Selected<'a>, CatalogError> {
        for &major in &req.pg_majors {
            if !ext.pg_majors.contains(major) {
                return Err(CatalogError::UnsupportedMajor {
                    name: ext.name.clone(),
                    version: explicit.unwrap_or(&ext.version).to_string(),
                    major,
                    range: ext.pg_majors,
                });
            }
        }
        let unmet = |v: &Version| -> Option<CatalogError> {
            v.build_requires.iter().find_map(|(lib, needed)| {
                let have = req.base_libs.get(lib)?;
                (compare_versions(have, needed) == std::cmp::Ordering::Less).then(|| {
                    CatalogError::BaseTooOld {
                        name: ext.name.clone(),
                        version: v.version.clone(),
                        lib: lib.clone(),
                        needed: needed.clone(),
                        have: have.clone(),
                    }
                })
            })
        };
        if let Some(v) = explicit {
            let version = ext.require_version(v)?;
            if let Some(e) = unmet(version) {
                return Err(e);
            }
            return Ok(Selected {
                extension: ext,
                version,
                note: None,
            });
        }
        let pinned = ext.pinned();
        let Some(err) = unmet(pinned) else {
            return Ok(Selected {
                extension: ext,
                version: pinned,
                note: None,
            });
        };
        // The pinned version cannot build on this base: take the newest that can.
        let mut candidates: Vec<&Version> = ext.versions.iter().filter(|v| unmet(v).is_none()).collect();
        candidates.sort_by(|a, b| compare_versions(&b.version, &a.version));
        match candidates.first() {
            Some(v) => Ok(Selected {
                extension: ext,
                version: v,
                note: Some(format!("{err}; using {} {} instead", ext.name, v.version)),
            }),
            None => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_loads() {
        let c = Catalog::embedded().unwrap();
        assert!(c.len() >= 8, "{}", c.len());
    }

    #[test]
    fn unknown_name_suggests_closest() {
        let c = Catalog::embedded().unwrap();
        let e = c.get("pg_crn").unwrap_err();
        assert!(e.to_string().contains("did you mean \"pg_cron\""), "{e}");
    }

    #[test]
    fn pg_net_falls_back_on_old_libcurl() {
        let c = Catalog::embedded().unwrap();
        let mut req = SelectRequest {
            names: Some(vec!["pg_net".into()]),
            pg_majors: vec![16],
            base_libs: BTreeMap::new(),
        };
        let s = c.select(&req).unwrap();
        assert_eq!(s[0].version.version, "0.19.5");
        req.base_libs.insert("libcurl".into(), "7.81".into());
        let s = c.select(&req).unwrap();
        assert_eq!(s[0].version.version, "0.9.2");
        assert!(s[0].note.as_deref().unwrap().contains("libcurl"));
        req.names = Some(vec!["pg_net@0.19.5".into()]);
        assert!(matches!(c.select(&req), Err(CatalogError::BaseTooOld { .. })));
    }

    #[test]
    fn requirements_are_closed_over() {
        let c = Catalog::embedded().unwrap();
        let req = SelectRequest {
            names: Some(vec!["index_advisor".into()]),
            ..Default::default()
        };
        let names: Vec<_> = c
            .select(&req)
            .unwrap()
            .iter()
            .map(|s| s.extension.name.clone())
            .collect();
        assert_eq!(names, ["hypopg", "index_advisor"]);
    }
}
