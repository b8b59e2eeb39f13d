//! The content-addressed cache: `<cache>/sha256/<hex>` holds a file whose
//! SHA-256 is `<hex>`. Files enter it only by atomic rename from
//! `<cache>/tmp/`, after their digest has been checked.

use super::FetchError;
use crate::hash::Sha256Digest;
use std::io;
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

pub(crate) use crate::hash::{BUF, copy_hashing};

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// What a look-up found.
#[derive(Debug)]
pub enum Lookup {
    /// The entry exists and its bytes hash to its name.
    Hit {
        path: PathBuf,
        size: u64,
    },
    Miss,
    /// The entry existed but its bytes did not match: it has been removed.
    Corrupted {
        actual: Sha256Digest,
    },
}

impl Cache {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the file with this digest lives (whether or not it exists).
    pub fn path_for(&self, digest: &Sha256Digest) -> PathBuf {
        self.root.join("sha256").join(digest.to_hex())
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Remove `partial-*` files older than `age` from the cache's temporary
    /// directory: what a killed fetch left behind. A fetch running at the
    /// same time has only fresh ones. Returns how many were removed; errors
    /// are ignored (this is housekeeping, never a reason to fail).
    pub fn sweep_stale_partials(&self, age: std::time::Duration) -> usize {
        let Ok(entries) = std::fs::read_dir(self.tmp_dir()) else {
            return 0;
        };
        let now = std::time::SystemTime::now();
        entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("partial-"))
            .filter(|e| {
                e.metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .is_some_and(|a| a > age)
            })
            .filter(|e| std::fs::remove_file(e.path()).is_ok())
            .count()
    }

    /// Look an entry up and re-verify it by hashing it (no trust in a file's
    /// name alone). A corrupted entry is removed.
    pub fn lookup(&self, digest: &Sha256Digest) -> Result<Lookup, FetchError> {
        let path = self.path_for(digest);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Lookup::Miss),
            Err(e) => return Err(FetchError::io("cannot open cache entry", &path)(e)),
        };
        let (actual, size) =
            Sha256Digest::of_reader(file).map_err(FetchError::io("cannot read cache entry", &path))?;
        if actual == *digest {
            return Ok(Lookup::Hit { path, size });
        }
        std::fs::remove_file(&path).map_err(FetchError::io("cannot remove corrupted cache entry", &path))?;
        Ok(Lookup::Corrupted { actual })
    }

    /// A new temporary file inside the cache (same filesystem as the
    /// entries, so that [`Cache::commit`] is an atomic rename). It is
    /// deleted when dropped without being committed.
    pub fn temp_file(&self) -> Result<NamedTempFile, FetchError> {
        let dir = self.tmp_dir();
        std::fs::create_dir_all(&dir).map_err(FetchError::io("cannot create cache directory", &dir))?;
        tempfile::Builder::new()
            .prefix("partial-")
            .tempfile_in(&dir)
            .map_err(FetchError::io("cannot create a temporary file in", &dir))
    }

    /// Move a verified temporary file into the cache under its digest.
    pub fn commit(&self, tmp: NamedTempFile, digest: &Sha256Digest) -> Result<PathBuf, FetchError> {
        let path = self.path_for(digest);
        let dir = path.parent().expect("entry has a parent");
        std::fs::create_dir_all(dir).map_err(FetchError::io("cannot create cache directory", dir))?;
        // No fsync: every look-up re-hashes the entry, so a file damaged by a
        // crash is detected and replaced rather than trusted.
        tmp.persist(&path).map_err(|e| {
            FetchError::io("cannot move a verified download into the cache at", &path)(e.error)
        })?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn stale_partials_are_swept_fresh_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let old = cache.temp_file().unwrap().keep().unwrap().1;
        let fresh = cache.temp_file().unwrap().keep().unwrap().1;
        let other = dir.path().join("tmp/not-ours");
        std::fs::write(&other, b"x").unwrap();
        let day_ago = SystemTime::now() - Duration::from_secs(2 * 86_400);
        for p in [&old, &other] {
            std::fs::File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(day_ago)
                .unwrap();
        }
        assert_eq!(cache.sweep_stale_partials(Duration::from_secs(86_400)), 1);
        assert!(!old.exists());
        assert!(fresh.exists() && other.exists());
    }
}
