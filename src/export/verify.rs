//! Check an export against `FILE.sha256` and, when present, `FILE.manifest.json`.

use super::ExportError;
use super::manifest::{ExportManifest, sidecar_paths};
use crate::fsutil::{self, ChecksumFileError};
use crate::hash::{self, Sha256Digest};
use crate::progress::Progress;
use serde::Serialize;
use std::fs::File;
use std::path::{Path, PathBuf};

/// An export that passed verification.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub file: PathBuf,
    pub sha256: Sha256Digest,
    pub size: u64,
    /// The manifest, when it was next to the file.
    pub manifest: Option<ExportManifest>,
}

/// The digest `FILE.sha256` gives for `file`: the line naming it, or the
/// only line (a renamed export keeps its checksum file's old name inside).
fn expected_digest(file: &Path, checksum_file: &Path) -> Result<Sha256Digest, ExportError> {
    let bad = |reason: String| ExportError::BadChecksumFile {
        path: checksum_file.to_path_buf(),
        reason,
    };
    if checksum_file.is_dir() {
        return Err(bad("it is a directory".into()));
    }
    let lines = match fsutil::read_checksum_file(checksum_file) {
        Ok(l) => l,
        Err(ChecksumFileError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ExportError::NoChecksum {
                path: checksum_file.to_path_buf(),
            });
        }
        Err(e) => return Err(bad(e.to_string())),
    };
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
    match lines.iter().find(|l| Some(&l.name) == name.as_ref()) {
        Some(l) => Ok(l.sha256),
        None if lines.len() == 1 => Ok(lines[0].sha256),
        None => Err(bad(format!(
            "it lists {} files, none named {}",
            lines.len(),
            name.unwrap_or_default()
        ))),
    }
}

/// Check `file` against `FILE.sha256` and, when present, `FILE.manifest.json`.
pub fn verify(file: &Path, progress: &Progress) -> Result<Verified, ExportError> {
    let (checksum_file, manifest_file) = sidecar_paths(file);
    let expected = expected_digest(file, &checksum_file)?;
    let manifest = ExportManifest::read(&manifest_file)?;
    if let Some(m) = &manifest
        && m.sha256 != expected
    {
        return Err(ExportError::ManifestMismatch {
            path: manifest_file,
            detail: format!("it says sha256 {}, the checksum file {expected}", m.sha256),
        });
    }

    if file.is_dir() {
        return Err(ExportError::NotAnArchive {
            path: file.to_path_buf(),
        });
    }
    let f = File::open(file).map_err(ExportError::io("opening", file))?;
    let len = f.metadata().map_err(ExportError::io("reading", file))?.len();
    let task = progress.bytes("verify", Some(len));
    let (actual, size) = hash::copy_hashing(f, &mut std::io::sink(), u64::MAX, |n| task.inc(n))
        .map_err(ExportError::io("reading", file))?
        .expect("no limit");
    task.finish("checked");
    if actual != expected {
        return Err(ExportError::Mismatch {
            file: file.to_path_buf(),
            expected: expected.to_hex(),
            actual: actual.to_hex(),
        });
    }
    if let Some(m) = &manifest
        && m.size != size
    {
        return Err(ExportError::ManifestMismatch {
            path: manifest_file,
            detail: format!("it says {} bytes, the file has {size}", m.size),
        });
    }
    Ok(Verified {
        file: file.to_path_buf(),
        sha256: actual,
        size,
        manifest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Diagnostic, ExitCode};
    use crate::export::Compression;

    fn write_export(dir: &Path, content: &[u8]) -> PathBuf {
        let f = dir.join("x_1.tar");
        std::fs::write(&f, content).unwrap();
        let d = Sha256Digest::of(content);
        std::fs::write(dir.join("x_1.tar.sha256"), format!("{d}  x_1.tar\n")).unwrap();
        f
    }

    #[test]
    fn verify_accepts_the_right_file_and_refuses_a_changed_one() {
        let d = tempfile::tempdir().unwrap();
        let f = write_export(d.path(), b"image bytes");
        let v = verify(&f, &Progress::quiet()).unwrap();
        assert_eq!(v.size, 11);
        assert!(v.manifest.is_none());
        std::fs::write(&f, b"image bytez").unwrap();
        let e = verify(&f, &Progress::quiet()).unwrap_err();
        assert!(matches!(e, ExportError::Mismatch { .. }), "{e}");
        assert_eq!(e.exit_code(), ExitCode::Verification);
    }

    #[test]
    fn verify_without_checksum_file_refuses() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("y.tar");
        std::fs::write(&f, b"x").unwrap();
        let e = verify(&f, &Progress::quiet()).unwrap_err();
        assert!(matches!(e, ExportError::NoChecksum { .. }), "{e}");
        assert_eq!(e.exit_code(), ExitCode::Verification);
    }

    #[test]
    fn verify_checks_the_manifest_against_the_checksum() {
        let d = tempfile::tempdir().unwrap();
        let f = write_export(d.path(), b"abc");
        let m = ExportManifest {
            manifest_version: 1,
            tag: "x:1".into(),
            image_id: "sha256:00".into(),
            file: "x_1.tar".into(),
            compression: Compression::None,
            size: 3,
            uncompressed_size: 3,
            sha256: Sha256Digest::of(b"other"),
            base_image: None,
            extensions: None,
            image_tool_version: None,
            context_digest: None,
            images: Vec::new(),
            exported_by: "t".into(),
            engine: "podman".into(),
        };
        std::fs::write(d.path().join("x_1.tar.manifest.json"), m.to_json()).unwrap();
        let e = verify(&f, &Progress::quiet()).unwrap_err();
        assert!(matches!(e, ExportError::ManifestMismatch { .. }), "{e}");
        // Someone else's manifest.json is refused, not misread.
        std::fs::write(d.path().join("x_1.tar.manifest.json"), br#"{"schemaVersion": 2}"#).unwrap();
        let e = verify(&f, &Progress::quiet()).unwrap_err();
        assert!(matches!(e, ExportError::BadManifest { .. }), "{e}");
    }
}
