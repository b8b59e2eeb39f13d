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
    With --spec cluster.toml instead of IMAGE: every image the deployment runs (the spec's image, \
    etcd or Consul, HAProxy, the exporter), one after the other, to every member's address (HAProxy's \
    own host gets HAProxy's image only), or to the hosts of --to; a host is sent only the layers it \
    lacks, also those another of these images brought already. Give the ssh user with \
    --ssh-option User=NAME or in ~/.ssh/config.\n\n\
    Exit codes: 0 every host has the image; otherwise the code of the hosts' failures (1 connection \
    or engine, 3 verification, 4 missing program on the host), 1 when they differ. See docs/ship.md."
)]
pub struct ShipArgs {
    /// The image to ship, e.g. supabase-patroni:v1.1
    #[arg(
        value_name = "IMAGE",
        required_unless_present = "spec",
        conflicts_with = "spec"
    )]
    pub tag: Option<String>,

    /// Ship every image of this cluster spec's deployment (see `pgha-image manifests`)
    #[arg(long, value_name = "FILE")]
    pub spec: Option<std::path::PathBuf>,

    /// Target hosts: [USER@]HOST[:PORT], comma-separated or repeated [default with --spec: the spec's hosts]
    #[arg(long, value_name = "HOSTS", required_unless_present = "spec")]
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
    let targets = if args.to.is_empty() {
        Vec::new()
    } else {
        Target::parse_list(&args.to)?
    };
    let plan = match &args.spec {
        Some(path) => {
            let spec = pgha_image::manifests::spec::load(path)?;
            Some(ship::deployment_plan(&spec, &targets)?)
        }
        None => None,
    };
    let engine = Engine::detect(args.engine)?;
    let progress = global.progress();
    let most = plan.as_ref().map_or(targets.len(), |p| {
        p.iter().map(|(_, t)| t.len()).max().unwrap_or(1)
    });
    let req = ShipRequest {
        tag: args.tag.clone().unwrap_or_default(),
        parallel: args.parallel.map_or(most.min(8), usize::from),
        targets,
        ssh: Ssh {
            options: args.ssh_option,
            insecure_host_keys: args.insecure_host_keys,
            ..Ssh::default()
        },
        remote_engine: args.remote_engine,
        cache_dir: cache_dir(global),
    };
    if let Some(plan) = plan {
        let report = ship::ship_deployment(&engine, &plan, &req, &progress)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report).expect("serializes"));
        } else if !global.quiet {
            for r in &report.images {
                print_report(r);
            }
            println!(
                "{} image(s), {} sent in all, {:.1}s",
                report.images.len(),
                human_bytes(report.bytes_sent),
                report.seconds
            );
        }
        report.check()?;
        return Ok(());
    }
    let report = ship::ship(&engine, &req, &progress)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("serializes"));
    } else if !global.quiet {
        print_report(&report);
    }
    report.check()?;
    Ok(())
}

fn print_report(report: &ship::ShipReport) {
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
