//! Mirrors: a base URL or a local directory holding
//! `<extension>-<version><suffix>` files, and writing such a directory.

use super::cache::{BUF, copy_hashing};
use super::{FetchError, Fetched};
use crate::hash::Sha256Digest;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where sources come from instead of upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mirror {
    /// An `http://` or `https://` base URL; files are fetched from `<base>/<file name>`.
    Url(String),
    /// A local directory holding the files.
    Dir(PathBuf),
}

impl Mirror {
    /// Parse the `--mirror` argument: a URL with an http(s) scheme, a
    /// `file://` URL, or a path to an existing directory.
    pub fn parse(s: &str) -> Result<Self, FetchError> {
        let bad = |reason: &str| FetchError::BadMirror {
            value: s.to_string(),
            reason: reason.to_string(),
        };
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            let url = reqwest::Url::parse(s).map_err(|e| bad(&format!("not a URL: {e}")))?;
            if url.host_str().is_none_or(str::is_empty) {
                return Err(bad("the URL has no host"));
            }
            return Ok(Mirror::Url(s.trim_end_matches('/').to_string()));
        }
        if lower.contains("://") && !lower.starts_with("file://") {
            return Err(bad("only http://, https:// and file:// URLs are understood"));
        }
        let path = PathBuf::from(s.strip_prefix("file://").unwrap_or(s));
        if !path.is_dir() {
            return Err(bad("no such directory"));
        }
        Ok(Mirror::Dir(path))
    }

    /// Where the mirror holds a file named `file_name`.
    pub fn location(&self, file_name: &str) -> String {
        match self {
            Mirror::Url(base) => format!("{base}/{file_name}"),
            Mirror::Dir(dir) => dir.join(file_name).display().to_string(),
        }
    }
}

impl std::str::FromStr for Mirror {
    type Err = FetchError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
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
/// atomic rename; a file already there with the right digest is kept.
pub fn write_mirror(fetched: &[Fetched], dir: &Path) -> Result<MirrorSummary, FetchError> {
    std::fs::create_dir_all(dir).map_err(FetchError::io("cannot create mirror directory", dir))?;
    let mut files = Vec::new();
    for f in fetched {
        let dest = dir.join(&f.file_name);
        if let Ok((d, size)) = Sha256Digest::of_file(&dest)
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
                url: f.path.display().to_string(),
                expected: f.sha256,
                actual: Box::new(actual),
                size,
            });
        }
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
