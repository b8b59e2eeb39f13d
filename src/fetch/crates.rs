//! The Rust crates of pgrx extensions, fetched on the host so that the build
//! needs no network: the extension's own `Cargo.lock` (read from its verified
//! archive) and cargo-pgrx's (read from its `.crate`, pinned in the catalog by
//! checksum) name every crate with the sha256 of its `.crate`; each is
//! fetched like a source — from crates.io's download host, or a mirror —
//! hashed while it streams, and committed to the content-addressed cache only
//! when it has that digest.
//!
//! Mirror layout (what `pgha-image mirror DIR` writes, what `--mirror`
//! reads): `crates/<name>/<name>-<version>.crate`, the layout of
//! `https://static.crates.io` under `crates/`, so any of the three serves.
//!
//! Only crates.io crates are accepted: a git or other-registry dependency has
//! no checksum in a Cargo.lock to verify, and is refused naming it.

use super::{FetchError, Fetched, Job};
use crate::catalog::{Provenance, Source};
use crate::hash::Sha256Digest;
use serde::Deserialize;
use std::io::Read;
use std::path::Path;

/// Where crates.io serves `.crate` files: `<base>/crates/<name>/<name>-<version>.crate`.
pub const CRATES_IO_DOWNLOAD: &str = "https://static.crates.io";

/// The `source` of a crates.io package in a Cargo.lock (git index and sparse index).
const CRATES_IO_SOURCES: [&str; 2] = [
    "registry+https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io/",
];

/// The largest Cargo.lock read (a real one is well under 1 MiB).
const MAX_LOCK: u64 = 16 << 20;

/// A crate a Cargo.lock pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedCrate {
    pub name: String,
    pub version: String,
    pub sha256: Sha256Digest,
}

impl LockedCrate {
    /// `crates/<name>/<name>-<version>.crate`: its place in a mirror.
    pub fn mirror_path(&self) -> String {
        format!("crates/{0}/{0}-{1}.crate", self.name, self.version)
    }

    /// `<name>-<version>.crate`: its name in the build context.
    pub fn file_name(&self) -> String {
        format!("{}-{}.crate", self.name, self.version)
    }

    pub(crate) fn job(&self) -> Job {
        Job {
            name: self.name.clone(),
            version: self.version.clone(),
            source: Source {
                url: format!("{CRATES_IO_DOWNLOAD}/{}", self.mirror_path()),
                sha256: self.sha256,
                tag: None,
                commit: None,
                provenance: Provenance::Independent,
                confirmed_by: vec!["its Cargo.lock".into()],
            },
            file_name: self.mirror_path(),
            crate_file: true,
        }
    }
}

#[derive(Deserialize)]
struct RawLock {
    #[serde(default)]
    package: Vec<RawPackage>,
}

#[derive(Deserialize)]
struct RawPackage {
    name: String,
    version: String,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    checksum: Option<String>,
}

fn bad_lock(what: &str, reason: impl Into<String>) -> FetchError {
    FetchError::BadLock {
        what: what.to_string(),
        reason: reason.into(),
    }
}

/// The crates.io crates `text` (a Cargo.lock of `what`) pins, sorted and
/// without duplicates; path packages (the workspace's own) are skipped.
pub fn parse_lock(text: &str, what: &str) -> Result<Vec<LockedCrate>, FetchError> {
    let raw: RawLock = toml::from_str(text).map_err(|e| bad_lock(what, format!("not a Cargo.lock: {e}")))?;
    let mut out = Vec::new();
    for p in raw.package {
        let Some(source) = p.source else { continue };
        // Names and versions become paths and URLs: keep them to their characters.
        let name_ok = !p.name.is_empty()
            && p.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let version_ok = !p.version.is_empty()
            && p.version.bytes().next().is_some_and(|b| b.is_ascii_digit())
            && p.version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
        if !name_ok || !version_ok {
            return Err(bad_lock(
                what,
                format!(
                    "package {:?} {:?} is not a crate name and version",
                    p.name, p.version
                ),
            ));
        }
        if source.starts_with("git+") {
            return Err(FetchError::UnpinnedCrate {
                what: what.to_string(),
                name: p.name,
                version: p.version,
                source_kind: "a git dependency",
                origin: source,
            });
        }
        if !CRATES_IO_SOURCES.contains(&source.as_str()) {
            return Err(FetchError::UnpinnedCrate {
                what: what.to_string(),
                name: p.name,
                version: p.version,
                source_kind: "from a registry other than crates.io",
                origin: source,
            });
        }
        let Some(sum) = p.checksum else {
            return Err(bad_lock(
                what,
                format!(
                    "{} {} has no checksum (a version 1 lock file?)",
                    p.name, p.version
                ),
            ));
        };
        let sha256 = sum.parse().map_err(|_| {
            bad_lock(
                what,
                format!("{} {}: checksum {sum:?} is not 64 hex", p.name, p.version),
            )
        })?;
        out.push(LockedCrate {
            name: p.name,
            version: p.version,
            sha256,
        });
    }
    out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    out.dedup();
    Ok(out)
}

/// The `Cargo.lock` at the top of a gzip-compressed tar (`<top>/Cargo.lock`:
/// an extension's release archive, or a `.crate`).
pub fn lock_in_archive(path: &Path, what: &str) -> Result<String, FetchError> {
    let file = std::fs::File::open(path).map_err(FetchError::io("cannot open", path))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)));
    let entries = tar
        .entries()
        .map_err(|e| bad_lock(what, format!("{} is not a readable tar.gz: {e}", path.display())))?;
    for entry in entries {
        let entry =
            entry.map_err(|e| bad_lock(what, format!("{} is not a readable tar.gz: {e}", path.display())))?;
        let p = entry
            .path()
            .map_err(|e| {
                bad_lock(
                    what,
                    format!("an entry of {} has a bad path: {e}", path.display()),
                )
            })?
            .into_owned();
        let mut parts = p.components();
        let (Some(_top), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if name.as_os_str() != "Cargo.lock" || !entry.header().entry_type().is_file() {
            continue;
        }
        let mut text = String::new();
        entry.take(MAX_LOCK).read_to_string(&mut text).map_err(|e| {
            bad_lock(
                what,
                format!("its Cargo.lock in {} cannot be read: {e}", path.display()),
            )
        })?;
        return Ok(text);
    }
    Err(bad_lock(
        what,
        format!(
            "{} has no Cargo.lock at its top: the build runs cargo --locked and needs one",
            path.display()
        ),
    ))
}

/// The crates one Cargo.lock needs, verified in the cache: what is vendored
/// into the build context as `crates/<set>/`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CrateSet {
    /// `<extension>-<version>` or `cargo-pgrx-<version>`.
    pub set: String,
    /// Sorted by name and version.
    pub crates: Vec<Fetched>,
}

/// What a crate set is made from.
#[derive(Debug, Clone)]
pub enum CrateSetFrom {
    /// The Cargo.lock inside an extension's verified archive.
    Archive(std::path::PathBuf),
    /// A crate pinned by checksum whose `.crate` carries the Cargo.lock
    /// (cargo-pgrx); the crate itself is part of the set.
    Crate(LockedCrate),
}

/// One crate set to fetch.
#[derive(Debug, Clone)]
pub struct CrateSetRequest {
    pub set: String,
    pub from: CrateSetFrom,
}

/// A pgrx extension whose crates a build vendors.
#[derive(Debug, Clone)]
pub struct PgrxBuild<'a> {
    pub name: &'a str,
    pub version: &'a str,
    /// Its verified archive (in the cache).
    pub archive: &'a Path,
    /// The cargo-pgrx version and the checksum of its crate.
    pub cargo_pgrx: (&'a str, Sha256Digest),
}

/// The crate sets of these builds: `<name>-<version>` for each extension's
/// own Cargo.lock, and `cargo-pgrx-<version>` once per cargo-pgrx version.
pub fn requests<'a>(builds: impl IntoIterator<Item = PgrxBuild<'a>>) -> Vec<CrateSetRequest> {
    let mut out: Vec<CrateSetRequest> = Vec::new();
    for b in builds {
        let (version, sha256) = b.cargo_pgrx;
        let set = format!("cargo-pgrx-{version}");
        if !out.iter().any(|r| r.set == set) {
            out.push(CrateSetRequest {
                set,
                from: CrateSetFrom::Crate(LockedCrate {
                    name: "cargo-pgrx".into(),
                    version: version.to_string(),
                    sha256,
                }),
            });
        }
        out.push(CrateSetRequest {
            set: format!("{}-{}", b.name, b.version),
            from: CrateSetFrom::Archive(b.archive.to_path_buf()),
        });
    }
    out
}

/// The pgrx builds among `selected`, given their fetched archives.
pub fn selected_builds<'a>(
    selected: &'a [crate::catalog::Selected<'_>],
    fetched: &'a [Fetched],
) -> Vec<PgrxBuild<'a>> {
    selected
        .iter()
        .filter(|s| s.extension.build.kind == crate::catalog::BuildKind::Pgrx)
        .filter_map(|s| {
            let f = fetched
                .iter()
                .find(|f| f.name == s.extension.name && f.version == s.version.version)?;
            Some(PgrxBuild {
                name: &s.extension.name,
                version: &s.version.version,
                archive: &f.path,
                cargo_pgrx: (s.extension.build.pgrx.as_deref()?, s.extension.build.pgrx_sha256?),
            })
        })
        .collect()
}
