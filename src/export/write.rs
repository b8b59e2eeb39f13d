//! `export`: the target is checked and the temporary file made first; then
//! the engine's `save` streams through compression into it (the engine's own
//! temporary files in a private directory next to it), the checksum file and
//! manifest are written, and the tarball is renamed to its final name last.

use super::compress::compress_stream;
use super::manifest::{ExportManifest, Written, default_file_name};
use super::signal::stopped;
use super::target::Target;
use super::{Compression, ExportError};
use crate::engine::{Engine, EngineError};
use crate::fsutil::{self, AtomicFile, ChecksumLine};
use crate::progress::Progress;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub tag: String,
    /// The tarball to write; default: [`default_file_name`] in the current directory.
    pub output: Option<PathBuf>,
    pub compression: Compression,
    /// Compression level (zstd 1–19, gzip 1–9); default [`super::DEFAULT_ZSTD_LEVEL`] / [`super::DEFAULT_GZIP_LEVEL`].
    pub level: Option<i32>,
    /// Replace an existing tarball, checksum file and manifest.
    pub force: bool,
    /// Further images saved into the same archive (`export --spec`: the
    /// rest of a deployment's images); the manifest lists every one.
    pub also: Vec<String>,
}

/// What `export` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportOutcome {
    pub file: PathBuf,
    pub checksum_file: PathBuf,
    pub manifest_file: PathBuf,
    pub manifest: ExportManifest,
}

/// Put a finished file in place: over an old one only with --force (the
/// check at the start may be stale by now).
fn commit(f: AtomicFile, force: bool) -> Result<(), ExportError> {
    let dest = f.dest().to_path_buf();
    let done = if force { f.commit() } else { f.commit_new() };
    done.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            ExportError::Exists { path: dest }
        } else {
            ExportError::io("renaming into place", &dest)(e)
        }
    })
}

fn write_small(path: &Path, bytes: &[u8], force: bool) -> Result<(), ExportError> {
    let mut f = AtomicFile::create(path).map_err(ExportError::io("creating a temporary file for", path))?;
    f.write_all(bytes).map_err(ExportError::io("writing", path))?;
    commit(f, force)
}

/// What can be checked without the engine: the tag and the target. [`export`]
/// does it first; a caller may do it before finding an engine.
pub fn check_request(req: &ExportRequest) -> Result<(), ExportError> {
    target(req).map(drop)
}

fn target(req: &ExportRequest) -> Result<Target, ExportError> {
    EngineError::check_reference(&req.tag)?;
    for tag in &req.also {
        EngineError::check_reference(tag)?;
    }
    let file = match &req.output {
        Some(p) => p.clone(),
        None => PathBuf::from(default_file_name(&req.tag, req.compression)?),
    };
    Target::check(&file, req.force)
}

/// Write the checksum file and the manifest, then rename the tarball to its
/// final name, last: a finished name means a complete export. On an error
/// the sidecars just written are removed again. (Also `export --since`.)
pub(crate) fn put_in_place(
    target: &Target,
    tmp: AtomicFile,
    manifest: &ExportManifest,
    force: bool,
) -> Result<(), ExportError> {
    let sums = fsutil::checksum_text(&[ChecksumLine {
        sha256: manifest.sha256,
        name: target.name.clone(),
    }]);
    write_small(&target.checksum_file, sums.as_bytes(), force)?;
    let written = write_small(&target.manifest_file, &manifest.to_json(), force)
        // Last: the tarball under its final name means everything is complete.
        .and_then(|()| commit(tmp, force));
    if let Err(e) = written {
        // Ours, written a moment ago: don't leave sidecars without their tarball.
        let _ = std::fs::remove_file(&target.checksum_file);
        if !matches!(e, ExportError::Exists { ref path } if *path == target.manifest_file) {
            let _ = std::fs::remove_file(&target.manifest_file);
        }
        return Err(e);
    }
    Ok(())
}

/// Save `req.tag` (and `req.also`) from the engine into a compressed, checksummed tarball.
pub fn export(
    engine: &Engine,
    req: &ExportRequest,
    progress: &Progress,
) -> Result<ExportOutcome, ExportError> {
    let target = target(req)?;
    target.remove_stale();
    let image_id = engine.image_id(&req.tag)?;
    let labels = engine.labels(&req.tag)?;

    let tmp = target.create_temp()?;
    // The engine's scratch directory is next to the output; the save stream
    // owns it and removes it once the engine has stopped.
    let scratch = target.scratch_dir()?;
    let task = progress.bytes(&format!("export {}", target.name), None);
    let mut all = vec![req.tag.clone()];
    all.extend(req.also.iter().cloned());
    // Each image's id before the save: what `load` checks.
    let images = if req.also.is_empty() {
        Vec::new()
    } else {
        all.iter()
            .map(|tag| {
                Ok(super::ExportedImage {
                    tag: tag.clone(),
                    image_id: engine.image_id(tag)?,
                })
            })
            .collect::<Result<Vec<_>, EngineError>>()?
    };
    let mut save = engine.save_many_into(&all, scratch)?;
    let piped = compress_stream(&mut save, tmp.file(), req.compression, req.level, &task);
    if stopped() {
        return Err(ExportError::Stopped);
    }
    // Our side failed (disk full, …): dropping `save` stops the engine's save too.
    let (digest, size, uncompressed) = piped.map_err(ExportError::io("writing", tmp.path()))?;
    save.finish()?;
    if uncompressed == 0 {
        return Err(EngineError::Unexpected {
            command: format!("{} save {}", engine.kind(), req.tag),
            output: "no bytes".into(),
        }
        .into());
    }
    task.finish(format!("{size} bytes"));

    let mut manifest = ExportManifest::new(
        engine,
        &req.tag,
        image_id,
        target.name.clone(),
        req.compression,
        Written {
            sha256: digest,
            size,
            uncompressed_size: uncompressed,
        },
        &labels,
    );
    manifest.images = images;
    if stopped() {
        return Err(ExportError::Stopped);
    }

    put_in_place(&target, tmp, &manifest, req.force)?;
    Ok(ExportOutcome {
        file: target.file,
        checksum_file: target.checksum_file,
        manifest_file: target.manifest_file,
        manifest,
    })
}
