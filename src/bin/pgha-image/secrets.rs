//! `secrets`: a thin wrapper over `pgha_image::secrets`.

use crate::Global;
use clap::Args;
use pgha_image::engine::{Engine, EngineChoice};
use pgha_image::secrets::{self, Group, Request};
use std::path::PathBuf;

#[derive(Args)]
#[command(
    after_help = "Writes into DIR (copy it to the spec's secrets_dir on every member; keep ca.key \
    off the VMs): password (or, with --per-role, one file per Supabase LOGIN role), jwt_secret, \
    pgsodium_root_key, patroni.env (superuser, replication and REST API passwords), haproxy.env (the \
    stats login), anon_key and service_role_key (JWTs signed HS256 with jwt_secret, valid ten years), \
    api.env (the Supabase API services' connection strings through HAProxy with \
    sslmode=verify-full, the JWT secret and keys), ca.crt and ca.key (the cluster CA), and \
    tls/<member>.crt and .key (each member's certificate, naming its address and every HAProxy \
    address). Files are root's with the image's postgres group, mode 0440 (ca.key 0400); nothing is \
    world-readable. A non-empty DIR is never replaced without --force. No value is printed. \
    See docs/deploy.md."
)]
pub struct SecretsArgs {
    /// The cluster spec (members, HAProxy placement, ports, image)
    #[arg(long, value_name = "FILE")]
    pub spec: PathBuf,

    /// Output directory (created; must be absent or empty unless --force)
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: PathBuf,

    /// Group id of the image's postgres user [default: asked of the spec's image through the engine]
    #[arg(long, value_name = "GID")]
    pub gid: Option<u32>,

    /// One password file per Supabase LOGIN role instead of one shared `password`
    #[arg(long)]
    pub per_role: bool,

    /// Container engine to read the image with: auto, docker, podman
    #[arg(long, value_name = "ENGINE", default_value = "auto", env = "PGHA_ENGINE")]
    pub engine: EngineChoice,

    /// Replace a non-empty DIR (its secrets are lost: every member and API service needs the new ones)
    #[arg(long)]
    pub force: bool,

    /// Print what was written (file names, never values) as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: SecretsArgs, global: &Global) -> Result<(), pgha_image::Error> {
    let engine;
    let group = match args.gid {
        Some(g) => Group::Gid(g),
        None => {
            engine = Engine::detect(args.engine)?;
            Group::FromImage(&engine)
        }
    };
    let report = secrets::run(&Request {
        spec: &args.spec,
        out: &args.out,
        group,
        per_role: args.per_role,
        force: args.force,
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("serializes"));
    } else if !global.quiet {
        println!(
            "made the secrets of the cluster {} ({} members, group {}) in {}",
            report.scope,
            report.members.len(),
            report.gid,
            report.out.display()
        );
        for f in &report.files {
            println!("  {f}");
        }
        if report.replaced {
            println!("replaced the earlier secrets (--force)");
        }
    }
    Ok(())
}
