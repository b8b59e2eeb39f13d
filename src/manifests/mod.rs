//! `pgha-image manifests`: from one cluster spec to the files each VM runs.
//!
//! ```text
//! cluster.toml ──► spec (checked, errors name field and line)
//! image ──► /etc/pgha/build-manifest.json (server settings) ─┐
//!                                                             ├─► render (minijinja, manifests/templates/) ──► DIR/
//! ```
//!
//! `DIR/<member>/` holds what one VM runs with `docker compose`: the
//! Patroni member, that VM's etcd member or Consul agent, and HAProxy;
//! `DIR/kubernetes/` the same cluster for the postgres-operator.
//!
//! Why the member address is in `SPILO_CONFIGURATION`: Spilo advertises
//! whatever the container's hostname resolves to, and reads `POD_IP` only
//! under Kubernetes; on a VM that is 127.0.1.1 or nothing. Setting
//! `postgresql.connect_address` and `restapi.connect_address` there wins
//! Spilo's merge.
//!
//! Every image is named by its digest ([`pin`]): the image ids the local
//! engine holds, or references the spec gives pinned.
//!
//! The output is written to a temporary sibling directory and renamed into
//! place; a previous output of this command is replaced whole when every
//! file in it is one the marker lists, with the digest it was written with
//! (the rule `generate` follows); a file the user added or edited, or
//! anything else, is refused unless `force`. The rendered files hold no
//! secret: they name the files `pgha-image secrets` makes (see
//! [`crate::secrets`]).

mod error;
pub mod image;
pub mod operations;
pub mod pin;
pub mod render;
pub mod spec;

pub use error::ManifestsError;
pub use render::RenderedFile;
pub use spec::Spec;

use crate::contract::BuildManifest;
use crate::engine::Engine;
use crate::hash::Sha256Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The file that marks a directory as this command's output.
pub const MARKER: &str = ".pgha-manifests.json";

/// Where the image's server settings come from.
pub enum ManifestSource<'a> {
    /// Read `/etc/pgha/build-manifest.json` out of the spec's image.
    Engine(&'a Engine),
    /// A file (offline rendering).
    File(&'a Path),
}

pub struct Request<'a> {
    pub spec: &'a Path,
    pub out: &'a Path,
    pub manifest: ManifestSource<'a>,
    pub force: bool,
}

/// What was written.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Report {
    pub tool_version: String,
    pub scope: String,
    pub image: String,
    pub out: PathBuf,
    pub members: Vec<String>,
    pub files: Vec<String>,
}

/// The image's manifest, from the engine or a file; an image without one
/// is an error at the spec's `image` line.
pub fn image_manifest(spec: &Spec, source: &ManifestSource<'_>) -> Result<BuildManifest, ManifestsError> {
    let engine = match source {
        ManifestSource::File(path) => return image::from_file(path),
        ManifestSource::Engine(engine) => engine,
    };
    let spec_err = |message: String, hint: &str, code| ManifestsError::Spec {
        path: spec.path.clone(),
        line: spec.image_line,
        field: "image".into(),
        message,
        hint: hint.into(),
        code,
    };
    match image::from_image(engine, &spec.image)? {
        image::FromImage::Found(m) => Ok(*m),
        image::FromImage::NoManifest => Err(spec_err(
            format!(
                "the image {} has no {}: it was not built by `pgha-image build`",
                spec.image,
                image::IMAGE_MANIFEST_PATH
            ),
            "build the image with `pgha-image build` (its server settings come from that file), \
             or render offline with --image-manifest FILE",
            crate::error::ExitCode::Usage,
        )),
        image::FromImage::NotFound => Err(spec_err(
            format!(
                "the image {} is not in the {} image store",
                spec.image,
                engine.kind()
            ),
            "load it (`pgha-image load`) or build it first, or render offline with --image-manifest FILE",
            crate::error::ExitCode::Prerequisite,
        )),
    }
}

/// Check the spec, read the image's manifest, render, write `out`.
pub fn run(req: &Request<'_>) -> Result<Report, ManifestsError> {
    let spec = spec::load(req.spec)?;
    let manifest = image_manifest(&spec, &req.manifest)?;
    let engine = match req.manifest {
        ManifestSource::Engine(engine) => Some(engine),
        ManifestSource::File(_) => None,
    };
    let pinned = pin::pin(&spec, engine)?;
    check_out(req.out, req.force)?;
    let files = render::render(&spec, &manifest, &pinned)?;
    let report = Report {
        tool_version: crate::TOOL_VERSION.to_string(),
        scope: spec.scope.clone(),
        image: spec.image.clone(),
        out: req.out.to_path_buf(),
        members: spec.members.iter().map(|m| m.name.clone()).collect(),
        files: files.iter().map(|f| f.path.clone()).collect(),
    };
    write_out(req.out, &files, &report)?;
    Ok(report)
}

/// The largest marker file read (it lists the files with their digests).
const MARKER_MAX_BYTES: u64 = 1024 * 1024;

/// What [`MARKER`] holds: the report, and the digest of every file written,
/// which is what makes the directory replaceable (the rule `generate`
/// follows, [`crate::fsutil::unrecorded_file`]).
#[derive(Serialize, Deserialize)]
struct Marker {
    #[serde(flatten)]
    report: Report,
    sha256: BTreeMap<String, Option<Sha256Digest>>,
}

/// Check `--out` before any work (the binary calls it before it looks for
/// an engine; [`run`] again before writing). `Ok(true)`: a previous output
/// of ours, every file in it as written; `Ok(false)`: absent or empty (or
/// anything, with `force`). A file added or changed by hand, or a directory
/// without a readable marker, is refused: replacing it would lose what the
/// user put there.
pub fn check_out(out: &Path, force: bool) -> Result<bool, ManifestsError> {
    let not_ours = |reason: String| ManifestsError::OutNotOurs {
        path: out.to_path_buf(),
        reason,
    };
    match fs::read_dir(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(not_ours("it is a file".into())),
        Err(e) => Err(io(format!("cannot read {}", out.display()), e)),
        Ok(mut entries) => {
            if entries.next().is_none() {
                return Ok(false);
            }
            let marker = crate::fsutil::read_regular_bounded(&out.join(MARKER), MARKER_MAX_BYTES)
                .ok()
                .and_then(|b| serde_json::from_slice::<Marker>(&b).ok());
            let reason = match marker {
                None => format!("it has no readable {MARKER}"),
                Some(m) => match crate::fsutil::unrecorded_file(out, &m.sha256, MARKER, "manifests") {
                    Ok(None) => return Ok(true),
                    Ok(Some(reason)) => reason,
                    Err(e) => e.to_string(),
                },
            };
            if force {
                return Ok(false);
            }
            Err(not_ours(reason))
        }
    }
}

fn io(what: String, source: std::io::Error) -> ManifestsError {
    ManifestsError::Io { what, source }
}

/// Write everything into a temporary sibling, then swap it into place: an
/// interrupted run leaves `out` as it was.
fn write_out(out: &Path, files: &[RenderedFile], report: &Report) -> Result<(), ManifestsError> {
    let parent = crate::fsutil::parent_dir(out);
    fs::create_dir_all(parent).map_err(|e| io(format!("cannot create {}", parent.display()), e))?;
    let tmp = crate::fsutil::sibling_tempdir(out).map_err(|(parent, e)| {
        io(
            format!("cannot create a temporary directory in {}", parent.display()),
            e,
        )
    })?;
    for f in files {
        let path = tmp.path().join(&f.path);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| io(format!("cannot create {}", dir.display()), e))?;
        }
        fs::write(&path, &f.contents).map_err(|e| io(format!("cannot write {}", path.display()), e))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(f.mode))
            .map_err(|e| io(format!("cannot set the mode of {}", path.display()), e))?;
    }
    let marker = Marker {
        report: report.clone(),
        sha256: files
            .iter()
            .map(|f| (f.path.clone(), Some(Sha256Digest::of(f.contents.as_bytes()))))
            .collect(),
    };
    let mut marker = serde_json::to_string_pretty(&marker).expect("marker serializes");
    marker.push('\n');
    let marker_path = tmp.path().join(MARKER);
    fs::write(&marker_path, marker).map_err(|e| io(format!("cannot write {}", marker_path.display()), e))?;
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755))
        .map_err(|e| io(format!("cannot set the mode of {}", tmp.path().display()), e))?;

    let tmp = tmp.keep();
    crate::fsutil::replace_dir(&tmp, out)
        .map_err(|(path, e)| io(format!("cannot move the output into {}", path.display()), e))
}
