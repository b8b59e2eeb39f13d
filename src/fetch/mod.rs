//! Fetching extension sources: download (or copy from a mirror) each
//! selected source, hash every byte while it streams into a temp file in the
//! cache, and move it into the content-addressed cache only when the digest
//! matches the catalog's pin.
//!
//! - `cache` (private): `<cache>/sha256/<hex>`, entries re-verified on every use,
//!   safe to share between concurrent fetches.
//! - [`http`] (private): one download with retries, stall timeout, size cap,
//!   redirect limit.
//! - [`mirror`]: `--mirror URL|DIR` and `pgha-image mirror DIR`.
//!
//! Which sources: whatever the selection says. An extension whose build kind
//! is `base` (provided by the base image) still has a pinned source, and it is
//! fetched like any other when selected, so that `--from-source` and
//! `pgha-image mirror` work without a second fetch.

mod cache;
pub mod crates;
mod error;
mod http;
pub mod mirror;

use cache::Cache;
pub use crates::{CrateSet, CrateSetFrom, CrateSetRequest, LockedCrate};
pub use error::FetchError;
pub use mirror::{Mirror, MirrorFile, MirrorSummary, check_mirror_dir, write_mirror};

use crate::catalog::{Selected, Source};
use crate::hash::Sha256Digest;
use crate::progress::{Progress, Task, human_bytes};
use crate::redact::RedactedUrl;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How to fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The content-addressed cache ([`default_cache_dir`] unless `--cache-dir`).
    pub cache_dir: PathBuf,
    /// Use only the cache; a missing source is an error.
    pub offline: bool,
    /// Fetch `<mirror>/<extension>-<version><suffix>` instead of upstream
    /// (and crates from `<mirror>/crates/…`, unless `crates_mirror`).
    pub mirror: Option<Mirror>,
    /// Where crates come from (`<base>/crates/<name>/<name>-<version>.crate`);
    /// None: `mirror`, or crates.io when there is no mirror.
    pub crates_mirror: Option<Mirror>,
    /// Allow plain `http://` upstream (and non-loopback mirror) URLs.
    pub allow_http: bool,
    /// Downloads at the same time.
    pub concurrency: usize,
    /// Further attempts after a transient failure (so `retries + 1` in all).
    pub retries: u32,
    /// Give up on a connection that sends nothing for this long.
    pub stall_timeout: Duration,
    /// Give up on one download attempt that takes longer than this in all.
    pub timeout: Duration,
    /// Refuse sources larger than this many bytes.
    pub max_size: u64,
    /// Follow at most this many redirects.
    pub max_redirects: usize,
    /// Wait before the first retry; doubles with each further one.
    pub retry_backoff: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            cache_dir: default_cache_dir(),
            offline: false,
            mirror: None,
            crates_mirror: None,
            allow_http: false,
            concurrency: 4,
            retries: 3,
            stall_timeout: Duration::from_secs(30),
            timeout: Duration::from_secs(30 * 60),
            max_size: 512 << 20,
            max_redirects: 10,
            retry_backoff: Duration::from_millis(500),
        }
    }
}

/// Where a fetched file came from this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Already in the cache (re-verified, no network request).
    Cache,
    /// Downloaded from the catalog's URL.
    Upstream,
    /// Copied or downloaded from `--mirror`.
    Mirror,
}

/// One verified source in the cache.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Fetched {
    pub name: String,
    pub version: String,
    pub sha256: Sha256Digest,
    pub size: u64,
    /// The verified file in the cache.
    pub path: PathBuf,
    /// `<extension>-<version><suffix>`, the name in a mirror and a build context.
    pub file_name: String,
    pub origin: Origin,
    /// Where the bytes came from (URL or mirror path; the cache path for
    /// cache hits), as shown: a URL's credentials are hidden.
    pub from: String,
}

/// The default cache: `$XDG_CACHE_HOME/pgha-image` (usually
/// `~/.cache/pgha-image`), or under the temp directory when there is no home.
pub fn default_cache_dir() -> PathBuf {
    dirs::cache_dir()
        .unwrap_or_else(|| std::env::temp_dir().join("pgha-image-cache"))
        .join("pgha-image")
}

/// The file name a source has in a mirror: `<extension>-<version><suffix>`.
pub fn file_name(name: &str, version: &str, source: &Source) -> String {
    format!("{name}-{version}{}", source.suffix())
}

/// One source to fetch, owned so that downloads can run as tasks.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub name: String,
    pub version: String,
    pub source: Source,
    pub file_name: String,
    /// A crate of a pgrx build: no bar of its own (there are hundreds), and
    /// taken from `crates_mirror` when set.
    pub crate_file: bool,
}

impl Job {
    fn label(&self) -> String {
        format!("{} {}", self.name, self.version)
    }

    fn mirror<'o>(&self, opts: &'o FetchOptions) -> Option<&'o Mirror> {
        match (self.crate_file, &opts.crates_mirror) {
            (true, Some(m)) => Some(m),
            _ => opts.mirror.as_ref(),
        }
    }
}

struct Shared {
    opts: FetchOptions,
    cache: Cache,
    client: reqwest::Client,
    progress: Progress,
    total: Task,
}

/// Fetch every selected source into the cache, concurrently; see the module
/// docs. All downloads run to the end; if any failed, the error names each
/// failure (and nothing unverified is left in the cache).
pub async fn fetch(
    selected: &[Selected<'_>],
    opts: &FetchOptions,
    progress: &Progress,
) -> Result<Vec<Fetched>, FetchError> {
    let jobs: Vec<Job> = selected
        .iter()
        .map(|s| Job {
            name: s.extension.name.clone(),
            version: s.version.version.clone(),
            source: s.version.source.clone(),
            file_name: file_name(&s.extension.name, &s.version.version, &s.version.source),
            crate_file: false,
        })
        .collect();
    fetch_jobs(jobs, "total", "sources", opts, progress).await
}

/// Fetch the crates of each requested set (see [`crates`]): first the
/// crates that carry a Cargo.lock (cargo-pgrx), then every crate each lock
/// names, each once however many sets share it.
pub async fn fetch_crates(
    requests: &[CrateSetRequest],
    opts: &FetchOptions,
    progress: &Progress,
) -> Result<Vec<CrateSet>, FetchError> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let roots: Vec<Job> = requests
        .iter()
        .filter_map(|r| match &r.from {
            CrateSetFrom::Crate(c) => Some(c.job()),
            CrateSetFrom::Archive(_) => None,
        })
        .collect();
    let roots = if roots.is_empty() {
        Vec::new()
    } else {
        fetch_jobs(roots, "cargo-pgrx", "crates", opts, progress).await?
    };
    let mut wanted: Vec<(String, Vec<LockedCrate>)> = Vec::new();
    for r in requests {
        let mut locked = match &r.from {
            CrateSetFrom::Archive(path) => {
                let (path, what) = (path.clone(), r.set.clone());
                let text = blocking(move || crates::lock_in_archive(&path, &what)).await?;
                crates::parse_lock(&text, &r.set)?
            }
            CrateSetFrom::Crate(c) => {
                let root = roots
                    .iter()
                    .find(|f| f.sha256 == c.sha256)
                    .expect("every root crate was fetched");
                let (path, what) = (root.path.clone(), r.set.clone());
                let text = blocking(move || crates::lock_in_archive(&path, &what)).await?;
                let mut l = crates::parse_lock(&text, &r.set)?;
                l.push(c.clone());
                l
            }
        };
        locked.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        locked.dedup();
        wanted.push((r.set.clone(), locked));
    }
    let mut all: Vec<&LockedCrate> = wanted.iter().flat_map(|(_, l)| l.iter()).collect();
    all.sort_by_key(|c| c.sha256.to_hex());
    all.dedup_by_key(|c| c.sha256);
    let jobs: Vec<Job> = all.iter().map(|c| c.job()).collect();
    let fetched = fetch_jobs(jobs, "crates", "crates", opts, progress).await?;
    Ok(wanted
        .into_iter()
        .map(|(set, locked)| CrateSet {
            set,
            crates: locked
                .iter()
                .map(|c| {
                    let f = fetched
                        .iter()
                        .find(|f| f.sha256 == c.sha256)
                        .expect("every crate was fetched");
                    Fetched {
                        name: c.name.clone(),
                        version: c.version.clone(),
                        file_name: c.mirror_path(),
                        ..f.clone()
                    }
                })
                .collect(),
        })
        .collect())
}

/// Fetch `jobs` concurrently into the cache; `label` names the total bar,
/// `what` the finished count ("sources", "crates").
async fn fetch_jobs(
    jobs: Vec<Job>,
    label: &str,
    what: &str,
    opts: &FetchOptions,
    progress: &Progress,
) -> Result<Vec<Fetched>, FetchError> {
    let cache = Cache::new(&opts.cache_dir);
    cache.prepare(!opts.offline)?;
    // What a killed fetch left behind (a concurrent fetch's files are locked).
    cache.sweep_stale_partials(Duration::from_secs(2));
    let shared = Arc::new(Shared {
        opts: opts.clone(),
        cache,
        client: http::client(opts)?,
        progress: progress.clone(),
        total: progress.count(label, jobs.len() as u64),
    });
    let permits = Arc::new(tokio::sync::Semaphore::new(opts.concurrency.max(1)));
    let handles: Vec<_> = jobs
        .into_iter()
        .map(|job| {
            let shared = shared.clone();
            let permits = permits.clone();
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await.expect("semaphore never closed");
                let r = fetch_one(&job, &shared).await;
                shared.total.inc(1);
                r
            })
        })
        .collect();
    let mut done = Vec::new();
    let mut errors = Vec::new();
    for h in futures_util::future::join_all(handles).await {
        match h {
            Ok(Ok(f)) => done.push(f),
            Ok(Err(e)) => errors.push(e),
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }
    match errors.len() {
        0 => {
            let downloaded: u64 = done
                .iter()
                .filter(|f| f.origin != Origin::Cache)
                .map(|f| f.size)
                .sum();
            shared.total.finish(format!(
                "{} {what} verified ({} downloaded)",
                done.len(),
                human_bytes(downloaded)
            ));
            Ok(done)
        }
        1 => {
            shared.total.fail("failed");
            Err(errors.pop().expect("one error"))
        }
        _ => {
            shared.total.fail("failed");
            Err(FetchError::Several(errors))
        }
    }
}

/// [`fetch`] on a runtime of its own, for callers without one. Must not be
/// called from inside a Tokio runtime.
pub fn fetch_blocking(
    selected: &[Selected<'_>],
    opts: &FetchOptions,
    progress: &Progress,
) -> Result<Vec<Fetched>, FetchError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(FetchError::Runtime)?;
    rt.block_on(fetch(selected, opts, progress))
}

/// [`fetch_crates`] on a runtime of its own; see [`fetch_blocking`].
pub fn fetch_crates_blocking(
    requests: &[CrateSetRequest],
    opts: &FetchOptions,
    progress: &Progress,
) -> Result<Vec<CrateSet>, FetchError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(FetchError::Runtime)?;
    rt.block_on(fetch_crates(requests, opts, progress))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

async fn fetch_one(job: &Job, shared: &Shared) -> Result<Fetched, FetchError> {
    let opts = &shared.opts;
    let task = if job.crate_file {
        Progress::quiet().bytes(&job.label(), None)
    } else {
        shared.progress.bytes(&job.label(), None)
    };
    let expected = job.source.sha256;
    let fetched = |path: PathBuf, size: u64, origin: Origin, from: String| Fetched {
        name: job.name.clone(),
        version: job.version.clone(),
        sha256: expected,
        size,
        path,
        file_name: job.file_name.clone(),
        origin,
        from,
    };

    let cache = shared.cache.clone();
    let corrupted = match blocking(move || cache.lookup(&expected)).await {
        Err(e) => {
            task.fail("cache error");
            return Err(e);
        }
        Ok(cache::Lookup::Hit { path, size }) => {
            task.set_length(size);
            task.inc(size);
            task.finish("cached, verified");
            let from = path.display().to_string();
            return Ok(fetched(path, size, Origin::Cache, from));
        }
        Ok(cache::Lookup::Corrupted { found }) => {
            shared.progress.println(format!(
                "{}: the cache entry {} was corrupted ({found}); removed it, fetching again",
                job.label(),
                shared.cache.path_for(&expected).display()
            ));
            true
        }
        Ok(cache::Lookup::Miss) => false,
    };

    if !opts.offline
        && let Err(e) = shared.cache.writable()
    {
        task.fail("cache not writable");
        return Err(e);
    }
    if opts.offline {
        task.fail("not cached (offline)");
        return Err(FetchError::Offline {
            name: job.name.clone(),
            version: job.version.clone(),
            sha256: expected,
            cache: shared.cache.root().to_path_buf(),
            corrupted,
        });
    }

    let result = match job.mirror(opts) {
        Some(Mirror::Dir(dir)) => copy_from_dir(job, dir, shared, &task).await,
        Some(m @ Mirror::Url(_)) => {
            let url = m.location(&job.file_name);
            download_url(job, url, true, shared, &task).await
        }
        None => download_url(job, RedactedUrl::new(&job.source.url), false, shared, &task).await,
    };
    match result {
        Ok(f) => {
            task.finish(format!(
                "{} verified ({})",
                human_bytes(f.size),
                origin_word(f.origin)
            ));
            Ok(f)
        }
        Err(e) => {
            task.fail(short(&e));
            Err(e)
        }
    }
}

fn origin_word(o: Origin) -> &'static str {
    match o {
        Origin::Cache => "cache",
        Origin::Upstream => "upstream",
        Origin::Mirror => "mirror",
    }
}

fn short(e: &FetchError) -> String {
    match e {
        FetchError::DigestMismatch { .. } => "digest mismatch".into(),
        FetchError::Status { status, .. } => format!("HTTP {status}"),
        FetchError::Truncated { .. } => "truncated".into(),
        FetchError::TooLarge { .. } => "too large".into(),
        FetchError::Stalled { .. } => "stalled".into(),
        FetchError::TimedOut { .. } => "timed out".into(),
        FetchError::Redirect { .. } => "redirects".into(),
        FetchError::InsecureUrl { .. } => "http:// refused".into(),
        FetchError::MirrorMissing { .. } => "not in mirror".into(),
        FetchError::MirrorNotFile { .. } => "not a file in mirror".into(),
        _ => "failed".into(),
    }
}

/// Move a download into the cache if its digest is the pinned one.
fn verify_and_commit(
    job: &Job,
    shared: &Shared,
    tmp: tempfile::NamedTempFile,
    actual: Sha256Digest,
    size: u64,
    from: RedactedUrl,
    origin: Origin,
) -> Result<Fetched, FetchError> {
    if actual != job.source.sha256 {
        // `tmp` is dropped here: nothing enters the cache.
        return Err(FetchError::DigestMismatch {
            name: job.name.clone(),
            version: job.version.clone(),
            url: from,
            expected: job.source.sha256,
            actual: Box::new(actual),
            size,
        });
    }
    let path = shared.cache.commit(tmp, &actual)?;
    Ok(Fetched {
        name: job.name.clone(),
        version: job.version.clone(),
        sha256: actual,
        size,
        path,
        file_name: job.file_name.clone(),
        origin,
        from: from.shown(),
    })
}

async fn download_url(
    job: &Job,
    url: RedactedUrl,
    is_mirror: bool,
    shared: &Shared,
    task: &Task,
) -> Result<Fetched, FetchError> {
    let opts = &shared.opts;
    let parsed = reqwest::Url::parse(url.expose()).map_err(|e| FetchError::Network {
        name: job.name.clone(),
        version: job.version.clone(),
        url: url.clone(),
        message: format!("not a valid URL: {e}"),
        transient: false,
    })?;
    // Plain http is refused unless allowed; a mirror on the loopback
    // interface that the user named is trusted as much as a local directory.
    let http_ok = opts.allow_http || (is_mirror && http::is_loopback(&parsed));
    if parsed.scheme() == "http" && !http_ok {
        return Err(FetchError::InsecureUrl {
            name: job.name.clone(),
            version: job.version.clone(),
            url,
        });
    }
    task.set_message(format!("downloading {url}"));
    let d = http::download(&shared.client, job, url.expose(), &shared.cache, opts, task).await?;
    if d.attempts > 1 {
        shared.progress.println(format!(
            "{}: downloaded after {} attempts",
            job.label(),
            d.attempts
        ));
    }
    let origin = if is_mirror {
        Origin::Mirror
    } else {
        Origin::Upstream
    };
    verify_and_commit(job, shared, d.tmp, d.sha256, d.size, url, origin)
}

async fn copy_from_dir(job: &Job, dir: &Path, shared: &Shared, task: &Task) -> Result<Fetched, FetchError> {
    let src = dir.join(&job.file_name);
    task.set_message(format!("copying {}", src.display()));
    // Non-blocking, so that a FIFO planted in the mirror cannot hang the
    // open; only a regular file (possibly behind a symlink: its digest is
    // what is trusted, not its place) is read.
    let opened = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&src)
    };
    let file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(FetchError::MirrorMissing {
                name: job.name.clone(),
                version: job.version.clone(),
                path: src,
            });
        }
        Err(e) => return Err(FetchError::io("cannot open", &src)(e)),
    };
    let meta = file.metadata().map_err(FetchError::io("cannot read", &src))?;
    if !meta.is_file() {
        return Err(FetchError::MirrorNotFile {
            name: job.name.clone(),
            version: job.version.clone(),
            path: src,
        });
    }
    task.set_length(meta.len());
    let mut tmp = shared.cache.temp_file()?;
    let max = shared.opts.max_size;
    let (tmp, res) = {
        let src = src.clone();
        blocking(move || {
            let mut out = std::io::BufWriter::with_capacity(cache::BUF, tmp.as_file_mut());
            let r = cache::copy_hashing(file, &mut out, max, |_| {}).and_then(|r| {
                std::io::Write::flush(&mut out)?;
                Ok(r)
            });
            drop(out);
            (tmp, r.map_err(FetchError::io("cannot copy", src)))
        })
        .await
    };
    match res? {
        Ok((actual, size)) => {
            task.inc(size);
            verify_and_commit(
                job,
                shared,
                tmp,
                actual,
                size,
                RedactedUrl::new(src.display().to_string()),
                Origin::Mirror,
            )
        }
        Err(got) => Err(FetchError::TooLarge {
            name: job.name.clone(),
            version: job.version.clone(),
            url: RedactedUrl::new(src.display().to_string()),
            limit: max,
            size: format!("more than {got} bytes"),
        }),
    }
}
