//! `status`: a thin wrapper over `pgha_image::status`.

use crate::Global;
use clap::Args;
use pgha_image::status::{self, Request};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
#[command(
    after_help = "Asks, all at once, every member's Patroni REST API (/patroni, /cluster), every HAProxy's \
    stats (CSV), and with [monitoring] / [backup] in the spec each exporter's /metrics (the bootstrap's \
    ledger) and the backup service's /status. Each connection is given 2 s, each request --timeout \
    (default 5 s): the command answers within about that, however many members are down.\n\n\
    Exit codes: 0 healthy; 3 degraded (a member down or not running, no leader, a replica not streaming \
    or lagging more than the limit, HAProxy not routing a member where its role belongs, an exporter \
    down, the last backup older than twice its schedule), each problem naming its member; 2 bad spec."
)]
pub struct StatusArgs {
    /// The cluster spec (as given to `pgha-image manifests`)
    #[arg(long, value_name = "FILE")]
    pub spec: PathBuf,

    /// The secrets directory of `pgha-image secrets`, for HAProxy's stats login (haproxy.env)
    /// [default: the spec's secrets_dir]
    #[arg(long, value_name = "DIR")]
    pub secrets_dir: Option<PathBuf>,

    /// The limit of each request, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub timeout: u64,

    /// Replication lag (bytes) above which a replica is degraded [default: the spec's
    /// [monitoring] max_lag, else 16 MiB]
    #[arg(long, value_name = "BYTES")]
    pub max_lag: Option<u64>,

    /// Print the report as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: StatusArgs, _global: &Global) -> Result<(), pgha_image::Error> {
    let report = status::run(&Request {
        spec: &args.spec,
        secrets_dir: args.secrets_dir.as_deref(),
        timeout: Duration::from_secs(args.timeout),
        max_lag: args.max_lag,
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("serializes"));
    } else {
        print!("{}", report.table());
    }
    report.check()?;
    Ok(())
}
