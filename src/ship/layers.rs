//! The image as layers: its diff ids (what the engines key layers by), the
//! layers every image in an engine holds, and a local cache of compressed
//! layers filled from one `save` of the image.
//!
//! The cache (`<cache>/ship/layers/<diff id hex>.tar.zst`, `…/configs/<image
//! id hex>.json`) is content-addressed: a layer enters it only after its
//! uncompressed bytes hashed to its diff id, by rename from a temporary file
//! in the same directory. It lets one `save` serve every host, and a re-run
//! after an interruption start sending without saving again.

use super::ShipError;
use super::error::io_err;
use crate::engine::{Engine, EngineError};
use crate::hash::{HashingReader, Sha256Digest};
use crate::progress::Progress;
use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::path::PathBuf;

/// zstd level of the layers on the wire: level 3 compresses a layer of
/// binaries and packages to about the size of `gzip -6` at several times its speed.
pub const ZSTD_LEVEL: i32 = 3;

/// The image to ship, as the local engine describes it.
#[derive(Debug, Clone)]
pub struct SourceImage {
    pub tag: String,
    /// `sha256:<hex>`: the digest of its config, the same on every engine.
    pub id: String,
    /// Diff ids (sha256 of each uncompressed layer tar), bottom first.
    pub layers: Vec<Sha256Digest>,
}

impl SourceImage {
    pub fn inspect(engine: &Engine, tag: &str) -> Result<Self, ShipError> {
        let id = engine.image_id(tag)?;
        let layers = layers_of(engine, tag)?;
        Ok(SourceImage {
            tag: tag.to_string(),
            id,
            layers,
        })
    }

    pub fn id_hex(&self) -> &str {
        self.id.trim_start_matches("sha256:")
    }
}

fn parse_diff_id(s: &str) -> Option<Sha256Digest> {
    s.trim().strip_prefix("sha256:")?.parse().ok()
}

fn layers_of(engine: &Engine, reference: &str) -> Result<Vec<Sha256Digest>, ShipError> {
    let text = engine_output(
        engine,
        &[
            "image",
            "inspect",
            "--format",
            "{{json .RootFS.Layers}}",
            reference,
        ],
    )?;
    let list: Vec<String> = serde_json::from_str(text.trim()).map_err(|_| EngineError::Unexpected {
        command: format!("{} image inspect {reference}", engine.kind()),
        output: text.chars().take(200).collect(),
    })?;
    list.iter()
        .map(|s| {
            parse_diff_id(s).ok_or_else(|| ShipError::BadImage {
                tag: reference.to_string(),
                id: String::new(),
                detail: s.clone(),
            })
        })
        .collect()
}

/// Run one engine command; its stdout, or an error with the end of its stderr.
pub(crate) fn engine_output(engine: &Engine, args: &[&str]) -> Result<String, ShipError> {
    Ok(engine.run_ok(args)?)
}

/// Every image an engine holds: (id, diff ids).
pub fn local_inventory(engine: &Engine) -> Result<Vec<(String, Vec<Sha256Digest>)>, ShipError> {
    let run = |args: &[&str]| engine_output(engine, args);
    let ids = run(&["image", "ls", "-a", "-q", "--no-trunc"])?;
    let ids: BTreeSet<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut args = vec![
        "image",
        "inspect",
        "--format",
        "image {{.Id}}{{range .RootFS.Layers}} {{.}}{{end}}",
    ];
    args.extend(ids.iter().copied());
    Ok(parse_images(&run(&args)?))
}

/// `image <id> <diff id>…` lines.
pub(crate) fn parse_images(text: &str) -> Vec<(String, Vec<Sha256Digest>)> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "image").then_some(())?;
            let id = crate::engine::normalize_id(w.next()?);
            Some((id, w.filter_map(parse_diff_id).collect()))
        })
        .collect()
}

/// How many bottom layers of `want` some image in `held` already has, in the
/// same order: the engines key layers by their chain (a layer on its
/// parents), so only a common prefix can be reused.
pub fn held_prefix(want: &[Sha256Digest], held: &[(String, Vec<Sha256Digest>)]) -> usize {
    held.iter()
        .map(|(_, layers)| want.iter().zip(layers).take_while(|(a, b)| a == b).count())
        .max()
        .unwrap_or(0)
}

/// Compressed layers and configs, by digest.
pub struct LayerCache {
    dir: PathBuf,
}

impl LayerCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn layer_path(&self, diff_id: &Sha256Digest) -> PathBuf {
        self.dir
            .join("layers")
            .join(format!("{}.tar.zst", diff_id.to_hex()))
    }

    pub fn config_path(&self, id_hex: &str) -> PathBuf {
        self.dir.join("configs").join(format!("{id_hex}.json"))
    }

    pub fn has_layer(&self, d: &Sha256Digest) -> bool {
        self.layer_path(d).is_file()
    }

    /// Compressed size of a cached layer.
    pub fn layer_size(&self, d: &Sha256Digest) -> u64 {
        std::fs::metadata(self.layer_path(d))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    pub fn config(&self, image: &SourceImage) -> Result<Vec<u8>, ShipError> {
        let p = self.config_path(image.id_hex());
        std::fs::read(&p).map_err(io_err("reading the cached image config", &p))
    }

    /// Make sure the image's config and the layers in `want` are cached,
    /// reading one `save` of the image when something is missing.
    pub fn fill(
        &self,
        engine: &Engine,
        image: &SourceImage,
        want: &BTreeSet<Sha256Digest>,
        progress: &Progress,
    ) -> Result<(), ShipError> {
        // Verified on use: an entry that does not decompress to its digest
        // (a bad disk, an edit, a truncated copy) is evicted and made again
        // from the save, instead of being sent and blamed on the transfer.
        for d in want.iter().filter(|d| self.has_layer(d)) {
            let p = self.layer_path(d);
            if let Err(why) = verify_layer(&p, d) {
                progress.println(format!(
                    "warning: the cached layer {} {why}; removed it, it is made again from the image",
                    p.display()
                ));
                std::fs::remove_file(&p).map_err(io_err("removing the corrupt cached layer", &p))?;
            }
        }
        let config_path = self.config_path(image.id_hex());
        if config_path.is_file() {
            let ok = crate::fsutil::read_limited(&config_path, CONFIG_MAX_BYTES)
                .is_ok_and(|b| Sha256Digest::of(&b).to_hex() == image.id_hex());
            if !ok {
                progress.println(format!(
                    "warning: the cached image config {} does not hash to the image id; removed it, it is made again",
                    config_path.display()
                ));
                std::fs::remove_file(&config_path)
                    .map_err(io_err("removing the corrupt cached config", &config_path))?;
            }
        }
        let missing: BTreeSet<Sha256Digest> = want.iter().filter(|d| !self.has_layer(d)).copied().collect();
        if missing.is_empty() && config_path.is_file() {
            return Ok(());
        }
        for sub in ["layers", "configs"] {
            let d = self.dir.join(sub);
            std::fs::create_dir_all(&d).map_err(io_err("creating the layer cache", &d))?;
        }
        let task = progress.bytes(&format!("save {}", short(&image.tag)), None);
        task.set_message(format!("compressing {} layer(s)", missing.len()));
        let mut save = engine.save(&image.tag)?;
        let res = self.take_from_save(&mut save, image, &missing, &task);
        if let Err(e) = res {
            drop(save);
            return Err(e);
        }
        save.finish()?;
        task.finish("cached");
        if !config_path.is_file() {
            return Err(ShipError::SaveIncomplete {
                tag: image.tag.clone(),
                what: format!("the config {}", image.id),
            });
        }
        if let Some(d) = missing.iter().find(|d| !self.has_layer(d)) {
            return Err(ShipError::SaveIncomplete {
                tag: image.tag.clone(),
                what: format!("the layer sha256:{d}"),
            });
        }
        Ok(())
    }

    fn take_from_save(
        &self,
        save: &mut dyn Read,
        image: &SourceImage,
        missing: &BTreeSet<Sha256Digest>,
        task: &crate::progress::Task,
    ) -> Result<(), ShipError> {
        let layers_dir = self.dir.join("layers");
        let read_err = |e: io::Error| ShipError::Io {
            what: "reading the engine's save of",
            path: PathBuf::from(&image.tag),
            source: e,
        };
        let counted = Counted { inner: save, task };
        let mut ar = tar::Archive::new(counted);
        for entry in ar.entries().map_err(read_err)? {
            let mut entry = entry.map_err(read_err)?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let path = entry.path().map_err(read_err)?.to_string_lossy().into_owned();
            let name = path.rsplit('/').next().unwrap_or(&path).to_string();
            if name.ends_with(".json") && entry.size() < (16 << 20) && name != "manifest.json" {
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).map_err(read_err)?;
                if Sha256Digest::of(&bytes).to_hex() == image.id_hex() {
                    let p = self.config_path(image.id_hex());
                    crate::fsutil::write_atomic(&p, &bytes).map_err(io_err("writing", &p))?;
                }
                continue;
            }
            if !name.ends_with(".tar") {
                continue;
            }
            // Podman names layer files by diff id: skip unwanted ones unread.
            if let Some(d) = name
                .strip_suffix(".tar")
                .and_then(|h| h.parse::<Sha256Digest>().ok())
                && !missing.contains(&d)
            {
                continue;
            }
            let mut tmp = tempfile::Builder::new()
                .prefix(".layer.")
                .suffix(".partial")
                .tempfile_in(&layers_dir)
                .map_err(io_err("creating a temporary file in", &layers_dir))?;
            let mut hashing = HashingReader::new(&mut entry);
            {
                let w = io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
                let mut enc = zstd::stream::write::Encoder::new(w, ZSTD_LEVEL)
                    .map_err(io_err("compressing a layer into", &layers_dir))?;
                enc.include_checksum(true)
                    .map_err(io_err("compressing a layer into", &layers_dir))?;
                io::copy(&mut hashing, &mut enc).map_err(read_err)?;
                let mut w = enc
                    .finish()
                    .map_err(io_err("compressing a layer into", &layers_dir))?;
                w.flush().map_err(io_err("writing", &layers_dir))?;
            }
            let (_, digest, _) = hashing.finish();
            if missing.contains(&digest) {
                let dst = self.layer_path(&digest);
                tmp.persist(&dst).map_err(|e| ShipError::Io {
                    what: "renaming a cached layer to",
                    path: dst,
                    source: e.error,
                })?;
            }
        }
        // The engine may pad after the end of the archive: read it all, or its save dies of SIGPIPE.
        io::copy(&mut ar.into_inner(), &mut io::sink()).map_err(read_err)?;
        Ok(())
    }
}

/// The largest image config read from the cache.
const CONFIG_MAX_BYTES: u64 = 16 << 20;

/// Does the cached layer at `p` decompress to bytes whose sha256 is `d`?
/// Err says what is wrong with it.
fn verify_layer(p: &std::path::Path, d: &Sha256Digest) -> Result<(), String> {
    let f = std::fs::File::open(p).map_err(|e| format!("cannot be read ({e})"))?;
    let dec = zstd::stream::read::Decoder::new(f).map_err(|e| format!("does not decompress ({e})"))?;
    let mut h = HashingReader::new(dec);
    io::copy(&mut h, &mut io::sink()).map_err(|e| format!("does not decompress ({e})"))?;
    let (_, got, _) = h.finish();
    if got != *d {
        return Err(format!("decompresses to sha256:{got}, not sha256:{d}"));
    }
    Ok(())
}

struct Counted<'a, R> {
    inner: R,
    task: &'a crate::progress::Task,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // `export --since` stops on SIGINT/SIGTERM (the save is killed, its scratch removed).
        if crate::export::stopped() {
            return Err(io::Error::other("stopped by a signal"));
        }
        let n = self.inner.read(buf)?;
        self.task.inc(n as u64);
        Ok(n)
    }
}

/// `localhost/x/y:1` → `y:1`, for labels.
pub(crate) fn short(tag: &str) -> &str {
    tag.rsplit('/').next().unwrap_or(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Sha256Digest {
        Sha256Digest::from_bytes([n; 32])
    }

    #[test]
    fn only_a_common_bottom_is_held() {
        let want = [d(1), d(2), d(3)];
        assert_eq!(held_prefix(&want, &[]), 0);
        assert_eq!(held_prefix(&want, &[("a".into(), vec![d(1), d(2), d(9)])]), 2);
        // The same layers on other parents do not count.
        assert_eq!(held_prefix(&want, &[("a".into(), vec![d(2), d(3)])]), 0);
        assert_eq!(
            held_prefix(
                &want,
                &[
                    ("a".into(), vec![d(1)]),
                    ("b".into(), vec![d(1), d(2), d(3), d(4)])
                ]
            ),
            3
        );
    }

    #[test]
    fn inventory_lines() {
        let h = d(7).to_hex();
        let text = format!("engine podman\nimage sha256:abc sha256:{h} sha256:{h}\nimage def\nstaged {h}\n");
        let v = parse_images(&text);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0], ("sha256:abc".to_string(), vec![d(7), d(7)]));
        assert_eq!(v[1], ("sha256:def".to_string(), vec![]));
    }
}
