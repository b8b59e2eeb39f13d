//! `pgha-image`: build a Supabase-ready Spilo image, export it for VMs, verify it.
//!
//! This binary only parses arguments and calls the library; each subcommand
//! area has its own file next to this one.

mod build;
mod export;
mod extensions;
mod fetch;
mod manifests;
mod ship;
mod verify;

use clap::{Args, Parser, Subcommand};
use pgha_image::progress::{Mode, Progress};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "pgha-image",
    version,
    about = "Build a Supabase-ready, highly-available PostgreSQL image on Zalando's Spilo",
    long_about = "Build a Supabase-ready, highly-available PostgreSQL image on Zalando's Spilo.\n\n\
        Sources of the Supabase extensions are fetched and verified against pinned SHA-256 \
        digests, a deterministic build context is generated, and the image is built with \
        Docker or Podman. `export` turns the image into a checksummed tarball for VMs \
        without a registry; `load` verifies and loads it there.",
    after_help = "Exit codes: 0 success, 1 failure, 2 bad input, 3 verification failed, 4 missing prerequisite."
)]
struct Cli {
    #[command(flatten)]
    ui: Ui,

    #[command(flatten)]
    before: SourcesBeforeCommand,

    #[command(subcommand)]
    command: Command,
}

/// Options every subcommand understands.
#[derive(Args, Clone, Debug)]
struct Ui {
    /// Progress display: auto (bars on a terminal, lines otherwise), bars, plain, quiet
    #[arg(long, global = true, value_name = "MODE", value_enum, default_value_t = Mode::Auto)]
    progress: Mode,

    /// Print nothing but errors and the command's result
    #[arg(short, long, global = true)]
    quiet: bool,
}

/// Where the extension catalog and the source cache are: an option of the
/// subcommands that read them (extensions, fetch, mirror, generate, build).
#[derive(Args, Clone, Debug, Default)]
pub struct Sources {
    /// Use the extension catalog in DIR (one TOML file per extension) instead of the built-in one
    #[arg(long, global = true, value_name = "DIR", env = "PGHA_CATALOG")]
    pub catalog: Option<PathBuf>,

    #[command(flatten)]
    pub cache: CacheDir,
}

/// The source cache alone (ship and `export --since` keep layers there).
#[derive(Args, Clone, Debug, Default)]
pub struct CacheDir {
    /// Where verified sources (and shipped layers) are cached [default: the user's cache directory]
    #[arg(long, global = true, value_name = "DIR", env = "PGHA_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// `pgha-image --catalog DIR --cache-dir DIR SUBCOMMAND …`, the spelling of
/// earlier versions: still read, not shown, and refused for a subcommand
/// that has no use for it.
#[derive(Args, Clone, Debug)]
struct SourcesBeforeCommand {
    #[arg(long = "catalog", id = "catalog_before", value_name = "DIR", hide = true)]
    catalog: Option<PathBuf>,

    #[arg(long = "cache-dir", id = "cache_dir_before", value_name = "DIR", hide = true)]
    cache_dir: Option<PathBuf>,
}

/// What a subcommand's code reads: the output mode, and the catalog and cache
/// when the subcommand has those options.
#[derive(Clone, Debug)]
pub struct Global {
    pub catalog: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    pub progress: Mode,
    pub quiet: bool,
}

impl Global {
    pub fn progress(&self) -> Progress {
        Progress::new(if self.quiet { Mode::Quiet } else { self.progress })
    }

    pub fn catalog(&self) -> Result<pgha_image::catalog::Catalog, pgha_image::Error> {
        Ok(pgha_image::catalog::Catalog::load(self.catalog.as_deref())?)
    }
}

impl Command {
    /// The subcommand's name and its catalog and cache options (None: it has not that option).
    fn sources(&self) -> (&'static str, Option<&Option<PathBuf>>, Option<&Option<PathBuf>>) {
        fn both<'a>(
            s: &'static str,
            src: &'a Sources,
        ) -> (
            &'static str,
            Option<&'a Option<PathBuf>>,
            Option<&'a Option<PathBuf>>,
        ) {
            (s, Some(&src.catalog), Some(&src.cache.cache_dir))
        }
        match self {
            Command::Extensions(a) => both("extensions", &a.paths),
            Command::Fetch(a) => both("fetch", &a.source.paths),
            Command::Mirror(a) => both("mirror", &a.source.paths),
            Command::Generate(a) => both("generate", &a.paths),
            Command::Build(a) => both("build", &a.paths),
            Command::Export(a) => ("export", None, Some(&a.cache.cache_dir)),
            Command::Ship(a) => ("ship", None, Some(&a.cache.cache_dir)),
            Command::Load(_) => ("load", None, None),
            Command::Manifests(_) => ("manifests", None, None),
            Command::Verify(_) => ("verify", None, None),
        }
    }
}

impl Cli {
    /// The options of the subcommand, with those given before it (the
    /// subcommand's own win); such an option is refused where it does nothing.
    fn global(&self) -> Result<Global, pgha_image::Error> {
        let (name, catalog, cache_dir) = self.command.sources();
        let pick = |flag: &str, own: Option<&Option<PathBuf>>, before: &Option<PathBuf>| match (own, before) {
            (Some(own), before) => Ok(own.clone().or_else(|| before.clone())),
            (None, None) => Ok(None),
            (None, Some(_)) => Err(pgha_image::error::UsageError::new(format!(
                "{flag} does not apply to `pgha-image {name}`: it reads no catalog or source cache"
            ))
            .with_hint(format!("leave {flag} out (see `pgha-image {name} --help`)"))),
        };
        Ok(Global {
            catalog: pick("--catalog", catalog, &self.before.catalog)?,
            cache_dir: pick("--cache-dir", cache_dir, &self.before.cache_dir)?,
            progress: self.ui.progress,
            quiet: self.ui.quiet,
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// List or show the extensions of the catalog
    Extensions(extensions::ExtensionsArgs),
    /// Download the selected extensions' sources into the cache, verifying every byte
    Fetch(fetch::FetchArgs),
    /// Write the verified cached sources into DIR, for use as --mirror on an air-gapped site
    Mirror(fetch::MirrorArgs),
    /// Generate the build context (Dockerfile, sources, hook, manifest) into a directory
    Generate(build::GenerateArgs),
    /// Fetch, generate and build the image with Docker or Podman
    Build(build::BuildArgs),
    /// Save the image as a compressed tarball with a checksum file and a manifest
    Export(export::ExportArgs),
    /// Verify an exported tarball's checksum, then load it into the engine
    Load(export::LoadArgs),
    /// Put the image on hosts over ssh, sending only the layers each one lacks
    Ship(ship::ShipArgs),
    /// Render per-VM deployments (compose, HAProxy, etcd/Consul) and postgres-operator manifests from a cluster spec
    Manifests(manifests::ManifestsArgs),
    /// Run the image as a deployment would and check what it claims (CI: --junit FILE)
    Verify(verify::VerifyArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let global = match cli.global() {
        Ok(g) => g,
        Err(e) => return pgha_image::error::exit_with(&e),
    };
    let result = match cli.command {
        Command::Extensions(cmd) => extensions::run(cmd, &global),
        Command::Fetch(args) => fetch::run_fetch(args, &global),
        Command::Mirror(args) => fetch::run_mirror(args, &global),
        Command::Generate(args) => build::run_generate(args, &global),
        Command::Build(args) => build::run_build(args, &global),
        Command::Export(args) => export::run_export(args, &global),
        Command::Load(args) => export::run_load(args, &global),
        Command::Ship(args) => ship::run(args, &global),
        Command::Manifests(args) => manifests::run(args, &global),
        Command::Verify(args) => verify::run_verify(args, &global),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => pgha_image::error::exit_with(&e),
    }
}
