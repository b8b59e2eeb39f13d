//! The content-addressed cache: `<cache>/sha256/<hex>` holds a file whose
//! SHA-256 is `<hex>`. Files enter it only by atomic rename from
//! `<cache>/tmp/`, after their digest has been checked.

use super::FetchError;
use crate::hash::Sha256Digest;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

/// Buffer size for reading and writing cached files.
pub(crate) const BUF: usize = 1 << 20;

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

    /// Look an entry up and re-verify it by hashing it (no trust in a file's
    /// name alone). A corrupted entry is removed.
    pub fn lookup(&self, digest: &Sha256Digest) -> Result<Lookup, FetchError> {
        let path = self.path_for(digest);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Lookup::Miss),
            Err(e) => return Err(FetchError::io("cannot open cache entry", &path)(e)),
        };
        let (actual, size) = hash_reader(file).map_err(FetchError::io("cannot read cache entry", &path))?;
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

/// SHA-256 and length of everything `reader` yields, in 1 MiB chunks.
pub(crate) fn hash_reader(reader: impl Read) -> io::Result<(Sha256Digest, u64)> {
    Sha256Digest::of_reader(reader)
}

/// Copy `reader` into `out` while hashing, stopping at `max` bytes.
/// Returns the digest and size, or `Err(Ok(n))` when more than `max` bytes came.
pub(crate) fn copy_hashing(
    mut reader: impl Read,
    out: &mut impl Write,
    max: u64,
    mut on_bytes: impl FnMut(u64),
) -> io::Result<Result<(Sha256Digest, u64), u64>> {
    let mut hasher = crate::hash::Hasher::new();
    let mut buf = vec![0u8; BUF];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if hasher.len() + n as u64 > max {
            return Ok(Err(hasher.len() + n as u64));
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        on_bytes(n as u64);
    }
    let len = hasher.len();
    Ok(Ok((hasher.finish(), len)))
}
