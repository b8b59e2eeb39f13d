//! `plan`, `generate` and `build`: flags (over pgha.toml or `--like`) → a
//! `pgha_image::pipeline` request → print.

use crate::Global;
use crate::fetch::FetchFlags;
use clap::Args;
use pgha_image::buildfile::{self, BuildSettings};
use pgha_image::context::{self, BaseOverrides, BuildPlan, PlanRequest};
use pgha_image::engine::EngineChoice;
use pgha_image::error::UsageError;
use pgha_image::fetch;
use pgha_image::pipeline::{self, BaseProbe, BuildRequest, GenerateRequest};
use pgha_image::progress::Progress;
use std::path::PathBuf;

/// What to put in the image: shared by `plan`, `generate` and `build`. Each
/// flag overrides the build file (pgha.toml) and, for `build --like`, the
/// recorded inputs.
#[derive(Args, Clone, Debug)]
pub struct SelectionArgs {
    /// Base image, NAME[:TAG][@sha256:DIGEST]: pulled when the engine does not have it, then run once
    /// without network to read its facts (OS, glibc, libcurl, PostgreSQL majors and their pg_config,
    /// the extensions it has, its own preload list) [default: pgha.toml's `base`, else
    /// ghcr.io/zalando/spilo-16:3.2-p2]
    #[arg(long, value_name = "IMAGE")]
    pub base_image: Option<String>,

    /// PostgreSQL majors to build extensions for, comma-separated [default: the base's main major]
    #[arg(long = "pg", value_name = "MAJORS", value_delimiter = ',')]
    pub pg: Vec<u32>,

    /// Extensions, comma-separated: NAME, NAME@VERSION, `default` (the Supabase set), `all`;
    /// `-NAME` leaves one out (`default,-pg_graphql`), `+NAME` adds one (`default,+pgtap`). A list
    /// of only +NAME/-NAME items changes the build file's (or --like's) list [default: the Supabase set]
    #[arg(
        long,
        short = 'e',
        value_name = "LIST",
        value_delimiter = ',',
        allow_hyphen_values = true
    )]
    pub extensions: Option<Vec<String>>,

    /// Build these base-provided extensions from their pinned source instead of using the base's
    /// (done by itself when the probe finds one missing or older than the catalog's minimum)
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub from_source: Vec<String>,

    /// The base's glibc version: overrides the probe (a disagreement is a warning) [default: probed;
    /// without a probe: the built-in table, else 2.35 as Ubuntu 22.04]
    #[arg(long, value_name = "VERSION")]
    pub base_glibc: Option<String>,

    /// A library version of the base, e.g. libcurl=7.88 (repeatable): overrides the probe
    /// [default: probed; without a probe: the built-in table, else libcurl=7.81]
    #[arg(long, value_name = "NAME=VERSION", value_parser = parse_lib)]
    pub base_lib: Vec<(String, String)>,

    /// The base image's own shared_preload_libraries, comma-separated: overrides the probe
    /// [default: probed (computed as Spilo computes it); without a probe: Spilo's for known Spilo
    /// tags; a base whose list cannot be known is refused, exit 2]
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub base_preload: Option<Vec<String>>,

    /// Also set ENV SPILO_CONFIGURATION in the image to its default server settings (redundant:
    /// the image's /launch.sh merges them under any SPILO_CONFIGURATION anyway; docs/image.md)
    #[arg(long)]
    pub embed_spilo_configuration: bool,

    /// The Rust image Rust (pgrx) extensions are built with, pinned by digest
    /// (NAME[:TAG]@sha256:DIGEST, the official image's layout: /usr/local/rustup, /usr/local/cargo)
    /// [default: pgha.toml's `rust_image`, else the pinned official image]
    #[arg(long, value_name = "REF", env = "PGHA_RUST_IMAGE")]
    pub rust_image: Option<String>,

    /// The pgha-bootstrap executable to ship [default: the one next to pgha-image]
    #[arg(long, value_name = "PATH")]
    pub bootstrap_bin: Option<PathBuf>,

    /// Container engine for the base probe (and build's build): auto (a Docker that answers, else
    /// Podman), docker, podman [default: pgha.toml's `engine`, else auto]
    #[arg(long, value_name = "ENGINE", value_enum, env = "PGHA_ENGINE")]
    pub engine: Option<EngineChoice>,

    /// The build file [default: ./pgha.toml when it exists]; flags override it
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl SelectionArgs {
    /// The flags as the top layer of the settings.
    fn settings(&self, sources: &FetchFlags) -> BuildSettings {
        BuildSettings {
            base: self.base_image.clone(),
            majors: (!self.pg.is_empty()).then(|| self.pg.clone()),
            extensions: self.extensions.clone(),
            from_source: (!self.from_source.is_empty()).then(|| self.from_source.clone()),
            mirror: sources.mirror.clone(),
            engine: self.engine.map(|e| e.to_string()),
            base_preload: self.base_preload.clone(),
            base_glibc: self.base_glibc.clone(),
            base_libs: (!self.base_lib.is_empty()).then(|| self.base_lib.iter().cloned().collect()),
            rust_image: self.rust_image.clone(),
            ..Default::default()
        }
    }

    /// The settings: the flags over the build file, or over `--like`'s recorded inputs.
    fn resolve(
        &self,
        sources: &FetchFlags,
        top: BuildSettings,
        like: Option<&str>,
        progress: &Progress,
    ) -> Result<Resolved, pgha_image::Error> {
        let flags = top.over(self.settings(sources));
        let lower = match like {
            Some(like) => {
                if self.config.is_some() {
                    return Err(
                        UsageError::new("--like and --config both give the build's inputs")
                            .with_hint("use one: --like rebuilds an earlier build's inputs, changed by flags")
                            .into(),
                    );
                }
                let engine = flags.engine_choice().unwrap_or_default();
                let recorded = buildfile::recorded(like, engine)?;
                progress.println(format!("inputs: recorded by {like}"));
                recorded
            }
            None => {
                let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
                match BuildSettings::load(self.config.as_deref(), &cwd)? {
                    Some((path, file)) => {
                        progress.println(format!("inputs: build file {}", path.display()));
                        file
                    }
                    None => BuildSettings::default(),
                }
            }
        };
        let s = flags.over(lower);
        let plan = PlanRequest {
            base_image: s.base.clone(),
            base_overrides: BaseOverrides {
                glibc: s.base_glibc.clone(),
                libs: s.base_libs.clone().unwrap_or_default(),
                preload: s.base_preload.clone(),
            },
            base_facts: None,
            pg_majors: s.majors.clone().unwrap_or_default(),
            extensions: s.extensions.clone(),
            from_source: s.from_source.clone().unwrap_or_default(),
            embed_spilo_configuration: self.embed_spilo_configuration,
            rust_image: s.rust_image.clone(),
        };
        let mut sources = sources.clone();
        sources.mirror = s.mirror.clone();
        Ok(Resolved {
            engine: s.engine_choice().unwrap_or_default(),
            plan,
            sources,
            settings: s,
        })
    }
}

/// The settings of one run, resolved from the layers.
struct Resolved {
    settings: BuildSettings,
    plan: PlanRequest,
    sources: FetchFlags,
    engine: EngineChoice,
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

    /// Do not run the base: take its facts from the built-in table of Spilo tags and the flags
    /// (also what happens when no engine answers)
    #[arg(long)]
    pub no_probe: bool,

    #[command(flatten)]
    pub paths: crate::Sources,

    /// Print a JSON summary on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub selection: Box<SelectionArgs>,

    #[command(flatten)]
    pub sources: FetchFlags,

    #[command(flatten)]
    pub paths: crate::Sources,

    /// Do not run the base: take its facts from the built-in table of Spilo tags and the flags
    #[arg(long)]
    pub no_probe: bool,

    /// Plan with the inputs an earlier build recorded (IMAGE or its manifest.json), changed by flags
    #[arg(long, value_name = "IMAGE_OR_MANIFEST")]
    pub like: Option<String>,

    /// Print the plan as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct BuildArgs {
    /// The image tag to build, e.g. supabase-patroni:v1.0; `{pg}` (the majors) and `{base_tag}` are
    /// filled in [default: pgha.toml's `tag`]
    #[arg(long, short = 't', value_name = "TAG")]
    pub tag: Option<String>,

    /// Rebuild with exactly the inputs an earlier build recorded (IMAGE, or the manifest.json of its
    /// build directory), changed only by the flags given (e.g. -e +pgtap); pgha.toml is not read
    #[arg(long, value_name = "IMAGE_OR_MANIFEST")]
    pub like: Option<String>,

    /// Target platform, e.g. linux/amd64 (passed to the engine) [default: pgha.toml's `platform`]
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
    r: &Resolved,
    selection: &SelectionArgs,
    out: PathBuf,
    probe: BaseProbe,
    global: &Global,
) -> Result<GenerateRequest, pgha_image::Error> {
    Ok(GenerateRequest {
        plan: r.plan.clone(),
        probe,
        bootstrap_bin: match &selection.bootstrap_bin {
            Some(p) => p.clone(),
            None => default_bootstrap_bin()?,
        },
        fetch: r.sources.options(global)?,
        out,
        source_date_epoch: source_date_epoch()?.or(r.settings.source_date_epoch),
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
    let r = args
        .selection
        .resolve(&args.sources, BuildSettings::default(), None, &progress)?;
    let probe = if args.no_probe {
        BaseProbe::Off
    } else {
        BaseProbe::Engine(r.engine)
    };
    let req = generate_request(&r, &args.selection, args.out, probe, global)?;
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

pub fn run_plan(args: PlanArgs, global: &Global) -> Result<(), pgha_image::Error> {
    let progress = global.progress();
    let catalog = global.catalog()?;
    let r = args.selection.resolve(
        &args.sources,
        BuildSettings::default(),
        args.like.as_deref(),
        &progress,
    )?;
    let probe = if args.no_probe {
        BaseProbe::Off
    } else {
        BaseProbe::Engine(r.engine)
    };
    let cache_dir = global.cache_dir.clone().unwrap_or_else(fetch::default_cache_dir);
    let plan = pipeline::plan(&catalog, &r.plan, probe, &cache_dir, &progress)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&pipeline::plan_summary(&plan)).expect("serializes")
        );
        return Ok(());
    }
    let b = &plan.base;
    println!("base: {}", b.reference);
    let from = |k: &str| {
        b.source_of(k)
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    if let Some(f) = &b.probed {
        println!("  {:<12} {:<40} probe", "image id", f.image_id);
    }
    println!("  {:<12} {:<40} {}", "os", b.os, from("os"));
    println!("  {:<12} {:<40} {}", "glibc", b.glibc, from("glibc"));
    for (k, v) in &b.libs {
        println!("  {:<12} {:<40} {}", k, v, from(&format!("lib.{k}")));
    }
    let majors = b
        .pg_majors
        .as_ref()
        .map(|m| m.iter().map(u32::to_string).collect::<Vec<_>>().join(","))
        .unwrap_or_else(|| "unknown".into());
    println!("  {:<12} {:<40} {}", "majors", majors, from("majors"));
    let main = b
        .main_major
        .map(|m| m.to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("  {:<12} {:<40} {}", "main major", main, from("main major"));
    let preload = b
        .preload
        .as_ref()
        .map(|p| p.join(","))
        .unwrap_or_else(|| "unknown".into());
    println!("  {:<12} {:<40} {}", "preload", preload, from("preload"));
    if let Some(f) = &b.probed {
        for (m, facts) in &f.majors {
            println!(
                "  PostgreSQL {m}: {} (configured with {}); of the catalog's extensions it has: {}",
                facts.version,
                if facts.with.is_empty() {
                    "no pg_config".to_string()
                } else {
                    facts.with.join(", ")
                },
                facts
                    .extensions
                    .iter()
                    .filter(|(n, _)| catalog.get(n).is_ok())
                    .map(|(n, v)| format!("{n} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    println!(
        "PostgreSQL majors to build for: {}",
        plan.pg_majors
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    println!("extensions:");
    for e in &plan.extensions {
        println!(
            "  {:<16} {:<8} {}",
            e.name,
            e.version,
            match &e.stage {
                Some(stage) => format!("{} from source ({stage})", e.recipe),
                None => format!(
                    "provided by the base (>= {})",
                    e.min_version.as_deref().unwrap_or("any")
                ),
            }
        );
    }
    println!("shared_preload_libraries: {}", plan.preload.join(","));
    for w in &plan.warnings {
        println!("warning: {w}");
    }
    for n in &plan.notes {
        println!("note: {n}");
    }
    for l in &plan.left_out {
        println!(
            "note: the default set's {} is not in the image: {}",
            l.name, l.reason
        );
    }
    Ok(())
}

pub fn run_build(args: BuildArgs, global: &Global) -> Result<(), pgha_image::Error> {
    let progress = global.progress();
    let top = BuildSettings {
        tag: args.tag.clone(),
        platform: args.platform.clone(),
        ..Default::default()
    };
    let r = args
        .selection
        .resolve(&args.sources, top, args.like.as_deref(), &progress)?;
    let Some(pattern) = r.settings.tag.clone() else {
        return Err(UsageError::new("build needs a tag")
            .with_hint("pass --tag NAME:TAG (e.g. supabase-patroni:v1.0), or set `tag` in pgha.toml")
            .into());
    };
    let base = r
        .plan
        .base_image
        .clone()
        .unwrap_or_else(|| context::DEFAULT_BASE_IMAGE.into());
    let tag = BuildSettings::expand_tag(&pattern, &r.plan.pg_majors, &base);
    let out = match args.out {
        Some(o) => o,
        None => pipeline::default_build_dir(
            &global.cache_dir.clone().unwrap_or_else(fetch::default_cache_dir),
            &tag,
        ),
    };
    let generate = generate_request(&r, &args.selection, out, BaseProbe::Engine(r.engine), global)?;
    let recorded = BuildSettings {
        mirror: generate.fetch.mirror.as_ref().map(|m| match m {
            fetch::Mirror::Dir(d) => d.display().to_string(),
            fetch::Mirror::Url(u) => u.to_string(),
        }),
        platform: r.settings.platform.clone(),
        engine: r.settings.engine.clone(),
        tag: Some(pattern),
        ..Default::default()
    };
    let req = BuildRequest {
        generate,
        tag,
        engine: r.engine,
        platform: r.settings.platform.clone(),
        push: args.push,
        no_cache: args.no_cache,
        jobs: args.jobs,
        network: args.network,
        recorded,
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
