//! `pgha-image`: build a Supabase-ready Spilo image, export it for VMs, verify it.
//!
//! This binary only parses arguments and calls the library; each subcommand
//! area has its own file next to this one.

mod build;
mod export;
mod extensions;
mod fetch;
mod manifests;
mod secrets;
mod ship;
mod status;
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
    global: Global,

    #[command(subcommand)]
    command: Command,
}

/// Options every subcommand understands.
#[derive(Args, Clone, Debug)]
pub struct Global {
    /// Use the extension catalog in DIR (one TOML file per extension) instead of the built-in one
    #[arg(long, global = true, value_name = "DIR", env = "PGHA_CATALOG")]
    pub catalog: Option<PathBuf>,

    /// Where verified sources are cached [default: the user's cache directory]
    #[arg(long, global = true, value_name = "DIR", env = "PGHA_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Progress display: auto (bars on a terminal, lines otherwise), bars, plain, quiet
    #[arg(long, global = true, value_name = "MODE", value_enum, default_value_t = Mode::Auto)]
    pub progress: Mode,

    /// Print nothing but errors and the command's result
    #[arg(short, long, global = true)]
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

#[derive(Subcommand)]
enum Command {
    /// List or show the extensions of the catalog
    #[command(subcommand)]
    Extensions(extensions::Command),
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
    /// Make the cluster's secret files: passwords, JWT secret and API keys, pgsodium key, CA and member certificates
    Secrets(secrets::SecretsArgs),
    /// Run the image as a deployment would and check what it claims (CI: --junit FILE)
    Verify(verify::VerifyArgs),
    /// Show a running cluster from its spec: roles, lag, routing, image, ledger, backup age (exit 3: degraded)
    Status(status::StatusArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Extensions(cmd) => extensions::run(cmd, &cli.global),
        Command::Fetch(args) => fetch::run_fetch(args, &cli.global),
        Command::Mirror(args) => fetch::run_mirror(args, &cli.global),
        Command::Generate(args) => build::run_generate(args, &cli.global),
        Command::Build(args) => build::run_build(args, &cli.global),
        Command::Export(args) => export::run_export(args, &cli.global),
        Command::Load(args) => export::run_load(args, &cli.global),
        Command::Ship(args) => ship::run(args, &cli.global),
        Command::Manifests(args) => manifests::run(args, &cli.global),
        Command::Secrets(args) => secrets::run(args, &cli.global),
        Command::Verify(args) => verify::run_verify(args, &cli.global),
        Command::Status(args) => status::run(args, &cli.global),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => pgha_image::error::exit_with(&e),
    }
}
