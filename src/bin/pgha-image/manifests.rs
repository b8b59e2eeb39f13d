//! `manifests`: a thin wrapper over `pgha_image::manifests`.

use crate::Global;
use clap::Args;
use pgha_image::engine::{Engine, EngineChoice};
use pgha_image::manifests::{self, ManifestSource, Request};
use std::path::PathBuf;

#[derive(Args)]
#[command(
    after_help = "The spec (TOML): scope, image, dcs (\"etcd\" on the members, \"consul\" on the members, \
    { etcd = [\"host:2379\", ...] } or { consul = \"host:8500\" } for an existing one), haproxy (\"members\" \
    or the address of its own host), pg_version, data_dir [/var/lib/pgha], secrets_dir [/etc/pgha/secrets], \
    [ports] rw [5000] ro [5001] any [5002] stats [7000] postgres [5432] restapi [8008], [images] etcd consul \
    haproxy, [kubernetes] name team namespace volume_size requests limits users databases, and one \
    [[member]] (name, address, optional data_dir) per VM.\n\n\
    Writes DIR/<member>/ (compose.yaml, .env, haproxy.cfg, README.md) for each member and DIR/kubernetes/ \
    (postgres-operator cluster and secret). The server settings come from the image's \
    /etc/pgha/build-manifest.json, read through the engine (the image must be loaded), or from \
    --image-manifest FILE. DIR is replaced whole when it is an earlier output (its passwords kept); \
    any other non-empty DIR is refused unless --force. See docs/deploy.md."
)]
pub struct ManifestsArgs {
    /// The cluster spec
    #[arg(long, value_name = "FILE")]
    pub spec: PathBuf,

    /// Output directory
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: PathBuf,

    /// Read the image's server settings from FILE (the image's /etc/pgha/build-manifest.json, or a
    /// `generate` output's manifest.json) instead of the image: renders without an engine
    #[arg(long, value_name = "FILE")]
    pub image_manifest: Option<PathBuf>,

    /// Container engine to read the image with: auto (a Docker that answers, else Podman), docker, podman
    #[arg(long, value_name = "ENGINE", value_enum, default_value_t = EngineChoice::Auto, env = "PGHA_ENGINE")]
    pub engine: EngineChoice,

    /// Replace the contents of a non-empty DIR that was not written by this command
    #[arg(long)]
    pub force: bool,

    /// Print what was written as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ManifestsArgs, global: &Global) -> Result<(), pgha_image::Error> {
    // A wrong --out fails before the engine is looked for.
    manifests::check_out(&args.out, args.force)?;
    let engine;
    let source = match &args.image_manifest {
        Some(file) => ManifestSource::File(file),
        None => {
            engine = Engine::detect(args.engine)?;
            ManifestSource::Engine(&engine)
        }
    };
    let report = manifests::run(&Request {
        spec: &args.spec,
        out: &args.out,
        manifest: source,
        force: args.force,
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("serializes"));
    } else if !global.quiet {
        println!(
            "rendered the cluster {} ({} members, image {}) into {}",
            report.scope,
            report.members.len(),
            report.image,
            report.out.display()
        );
        for f in &report.files {
            println!("  {f}");
        }
        if report.kept_passwords {
            println!("kept the passwords of the earlier output");
        }
    }
    Ok(())
}
