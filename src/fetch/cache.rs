//! The content-addressed cache: `<cache>/sha256/<hex>` holds a file whose
//! SHA-256 is `<hex>`. Files enter it only by atomic rename from
//! `<cache>/tmp/`, after their digest has been checked.
//!
//! Several fetches may share one cache at the same time (e.g. parallel CI
//! jobs). Nothing here takes a lock on an entry, so every step tolerates the
//! others:
//! - an entry is replaced only by rename, so a reader sees the old file or
//!   the new one, never a mix;
//! - a corrupted entry is removed only if the path still names the file that
//!   was hashed (another fetch may already have removed or repaired it), and
//!   "already removed" is not an error;
//! - a download in progress holds an advisory lock on its `partial-*` file;
//!   the sweep removes only unlocked ones, i.e. those whose fetch died
//!   (killed, Ctrl-C, power loss).

use super::FetchError;
use crate::hash::Sha256Digest;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

pub(crate) use crate::hash::{BUF, copy_hashing};

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    /// Whether the cache can be written, probed once (when the first
    /// source is missing) and shared by the clones of one fetch.
    writable: std::sync::Arc<std::sync::OnceLock<Result<(), (io::ErrorKind, String)>>>,
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
    /// The entry existed but was not the file it should be (other bytes, a
    /// symbolic link, a FIFO, …): it has been removed, unless another fetch
    /// had already removed or replaced it.
    Corrupted {
        /// What was found instead, e.g. `sha256 <hex>` or `a symbolic link`.
        found: String,
    },
}

impl Cache {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            writable: Default::default(),
        }
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

    /// Make sure the cache's root is a directory, creating it if needed (and
    /// `create`): a `--cache-dir` that names a file, lies under one, or
    /// cannot be created is refused before any download. A read-only cache
    /// is fine as long as nothing has to be written ([`Cache::writable`]).
    pub fn prepare(&self, create: bool) -> Result<(), FetchError> {
        let bad = |source: io::Error| FetchError::CacheDir {
            path: self.root.clone(),
            source,
        };
        match std::fs::metadata(&self.root) {
            Ok(m) if !m.is_dir() => Err(bad(io::Error::new(
                io::ErrorKind::NotADirectory,
                "it exists and is not a directory",
            ))),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound && !create => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::create_dir_all(&self.root).map_err(bad),
            Err(e) => Err(bad(e)),
        }
    }

    /// Check, once, that sources can be written into the cache: called
    /// before the first download, so that an unwritable cache fails before
    /// any request (root passes permission bits; a read-only mount does not).
    pub fn writable(&self) -> Result<(), FetchError> {
        let probe = || -> io::Result<()> {
            for d in [self.root.join("sha256"), self.tmp_dir()] {
                std::fs::create_dir_all(&d)?;
            }
            tempfile::Builder::new()
                .prefix(".probe-")
                .tempfile_in(self.tmp_dir())
                .map(drop)
        };
        self.writable
            .get_or_init(|| probe().map_err(|e| (e.kind(), e.to_string())))
            .clone()
            .map_err(|(kind, msg)| FetchError::CacheDir {
                path: self.root.clone(),
                source: io::Error::new(kind, msg),
            })
    }

    /// Remove the `partial-*` files that a dead fetch left in the cache's
    /// temporary directory: those no process holds a lock on, and older
    /// than `grace` (a fetch locks its file right after creating it).
    /// Returns how many were removed; errors are ignored (this is
    /// housekeeping, never a reason to fail).
    pub fn sweep_stale_partials(&self, grace: std::time::Duration) -> usize {
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
                    .is_some_and(|a| a > grace)
            })
            .filter(|e| {
                // Held by a live fetch: leave it.
                open_plain(&e.path()).is_ok_and(|f| f.try_lock().is_ok())
            })
            .filter(|e| std::fs::remove_file(e.path()).is_ok())
            .count()
    }

    /// Look an entry up and re-verify it by hashing it (no trust in a file's
    /// name alone). A corrupted entry is removed.
    /// A symbolic link or a special file (FIFO, device) in the cache was
    /// not put there by a fetch: it counts as corrupted, and is never
    /// followed or waited on.
    pub fn lookup(&self, digest: &Sha256Digest) -> Result<Lookup, FetchError> {
        let path = self.path_for(digest);
        let file = match open_plain(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Lookup::Miss),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                remove_entry(&path, None)?;
                return Ok(Lookup::Corrupted {
                    found: "a symbolic link".into(),
                });
            }
            Err(e) => return Err(FetchError::io("cannot open cache entry", &path)(e)),
        };
        let opened = file
            .metadata()
            .map_err(FetchError::io("cannot read cache entry", &path))?;
        if !opened.is_file() {
            remove_entry(&path, Some(&opened))?;
            return Ok(Lookup::Corrupted {
                found: "not a regular file".into(),
            });
        }
        let (actual, size) =
            Sha256Digest::of_reader(file).map_err(FetchError::io("cannot read cache entry", &path))?;
        if actual == *digest {
            return Ok(Lookup::Hit { path, size });
        }
        remove_entry(&path, Some(&opened))?;
        Ok(Lookup::Corrupted {
            found: format!("sha256 {actual}"),
        })
    }

    /// A new temporary file inside the cache (same filesystem as the
    /// entries, so that [`Cache::commit`] is an atomic rename). It is
    /// deleted when dropped without being committed.
    pub fn temp_file(&self) -> Result<NamedTempFile, FetchError> {
        let dir = self.tmp_dir();
        std::fs::create_dir_all(&dir).map_err(FetchError::io("cannot create cache directory", &dir))?;
        let tmp = tempfile::Builder::new()
            .prefix("partial-")
            .tempfile_in(&dir)
            .map_err(FetchError::io("cannot create a temporary file in", &dir))?;
        // Marks the file as in use until this process closes it or dies.
        tmp.as_file()
            .try_lock()
            .map_err(|e| FetchError::io("cannot lock a temporary file in", &dir)(e.into()))?;
        Ok(tmp)
    }

    /// Move a verified temporary file into the cache under its digest.
    pub fn commit(&self, tmp: NamedTempFile, digest: &Sha256Digest) -> Result<PathBuf, FetchError> {
        let path = self.path_for(digest);
        let dir = path.parent().expect("entry has a parent");
        std::fs::create_dir_all(dir).map_err(FetchError::io("cannot create cache directory", dir))?;
        // Readable by all (a temp file is 0600): a cache may be shared, e.g.
        // read-only with --offline by another user; sources are public.
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(FetchError::io("cannot set the mode of", tmp.path()))?;
        // No fsync: every look-up re-hashes the entry, so a file damaged by a
        // crash is detected and replaced rather than trusted.
        tmp.persist(&path).map_err(|e| {
            FetchError::io("cannot move a verified download into the cache at", &path)(e.error)
        })?;
        Ok(path)
    }
}

/// Open for reading without following a final symbolic link and without
/// blocking on a FIFO.
fn open_plain(path: &Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

/// Remove a bad cache entry. Another fetch may have removed or repaired it
/// meanwhile: with `opened`, remove it only if the path still names that
/// file; "already removed" is fine.
fn remove_entry(path: &Path, opened: Option<&std::fs::Metadata>) -> Result<(), FetchError> {
    if let Some(o) = opened {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.dev() == o.dev() && m.ino() == o.ino() => {}
            _ => return Ok(()),
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FetchError::io("cannot remove corrupted cache entry", path)(e)),
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
        // A dead fetch's file (closed: unlocked), a live one's (locked), a
        // fresh one, and a file that is not ours.
        let dead = cache.temp_file().unwrap().keep().unwrap().1;
        let live = cache.temp_file().unwrap();
        let fresh = cache.temp_file().unwrap().keep().unwrap().1;
        let other = dir.path().join("tmp/not-ours");
        std::fs::write(&other, b"x").unwrap();
        let minute_ago = SystemTime::now() - Duration::from_secs(60);
        for p in [&dead, live.path(), &other] {
            std::fs::File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(minute_ago)
                .unwrap();
        }
        assert_eq!(cache.sweep_stale_partials(Duration::from_secs(10)), 1);
        assert!(!dead.exists());
        assert!(live.path().exists() && fresh.exists() && other.exists());
    }
}
