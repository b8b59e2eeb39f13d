//! The migration set: the SQL files of `sql/`, embedded at compile time (so
//! the binary and its SQL cannot drift apart), each identified by its number,
//! its name and the SHA-256 of its exact text.
//!
//! A file is named `NNNN_name.sql`. Its first lines may carry directives:
//!
//! ```sql
//! -- pgha: database=_supabase owner=supabase_admin
//! ```
//!
//! runs the file inside database `_supabase` (created first, outside any
//! transaction and only when missing, owned by `owner`) instead of the
//! database the bootstrap connects to.

use super::error::BootstrapError;
use crate::hash::Sha256Digest;
use include_dir::{Dir, include_dir};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The largest migration file read from --extra-migrations.
pub const MIGRATION_MAX_BYTES: u64 = 16 * 1024 * 1024;

static EMBEDDED: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/sql");

/// Where a migration runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// In the connected database, in one transaction together with its ledger row.
    Connected,
    /// In another database, created first when missing (CREATE DATABASE cannot
    /// run in a transaction); the SQL must be idempotent, because the ledger
    /// row is written in a separate transaction of the connected database.
    Database { name: String, owner: Option<String> },
}

impl Target {
    /// How the ledger's `kind` column describes it.
    pub fn kind(&self) -> String {
        match self {
            Target::Connected => "transaction".into(),
            Target::Database { name, .. } => format!("database:{name}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Migration {
    pub version: i32,
    /// The file name without `.sql`, e.g. `0001_roles`.
    pub name: String,
    pub sql: String,
    pub checksum: Sha256Digest,
    pub target: Target,
    /// Where it came from: `embedded` or the path of an extra migration.
    pub origin: String,
}

/// The ordered set of migrations a run works with.
#[derive(Debug, Clone)]
pub struct MigrationSet {
    migrations: Vec<Migration>,
}

impl MigrationSet {
    /// The migrations embedded in this binary.
    pub fn embedded() -> Self {
        let mut files: Vec<(String, String)> = EMBEDDED
            .files()
            .filter_map(|f| {
                let name = f.path().file_name()?.to_str()?.to_string();
                let text = f.contents_utf8()?.to_string();
                Some((name, text))
            })
            .collect();
        files.sort();
        let mut out = Vec::new();
        for (file, text) in files {
            match parse(&file, text, "embedded".into()) {
                Ok(Some(m)) => out.push(m),
                Ok(None) => {}
                Err(e) => panic!("embedded migration {file} is invalid: {e}"),
            }
        }
        let set = Self { migrations: out };
        set.validate(Path::new("sql"))
            .expect("embedded migrations have unique versions");
        set
    }

    /// The embedded migrations followed by the `NNNN_name.sql` files of `dir`
    /// (site-specific additions; their numbers must not collide).
    pub fn with_extra(mut self, dir: &Path) -> Result<Self, BootstrapError> {
        let err = |reason: String| BootstrapError::Migrations {
            path: dir.to_path_buf(),
            reason,
        };
        let rd = std::fs::read_dir(dir).map_err(|e| err(e.to_string()))?;
        let mut paths: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        paths.sort();
        for p in paths {
            let text = crate::fsutil::read_limited_text(&p, MIGRATION_MAX_BYTES)
                .map_err(|e| err(format!("{}: {e}", p.display())))?;
            let file = p
                .file_name()
                .and_then(|f| f.to_str())
                .unwrap_or_default()
                .to_string();
            match parse(&file, text, p.display().to_string()) {
                Ok(Some(m)) => self.migrations.push(m),
                Ok(None) => return Err(err(format!("{file} is not named NNNN_name.sql"))),
                Err(e) => return Err(err(format!("{file}: {e}"))),
            }
        }
        self.migrations.sort_by_key(|m| m.version);
        self.validate(dir)?;
        Ok(self)
    }

    fn validate(&self, dir: &Path) -> Result<(), BootstrapError> {
        let mut seen: BTreeMap<i32, &str> = BTreeMap::new();
        for m in &self.migrations {
            if let Some(other) = seen.insert(m.version, &m.name) {
                return Err(BootstrapError::Migrations {
                    path: dir.to_path_buf(),
                    reason: format!("{} and {} share the number {}", other, m.name, m.version),
                });
            }
        }
        Ok(())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Migration> {
        self.migrations.iter()
    }

    pub fn len(&self) -> usize {
        self.migrations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.migrations.is_empty()
    }

    pub fn get(&self, version: i32) -> Option<&Migration> {
        self.migrations.iter().find(|m| m.version == version)
    }
}

/// Parse one file; `Ok(None)` for files that are not migrations (no `NNNN_` prefix).
fn parse(file: &str, sql: String, origin: String) -> Result<Option<Migration>, String> {
    let Some(stem) = file.strip_suffix(".sql") else {
        return Ok(None);
    };
    let Some((num, rest)) = stem.split_once('_') else {
        return Ok(None);
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) || rest.is_empty() {
        return Ok(None);
    }
    let version: i32 = num.parse().map_err(|_| format!("number {num} is too large"))?;
    let target = directives(&sql)?;
    Ok(Some(Migration {
        version,
        name: stem.to_string(),
        checksum: Sha256Digest::of(sql.as_bytes()),
        sql,
        target,
        origin,
    }))
}

/// `-- pgha: key=value ...` lines among the leading comment lines.
fn directives(sql: &str) -> Result<Target, String> {
    let mut database = None;
    let mut owner = None;
    for line in sql.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some(comment) = line.strip_prefix("--") else {
            break;
        };
        let Some(d) = comment.trim().strip_prefix("pgha:") else {
            continue;
        };
        for kv in d.split_whitespace() {
            match kv.split_once('=') {
                Some(("database", v)) if !v.is_empty() => database = Some(v.to_string()),
                Some(("owner", v)) if !v.is_empty() => owner = Some(v.to_string()),
                _ => {
                    return Err(format!(
                        "unknown directive {kv:?} (known: database=NAME owner=ROLE)"
                    ));
                }
            }
        }
    }
    Ok(match database {
        Some(name) => Target::Database { name, owner },
        None if owner.is_some() => return Err("owner= needs database=".into()),
        None => Target::Connected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_set_is_ordered_and_unique() {
        let set = MigrationSet::embedded();
        assert!(set.len() >= 10);
        let versions: Vec<i32> = set.iter().map(|m| m.version).collect();
        let mut sorted = versions.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(versions, sorted);
        let db = set.iter().find(|m| m.name == "0010_supabase_database").unwrap();
        assert_eq!(
            db.target,
            Target::Database {
                name: "_supabase".into(),
                owner: Some("supabase_admin".into())
            }
        );
        assert_eq!(set.get(1).unwrap().target, Target::Connected);
        for m in set.iter() {
            assert!(
                m.sql.trim_start().starts_with("--"),
                "{} has no header comment",
                m.name
            );
        }
    }

    #[test]
    fn names_and_directives() {
        assert!(parse("README.md", String::new(), "x".into()).unwrap().is_none());
        assert!(parse("x_y.sql", String::new(), "x".into()).unwrap().is_none());
        let m = parse("0042_thing.sql", "select 1".into(), "x".into())
            .unwrap()
            .unwrap();
        assert_eq!((m.version, m.name.as_str()), (42, "0042_thing"));
        assert_eq!(m.checksum, Sha256Digest::of(b"select 1"));
        assert!(parse("0001_a.sql", "-- pgha: bogus=1\n".into(), "x".into()).is_err());
        assert!(parse("0001_a.sql", "-- pgha: owner=x\n".into(), "x".into()).is_err());
    }
}
