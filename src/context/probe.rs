//! Facts read from the base image itself: it is run once, with no network,
//! with [`PROBE_SCRIPT`] (`probe.sh`, shipped in the binary), which prints
//! the OS, glibc, libcurl, the PostgreSQL majors installed with each one's
//! `pg_config --configure` and the versions of the extensions it has, and
//! the preload list the base would use by itself, computed as Spilo
//! computes it (`/scripts/configure_spilo.py`'s generated list, then
//! `spilo_commons.append_extensions` for the major; spilo-contract.md).
//!
//! The facts are cached by the base's image id under
//! `<cache dir>/base-facts/<hex>.json`, written atomically: an id names one
//! image's content, so the facts of an id never change; a retagged base has
//! a new id and is probed again. A cache entry that does not parse is probed
//! again and replaced.

use crate::engine::{Engine, EngineError};
use crate::fsutil;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The probe, run with `/bin/sh -s` in the base.
pub const PROBE_SCRIPT: &str = include_str!("probe.sh");

/// The cache's subdirectory for base facts.
const CACHE_SUBDIR: &str = "base-facts";

/// What one PostgreSQL major of the base is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MajorFacts {
    /// `postgres --version`'s number, e.g. `15.10`.
    pub version: String,
    /// `pg_config --configure`, when the base has a `pg_config` of that major.
    pub configure: Option<String>,
    /// The `--with-*` build options of `configure` (icu, llvm, openssl, …).
    pub with: Vec<String>,
    /// Extensions the base provides for this major: name → default_version.
    pub extensions: BTreeMap<String, String>,
}

/// What the probe read from a base image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseFacts {
    /// The image id the facts belong to (`sha256:<hex>`).
    pub image_id: String,
    pub os: Option<String>,
    pub glibc: Option<String>,
    /// Library versions that matter for building, e.g. `libcurl = 7.88`.
    pub libs: BTreeMap<String, String>,
    /// The major whose `postgres` is on PATH.
    pub main_major: Option<u32>,
    pub majors: BTreeMap<u32, MajorFacts>,
    /// The base's own `shared_preload_libraries`; None: it cannot be known
    /// (no Spilo configuration script, or Spilo's table is not readable).
    pub preload: Option<Vec<String>>,
}

impl BaseFacts {
    /// Parse the probe's output (KEY=VALUE lines, `probe=1` first, `done=1` last).
    pub fn parse(image_id: &str, text: &str) -> Result<Self, String> {
        let mut facts = BaseFacts {
            image_id: image_id.to_string(),
            os: None,
            glibc: None,
            libs: BTreeMap::new(),
            main_major: None,
            majors: BTreeMap::new(),
            preload: None,
        };
        let (mut started, mut done) = (false, false);
        let major = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| format!("{s:?} is not a PostgreSQL major"))
        };
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            match key.split('.').collect::<Vec<_>>().as_slice() {
                ["probe"] => started = true,
                ["done"] => done = true,
                ["os"] => facts.os = Some(value.to_string()),
                ["glibc"] => facts.glibc = Some(value.to_string()),
                ["lib", name] => {
                    facts.libs.insert(name.to_string(), short_version(value));
                }
                ["main"] => facts.main_major = Some(major(value)?),
                ["pg"] => {
                    facts.majors.entry(major(value)?).or_default();
                }
                ["pg", m, "version"] => facts.majors.entry(major(m)?).or_default().version = value.into(),
                ["pg", m, "configure"] => {
                    let entry = facts.majors.entry(major(m)?).or_default();
                    entry.with = with_options(value);
                    entry.configure = Some(value.to_string());
                }
                ["ext", m, name @ ..] if !name.is_empty() => {
                    facts
                        .majors
                        .entry(major(m)?)
                        .or_default()
                        .extensions
                        .insert(name.join("."), value.to_string());
                }
                ["preload"] => {
                    facts.preload = Some(
                        value
                            .split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect(),
                    )
                }
                _ => {}
            }
        }
        if !started || !done {
            return Err("the probe did not run to its end (is /bin/sh in the image?)".into());
        }
        Ok(facts)
    }

    /// Where the facts of `image_id` are cached.
    /// The cached facts of `image_id` as this version of the probe reads
    /// them (a changed probe script reads the base again).
    pub fn cache_path(cache_dir: &Path, image_id: &str) -> PathBuf {
        let hex = image_id.trim_start_matches("sha256:");
        let probe = crate::hash::Sha256Digest::of(PROBE_SCRIPT.as_bytes()).to_hex();
        cache_dir
            .join(CACHE_SUBDIR)
            .join(format!("{hex}-probe-{}.json", &probe[..12]))
    }

    /// The base's facts: make sure the image is there (pull it when it is
    /// not), then the cached facts of its id, else run the probe and cache
    /// what it read. Nothing is written when the image is not there.
    pub fn read(engine: &Engine, reference: &str, cache_dir: &Path) -> Result<(Self, bool), ProbeError> {
        let id = engine.ensure_image(reference)?;
        let path = Self::cache_path(cache_dir, &id);
        if let Ok(bytes) = std::fs::read(&path)
            && let Ok(facts) = serde_json::from_slice::<BaseFacts>(&bytes)
            && facts.image_id == id
        {
            return Ok((facts, true));
        }
        let out = engine.run_script(reference, PROBE_SCRIPT)?;
        let facts = Self::parse(&id, &out).map_err(|reason| ProbeError::Unreadable {
            reference: reference.to_string(),
            reason,
        })?;
        let json = serde_json::to_vec_pretty(&facts).expect("facts serialize");
        std::fs::create_dir_all(fsutil::parent_dir(&path))
            .and_then(|_| fsutil::write_atomic(&path, &json))
            .map_err(|source| ProbeError::Cache { path, source })?;
        Ok((facts, false))
    }

    /// The `--with-*` options of a major, for humans.
    pub fn features(&self, major: u32) -> Vec<String> {
        self.majors
            .get(&major)
            .map(|m| m.with.clone())
            .unwrap_or_default()
    }
}

/// `7.88.1` → `7.88` (what the catalog's `build_requires` compare).
fn short_version(v: &str) -> String {
    v.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// `'--with-icu' '--with-llvm' …` → `["icu", "llvm", …]`, sorted.
fn with_options(configure: &str) -> Vec<String> {
    let mut v: Vec<String> = configure
        .split_whitespace()
        .map(|w| w.trim_matches('\''))
        .filter_map(|w| w.strip_prefix("--with-"))
        .map(|w| w.split('=').next().unwrap_or(w).to_string())
        .collect();
    v.sort();
    v.dedup();
    v
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the facts of the base image {reference} cannot be read: {reason}")]
    Unreadable { reference: String, reason: String },
    #[error("cannot cache the base's facts at {path}")]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl crate::error::Diagnostic for ProbeError {
    fn hint(&self) -> Option<String> {
        match self {
            ProbeError::Engine(e) => e.hint(),
            ProbeError::Unreadable { .. } => Some(
                "the base must have /bin/sh; give its facts with flags and skip the probe \
                 (generate --no-probe --pg N --base-glibc V --base-lib libcurl=V --base-preload LIST)"
                    .into(),
            ),
            ProbeError::Cache { .. } => {
                Some("check that the cache directory (--cache-dir) is writable".into())
            }
        }
    }

    fn exit_code(&self) -> crate::error::ExitCode {
        match self {
            ProbeError::Engine(e) => e.exit_code(),
            ProbeError::Unreadable { .. } => crate::error::ExitCode::Usage,
            ProbeError::Cache { .. } => crate::error::ExitCode::Failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_probe_output() {
        let text = "probe=1\nos=Debian GNU/Linux 12\nglibc=2.36\nlib.libcurl=7.88.1\nmain=15\npg=15\n\
                    pg.15.version=15.10\npg.15.configure='--prefix=/usr' '--with-icu' '--with-llvm' \
                    '--with-openssl'\next.15.pg_cron=1.4\next.15.plpgsql=1.0\npg=17\n\
                    preload=pg_stat_statements,pg_cron\ndone=1\n";
        let f = BaseFacts::parse("sha256:ab", text).unwrap();
        assert_eq!(f.os.as_deref(), Some("Debian GNU/Linux 12"));
        assert_eq!(f.libs["libcurl"], "7.88");
        assert_eq!(f.main_major, Some(15));
        assert_eq!(f.majors.keys().copied().collect::<Vec<_>>(), [15, 17]);
        assert_eq!(f.majors[&15].with, ["icu", "llvm", "openssl"]);
        assert_eq!(f.majors[&15].extensions["pg_cron"], "1.4");
        assert_eq!(
            f.preload.as_deref(),
            Some(&["pg_stat_statements".to_string(), "pg_cron".into()][..])
        );
        let no_preload = text.replace("preload=pg_stat_statements,pg_cron\n", "");
        assert_eq!(BaseFacts::parse("sha256:ab", &no_preload).unwrap().preload, None);
        assert!(BaseFacts::parse("sha256:ab", "probe=1\nos=x\n").is_err());
    }
}
