//! Where an export goes, checked before the engine is asked for anything:
//! an existing tarball, checksum file or manifest is refused unless
//! `--force`; a directory, a missing or unwritable directory, or a special
//! file is refused always.

use super::ExportError;
use super::manifest::sidecar_paths;
use crate::fsutil::{AtomicFile, output_file_problem, parent_dir};
use std::fs;
use std::path::{Path, PathBuf};

/// The three files of an export, checked.
#[derive(Debug)]
pub(crate) struct Target {
    pub file: PathBuf,
    pub checksum_file: PathBuf,
    pub manifest_file: PathBuf,
    /// The tarball's file name.
    pub name: String,
    pub dir: PathBuf,
}

impl Target {
    pub fn check(file: &Path, force: bool) -> Result<Target, ExportError> {
        let target_err = |path: &Path, reason: String| ExportError::Target {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(reason) = output_file_problem(file) {
            return Err(target_err(file, reason));
        }
        let name = file
            .file_name()
            .expect("checked: names a file")
            .to_string_lossy()
            .into_owned();
        let dir = parent_dir(file).to_path_buf();
        let (checksum_file, manifest_file) = sidecar_paths(file);
        for p in [file, &checksum_file, &manifest_file] {
            let Ok(link) = fs::symlink_metadata(p) else {
                continue;
            };
            // Follow a symlink to see what it points at (a dangling one is replaced like a file).
            let meta = fs::metadata(p).unwrap_or(link);
            if meta.is_dir() {
                return Err(target_err(p, "it is a directory".into()));
            }
            if !meta.is_file() {
                return Err(target_err(p, "it is not a regular file".into()));
            }
            if !force {
                return Err(ExportError::Exists {
                    path: p.to_path_buf(),
                });
            }
        }
        Ok(Target {
            file: file.to_path_buf(),
            checksum_file,
            manifest_file,
            name,
            dir,
        })
    }

    /// Remove what an export to the same name left when it was killed
    /// outright (its temporary file and the engine's scratch directory).
    pub fn remove_stale(&self) {
        crate::fsutil::remove_stale(&self.dir, &format!(".{}.", self.name));
        crate::fsutil::remove_stale(&self.dir, &format!(".{}.pgha-save-", self.name));
    }

    /// The temporary file the tarball is written to: made now, so that an
    /// unwritable directory is found before the long work.
    pub fn create_temp(&self) -> Result<AtomicFile, ExportError> {
        AtomicFile::create(&self.file).map_err(|e| ExportError::Target {
            path: self.file.clone(),
            reason: format!("cannot create a file in {}: {e}", self.dir.display()),
        })
    }

    /// A private directory for the engine's own temporary files, next to the
    /// output (the same file system, which the user chose to hold the
    /// export), removed when dropped.
    pub fn scratch_dir(&self) -> Result<tempfile::TempDir, ExportError> {
        tempfile::Builder::new()
            .prefix(&format!(".{}.pgha-save-{}-", self.name, std::process::id()))
            .tempdir_in(&self.dir)
            .map_err(|e| ExportError::Target {
                path: self.file.clone(),
                reason: format!("cannot create a directory in {}: {e}", self.dir.display()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Diagnostic, ExitCode};

    #[test]
    fn existing_files_need_force_and_directories_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("x.tar");
        assert!(Target::check(&f, false).is_ok());
        std::fs::write(d.path().join("x.tar.sha256"), "mine").unwrap();
        let e = Target::check(&f, false).unwrap_err();
        assert!(matches!(e, ExportError::Exists { .. }), "{e}");
        assert_eq!(e.exit_code(), ExitCode::Usage);
        assert!(Target::check(&f, true).is_ok());
        std::fs::create_dir(&f).unwrap();
        let e = Target::check(&f, true).unwrap_err();
        assert!(matches!(e, ExportError::Target { .. }), "{e}");
        let e = Target::check(&d.path().join("missing/x.tar"), true).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        assert_eq!(std::fs::read(d.path().join("x.tar.sha256")).unwrap(), b"mine");
    }
}
