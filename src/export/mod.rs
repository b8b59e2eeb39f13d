//! Export an image for machines without a registry, and load it there.
//!
//! `export` streams the engine's `save` (a docker-archive tar) through
//! compression into a temporary file next to the destination, hashing the
//! compressed bytes as they are written, then writes `FILE.sha256`
//! (`sha256sum -c` compatible) and `FILE.manifest.json`, and renames the
//! tarball to its final name last. A killed or failed export leaves only a
//! hidden `.FILE.*.partial` (removed on error when the process survives),
//! never a file that looks finished.
//!
//! `load` checks the file against its checksum file (and the manifest, when
//! present) before anything reaches the engine, then decompresses it itself
//! (gzip, zstd or plain tar, by magic bytes) and streams it into the
//! engine's `load`, so it works whatever compressions the engine reads.

use crate::engine::{Engine, EngineError};
use crate::error::{Diagnostic, ExitCode};
use crate::hash::{HashingWriter, Sha256Digest};
use crate::progress::Progress;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::mpsc::{SyncSender, sync_channel};

/// Labels the build sets, read back into the manifest.
pub const LABEL_BASE_IMAGE: &str = "io.pgha.base-image";
pub const LABEL_EXTENSIONS: &str = "io.pgha.extensions";
pub const LABEL_TOOL_VERSION: &str = "io.pgha.tool-version";
pub const LABEL_CONTEXT_DIGEST: &str = "io.pgha.context-digest";

/// Format of the manifest; bumped when fields change meaning.
pub const MANIFEST_VERSION: u32 = 1;

/// zstd level 1: keeps the export near the speed of the engine's own `save`
/// (benches/export.sh) at about the size of `gzip -6`.
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;
pub const DEFAULT_GZIP_LEVEL: u32 = 6;
const CHUNK: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Zstd,
    Gzip,
    None,
}

impl Compression {
    /// File name suffix after `.tar`.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Zstd => ".tar.zst",
            Self::Gzip => ".tar.gz",
            Self::None => ".tar",
        }
    }
}

impl FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "zstd" | "zst" => Ok(Self::Zstd),
            "gzip" | "gz" => Ok(Self::Gzip),
            "none" => Ok(Self::None),
            _ => Err(format!("unknown compression {s:?}: use zstd, gzip or none")),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Zstd => "zstd",
            Self::Gzip => "gzip",
            Self::None => "none",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Engine(#[from] EngineError),

    #[error("{what}: {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("no checksum file {path} next to the export")]
    NoChecksum { path: PathBuf },

    #[error("checksum file {path} is not in `sha256sum` format (\"<64 hex>  <name>\")")]
    BadChecksumFile { path: PathBuf },

    #[error("{file} does not match its checksum: expected sha256 {expected}, the file has {actual}")]
    Mismatch {
        file: PathBuf,
        expected: String,
        actual: String,
    },

    #[error("the manifest {path} disagrees with the file: {detail}")]
    ManifestMismatch { path: PathBuf, detail: String },

    #[error("the manifest {path} cannot be read: {detail}")]
    BadManifest { path: PathBuf, detail: String },

    #[error("{path} is not an image archive (neither gzip, zstd nor tar)")]
    NotAnArchive { path: PathBuf },

    #[error("the loaded image {reference} has id {actual}, but the manifest says {expected}")]
    LoadedIdMismatch {
        reference: String,
        expected: String,
        actual: String,
    },

    #[error("export stopped by a signal; no file was written")]
    Stopped,

    #[error("cannot derive a file name from the tag {0:?}")]
    BadTag(String),
}

impl Diagnostic for ExportError {
    fn hint(&self) -> Option<String> {
        match self {
            ExportError::Engine(e) => e.hint(),
            ExportError::NoChecksum { .. } => Some(
                "copy the `.sha256` file (and the `.manifest.json`) written by `pgha-image export` \
                 next to the tarball"
                    .into(),
            ),
            ExportError::Mismatch { .. } | ExportError::ManifestMismatch { .. } => Some(
                "the file was changed or truncated after export: copy it again from the machine that \
                 exported it; nothing was loaded"
                    .into(),
            ),
            ExportError::LoadedIdMismatch { .. } => Some(
                "the engine rewrote the image on load; check the engine version, or remove the image and load again"
                    .into(),
            ),
            ExportError::BadTag(_) => Some("give the output file with -o FILE".into()),
            _ => None,
        }
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            ExportError::Engine(e) => e.exit_code(),
            ExportError::NoChecksum { .. }
            | ExportError::BadChecksumFile { .. }
            | ExportError::Mismatch { .. }
            | ExportError::ManifestMismatch { .. }
            | ExportError::BadManifest { .. }
            | ExportError::LoadedIdMismatch { .. } => ExitCode::Verification,
            ExportError::NotAnArchive { .. } | ExportError::BadTag(_) => ExitCode::Usage,
            ExportError::Io { .. } | ExportError::Stopped => ExitCode::Failure,
        }
    }
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ExportError + use<> {
    let path = path.to_path_buf();
    move |source| ExportError::Io { what, path, source }
}

/// The JSON manifest written next to an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportManifest {
    pub manifest_version: u32,
    pub tag: String,
    pub image_id: String,
    /// File name of the tarball (no directory).
    pub file: String,
    pub compression: Compression,
    /// Size of the file as written (compressed).
    pub size: u64,
    /// Size of the engine's `save` tar before compression.
    pub uncompressed_size: u64,
    /// SHA-256 of the file as written.
    pub sha256: Sha256Digest,
    /// From the image's `io.pgha.base-image` label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_image: Option<String>,
    /// From the image's `io.pgha.extensions` label (JSON), as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<serde_json::Value>,
    /// The pgha-image version that built the image (`io.pgha.tool-version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tool_version: Option<String>,
    /// The build context digest (`io.pgha.context-digest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_digest: Option<String>,
    /// The pgha-image version that exported it.
    pub exported_by: String,
    pub engine: String,
}

impl ExportManifest {
    fn fill_from_labels(&mut self, labels: &BTreeMap<String, String>) {
        self.base_image = labels.get(LABEL_BASE_IMAGE).cloned();
        self.extensions = labels
            .get(LABEL_EXTENSIONS)
            .map(|s| serde_json::from_str(s).unwrap_or_else(|_| serde_json::Value::String(s.clone())));
        self.image_tool_version = labels.get(LABEL_TOOL_VERSION).cloned();
        self.context_digest = labels.get(LABEL_CONTEXT_DIGEST).cloned();
    }
}

#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub tag: String,
    /// The tarball to write; default: [`default_file_name`] in the current directory.
    pub output: Option<PathBuf>,
    pub compression: Compression,
    /// Compression level (zstd 1–19, gzip 1–9); default [`DEFAULT_ZSTD_LEVEL`] / [`DEFAULT_GZIP_LEVEL`].
    pub level: Option<i32>,
}

/// What `export` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportOutcome {
    pub file: PathBuf,
    pub checksum_file: PathBuf,
    pub manifest_file: PathBuf,
    pub manifest: ExportManifest,
}

/// `supabase-patroni:v1.0` → `supabase-patroni_v1.0.tar.zst`; registry and
/// path parts are dropped (`ghcr.io/acme/x:1` → `x_1.tar.zst`), a missing tag is `latest`.
pub fn default_file_name(tag: &str, compression: Compression) -> Result<String, ExportError> {
    let no_digest = tag.split('@').next().unwrap_or(tag);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    let (name, t) = match last.split_once(':') {
        Some((n, t)) => (n, t),
        None => (last, "latest"),
    };
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let (name, t) = (clean(name), clean(t));
    if name.is_empty() || name.starts_with('.') {
        return Err(ExportError::BadTag(tag.to_string()));
    }
    Ok(format!("{name}_{t}{}", compression.extension()))
}

/// `FILE.sha256` and `FILE.manifest.json` for a tarball path.
pub fn sidecar_paths(file: &Path) -> (PathBuf, PathBuf) {
    let mut c = file.as_os_str().to_owned();
    c.push(".sha256");
    let mut m = file.as_os_str().to_owned();
    m.push(".manifest.json");
    (PathBuf::from(c), PathBuf::from(m))
}

/// Set by SIGINT/SIGTERM once [`stop_on_signals`] is installed.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Make SIGINT and SIGTERM stop a running export cleanly (engine's save
/// killed, temporary file removed, exit status 1) instead of killing the
/// process with a `.partial` file left behind. For the binary; call once.
pub fn stop_on_signals() {
    let handler = on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

fn stopped() -> bool {
    STOP.load(std::sync::atomic::Ordering::SeqCst)
}

/// Sends what is written to it in CHUNK-sized buffers down a channel.
struct ChannelWriter {
    tx: SyncSender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .send(full)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the file writer stopped"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// Read the save, compress, hash and write, in three threads (reading the
/// engine's pipe, compressing, hashing + writing the file) so that they
/// overlap. Returns (sha256 of the file, its size, uncompressed size).
fn compress_stream(
    save: &mut (dyn Read + Send),
    file: &File,
    compression: Compression,
    level: Option<i32>,
    task: &crate::progress::Task,
) -> io::Result<(Sha256Digest, u64, u64)> {
    std::thread::scope(|s| {
        let (in_tx, in_rx) = sync_channel::<Vec<u8>>(4);
        let (out_tx, out_rx) = sync_channel::<Vec<u8>>(4);
        let reader = s.spawn(move || -> io::Result<u64> {
            let mut total = 0u64;
            loop {
                if stopped() {
                    return Err(io::Error::new(io::ErrorKind::Interrupted, "stopped by a signal"));
                }
                let mut buf = vec![0u8; CHUNK];
                let (mut filled, mut eof) = (0, false);
                while filled < CHUNK {
                    match save.read(&mut buf[filled..]) {
                        Ok(0) => {
                            eof = true;
                            break;
                        }
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted && !stopped() => {}
                        Err(e) => return Err(e),
                    }
                }
                buf.truncate(filled);
                total += filled as u64;
                task.inc(filled as u64);
                // A closed channel: the compressor failed; its error is the one reported.
                if (filled > 0 && in_tx.send(buf).is_err()) || eof {
                    return Ok(total);
                }
            }
        });
        let writer = s.spawn(move || -> io::Result<(Sha256Digest, u64)> {
            let mut w = HashingWriter::new(BufWriter::with_capacity(CHUNK, file));
            for chunk in out_rx {
                w.write_all(&chunk)?;
            }
            let (mut inner, digest, n) = w.finish();
            inner.flush()?;
            Ok((digest, n))
        });
        let compressed = (move || -> io::Result<()> {
            let sink = ChannelWriter {
                tx: out_tx,
                buf: Vec::with_capacity(CHUNK),
            };
            let mut sink = match compression {
                Compression::Zstd => {
                    let mut enc = zstd::stream::Encoder::new(sink, level.unwrap_or(DEFAULT_ZSTD_LEVEL))?;
                    enc.include_checksum(true)?;
                    for c in in_rx {
                        enc.write_all(&c)?;
                    }
                    enc.finish()?
                }
                Compression::Gzip => {
                    let mut enc = flate2::write::GzEncoder::new(
                        sink,
                        flate2::Compression::new(level.map_or(DEFAULT_GZIP_LEVEL, |l| l.clamp(0, 9) as u32)),
                    );
                    for c in in_rx {
                        enc.write_all(&c)?;
                    }
                    enc.finish()?
                }
                Compression::None => {
                    let mut sink = sink;
                    for c in in_rx {
                        sink.write_all(&c)?;
                    }
                    sink
                }
            };
            sink.flush()
        })();
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("file writer panicked")));
        let read = reader
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("reader panicked")));
        // The reader's error first: a stop signal ends the compressor's input early.
        let read = read?;
        let (digest, size) = written?;
        compressed?;
        Ok((digest, size, read))
    })
}

/// Save `req.tag` from the engine into a compressed, checksummed tarball.
pub fn export(
    engine: &Engine,
    req: &ExportRequest,
    progress: &Progress,
) -> Result<ExportOutcome, ExportError> {
    let image_id = engine.image_id(&req.tag)?;
    let labels = engine.labels(&req.tag)?;
    let file = match &req.output {
        Some(p) => p.clone(),
        None => PathBuf::from(default_file_name(&req.tag, req.compression)?),
    };
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = file
        .file_name()
        .ok_or_else(|| ExportError::BadTag(file.display().to_string()))?
        .to_string_lossy()
        .into_owned();
    let (checksum_file, manifest_file) = sidecar_paths(&file);

    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        .permissions(file_mode())
        .tempfile_in(&dir)
        .map_err(io_err("creating a temporary file in", &dir))?;

    let task = progress.bytes(&format!("export {name}"), None);
    let mut save = engine.save(&req.tag)?;
    let piped = compress_stream(&mut save, tmp.as_file(), req.compression, req.level, &task);
    if stopped() {
        drop(save);
        return Err(ExportError::Stopped);
    }
    let (digest, size, uncompressed) = match piped {
        Ok(v) => v,
        Err(e) => {
            // Our side failed (disk full, …): stop the engine's save too.
            drop(save);
            return Err(io_err("writing", tmp.path())(e));
        }
    };
    save.finish()?;
    if uncompressed == 0 {
        return Err(EngineError::Unexpected {
            command: format!("{} save {}", engine.kind(), req.tag),
            output: "no bytes".into(),
        }
        .into());
    }
    tmp.as_file().sync_all().map_err(io_err("syncing", tmp.path()))?;
    task.finish(format!("{size} bytes"));

    let mut manifest = ExportManifest {
        manifest_version: MANIFEST_VERSION,
        tag: req.tag.clone(),
        image_id,
        file: name.clone(),
        compression: req.compression,
        size,
        uncompressed_size: uncompressed,
        sha256: digest,
        base_image: None,
        extensions: None,
        image_tool_version: None,
        context_digest: None,
        exported_by: crate::TOOL_VERSION.to_string(),
        engine: engine.kind().to_string(),
    };
    manifest.fill_from_labels(&labels);
    if stopped() {
        return Err(ExportError::Stopped);
    }

    write_atomically(&checksum_file, format!("{digest}  {name}\n").as_bytes())?;
    let mut json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    json.push(b'\n');
    write_atomically(&manifest_file, &json)?;
    // Last: the tarball under its final name means everything is complete.
    tmp.persist(&file).map_err(|e| ExportError::Io {
        what: "renaming the finished export to",
        path: file.clone(),
        source: e.error,
    })?;
    Ok(ExportOutcome {
        file,
        checksum_file,
        manifest_file,
        manifest,
    })
}

fn pump(
    src: &mut dyn Read,
    dst: &mut dyn Write,
    buf: &mut [u8],
    task: &crate::progress::Task,
) -> io::Result<()> {
    loop {
        let n = match src.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        dst.write_all(&buf[..n])?;
        task.inc(n as u64);
    }
}

/// Files get the usual mode (0666 less the umask), not a temp file's 0600.
fn file_mode() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o666)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".pgha-export.")
        .suffix(".partial")
        .permissions(file_mode())
        .tempfile_in(dir)
        .map_err(io_err("creating a temporary file in", dir))?;
    tmp.write_all(bytes).map_err(io_err("writing", path))?;
    tmp.as_file().sync_all().map_err(io_err("syncing", path))?;
    tmp.persist(path).map_err(|e| ExportError::Io {
        what: "renaming into place",
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

/// An export that passed verification.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub file: PathBuf,
    pub sha256: Sha256Digest,
    pub size: u64,
    /// The manifest, when it was next to the file.
    pub manifest: Option<ExportManifest>,
}

/// Check `file` against `FILE.sha256` and, when present, `FILE.manifest.json`.
pub fn verify(file: &Path, progress: &Progress) -> Result<Verified, ExportError> {
    let (checksum_file, manifest_file) = sidecar_paths(file);
    let text = match std::fs::read_to_string(&checksum_file) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ExportError::NoChecksum { path: checksum_file });
        }
        Err(e) => return Err(io_err("reading", &checksum_file)(e)),
    };
    let bad = || ExportError::BadChecksumFile {
        path: checksum_file.clone(),
    };
    let first = text.lines().find(|l| !l.trim().is_empty()).ok_or_else(bad)?;
    let hex = first.split_whitespace().next().ok_or_else(bad)?;
    let expected: Sha256Digest = hex.parse().map_err(|_| bad())?;

    let manifest =
        match std::fs::read(&manifest_file) {
            Ok(bytes) => Some(serde_json::from_slice::<ExportManifest>(&bytes).map_err(|e| {
                ExportError::BadManifest {
                    path: manifest_file.clone(),
                    detail: e.to_string(),
                }
            })?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err("reading", &manifest_file)(e)),
        };
    if let Some(m) = &manifest
        && m.sha256 != expected
    {
        return Err(ExportError::ManifestMismatch {
            path: manifest_file,
            detail: format!("it says sha256 {}, the checksum file {expected}", m.sha256),
        });
    }

    let f = File::open(file).map_err(io_err("opening", file))?;
    let len = f.metadata().map_err(io_err("reading", file))?.len();
    let task = progress.bytes("verify", Some(len));
    let mut hasher = HashingWriter::new(io::sink());
    let mut r = BufReader::with_capacity(CHUNK, f);
    pump(&mut r, &mut hasher, &mut vec![0u8; CHUNK], &task).map_err(io_err("reading", file))?;
    let (_, actual, size) = hasher.finish();
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

/// What `load` did.
#[derive(Debug, Clone, Serialize)]
pub struct LoadOutcome {
    pub reference: String,
    pub image_id: String,
    pub verified: Verified,
}

/// Which compression a file starts with.
pub fn detect_compression(head: &[u8]) -> Option<Compression> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some(Compression::Gzip)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Compression::Zstd)
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Some(Compression::None)
    } else {
        None
    }
}

/// Verify, then decompress and load into the engine.
pub fn load(engine: &Engine, file: &Path, progress: &Progress) -> Result<LoadOutcome, ExportError> {
    let verified = verify(file, progress)?;
    let mut f = File::open(file).map_err(io_err("opening", file))?;
    let mut head = [0u8; 512];
    let mut got = 0;
    while got < head.len() {
        match f.read(&mut head[got..]).map_err(io_err("reading", file))? {
            0 => break,
            n => got += n,
        }
    }
    let kind = detect_compression(&head[..got]).ok_or_else(|| ExportError::NotAnArchive {
        path: file.to_path_buf(),
    })?;
    let f = File::open(file).map_err(io_err("opening", file))?;
    let task = progress.bytes("load", Some(verified.size));
    let counted = ProgressReader {
        inner: f,
        task: &task,
    };
    let buffered = BufReader::with_capacity(CHUNK, counted);
    let mut reader: Box<dyn Read + '_> = match kind {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(buffered).map_err(io_err("reading", file))?)
        }
        Compression::None => Box::new(buffered),
    };
    let reference = engine.load(&mut reader)?;
    task.finish("loaded");
    let image_id = engine.image_id(&reference)?;
    if let Some(m) = &verified.manifest
        && m.image_id != image_id
    {
        return Err(ExportError::LoadedIdMismatch {
            reference,
            expected: m.image_id.clone(),
            actual: image_id,
        });
    }
    Ok(LoadOutcome {
        reference,
        image_id,
        verified,
    })
}

struct ProgressReader<'a, R> {
    inner: R,
    task: &'a crate::progress::Task,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.task.inc(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_from_tags() {
        assert_eq!(
            default_file_name("supabase-patroni:v1.0", Compression::Zstd).unwrap(),
            "supabase-patroni_v1.0.tar.zst"
        );
        assert_eq!(
            default_file_name("ghcr.io/acme/db:16-x", Compression::Gzip).unwrap(),
            "db_16-x.tar.gz"
        );
        assert_eq!(
            default_file_name("localhost:5000/db", Compression::None).unwrap(),
            "db_latest.tar"
        );
        assert!(default_file_name("", Compression::Zstd).is_err());
    }

    fn data() -> Vec<u8> {
        (0..5_000_000u32).map(|i| ((i / 7) % 251) as u8).collect()
    }

    #[test]
    fn compress_stream_round_trips_every_compression() {
        let d = tempfile::tempdir().unwrap();
        let input = data();
        for c in [Compression::Zstd, Compression::Gzip, Compression::None] {
            let path = d.path().join(format!("f{}", c.extension()));
            let f = File::create(&path).unwrap();
            let task = Progress::quiet().bytes("t", None);
            let (digest, size, raw) = compress_stream(&mut &input[..], &f, c, None, &task).unwrap();
            drop(f);
            assert_eq!(raw, input.len() as u64);
            let (on_disk, len) = Sha256Digest::of_file(&path).unwrap();
            assert_eq!((digest, size), (on_disk, len), "{c}");
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(
                detect_compression(&bytes[..4.min(bytes.len())]).is_some(),
                c != Compression::None
            );
            let back: Vec<u8> = match c {
                Compression::Zstd => zstd::decode_all(&bytes[..]).unwrap(),
                Compression::Gzip => {
                    let mut v = Vec::new();
                    flate2::read::MultiGzDecoder::new(&bytes[..])
                        .read_to_end(&mut v)
                        .unwrap();
                    v
                }
                Compression::None => bytes,
            };
            assert!(back == input, "{c}: round trip differs");
        }
    }

    #[test]
    fn compress_stream_reports_a_write_failure_without_hanging() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("ro");
        std::fs::write(&path, b"").unwrap();
        let read_only = File::open(&path).unwrap();
        let task = Progress::quiet().bytes("t", None);
        let input = data();
        for c in [Compression::Zstd, Compression::None] {
            assert!(
                compress_stream(&mut &input[..], &read_only, c, Some(3), &task).is_err(),
                "{c}"
            );
        }
    }

    #[test]
    fn magic_bytes() {
        assert_eq!(detect_compression(&[0x1f, 0x8b, 8]), Some(Compression::Gzip));
        assert_eq!(
            detect_compression(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Some(Compression::Zstd)
        );
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(detect_compression(&tar), Some(Compression::None));
        assert_eq!(detect_compression(b"hello"), None);
    }

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
            exported_by: "t".into(),
            engine: "podman".into(),
        };
        std::fs::write(
            d.path().join("x_1.tar.manifest.json"),
            serde_json::to_vec(&m).unwrap(),
        )
        .unwrap();
        let e = verify(&f, &Progress::quiet()).unwrap_err();
        assert!(matches!(e, ExportError::ManifestMismatch { .. }), "{e}");
    }
}
