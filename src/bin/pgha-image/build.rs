//! `generate` and `build`: flags → a `pgha_image::pipeline` request → print.

use crate::Global;
use crate::fetch::FetchFlags;
use clap::Args;
use pgha_image::context::{self, BaseOverrides, BuildPlan, PlanRequest};
use pgha_image::engine::EngineChoice;
use pgha_image::error::UsageError;
use pgha_image::fetch;
use pgha_image::pipeline::{self, BuildRequest, GenerateRequest};
use pgha_image::progress::Progress;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What to put in the image: shared by `generate` and `build`.
#[derive(Args, Clone, Debug)]
pub struct SelectionArgs {
    /// Base image: any Spilo tag or digest (NAME[:TAG][@sha256:DIGEST])
    #[arg(long, value_name = "IMAGE", default_value = context::DEFAULT_BASE_IMAGE)]
    pub base_image: String,

    /// PostgreSQL majors to build extensions for, comma-separated [default: the base's main major]
    #[arg(long = "pg", value_name = "MAJORS", value_delimiter = ',')]
    pub pg: Vec<u32>,

    /// Extensions, comma-separated: NAME, NAME@VERSION, `default` (the Supabase set) or `all`
    /// [default: the Supabase set]
    #[arg(long, short = 'e', value_name = "LIST", value_delimiter = ',')]
    pub extensions: Option<Vec<String>>,

    /// Build these base-provided extensions from their pinned source instead of checking the base's
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub from_source: Vec<String>,

    /// glibc version of an unknown base image [default: 2.35, as Ubuntu 22.04]
    #[arg(long, value_name = "VERSION")]
    pub base_glibc: Option<String>,

    /// A library version of an unknown base image, e.g. libcurl=7.88 (repeatable) [default: libcurl=7.81]
    #[arg(long, value_name = "NAME=VERSION", value_parser = parse_lib)]
    pub base_lib: Vec<(String, String)>,

    /// The base image's own shared_preload_libraries, comma-separated
    /// [default: Spilo's for Spilo images, none for unknown bases]
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub base_preload: Option<Vec<String>>,

    /// Also set ENV SPILO_CONFIGURATION in the image to its default server settings (redundant:
    /// the image's /launch.sh merges them under any SPILO_CONFIGURATION anyway; docs/image.md)
    #[arg(long)]
    pub embed_spilo_configuration: bool,

    /// The pgha-bootstrap executable to ship [default: the one next to pgha-image]
    #[arg(long, value_name = "PATH")]
    pub bootstrap_bin: Option<PathBuf>,
}

impl SelectionArgs {
    pub fn plan_request(&self) -> PlanRequest {
        PlanRequest {
            base_image: Some(self.base_image.clone()),
            base_overrides: BaseOverrides {
                glibc: self.base_glibc.clone(),
                libs: self.base_lib.iter().cloned().collect::<BTreeMap<_, _>>(),
                preload: self.base_preload.clone(),
            },
            pg_majors: self.pg.clone(),
            extensions: self.extensions.clone(),
            from_source: self.from_source.clone(),
            embed_spilo_configuration: self.embed_spilo_configuration,
        }
    }
}

fn parse_lib(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
            Ok((k.trim().to_string(), v.trim().to_string()))
        }
        _ => Err(format!("{s:?}: expected NAME=VERSION, e.g. libcurl=7.88")),
    }
}

#[derive(Args)]
pub struct GenerateArgs {
    /// Output directory: DIR/context (the build context), DIR/context.tar, DIR/manifest.json.
    /// Replaced only when complete, and only if new, empty, or an earlier output left unchanged
    /// (every file as recorded in DIR/.pgha-output.json); anything else is refused (exit 2)
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: PathBuf,

    #[command(flatten)]
    pub selection: Box<SelectionArgs>,

    #[command(flatten)]
    pub sources: FetchFlags,

    #[command(flatten)]
    pub paths: crate::Sources,

    /// Print a JSON summary on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct BuildArgs {
    /// The image tag to build, e.g. supabase-patroni:v1.0
    #[arg(long, short = 't', value_name = "TAG")]
    pub tag: String,

    /// Container engine: auto (a Docker that answers, else Podman), docker, podman
    #[arg(long, value_name = "ENGINE", value_enum, default_value_t = EngineChoice::Auto, env = "PGHA_ENGINE")]
    pub engine: EngineChoice,

    /// Target platform, e.g. linux/amd64 (passed to the engine)
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,

    /// Push the tag to its registry after the build
    #[arg(long)]
    pub push: bool,

    /// Build without the engine's layer cache
    #[arg(long)]
    pub no_cache: bool,

    /// Extension stages built at the same time with Podman [default: one per CPU]
    /// (Docker's BuildKit builds independent stages in parallel by itself)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(usize))]
    pub jobs: Option<usize>,

    /// Network of the build's RUN steps (the engine's `build --network`), e.g. `host` on a build
    /// host whose engine bridge has no route or DNS (apt-get in the builder stages fails), or a
    /// network's name [default: the engine's]
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,

    /// Where the context, its manifest and the build log go, replaced as `generate --out` is
    /// [default: <cache dir>/builds/<tag>]
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: Option<PathBuf>,

    #[command(flatten)]
    pub selection: Box<SelectionArgs>,

    #[command(flatten)]
    pub sources: FetchFlags,

    #[command(flatten)]
    pub paths: crate::Sources,

    /// Print a JSON summary on stdout
    #[arg(long)]
    pub json: bool,
}

/// The default bootstrap binary: `pgha-bootstrap` next to the running executable.
fn default_bootstrap_bin() -> Result<PathBuf, pgha_image::Error> {
    let exe = std::env::current_exe().map_err(|e| {
        UsageError::new(format!("cannot find the running executable: {e}"))
            .with_hint("pass --bootstrap-bin PATH")
    })?;
    Ok(exe.with_file_name("pgha-bootstrap"))
}

/// SOURCE_DATE_EPOCH, if set.
fn source_date_epoch() -> Result<Option<u64>, pgha_image::Error> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) if !s.trim().is_empty() => s.trim().parse::<u64>().map(Some).map_err(|_| {
            UsageError::new(format!(
                "SOURCE_DATE_EPOCH={s:?} is not a number of seconds since 1970"
            ))
            .with_hint("unset it, or set it to e.g. $(git log -1 --format=%ct)")
            .into()
        }),
        _ => Ok(None),
    }
}

fn generate_request(
    selection: &SelectionArgs,
    sources: &FetchFlags,
    out: PathBuf,
    global: &Global,
) -> Result<GenerateRequest, pgha_image::Error> {
    Ok(GenerateRequest {
        plan: selection.plan_request(),
        bootstrap_bin: match &selection.bootstrap_bin {
            Some(p) => p.clone(),
            None => default_bootstrap_bin()?,
        },
        fetch: sources.options(global)?,
        out,
        source_date_epoch: source_date_epoch()?,
    })
}

fn print_extensions(plan: &BuildPlan, progress: &Progress) {
    for e in &plan.extensions {
        progress.println(format!(
            "  {:<16} {:<8} {}",
            e.name,
            if e.stage.is_some() {
                e.version.as_str()
            } else {
                "-"
            },
            e.stage.as_deref().unwrap_or("(provided by the base, checked)")
        ));
    }
}

pub fn run_generate(args: GenerateArgs, global: &Global) -> Result<(), pgha_image::Error> {
    let progress = global.progress();
    let req = generate_request(&args.selection, &args.sources, args.out, global)?;
    let done = pipeline::generate(&global.catalog()?, &req, &progress)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&done.summary()).expect("serializes")
        );
    } else {
        print_extensions(&done.plan, &progress);
        progress.println(format!("context: {}", done.generated.context_dir.display()));
        println!("{}", done.generated.manifest.context_digest);
    }
    Ok(())
}

pub fn run_build(args: BuildArgs, global: &Global) -> Result<(), pgha_image::Error> {
    let progress = global.progress();
    let out = match args.out {
        Some(o) => o,
        None => pipeline::default_build_dir(
            &global.cache_dir.clone().unwrap_or_else(fetch::default_cache_dir),
            &args.tag,
        ),
    };
    let req = BuildRequest {
        generate: generate_request(&args.selection, &args.sources, out, global)?,
        tag: args.tag,
        engine: args.engine,
        platform: args.platform,
        push: args.push,
        no_cache: args.no_cache,
        jobs: args.jobs,
        network: args.network,
    };
    let built = pipeline::build(&global.catalog()?, &req, &progress)?;
    if args.json {
        let v = built.summary(&req.tag, req.push);
        println!("{}", serde_json::to_string_pretty(&v).expect("serializes"));
    } else {
        print_extensions(&built.generate.plan, &progress);
        progress.println(format!("log: {}", built.log_path.display()));
        println!("{} {}", req.tag, built.image_id);
    }
    Ok(())
}
