//! `pgha-image fetch` and `pgha-image mirror DIR`: thin wrappers over
//! `pgha_image::fetch`.

use crate::Global;
use clap::Args;
use pgha_image::catalog::SelectRequest;
use pgha_image::error::UsageError;
use pgha_image::fetch::{self, FetchOptions, Fetched, Mirror};
use std::path::PathBuf;
use std::time::Duration;

/// Which sources to fetch and how (shared by `fetch`, `mirror` and the build).
#[derive(Args, Clone, Debug)]
pub struct SourceArgs {
    /// Extensions to fetch: NAME or NAME@VERSION, comma-separated; `default` (the
    /// default Supabase set, also used when the option is absent) and `all` are words too.
    /// Extensions they require are added.
    #[arg(long, short = 'e', value_delimiter = ',', value_name = "LIST")]
    pub extensions: Option<Vec<String>>,

    /// PostgreSQL majors the sources must support, comma-separated (e.g. 15,17)
    #[arg(long, value_delimiter = ',', value_name = "N")]
    pub pg: Vec<u32>,

    #[command(flatten)]
    pub flags: FetchFlags,

    #[command(flatten)]
    pub paths: crate::Sources,
}

/// How sources are fetched (shared by `fetch`, `mirror`, `generate` and `build`).
#[derive(Args, Clone, Debug)]
pub struct FetchFlags {
    /// Use only the cache: a source not in it is an error (exit code 4)
    #[arg(long)]
    pub offline: bool,

    /// Fetch <MIRROR>/<extension>-<version><suffix> instead of upstream: an http(s) base URL, a
    /// file:///path URL or a directory (e.g. one written by `pgha-image mirror`). Digests are
    /// checked the same way.
    /// A URL may carry credentials (https://user:password@host/path); they are never shown.
    #[arg(long, value_name = "URL|DIR", env = "PGHA_MIRROR", hide_env_values = true)]
    pub mirror: Option<String>,

    /// Allow plain http:// URLs (upstream, or a mirror not on 127.0.0.1/localhost)
    #[arg(long)]
    pub allow_http: bool,

    /// Downloads at the same time (1 to 64)
    #[arg(long, default_value_t = 4, value_name = "N",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub concurrency: usize,

    /// Further attempts after a transient failure (reset, timeout, 5xx, truncated body)
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub retries: u32,

    /// Seconds without data after which a download counts as stalled
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    pub stall_timeout: f64,

    /// Seconds one download attempt may take in all (a server trickling data never stalls)
    #[arg(long, default_value_t = 1800.0, value_name = "SECONDS")]
    pub timeout: f64,

    /// Largest source accepted, in bytes or with a K/M/G suffix
    #[arg(long, default_value = "512M", value_name = "SIZE", value_parser = parse_size)]
    pub max_size: u64,

    /// Redirects followed at most
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub max_redirects: usize,
}

impl FetchFlags {
    pub fn options(&self, global: &Global) -> Result<FetchOptions, pgha_image::Error> {
        for (flag, v) in [
            ("--stall-timeout", self.stall_timeout),
            ("--timeout", self.timeout),
        ] {
            if !(v.is_finite() && v > 0.0 && v < 1e9) {
                return Err(
                    UsageError::new(format!("{flag} must be a positive number of seconds, not {v}"))
                        .with_hint(format!("e.g. {flag} 30"))
                        .into(),
                );
            }
        }
        let mirror = self.mirror.as_deref().map(Mirror::parse).transpose()?;
        Ok(FetchOptions {
            cache_dir: global.cache_dir.clone().unwrap_or_else(fetch::default_cache_dir),
            offline: self.offline,
            mirror,
            allow_http: self.allow_http,
            concurrency: self.concurrency,
            retries: self.retries,
            stall_timeout: Duration::from_secs_f64(self.stall_timeout),
            timeout: Duration::from_secs_f64(self.timeout),
            max_size: self.max_size,
            max_redirects: self.max_redirects,
            ..FetchOptions::default()
        })
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'B' => 1,
                _ => return Err(format!("unknown size suffix in {s:?}: use K, M or G")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .map(|n| n.saturating_mul(mult))
        .map_err(|_| format!("not a size: {s:?} (e.g. 512M)"))
}

impl SourceArgs {
    pub fn request(&self) -> SelectRequest {
        SelectRequest {
            names: self.extensions.clone(),
            pg_majors: self.pg.clone(),
            ..Default::default()
        }
    }

    /// Select from the catalog and fetch into the cache.
    pub fn fetch(&self, global: &Global) -> Result<(FetchOptions, Vec<Fetched>), pgha_image::Error> {
        if let Some(list) = &self.extensions
            && list.iter().all(|n| n.trim().is_empty())
        {
            return Err(UsageError::new("--extensions is empty: no extension selected")
                .with_hint(
                    "name extensions (e.g. -e vector,pg_cron), or leave the option out for the default set",
                )
                .into());
        }
        let catalog = global.catalog()?;
        let selected = catalog.select(&self.request())?;
        let opts = self.flags.options(global)?;
        let progress = global.progress();
        for s in &selected {
            if let Some(n) = &s.note {
                progress.println(n);
            }
        }
        let fetched = fetch::fetch_blocking(&selected, &opts, &progress)?;
        Ok((opts, fetched))
    }
}

#[derive(Args)]
pub struct FetchArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    /// Print a JSON summary on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct MirrorArgs {
    /// The directory to write <extension>-<version><suffix> files and SHA256SUMS into
    pub dir: PathBuf,

    #[command(flatten)]
    pub source: SourceArgs,

    /// Print a JSON summary on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn run_fetch(args: FetchArgs, global: &Global) -> Result<(), pgha_image::Error> {
    let (opts, fetched) = args.source.fetch(global)?;
    if args.json {
        let downloaded: u64 = fetched
            .iter()
            .filter(|f| f.origin != fetch::Origin::Cache)
            .map(|f| f.size)
            .sum();
        let v = serde_json::json!({
            "cache_dir": opts.cache_dir,
            "sources": fetched,
            "downloaded_bytes": downloaded,
        });
        println!("{}", serde_json::to_string_pretty(&v).expect("serializable"));
    } else if !global.quiet {
        for f in &fetched {
            println!(
                "{:<28} {:<8} {}  {}",
                format!("{} {}", f.name, f.version),
                format!("{:?}", f.origin).to_lowercase(),
                f.sha256,
                f.path.display()
            );
        }
    }
    Ok(())
}

pub fn run_mirror(args: MirrorArgs, global: &Global) -> Result<(), pgha_image::Error> {
    // A wrong target fails before anything is downloaded.
    fetch::check_mirror_dir(&args.dir)?;
    let (_, fetched) = args.source.fetch(global)?;
    let summary = fetch::write_mirror(&fetched, &args.dir)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("serializable")
        );
    } else if !global.quiet {
        for f in &summary.files {
            println!(
                "{} {}{}",
                f.sha256,
                f.file_name,
                if f.written { "" } else { " (already there)" }
            );
        }
        println!("{} files in {}", summary.files.len(), args.dir.display());
    }
    Ok(())
}
