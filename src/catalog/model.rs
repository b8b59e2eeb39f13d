//! The catalog's data model: what one `extensions/<name>.toml` file says.

use crate::hash::Sha256Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// One extension of the catalog.
#[derive(Debug, Clone, Serialize)]
pub struct Extension {
    /// The SQL name, as in `CREATE EXTENSION name`.
    pub name: String,
    pub description: String,
    pub homepage: String,
    pub license: String,
    /// In the default Supabase set, or optional.
    pub set: Set,
    /// The pinned version: the one used unless another is asked for.
    pub version: String,
    /// PostgreSQL majors the extension supports.
    pub pg_majors: PgRange,
    /// Extensions that must exist before this one (`CREATE EXTENSION ... CASCADE`).
    pub requires: Vec<String>,
    /// Whether the library must be in `shared_preload_libraries`.
    pub preload: Preload,
    /// The library name for `shared_preload_libraries`, when it differs from `name`.
    pub preload_library: Option<String>,
    /// Server settings the extension needs (`name = value`).
    pub settings: BTreeMap<String, String>,
    pub build: Build,
    /// Set when the Spilo base image already bundles the extension.
    pub base: Option<BaseProvided>,
    /// Every version with a pinned source, the pinned one among them.
    pub versions: Vec<Version>,
    /// Free-form notes for operators (shown by `extensions show`).
    pub notes: Option<String>,
    /// SQL that proves the library loads and works, with its expected output.
    pub smoke: Option<Smoke>,
}

impl Extension {
    /// The pinned version's entry.
    pub fn pinned(&self) -> &Version {
        self.version(&self.version)
            .expect("validated: the pinned version is among [[versions]]")
    }

    pub fn version(&self, v: &str) -> Option<&Version> {
        self.versions.iter().find(|x| x.version == v)
    }

    /// The library name to put in `shared_preload_libraries`.
    pub fn library(&self) -> &str {
        self.preload_library.as_deref().unwrap_or(&self.name)
    }
}

/// A smoke test: SQL that proves an extension's library loads and works in a
/// running server (not only that `CREATE EXTENSION` succeeds), and the output
/// it must give. The `[smoke]` table of a catalog file; also carried in the
/// image's build manifest, so that `pgha-image verify` runs it without the
/// catalog.
///
/// How it runs (one definition, [`Smoke::script`] and [`Smoke::check`]): as a
/// superuser in database `postgres` on the primary, the script is fed to
/// `psql` ([`SMOKE_PSQL_ARGS`]: unaligned, tuples only, quiet, stop on the
/// first error; every statement in its own transaction, so a `DO` block may
/// `COMMIT`). The script is `CREATE EXTENSION IF NOT EXISTS "<name>" CASCADE`
/// (unless `create = false`, for preload modules and output plugins), then
/// `SET search_path = public, extensions`, then `sql`. The output, each
/// line's trailing blanks and the blank lines at either end dropped, must
/// equal `expect` treated the same way. A smoke must leave nothing behind and
/// pass when run again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smoke {
    pub sql: String,
    pub expect: String,
    /// Whether the runner creates the extension first (default true).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub create: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// The psql arguments a smoke script is run with (the script on stdin).
pub const SMOKE_PSQL_ARGS: &[&str] = &["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"];

impl Smoke {
    /// The whole script to feed to `psql` [`SMOKE_PSQL_ARGS`] for `extension`.
    pub fn script(&self, extension: &str) -> String {
        let mut s = String::from("SET client_min_messages = warning;\n");
        if self.create {
            s.push_str(&format!(
                "CREATE EXTENSION IF NOT EXISTS {} CASCADE;\n",
                postgres_protocol::escape::escape_identifier(extension)
            ));
        }
        s.push_str("SET search_path = public, extensions;\n");
        s.push_str(self.sql.trim_end());
        s.push('\n');
        s
    }

    /// Whether psql's output is the expected one; Err says what differs.
    pub fn check(&self, output: &str) -> Result<(), String> {
        let (got, want) = (normalise(output), normalise(&self.expect));
        if got == want {
            Ok(())
        } else {
            Err(format!("expected:\n{want}\ngot:\n{got}"))
        }
    }
}

fn normalise(text: &str) -> String {
    text.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim_matches('\n')
        .to_string()
}

/// One version of an extension and its pinned source.
#[derive(Debug, Clone, Serialize)]
pub struct Version {
    pub version: String,
    pub source: Source,
    /// Minimum versions of base-image libraries needed to build this version,
    /// e.g. `libcurl = "7.83"` for pg_net ≥ 0.9.3.
    pub build_requires: BTreeMap<String, String>,
}

/// Where a version's source comes from and how it was confirmed.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub url: String,
    pub sha256: Sha256Digest,
    /// The git tag the archive stands for, if any.
    pub tag: Option<String>,
    /// The git commit the archive stands for, if known.
    pub commit: Option<String>,
    pub provenance: Provenance,
    /// Independent records that agree with the digest.
    pub confirmed_by: Vec<String>,
}

impl Source {
    /// Whether an independent record agrees with the pinned digest
    /// (`provenance = "independent"`, which the loader only accepts with a
    /// `confirmed_by`); an unconfirmed one was only reproduced by downloading.
    pub fn is_confirmed(&self) -> bool {
        self.provenance == Provenance::Independent && !self.confirmed_by.is_empty()
    }
}

impl Source {
    /// The upstream file's suffix, e.g. `.tar.gz` or `.deb`.
    pub fn suffix(&self) -> &'static str {
        let path = self.url.split(['?', '#']).next().unwrap_or(&self.url);
        for s in [
            ".tar.gz", ".tar.xz", ".tar.bz2", ".tar.zst", ".tgz", ".deb", ".zip",
        ] {
            if path.ends_with(s) {
                return s;
            }
        }
        ".tar.gz"
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provenance {
    /// An independent package recipe records the same digest.
    Independent,
    /// Only reproduced by downloading; the first real download confirms it.
    ReproducedOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Set {
    /// Part of the default Supabase set.
    Default,
    Optional,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preload {
    /// Never needs preloading.
    No,
    /// Must be in `shared_preload_libraries`.
    Required,
    /// Needed only for some features (e.g. pgsodium's server key).
    WhenUsed,
}

/// How an extension's source becomes installed files.
#[derive(Debug, Clone, Serialize)]
pub struct Build {
    pub kind: BuildKind,
    /// Build-time system packages, besides a compiler and `postgresql-server-dev-N`.
    pub packages: Vec<String>,
    /// Run-time system packages the final image needs.
    pub runtime_packages: Vec<String>,
    /// Extra arguments to `make` (PGXS kinds).
    pub make_flags: Vec<String>,
    /// The cargo-pgrx version (pgrx kind).
    pub pgrx: Option<String>,
    /// The checksum of the cargo-pgrx crate (pgrx kind): the sha256 of its
    /// published `.crate`, which carries the Cargo.lock it is built with.
    pub pgrx_sha256: Option<Sha256Digest>,
    /// The cargo features to build with (pgrx kind).
    pub features: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuildKind {
    /// C, built with PGXS (`make USE_PGXS=1 && make install`).
    Pgxs,
    /// SQL only, installed with PGXS (no compiler needed).
    Sql,
    /// Rust, built with cargo-pgrx.
    Pgrx,
    /// A prebuilt package (`.deb`) pinned by digest.
    Prebuilt,
    /// Bundled by the base image: checked there, not rebuilt.
    Base,
}

impl fmt::Display for BuildKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BuildKind::Pgxs => "pgxs",
            BuildKind::Sql => "sql",
            BuildKind::Pgrx => "pgrx",
            BuildKind::Prebuilt => "prebuilt",
            BuildKind::Base => "base",
        })
    }
}

/// The base image bundles this extension.
#[derive(Debug, Clone, Serialize)]
pub struct BaseProvided {
    /// The lowest version acceptable from the base.
    pub min_version: Option<String>,
    /// How to build the pinned source instead, when the user asks for it
    /// (`--from-source NAME`). None: the base's is the only option.
    pub from_source: Option<BuildKind>,
}

/// An inclusive range of PostgreSQL majors; `max = None` means no upper bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgRange {
    pub min: u32,
    pub max: Option<u32>,
}

impl PgRange {
    pub fn contains(&self, major: u32) -> bool {
        major >= self.min && self.max.is_none_or(|m| major <= m)
    }
}

impl fmt::Display for PgRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.max {
            Some(max) if max == self.min => write!(f, "{}", self.min),
            Some(max) => write!(f, "{}-{}", self.min, max),
            None => write!(f, "{}+", self.min),
        }
    }
}

/// Compare dotted version strings numerically (`1.10` > `1.9`); non-numeric
/// parts compare as text.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |s: &str| -> Vec<String> {
        s.trim_start_matches('v')
            .split(['.', '-', '_'])
            .map(str::to_string)
            .collect()
    };
    let (pa, pb) = (parts(a), parts(b));
    for i in 0..pa.len().max(pb.len()) {
        let (x, y) = (
            pa.get(i).map(String::as_str).unwrap_or("0"),
            pb.get(i).map(String::as_str).unwrap_or("0"),
        );
        let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if ord != std::cmp::Ordering::Equal {
            return ord;
        }
    }
    std::cmp::Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::*;

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(compare_versions("7.81", "7.83"), Less);
        assert_eq!(compare_versions("1.10", "1.9"), Greater);
        assert_eq!(compare_versions("v0.8.0", "0.8"), Equal);
        assert_eq!(compare_versions("0.19.5", "0.9.2"), Greater);
    }

    #[test]
    fn smoke_script_and_check() {
        let s = Smoke {
            sql: "SELECT 1;\nSELECT 'a';\n".into(),
            expect: "1\na\n".into(),
            create: true,
        };
        assert_eq!(
            s.script("uuid-ossp"),
            "SET client_min_messages = warning;\nCREATE EXTENSION IF NOT EXISTS \"uuid-ossp\" CASCADE;\n\
             SET search_path = public, extensions;\nSELECT 1;\nSELECT 'a';\n"
        );
        assert!(s.check("\n1  \na\n\n").is_ok());
        assert!(s.check("1\nb\n").unwrap_err().contains("got:\n1\nb"));
        let module = Smoke { create: false, ..s };
        assert!(!module.script("supautils").contains("CREATE EXTENSION"));
    }

    #[test]
    fn pg_range() {
        let r = PgRange {
            min: 12,
            max: Some(17),
        };
        assert!(r.contains(12) && r.contains(17) && !r.contains(11) && !r.contains(18));
        assert_eq!(r.to_string(), "12-17");
        assert_eq!(PgRange { min: 13, max: None }.to_string(), "13+");
    }
}
