//! `ship`: a thin wrapper over `pgha_image::ship`.

use crate::Global;
use clap::Args;
use pgha_image::engine::{Engine, EngineChoice};
use pgha_image::progress::human_bytes;
use pgha_image::ship::{self, ShipRequest, Ssh, Target};

#[derive(Args)]
#[command(
    after_help = "Goes through the system `ssh` (your ~/.ssh/config, agent, known_hosts and \
    jump hosts apply; host keys are always checked; BatchMode=yes, so keys, not passwords). \
    The client is `ssh` on PATH, or $PGHA_SSH. --ssh-option values go to ssh as they are, \
    ProxyCommand and the like included: they run commands on this machine. An option that turns \
    host-key checking off (StrictHostKeyChecking=no or off, KnownHostsCommand, accept-new with \
    UserKnownHostsFile=/dev/null) is refused unless --insecure-host-keys.\n\n\
    Each host needs sh, tar, sha256sum, zstd or gzip, and Docker or Podman; pgha-image itself \
    need not be installed there. Only the layers a host lacks are sent; they are checked against \
    their digests on arrival, the image is loaded under a temporary tag, its id checked, and only \
    then tagged IMAGE. Re-running after an interruption sends only what is still missing.\n\n\
    Exit codes: 0 every host has the image; otherwise the code of the hosts' failures (1 connection \
    or engine, 3 verification, 4 missing program on the host), 1 when they differ. See docs/ship.md."
)]
pub struct ShipArgs {
    /// The image to ship, e.g. supabase-patroni:v1.1
    #[arg(value_name = "IMAGE")]
    pub tag: String,

    /// Target hosts: [USER@]HOST[:PORT], comma-separated or repeated
    #[arg(long, value_name = "HOSTS", required = true)]
    pub to: Vec<String>,

    /// Hosts worked on at once [default: all of them, at most 8]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: Option<u16>,

    /// An ssh option, passed as `-o OPT` (repeatable), e.g. --ssh-option IdentityFile=~/.ssh/vm
    #[arg(long = "ssh-option", value_name = "OPT")]
    pub ssh_option: Vec<String>,

    /// Accept --ssh-option values that turn host-key checking off (a host that answers with any
    /// key gets the image); without it they are refused
    #[arg(long)]
    pub insecure_host_keys: bool,

    /// The engine on the hosts: auto (a Docker that answers, else Podman), docker, podman
    #[arg(long, value_name = "ENGINE", value_enum, default_value_t = EngineChoice::Auto)]
    pub remote_engine: EngineChoice,

    /// Local container engine: auto (a Docker that answers, else Podman), docker, podman
    #[arg(long, value_name = "ENGINE", value_enum, default_value_t = EngineChoice::Auto, env = "PGHA_ENGINE")]
    pub engine: EngineChoice,

    /// Print the report as JSON on stdout
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub cache: crate::CacheDir,
}

pub fn run(args: ShipArgs, global: &Global) -> Result<(), pgha_image::Error> {
    let targets = Target::parse_list(&args.to)?;
    let engine = Engine::detect(args.engine)?;
    let progress = global.progress();
    let req = ShipRequest {
        tag: args.tag,
        parallel: args.parallel.map_or(targets.len().min(8), usize::from),
        targets,
        ssh: Ssh {
            options: args.ssh_option,
            insecure_host_keys: args.insecure_host_keys,
            ..Ssh::default()
        },
        remote_engine: args.remote_engine,
        cache_dir: cache_dir(global),
    };
    let report = ship::ship(&engine, &req, &progress)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("serializes"));
    } else if !global.quiet {
        println!("{} ({}), {} layers:", report.tag, report.image_id, report.layers);
        for h in &report.hosts {
            match &h.error {
                None if h.already_there => println!("  {}: ok, already there (tagged)", h.host),
                None => println!(
                    "  {}: ok ({}), {} layer(s) sent ({}), {} held, {} from an earlier run, {:.1}s",
                    h.host,
                    h.engine.as_deref().unwrap_or("?"),
                    h.layers_sent,
                    human_bytes(h.bytes_sent),
                    h.layers_held,
                    h.layers_staged,
                    h.seconds
                ),
                Some(e) => println!("  {}: FAILED: {e}", h.host),
            }
        }
    }
    report.check()?;
    Ok(())
}

fn cache_dir(global: &Global) -> std::path::PathBuf {
    global
        .cache_dir
        .clone()
        .unwrap_or_else(pgha_image::fetch::default_cache_dir)
}

/// `export --since OLD_TAG`, from export.rs.
pub struct SinceArgs {
    pub tag: String,
    pub since: String,
    pub output: Option<std::path::PathBuf>,
    pub force: bool,
    pub engine: EngineChoice,
    pub json: bool,
}

/// `export --since OLD_TAG`: a delta file (called from export.rs).
pub fn run_export_since(args: SinceArgs, global: &Global) -> Result<(), pgha_image::Error> {
    let SinceArgs {
        tag,
        since,
        output,
        force,
        engine,
        json,
    } = args;
    let req = ship::delta::DeltaRequest {
        tag,
        since,
        output,
        force,
        cache_dir: cache_dir(global),
    };
    // The tags and the target are checked before an engine is looked for.
    ship::delta::check_request(&req)?;
    let engine = Engine::detect(engine)?;
    let progress = global.progress();
    pgha_image::export::stop_on_signals();
    let out = ship::delta::export_delta(&engine, &req, &progress)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&out).expect("serializes"));
    } else if !global.quiet {
        let d = &out.delta;
        println!(
            "exported a delta of {} ({}) over {} to {}\n  {} of {} layers, {} bytes, sha256 {}\n  load it where {} is loaded: pgha-image load {}",
            d.tag,
            d.image_id,
            d.base_tag,
            out.file.display(),
            d.layers.len() - d.base_layers,
            d.layers.len(),
            out.manifest.size,
            out.manifest.sha256,
            d.base_tag,
            out.file.display()
        );
    }
    Ok(())
}

/// `load` of a delta file (called from export.rs).
pub fn run_load_delta(
    file: &std::path::Path,
    engine: EngineChoice,
    json: bool,
    global: &Global,
) -> Result<(), pgha_image::Error> {
    let engine = Engine::detect(engine)?;
    let progress = global.progress();
    let out = ship::delta::load_delta(&engine, file, &progress)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&out).expect("serializes"));
    } else if !global.quiet {
        println!(
            "verified {} (sha256 {}) and loaded {} ({}) on top of {}",
            out.verified.file.display(),
            out.verified.sha256,
            out.reference,
            out.image_id,
            out.base_tag
        );
    }
    Ok(())
}
