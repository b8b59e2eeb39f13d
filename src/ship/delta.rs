//! Offline transfer of an upgrade: `export --since OLD_TAG` writes a delta
//! with only the layers OLD_TAG lacks; `load` rebuilds the full image on a
//! host that has OLD_TAG's layers, verifies it and loads it.
//!
//! A delta is a plain tar (the layers inside are already zstd-compressed):
//!
//! ```text
//! pgha-delta.json          first entry: tag, image id, all diff ids, base tag/id, sizes
//! <image id hex>.json      the image config (its sha256 is the image id)
//! <diff id hex>.tar.zst    each layer above the base, compressed
//! ```
//!
//! with `FILE.sha256` and `FILE.manifest.json` next to it, as for a full
//! export, so `load` checks the whole file before anything reaches the
//! engine. Loading hands the engine a docker-archive with empty files for
//! the base's layers, which it holds and does not read (docs/ship.md), under
//! a temporary tag; the id is checked before the real tag is set.

use super::error::io_err;
use super::layers::{self, LayerCache, SourceImage};
use super::{ShipError, manifest_json};
use crate::engine::{Engine, EngineError, EngineKind};
use crate::export::{self, Compression, ExportError, ExportManifest};
use crate::hash::{HashingReader, HashingWriter, Sha256Digest};
use crate::progress::Progress;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// The largest image config read from a delta (a real one is a few KiB;
/// it must hash to the image id anyway).
const CONFIG_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// The first entry of every delta file.
pub const DELTA_ENTRY: &str = "pgha-delta.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeltaInfo {
    pub delta_version: u32,
    pub tag: String,
    pub image_id: String,
    /// Every diff id of the image, bottom first.
    pub layers: Vec<Sha256Digest>,
    /// How many bottom layers come from the base (not in the file).
    pub base_layers: usize,
    pub base_tag: String,
    pub base_image_id: String,
    /// Uncompressed size of each layer in the file, in order.
    pub sizes: Vec<u64>,
}

#[derive(Debug, Clone)]
pub struct DeltaRequest {
    pub tag: String,
    pub since: String,
    pub output: Option<PathBuf>,
    /// Replace an existing FILE, FILE.sha256 and FILE.manifest.json.
    pub force: bool,
    /// Where compressed layers are cached (`<cache>/ship`).
    pub cache_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeltaOutcome {
    pub file: PathBuf,
    pub checksum_file: PathBuf,
    pub manifest_file: PathBuf,
    pub manifest: ExportManifest,
    pub delta: DeltaInfo,
}

/// `x_v2.tar.zst` → `x_v2.delta.tar`.
fn default_name(tag: &str) -> Result<String, ShipError> {
    let full = export::default_file_name(tag, Compression::Zstd)?;
    Ok(format!("{}.delta.tar", full.trim_end_matches(".tar.zst")))
}

/// What can be checked without the engine, as for a full export: both tags
/// and the target (an existing file is refused unless `force`).
pub fn check_request(req: &DeltaRequest) -> Result<(), ShipError> {
    target(req).map(drop)
}

fn target(req: &DeltaRequest) -> Result<export::Target, ShipError> {
    EngineError::check_reference(&req.tag)?;
    EngineError::check_reference(&req.since)?;
    let file = match &req.output {
        Some(p) => p.clone(),
        None => PathBuf::from(default_name(&req.tag)?),
    };
    Ok(export::Target::check(&file, req.force)?)
}

/// Stop cleanly on SIGINT/SIGTERM ([`export::stop_on_signals`]), or pass `res` on.
fn unless_stopped<T>(res: Result<T, ShipError>) -> Result<T, ShipError> {
    if export::stopped() {
        return Err(ExportError::Stopped.into());
    }
    res
}

/// Write a delta of `req.tag` over `req.since`.
pub fn export_delta(
    engine: &Engine,
    req: &DeltaRequest,
    progress: &Progress,
) -> Result<DeltaOutcome, ShipError> {
    let target = target(req)?;
    target.remove_stale();
    let new = SourceImage::inspect(engine, &req.tag)?;
    let labels = engine.labels(&req.tag)?;
    let old = SourceImage::inspect(engine, &req.since)?;
    let base_layers = layers::held_prefix(&new.layers, &[(old.id.clone(), old.layers.clone())]);
    if base_layers == 0 {
        return Err(ShipError::NothingShared {
            old: req.since.clone(),
            new: req.tag.clone(),
        });
    }
    // Made now, so that an unwritable directory is found before the save.
    let tmp = target.create_temp()?;
    let cache = LayerCache::new(req.cache_dir.join("ship"));
    let top: Vec<Sha256Digest> = new.layers[base_layers..].to_vec();
    let want: BTreeSet<Sha256Digest> = top.iter().copied().collect();
    unless_stopped(cache.fill(engine, &new, &want, progress))?;

    let mut sizes = Vec::new();
    for d in &top {
        let p = cache.layer_path(d);
        let f = File::open(&p).map_err(io_err("opening the cached layer", &p))?;
        let dec = zstd::stream::read::Decoder::new(f).map_err(io_err("reading the cached layer", &p))?;
        let (digest, n) = Sha256Digest::of_reader(dec).map_err(io_err("reading the cached layer", &p))?;
        if digest != *d {
            let _ = std::fs::remove_file(&p);
            return Err(ShipError::SaveIncomplete {
                tag: req.tag.clone(),
                what: format!(
                    "an intact copy of layer sha256:{d} (the cached one was damaged and is removed; run again)"
                ),
            });
        }
        sizes.push(n);
    }
    let info = DeltaInfo {
        delta_version: 1,
        tag: new.tag.clone(),
        image_id: new.id.clone(),
        layers: new.layers.clone(),
        base_layers,
        base_tag: old.tag.clone(),
        base_image_id: old.id.clone(),
        sizes,
    };

    let task = progress.bytes(&format!("delta {}", layers::short(&req.tag)), None);
    let mut w = HashingWriter::new(BufWriter::with_capacity(1 << 20, tmp.file()));
    {
        let mut b = tar::Builder::new(&mut w);
        let json = serde_json::to_vec_pretty(&info).expect("serializes");
        append(&mut b, DELTA_ENTRY, json.len() as u64, &mut &json[..])
            .map_err(io_err("writing", tmp.path()))?;
        let config = cache.config(&new)?;
        append(
            &mut b,
            &format!("{}.json", new.id_hex()),
            config.len() as u64,
            &mut &config[..],
        )
        .map_err(io_err("writing", tmp.path()))?;
        for d in &top {
            let p = cache.layer_path(d);
            let f = File::open(&p).map_err(io_err("opening the cached layer", &p))?;
            let len = f.metadata().map_err(io_err("reading", &p))?.len();
            append(
                &mut b,
                &format!("{}.tar.zst", d.to_hex()),
                len,
                &mut BufReader::new(f),
            )
            .map_err(io_err("writing", tmp.path()))?;
            task.inc(len);
            unless_stopped(Ok(()))?;
        }
        b.finish().map_err(io_err("writing", tmp.path()))?;
    }
    let (mut inner, digest, size) = w.finish();
    inner.flush().map_err(io_err("writing", tmp.path()))?;
    drop(inner);
    task.finish(format!("{size} bytes"));

    let manifest = ExportManifest::new(
        engine,
        &new.tag,
        new.id.clone(),
        target.name.clone(),
        Compression::None,
        export::Written {
            sha256: digest,
            size,
            uncompressed_size: size,
        },
        &labels,
    );
    unless_stopped(Ok(()))?;
    export::put_in_place(&target, tmp, &manifest, req.force)?;
    Ok(DeltaOutcome {
        file: target.file,
        checksum_file: target.checksum_file,
        manifest_file: target.manifest_file,
        manifest,
        delta: info,
    })
}

fn append<W: Write>(b: &mut tar::Builder<W>, name: &str, size: u64, data: &mut dyn Read) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, name, data)
}

/// Does `file` start like a delta (its first tar entry is `pgha-delta.json`)?
pub fn is_delta(file: &Path) -> bool {
    let mut head = [0u8; 512];
    File::open(file)
        .and_then(|mut f| f.read_exact(&mut head))
        .map(|_| head.starts_with(DELTA_ENTRY.as_bytes()) && head[DELTA_ENTRY.len()] == 0)
        .unwrap_or(false)
}

#[derive(Debug, Clone, Serialize)]
pub struct DeltaLoadOutcome {
    pub reference: String,
    pub image_id: String,
    pub base_tag: String,
    pub layers_in_file: usize,
    pub verified: export::Verified,
}

/// Verify a delta, check its base is here, rebuild and load the image.
pub fn load_delta(engine: &Engine, file: &Path, progress: &Progress) -> Result<DeltaLoadOutcome, ShipError> {
    // A file that does not match its checksum is exit 3, as for a full export.
    let verified = export::verify(file, progress)?;
    let bad = |why: String| ShipError::BadDelta {
        file: file.to_path_buf(),
        why,
    };
    // The whole file matched its checksum: from here on, content that does
    // not verify (or does not even parse) was altered and re-sealed: exit 3.
    let tampered = |why: String| ShipError::DeltaTampered {
        file: file.to_path_buf(),
        why,
    };
    let malformed = |e: io::Error| tampered(format!("it does not read as a delta archive ({e})"));
    let f = File::open(file).map_err(io_err("opening", file))?;
    let mut ar = tar::Archive::new(BufReader::with_capacity(1 << 20, f));
    let mut entries = ar.entries().map_err(io_err("reading", file))?;
    let info: DeltaInfo = {
        let mut e = entries
            .next()
            .ok_or_else(|| bad("it is empty".into()))?
            .map_err(io_err("reading", file))?;
        let mut json = Vec::new();
        let limit = crate::fsutil::SMALL_FILE_MAX_BYTES;
        (&mut e)
            .take(limit + 1)
            .read_to_end(&mut json)
            .map_err(io_err("reading", file))?;
        if json.len() as u64 > limit {
            return Err(bad(format!("{DELTA_ENTRY} is larger than {limit} bytes")));
        }
        serde_json::from_slice(&json).map_err(|e| bad(format!("{DELTA_ENTRY}: {e}")))?
    };
    let top = info.layers.len().saturating_sub(info.base_layers);
    if info.base_layers > info.layers.len() || info.sizes.len() != top {
        return Err(tampered(format!("{DELTA_ENTRY} is inconsistent")));
    }
    let held = layers::local_inventory(engine)?;
    if layers::held_prefix(&info.layers[..info.base_layers], &held) < info.base_layers {
        return Err(ShipError::DeltaBaseMissing {
            file: file.to_path_buf(),
            base_tag: info.base_tag.clone(),
            base_id: info.base_image_id.clone(),
            engine: engine.kind().to_string(),
        });
    }
    let id_hex = info.image_id.trim_start_matches("sha256:").to_string();
    let tmptag = format!(
        "localhost/pgha-delta-incoming:{}-{}",
        &id_hex[..12.min(id_hex.len())],
        std::process::id()
    );
    let image = SourceImage {
        tag: info.tag.clone(),
        id: info.image_id.clone(),
        layers: info.layers.clone(),
    };
    let task = progress.bytes("load", Some(verified.size));

    // Rebuild the docker-archive in a thread, streamed into the engine's load.
    let (reader, writer) = io::pipe().map_err(io_err("creating a pipe for", file))?;
    let (id_hex_r, task_r, info_r, tmptag_r, image_r) = (&id_hex, &task, &info, &tmptag, &image);
    let loaded = std::thread::scope(|s| {
        let loader = s.spawn(move || {
            let mut r = reader;
            engine.load(&mut r)
        });
        let produce = move || -> Result<(), ShipError> {
            let mut b = tar::Builder::new(BufWriter::with_capacity(1 << 20, writer));
            let manifest = manifest_json(image_r, tmptag_r);
            append(&mut b, "manifest.json", manifest.len() as u64, &mut &manifest[..])
                .map_err(io_err("streaming to the engine", file))?;
            for d in &info_r.layers[..info_r.base_layers] {
                append(&mut b, &format!("{}.tar", d.to_hex()), 0, &mut io::empty())
                    .map_err(io_err("streaming to the engine", file))?;
            }
            let mut config_seen = false;
            let mut next = info_r.base_layers;
            for e in entries {
                let mut e = e.map_err(malformed)?;
                let path = e.path().map_err(malformed)?.to_string_lossy().into_owned();
                if path == format!("{id_hex_r}.json") {
                    let mut c = Vec::new();
                    (&mut e)
                        .take(CONFIG_MAX_BYTES + 1)
                        .read_to_end(&mut c)
                        .map_err(io_err("reading", file))?;
                    if Sha256Digest::of(&c).to_hex() != *id_hex_r {
                        return Err(tampered("its image config does not hash to the image id".into()));
                    }
                    append(&mut b, &path, c.len() as u64, &mut &c[..])
                        .map_err(io_err("streaming to the engine", file))?;
                    config_seen = true;
                    continue;
                }
                let want = info_r.layers.get(next).copied();
                let Some(d) = want.filter(|d| path == format!("{}.tar.zst", d.to_hex())) else {
                    return Err(tampered(format!("unexpected entry {path}")));
                };
                let size = info_r.sizes[next - info_r.base_layers];
                task_r.inc(e.size());
                let failed = std::cell::Cell::new(false);
                let dec = zstd::stream::read::Decoder::new(&mut e).map_err(malformed)?;
                let mut h = HashingReader::new(NoteFailure {
                    inner: dec,
                    failed: &failed,
                });
                append(&mut b, &format!("{}.tar", d.to_hex()), size, &mut h).map_err(|e| {
                    if failed.get() {
                        tampered(format!("layer sha256:{d} does not unpack ({e})"))
                    } else {
                        io_err("streaming to the engine", file)(e)
                    }
                })?;
                let (_, got, _) = h.finish();
                if got != d {
                    // Stop before the archive ends: the engine gets a truncated tar and loads nothing.
                    return Err(tampered(format!("layer sha256:{d} unpacks to sha256:{got}")));
                }
                next += 1;
            }
            if !config_seen || next != info_r.layers.len() {
                return Err(tampered("it lacks the config or a layer".into()));
            }
            b.into_inner()
                .and_then(|mut w| w.flush())
                .map_err(io_err("streaming to the engine", file))?;
            Ok(())
        };
        // The pipe's writer is dropped when `produce` returns: on an error the
        // engine sees a truncated archive and loads nothing.
        let produced = produce();
        let loaded = loader.join().unwrap_or_else(|_| {
            Err(crate::engine::EngineError::Unexpected {
                command: "load".into(),
                output: "the loader panicked".into(),
            })
        });
        produced.and(loaded.map_err(ShipError::from))
    });
    if let Err(e) = loaded {
        let _ = engine.remove_image(&tmptag);
        return Err(e);
    }
    let actual = engine.image_id(&tmptag)?;
    if actual != info.image_id {
        let _ = engine.remove_image(&tmptag);
        return Err(ShipError::LoadedIdMismatch {
            reference: info.tag.clone(),
            expected: info.image_id.clone(),
            actual,
        });
    }
    retag(engine, &tmptag, &id_hex, &info.tag)?;
    task.finish("loaded");
    Ok(DeltaLoadOutcome {
        reference: info.tag.clone(),
        image_id: info.image_id.clone(),
        base_tag: info.base_tag.clone(),
        layers_in_file: top,
        verified,
    })
}

/// A reader that notes whether its inner reader failed (a corrupt stream),
/// as opposed to the writer it is copied into.
struct NoteFailure<'a, R> {
    inner: R,
    failed: &'a std::cell::Cell<bool>,
}

impl<R: Read> Read for NoteFailure<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|_| self.failed.set(true))
    }
}

/// Set `tag` on the image, then drop the temporary tag.
fn retag(engine: &Engine, tmptag: &str, id_hex: &str, tag: &str) -> Result<(), ShipError> {
    let run = |args: &[&str]| layers::engine_output(engine, args).map(drop);
    run(&["tag", tmptag, tag])?;
    match engine.kind() {
        EngineKind::Podman => run(&["untag", id_hex, tmptag]),
        EngineKind::Docker => run(&["rmi", tmptag]),
    }
}
