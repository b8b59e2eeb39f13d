//! Write the build context into a directory and a deterministic tar of it,
//! whose SHA-256 is the context digest.
//!
//! Determinism: entries sorted by path, every timestamp SOURCE_DATE_EPOCH (or
//! 0), owner and group 0 with no names, modes 0755 for directories and
//! executables and 0644 for the rest, GNU headers. The same plan, sources
//! and bootstrap binary give a byte-identical tar.
//!
//! Layout of `--out DIR`:
//!
//! ```text
//! DIR/context/          the build context (Dockerfile, sources/, bin/, hook/, config/, pgha-manifest.json)
//! DIR/context.tar       the same files as a deterministic tar (its sha256 is the context digest)
//! DIR/manifest.json     what went in, the context digest and the labels to pass
//! DIR/.pgha-output.json  every file above with its sha256: the proof that DIR is ours
//! ```
//!
//! The output is assembled in a temporary sibling directory and renamed into
//! place when complete: an interrupted run leaves no half-written DIR.
//!
//! An existing DIR is replaced only when the tool can prove it is its own,
//! file by file: it is empty, or its `.pgha-output.json` lists every file in
//! it with the digest the file still has. A file the user added or changed,
//! a symlink, or a directory without the record is refused (exit 2) and
//! nothing is touched. `build` records its `build.log` there too, while it
//! is written (no digest) and when done (its digest).

use super::glibc::ElfNeeds;
use super::plan::{BuildPlan, PlannedExtension};
use super::render::{self, RenderedFile};
use super::{ContextError, Inputs};
use crate::catalog::BuildKind;
use crate::fsutil;
use crate::hash::{HashingWriter, Sha256Digest};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The file in DIR that marks it as a generate output.
pub const MANIFEST: &str = "manifest.json";
pub const CONTEXT_DIR: &str = "context";
pub const CONTEXT_TAR: &str = "context.tar";
/// The record of every file of an output, with its digest.
pub const OWNER_RECORD: &str = ".pgha-output.json";
/// The build log `build` writes into the output.
pub const BUILD_LOG: &str = "build.log";
/// The manifest inside the context (and in the image at
/// [`crate::contract::layout::BUILD_MANIFEST`]).
pub use crate::contract::layout::CONTEXT_MANIFEST as INNER_MANIFEST;
pub use crate::contract::{BuildManifest, ManifestExtension, ManifestFile};

/// `DIR/manifest.json`: the inner manifest plus the digest and what to pass the engine.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutputManifest {
    /// `sha256:<hex>` of context.tar.
    pub context_digest: String,
    pub context_tar: String,
    pub context_tar_size: u64,
    /// Every label of the image, `io.pgha.context-digest` included.
    pub labels: BTreeMap<String, String>,
    /// Build arguments to pass (`--build-arg K=V`).
    pub build_args: BTreeMap<String, String>,
    #[serde(flatten)]
    pub manifest: BuildManifest,
}

/// The result of [`super::generate`].
#[derive(Debug, Clone)]
pub struct Generated {
    pub out_dir: PathBuf,
    pub context_dir: PathBuf,
    pub context_tar: PathBuf,
    pub digest: Sha256Digest,
    pub manifest: OutputManifest,
}

enum Content<'a> {
    Bytes(&'a [u8]),
    /// Copy from this file, which must have this digest.
    Verified {
        from: &'a Path,
        expected: Sha256Digest,
        ext: &'a PlannedExtension,
    },
    Copy(&'a Path),
    /// A crate from the cache, which must have its Cargo.lock checksum.
    Crate {
        from: &'a Path,
        expected: Sha256Digest,
        set: &'a str,
    },
}

struct Planned<'a> {
    path: String,
    mode: u32,
    content: Content<'a>,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ContextError + '_ {
    move |source| ContextError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Pack the rendered files, the sources and the bootstrap binary into `out`.
pub fn pack(
    plan: &BuildPlan,
    rendered: Vec<RenderedFile>,
    inputs: &Inputs<'_>,
    bootstrap: &ElfNeeds,
    out: &Path,
) -> Result<Generated, ContextError> {
    // `out` is checked just before it is replaced (below); the pipeline
    // checks it before any work too.
    let epoch = inputs.source_date_epoch.unwrap_or(0);

    // What goes in, before writing anything.
    let mut planned: Vec<Planned<'_>> = rendered
        .iter()
        .map(|f| Planned {
            path: f.path.clone(),
            mode: f.mode,
            content: Content::Bytes(&f.contents),
        })
        .collect();
    for (ext, src) in plan.sources_needed() {
        let given = inputs
            .sources
            .iter()
            .find(|s| s.extension == ext.name && s.version == ext.version)
            .ok_or_else(|| ContextError::MissingSource {
                extension: ext.name.clone(),
                version: ext.version.clone(),
                looked_for: None,
            })?;
        if given.sha256 != src.sha256 {
            return Err(ContextError::SourceMismatch {
                source_of: format!("{} {}", ext.name, ext.version),
                path: given.path.clone(),
                expected: src.sha256.to_hex(),
                actual: given.sha256.to_hex(),
            });
        }
        planned.push(Planned {
            path: format!("sources/{}", src.file_name),
            mode: 0o644,
            content: Content::Verified {
                from: &given.path,
                expected: src.sha256,
                ext,
            },
        });
    }
    // The vendored crates: crates/<set>/<name>-<version>.crate, each copied
    // from the cache and re-hashed against its Cargo.lock checksum, and a
    // SHA256SUMS per set that the stage checks and vendors from.
    let mut sums: Vec<(String, String)> = Vec::new();
    let sets = plan
        .cargo_pgrx
        .iter()
        .map(|c| c.crates_dir.as_str())
        .chain(plan.pgrx_extensions().filter_map(|e| e.crates_dir.as_deref()));
    for set in sets {
        let given =
            inputs
                .crates
                .iter()
                .find(|s| s.set == set)
                .ok_or_else(|| ContextError::MissingCrate {
                    set: set.to_string(),
                    name: "its Cargo.lock".into(),
                    version: "-".into(),
                })?;
        let mut text = String::new();
        let mut crates: Vec<_> = given.crates.iter().collect();
        crates.sort_by_key(|c| format!("{}-{}.crate", c.name, c.version));
        for c in crates {
            let file = format!("{}-{}.crate", c.name, c.version);
            text.push_str(&format!("{}  {file}\n", c.sha256));
            planned.push(Planned {
                path: format!("crates/{set}/{file}"),
                mode: 0o644,
                content: Content::Crate {
                    from: &c.path,
                    expected: c.sha256,
                    set,
                },
            });
        }
        sums.push((format!("crates/{set}/SHA256SUMS"), text));
    }
    for (path, text) in &sums {
        planned.push(Planned {
            path: path.clone(),
            mode: 0o644,
            content: Content::Bytes(text.as_bytes()),
        });
    }
    planned.push(Planned {
        path: "bin/pgha-bootstrap".into(),
        mode: 0o755,
        content: Content::Copy(inputs.bootstrap_bin),
    });

    // Assemble in a temporary sibling of `out`.
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(io_err(&parent))?;
    let stem = out
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{stem}.pgha-tmp-"))
        .tempdir_in(&parent)
        .map_err(io_err(&parent))?;
    let ctx_dir = tmp.path().join(CONTEXT_DIR);

    let mut files = Vec::new();
    for p in &planned {
        let dest = ctx_dir.join(&p.path);
        if let Some(d) = dest.parent() {
            fs::create_dir_all(d).map_err(io_err(d))?;
        }
        let (sha256, size) = match &p.content {
            Content::Bytes(b) => {
                fs::write(&dest, b).map_err(io_err(&dest))?;
                (Sha256Digest::of(b), b.len() as u64)
            }
            Content::Copy(from) => copy_hashing(from, &dest)?,
            Content::Crate { from, expected, set } => {
                let (actual, size) = copy_hashing(from, &dest)?;
                if actual != *expected {
                    return Err(ContextError::SourceMismatch {
                        source_of: format!("a crate of {set}"),
                        path: from.to_path_buf(),
                        expected: expected.to_hex(),
                        actual: actual.to_hex(),
                    });
                }
                (actual, size)
            }
            Content::Verified { from, expected, ext } => {
                let (actual, size) = copy_hashing(from, &dest)?;
                if actual != *expected {
                    return Err(ContextError::SourceMismatch {
                        source_of: format!("{} {}", ext.name, ext.version),
                        path: from.to_path_buf(),
                        expected: expected.to_hex(),
                        actual: actual.to_hex(),
                    });
                }
                // The builder stage unpacks the (now verified) archive: refuse one
                // that would write outside its tree, or that --strip-components=1
                // would scatter.
                if ext.recipe != BuildKind::Prebuilt {
                    let source_of = format!("{} {}", ext.name, ext.version);
                    let summary = crate::archive::check(&dest).map_err(|e| ContextError::UnsafeSource {
                        source_of: source_of.clone(),
                        path: from.to_path_buf(),
                        source: Box::new(e),
                    })?;
                    if summary.top_level.is_none() {
                        return Err(ContextError::SourceLayout {
                            source_of,
                            path: from.to_path_buf(),
                        });
                    }
                }
                (actual, size)
            }
        };
        fs::set_permissions(&dest, fs::Permissions::from_mode(p.mode)).map_err(io_err(&dest))?;
        files.push(ManifestFile {
            path: p.path.clone(),
            sha256,
            size,
            mode: format!("{:04o}", p.mode),
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));

    let bin_file = files.iter().find(|f| f.path == "bin/pgha-bootstrap");
    let manifest = BuildManifest {
        version: crate::contract::BUILD_MANIFEST_VERSION,
        tool_version: plan.tool_version.clone(),
        base_image: plan.base.reference.clone(),
        base: serde_json::to_value(&plan.base).unwrap_or_default(),
        pg_majors: plan.pg_majors.clone(),
        extensions: plan
            .extensions
            .iter()
            .map(|e| ManifestExtension {
                name: e.name.clone(),
                version: e.version.clone(),
                recipe: e.recipe.to_string(),
                sha256: e.source.as_ref().map(|s| s.sha256),
                url: e.source.as_ref().map(|s| s.url.clone()),
                stage: e.stage.clone(),
                min_version: e.min_version.clone(),
                smoke: e
                    .smoke
                    .as_ref()
                    .map(|s| serde_json::to_value(s).expect("a smoke test serializes")),
            })
            .collect(),
        shared_preload_libraries: plan.preload.clone(),
        parameters: plan.local_parameters.clone(),
        dcs_parameters: plan.dcs_parameters.clone(),
        spilo_configuration: plan.spilo_configuration_value(),
        runtime_packages: plan.runtime_packages.clone(),
        rust_image: plan.rust_image.clone(),
        cargo_pgrx: plan
            .cargo_pgrx
            .iter()
            .map(|c| serde_json::json!({ "version": c.version, "sha256": c.sha256 }))
            .collect(),
        bootstrap_bin: serde_json::json!({
            "sha256": bin_file.map(|f| f.sha256.to_hex()),
            "size": bin_file.map(|f| f.size),
            "machine": bootstrap.machine,
            "max_glibc": bootstrap.max_glibc,
        }),
        source_date_epoch: epoch,
        notes: plan.notes.clone(),
        left_out: plan.left_out.clone(),
        inputs: Some(plan.inputs.clone()),
        files: files.clone(),
    };
    let inner = to_json(&manifest);
    let inner_path = ctx_dir.join(INNER_MANIFEST);
    fs::write(&inner_path, &inner).map_err(io_err(&inner_path))?;
    fs::set_permissions(&inner_path, fs::Permissions::from_mode(0o644)).map_err(io_err(&inner_path))?;

    // The tar of the context directory, in path order.
    let tar_path = tmp.path().join(CONTEXT_TAR);
    let (digest, tar_size) = write_tar(&ctx_dir, epoch, &tar_path)?;

    let digest_label = format!("sha256:{digest}");
    let mut labels = render::labels(plan);
    labels.insert("io.pgha.context-digest".into(), digest_label.clone());
    let output = OutputManifest {
        context_digest: digest_label.clone(),
        context_tar: CONTEXT_TAR.into(),
        context_tar_size: tar_size,
        labels,
        build_args: [("PGHA_CONTEXT_DIGEST".to_string(), digest_label)].into(),
        manifest,
    };
    let outer_path = tmp.path().join(MANIFEST);
    let outer = to_json(&output);
    fs::write(&outer_path, &outer).map_err(io_err(&outer_path))?;

    // The proof of ownership: every file, with its digest.
    let mut record = OwnerRecord::default();
    for f in &files {
        record
            .files
            .insert(format!("{CONTEXT_DIR}/{}", f.path), Some(f.sha256));
    }
    record.files.insert(
        format!("{CONTEXT_DIR}/{INNER_MANIFEST}"),
        Some(Sha256Digest::of(&inner)),
    );
    record.files.insert(CONTEXT_TAR.into(), Some(digest));
    record
        .files
        .insert(MANIFEST.into(), Some(Sha256Digest::of(&outer)));
    record.write(tmp.path())?;

    // Into place: the old output (if any) is replaced only now, and only if
    // it is still provably ours (a long fetch gave the user time to add files).
    check_out_dir(out)?;
    let tmp_path = tmp.keep();
    crate::fsutil::replace_dir(&tmp_path, out).map_err(|(path, e)| io_err(&path)(e))?;
    Ok(Generated {
        out_dir: out.to_path_buf(),
        context_dir: out.join(CONTEXT_DIR),
        context_tar: out.join(CONTEXT_TAR),
        digest,
        manifest: output,
    })
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    let mut s = serde_json::to_vec_pretty(v).expect("manifest serializes");
    s.push(b'\n');
    s
}

/// Every file of an output (relative path → digest; `None` for a log the
/// tool is writing), stored as [`OWNER_RECORD`] in it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct OwnerRecord {
    /// Identifies the record (and its format).
    pgha_image_output: u32,
    files: BTreeMap<String, Option<Sha256Digest>>,
}

/// The largest owner record read (it lists every file of the output).
const RECORD_MAX_BYTES: u64 = 16 * 1024 * 1024;

impl OwnerRecord {
    fn read(out: &Path) -> Option<OwnerRecord> {
        let bytes = fsutil::read_limited(&out.join(OWNER_RECORD), RECORD_MAX_BYTES).ok()?;
        serde_json::from_slice::<OwnerRecord>(&bytes)
            .ok()
            .filter(|r| r.pgha_image_output == 1)
    }

    fn write(&mut self, out: &Path) -> Result<(), ContextError> {
        self.pgha_image_output = 1;
        let path = out.join(OWNER_RECORD);
        fsutil::write_atomic(&path, &to_json(self)).map_err(io_err(&path))
    }
}

/// Record `out/build.log` in the output's record: `None` while the build
/// writes it, then its digest. `out` must be an output of [`pack`].
pub fn record_log(out: &Path, digest: Option<Sha256Digest>) -> Result<(), ContextError> {
    let mut record = OwnerRecord::read(out).ok_or_else(|| ContextError::OutDirNotOurs {
        path: out.to_path_buf(),
        reason: format!("its {OWNER_RECORD} is missing or unreadable"),
    })?;
    record.files.insert(BUILD_LOG.into(), digest);
    record.write(out)
}

/// Can `out` be replaced without losing anything? Yes when it does not
/// exist, is an empty directory, or holds only files its [`OWNER_RECORD`]
/// lists, each with the recorded digest. Checked before any work and again
/// just before the replacement.
pub fn check_out_dir(out: &Path) -> Result<(), ContextError> {
    let refuse = |reason: String| ContextError::OutDirNotOurs {
        path: out.to_path_buf(),
        reason,
    };
    if !matches!(
        out.components().next_back(),
        Some(std::path::Component::Normal(_))
    ) {
        return Err(refuse(
            "--out must end in a directory name (not `.`, `..` or `/`)".into(),
        ));
    }
    let meta = match fs::symlink_metadata(out) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(refuse(e.to_string())),
    };
    if meta.file_type().is_symlink() {
        return Err(refuse(
            "it is a symbolic link (give the directory it points to, or a new one)".into(),
        ));
    }
    if !meta.is_dir() {
        return Err(refuse("it is not a directory".into()));
    }
    let empty = fsutil::walk_tree(out)
        .map_err(|e| refuse(e.to_string()))?
        .iter()
        .all(|(_, t)| t.is_dir());
    if empty {
        return Ok(());
    }
    let Some(record) = OwnerRecord::read(out) else {
        return Err(refuse(format!(
            "it has no {OWNER_RECORD} (the record of a pgha-image output), so its files may be yours"
        )));
    };
    match fsutil::unrecorded_file(out, &record.files, OWNER_RECORD, "generate") {
        Ok(None) => Ok(()),
        Ok(Some(reason)) => Err(refuse(reason)),
        Err(e) => Err(refuse(e.to_string())),
    }
}

fn copy_hashing(from: &Path, to: &Path) -> Result<(Sha256Digest, u64), ContextError> {
    let src = File::open(from).map_err(io_err(from))?;
    let mut dst = BufWriter::new(File::create(to).map_err(io_err(to))?);
    let done = crate::hash::copy_hashing(src, &mut dst, u64::MAX, |_| {})
        .map_err(io_err(from))?
        .expect("no limit");
    dst.flush().map_err(io_err(to))?;
    Ok(done)
}

/// Write the deterministic tar of `root` (see [`fsutil::write_dir_tar`]) to `dest`.
fn write_tar(root: &Path, mtime: u64, dest: &Path) -> Result<(Sha256Digest, u64), ContextError> {
    let file = File::create(dest).map_err(io_err(dest))?;
    let w =
        fsutil::write_dir_tar(root, mtime, HashingWriter::new(BufWriter::new(file))).map_err(io_err(dest))?;
    let (mut buf, digest, size) = w.finish();
    buf.flush().map_err(io_err(dest))?;
    buf.get_ref().sync_all().map_err(io_err(dest))?;
    Ok((digest, size))
}
