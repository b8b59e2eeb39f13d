//! Mirrors: a base URL or a local directory holding
//! `<extension>-<version><suffix>` files (and the crates of pgrx extensions
//! as `crates/<name>/<name>-<version>.crate`), and writing such a directory.

use super::cache::{BUF, copy_hashing};
use super::{FetchError, Fetched};
use crate::hash::Sha256Digest;
use crate::redact::RedactedUrl;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where sources come from instead of upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mirror {
    /// An `http://` or `https://` base URL (credentials allowed, never
    /// shown); files are fetched from `<base>/<file name>`.
    Url(RedactedUrl),
    /// A local directory holding the files.
    Dir(PathBuf),
}

impl Mirror {
    /// Parse the `--mirror` argument: a URL with an http(s) scheme, a
    /// `file:` URL, or a path to an existing directory.
    pub fn parse(s: &str) -> Result<Self, FetchError> {
        let bad = |reason: &str| FetchError::BadMirror {
            value: RedactedUrl::new(s),
            reason: reason.to_string(),
        };
        if s.trim().is_empty() {
            return Err(bad("it is empty"));
        }
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            // The parser's message may quote the input: not shown.
            let url = reqwest::Url::parse(s).map_err(|e| bad(&format!("not a valid URL ({e})")))?;
            if url.host_str().is_none_or(str::is_empty) {
                return Err(bad("the URL has no host"));
            }
            if url.query().is_some() || url.fragment().is_some() {
                return Err(bad(
                    "a mirror URL is a base that file names are appended to: it cannot have a ?query or #fragment",
                ));
            }
            let has_credentials = !url.username().is_empty() || url.password().is_some();
            if url.scheme() == "http" && has_credentials && !super::http::is_loopback(&url) {
                return Err(bad(
                    "credentials over plain http:// would cross the network in clear: use https://",
                ));
            }
            return Ok(Mirror::Url(RedactedUrl::new(s.trim_end_matches('/'))));
        }
        let path = if lower.starts_with("file:") {
            let url = reqwest::Url::parse(s).map_err(|e| bad(&format!("not a valid file: URL ({e})")))?;
            url.to_file_path()
                .map_err(|()| bad("a file: URL must name a local absolute path (file:///path)"))?
        } else if lower.contains("://") {
            return Err(bad("only http://, https:// and file: URLs are understood"));
        } else {
            PathBuf::from(s)
        };
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => Ok(Mirror::Dir(path)),
            Ok(_) => Err(bad("it is not a directory")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(bad("no such directory")),
            Err(e) => Err(bad(&format!("cannot read it ({e})"))),
        }
    }

    /// Where the mirror holds a file named `file_name` (a URL keeps its
    /// credentials for connecting; it shows without them).
    pub fn location(&self, file_name: &str) -> RedactedUrl {
        match self {
            Mirror::Url(base) => RedactedUrl::new(format!("{}/{file_name}", base.expose())),
            Mirror::Dir(dir) => RedactedUrl::new(dir.join(file_name).display().to_string()),
        }
    }
}

impl std::str::FromStr for Mirror {
    type Err = FetchError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Make a temporary file (0600) readable by all before it lands: a mirror
/// directory is meant to be served or copied by others.
fn readable(tmp: &tempfile::NamedTempFile, dest: &Path) -> Result<(), FetchError> {
    use std::os::unix::fs::PermissionsExt;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(FetchError::io("cannot set the mode of", dest))
}

/// Check the directory [`write_mirror`] writes into, without creating it:
/// call it before the long work, so that a wrong target fails first.
pub fn check_mirror_dir(dir: &Path) -> Result<(), FetchError> {
    let bad = |reason: String| FetchError::MirrorOut {
        path: dir.to_path_buf(),
        reason,
    };
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Err(bad("is not a directory".into())),
        Ok(_) => Ok(()),
        // Created by write_mirror; a file on the way fails here already.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(bad(format!("cannot be used: {e}"))),
    }
}

/// What [`write_mirror`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MirrorSummary {
    pub dir: PathBuf,
    /// Files written (or already present with the right digest), in order.
    pub files: Vec<MirrorFile>,
    /// The `SHA256SUMS` file listing every file of the mirror written by this run.
    pub sums: PathBuf,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct MirrorFile {
    pub file_name: String,
    pub sha256: Sha256Digest,
    pub size: u64,
    /// False when the directory already held the file with the right digest.
    pub written: bool,
}

/// Write verified sources into `dir` as `<extension>-<version><suffix>`,
/// the layout `--mirror DIR` reads, plus a `SHA256SUMS` file for
/// `sha256sum -c`. Each file is re-hashed while it is copied and lands by
/// atomic rename (a symlink under that name is replaced, never written
/// through); a file already there with the right digest is kept.
pub fn write_mirror(fetched: &[Fetched], dir: &Path) -> Result<MirrorSummary, FetchError> {
    check_mirror_dir(dir)?;
    std::fs::create_dir_all(dir).map_err(|e| FetchError::MirrorOut {
        path: dir.to_path_buf(),
        reason: format!("cannot be created: {e}"),
    })?;
    let mut files = Vec::new();
    for f in fetched {
        let dest = dir.join(&f.file_name);
        // Kept only if it is a plain file (not a link, FIFO, …) with the right digest.
        let plain = std::fs::symlink_metadata(&dest).is_ok_and(|m| m.is_file());
        if plain
            && let Ok((d, size)) = Sha256Digest::of_file(&dest)
            && d == f.sha256
        {
            files.push(MirrorFile {
                file_name: f.file_name.clone(),
                sha256: d,
                size,
                written: false,
            });
            continue;
        }
        if let Some(parent) = dest.parent() {
            // crates/<name>/ for crates.
            std::fs::create_dir_all(parent).map_err(FetchError::io("cannot create", parent))?;
        }
        let src =
            std::fs::File::open(&f.path).map_err(FetchError::io("cannot open cached source", &f.path))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".partial-")
            .tempfile_in(dir)
            .map_err(FetchError::io("cannot create a temporary file in", dir))?;
        let mut out = std::io::BufWriter::with_capacity(BUF, tmp.as_file_mut());
        let (actual, size) = copy_hashing(src, &mut out, u64::MAX, |_| {})
            .map_err(FetchError::io("cannot copy into the mirror", &dest))?
            .expect("no limit");
        out.flush().map_err(FetchError::io("cannot write", &dest))?;
        drop(out);
        if actual != f.sha256 {
            return Err(FetchError::DigestMismatch {
                name: f.name.clone(),
                version: f.version.clone(),
                url: RedactedUrl::new(f.path.display().to_string()),
                expected: f.sha256,
                actual: Box::new(actual),
                size,
            });
        }
        readable(&tmp, &dest)?;
        tmp.persist(&dest)
            .map_err(|e| FetchError::io("cannot rename into", &dest)(e.error))?;
        files.push(MirrorFile {
            file_name: f.file_name.clone(),
            sha256: actual,
            size,
            written: true,
        });
    }
    let sums = dir.join("SHA256SUMS");
    let text: String = files
        .iter()
        .map(|f| format!("{}  {}\n", f.sha256, f.file_name))
        .collect();
    let mut tmp = tempfile::Builder::new()
        .prefix(".partial-")
        .tempfile_in(dir)
        .map_err(FetchError::io("cannot create a temporary file in", dir))?;
    tmp.write_all(text.as_bytes())
        .map_err(FetchError::io("cannot write", &sums))?;
    readable(&tmp, &sums)?;
    tmp.persist(&sums)
        .map_err(|e| FetchError::io("cannot rename into", &sums)(e.error))?;
    Ok(MirrorSummary {
        dir: dir.to_path_buf(),
        files,
        sums,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_forms() {
        assert_eq!(
            Mirror::parse("http://127.0.0.1:8080/m/").unwrap(),
            Mirror::Url("http://127.0.0.1:8080/m".into())
        );
        assert!(Mirror::parse("http://h/m?x=1").is_err());
        assert!(Mirror::parse("").is_err());
        assert!(Mirror::parse("file://host/x").is_err());
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path().to_str().unwrap();
        assert_eq!(Mirror::parse(s).unwrap(), Mirror::Dir(dir.path().into()));
        assert_eq!(
            Mirror::parse(&format!("file://{s}")).unwrap(),
            Mirror::Dir(dir.path().into())
        );
        assert!(Mirror::parse("ftp://x/y").is_err());
        assert!(Mirror::parse("/no/such/dir/here").is_err());
        assert!(Mirror::parse("http://").is_err());
    }
}
