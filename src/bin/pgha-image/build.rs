//! `generate` and `build`: select → fetch (verified, cached) → plan → render
//! → pack, and for `build` the engine's build of the packed context.

use crate::Global;
use crate::fetch::FetchFlags;
use clap::Args;
use pgha_image::context::{self, BaseOverrides, BuildPlan, Generated, Inputs, PlanRequest, SourceFile};
use pgha_image::engine::{BuildRequest, Engine, EngineChoice, EngineError};
use pgha_image::error::UsageError;
use pgha_image::fetch;
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
    /// Replaced only when complete; must be new, empty, or a previous output.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    #[command(flatten)]
    pub selection: Box<SelectionArgs>,

    #[command(flatten)]
    pub sources: FetchFlags,

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
    #[arg(long, value_name = "ENGINE", default_value = "auto")]
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

    /// Where the context, its manifest and the build log go
    /// [default: <cache dir>/builds/<tag>]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    #[command(flatten)]
    pub selection: Box<SelectionArgs>,

    #[command(flatten)]
    pub sources: FetchFlags,

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

/// Plan, fetch what the plan needs, render and pack into `out`.
fn generate_into(
    selection: &SelectionArgs,
    sources: &FetchFlags,
    out: &std::path::Path,
    global: &Global,
    progress: &Progress,
) -> Result<(BuildPlan, Generated), pgha_image::Error> {
    let catalog = global.catalog()?;
    let plan = BuildPlan::new(&catalog, &selection.plan_request())?;
    progress.println(format!(
        "base: {} ({})",
        plan.base.reference,
        plan.base.describe()
    ));
    for n in &plan.notes {
        progress.println(format!("note: {n}"));
    }
    // Check the binary before downloading anything.
    let bin = match &selection.bootstrap_bin {
        Some(p) => p.clone(),
        None => default_bootstrap_bin()?,
    };
    context::check_bootstrap_bin(&bin, &plan.base)?;
    let wanted = plan.selected_for_fetch(&catalog)?;
    let fetched = if wanted.is_empty() {
        Vec::new()
    } else {
        fetch::fetch_blocking(&wanted, &sources.options(global)?, progress)?
    };
    let files: Vec<SourceFile> = fetched
        .into_iter()
        .map(|f| SourceFile {
            extension: f.name,
            version: f.version,
            sha256: f.sha256,
            path: f.path,
            file_name: f.file_name,
        })
        .collect();
    let generated = context::generate(
        &plan,
        &Inputs {
            sources: &files,
            bootstrap_bin: &bin,
            source_date_epoch: source_date_epoch()?,
        },
        out,
    )?;
    Ok((plan, generated))
}

fn summary(plan: &BuildPlan, g: &Generated) -> serde_json::Value {
    serde_json::json!({
        "out_dir": g.out_dir,
        "context_dir": g.context_dir,
        "context_tar": g.context_tar,
        "context_digest": g.manifest.context_digest,
        "base_image": plan.base.reference,
        "pg_majors": plan.pg_majors,
        "extensions": g.manifest.manifest.extensions,
        "shared_preload_libraries": plan.preload,
        "spilo_configuration": plan.spilo_configuration(),
        "labels": g.manifest.labels,
        "notes": plan.notes,
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
    let (plan, generated) = generate_into(&args.selection, &args.sources, &args.out, global, &progress)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary(&plan, &generated)).expect("serializes")
        );
    } else {
        print_extensions(&plan, &progress);
        progress.println(format!("context: {}", generated.context_dir.display()));
        println!("{}", generated.manifest.context_digest);
    }
    Ok(())
}

/// The shipped pgha-bootstrap is one binary for one architecture: it must be
/// the platform's.
fn check_platform(selection: &SelectionArgs, platform: &str) -> Result<(), pgha_image::Error> {
    let bin = match &selection.bootstrap_bin {
        Some(p) => p.clone(),
        None => default_bootstrap_bin()?,
    };
    let needs =
        context::glibc::elf_needs(&bin).map_err(|reason| context::ContextError::BootstrapUnreadable {
            path: bin.clone(),
            reason,
        })?;
    let arches: Vec<&str> = platform
        .split(',')
        .map(|p| {
            p.trim()
                .trim_start_matches("linux/")
                .split('/')
                .next()
                .unwrap_or("")
        })
        .collect();
    let have = needs.platform_arch();
    if arches.len() != 1 || Some(arches[0]) != have {
        return Err(UsageError::new(format!(
            "--platform {platform} does not match the pgha-bootstrap binary {} ({}): one image holds one \
             binary for one architecture",
            bin.display(),
            needs.machine
        ))
        .with_hint(
            "build once per platform, each with a pgha-bootstrap of that architecture \
             (e.g. cargo build --release --target aarch64-unknown-linux-gnu, then --bootstrap-bin)",
        )
        .into());
    }
    Ok(())
}

/// `<cache>/builds/<tag with unsafe characters replaced>`.
fn default_build_dir(tag: &str, global: &Global) -> PathBuf {
    let cache = global.cache_dir.clone().unwrap_or_else(fetch::default_cache_dir);
    let safe: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    cache.join("builds").join(safe)
}

/// A build step worth showing on the spinner: the engine's step lines.
fn step_of(line: &str) -> Option<&str> {
    let t = line.trim();
    let is_step = (t.starts_with('[') && t.contains("] STEP "))
        || t.starts_with("STEP ")
        || t.starts_with("Step ")
        || (t.starts_with('#') && t.contains(" ["));
    is_step.then_some(t)
}

pub fn run_build(args: BuildArgs, global: &Global) -> Result<(), pgha_image::Error> {
    let progress = global.progress();
    if let Some(platform) = &args.platform {
        check_platform(&args.selection, platform)?;
    }
    // The engine first: no point fetching for an engine that is not there.
    let engine = Engine::detect(args.engine)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_build_dir(&args.tag, global));
    let (plan, generated) = generate_into(&args.selection, &args.sources, &out, global, &progress)?;
    progress.println(format!(
        "context {} ({} extensions)",
        generated.manifest.context_digest,
        plan.extensions.len()
    ));

    let log_path = out.join("build.log");
    let spinner = progress.spinner(&format!("{} build", engine.kind()));
    let req = BuildRequest {
        context_dir: generated.context_dir.clone(),
        tag: args.tag.clone(),
        platform: args.platform.clone(),
        build_args: generated.manifest.build_args.clone(),
        labels: generated.manifest.labels.clone(),
        log_path: log_path.clone(),
        no_cache: args.no_cache,
        push: args.push,
        jobs: args.jobs,
    };
    let built = engine.build(&req, &mut |line| {
        if let Some(step) = step_of(line) {
            spinner.set_message(step.chars().take(120).collect::<String>());
        }
    });
    let built = match built {
        Ok(b) => b,
        Err(e) => {
            spinner.fail("failed");
            return Err(name_failed_extension(e, &log_path));
        }
    };
    spinner.finish(format!("built {}", args.tag));
    if args.json {
        let mut v = summary(&plan, &generated);
        v["tag"] = serde_json::json!(args.tag);
        v["image_id"] = serde_json::json!(built.image_id);
        v["engine"] = serde_json::json!(engine.kind());
        v["log"] = serde_json::json!(built.log_path);
        v["pushed"] = serde_json::json!(args.push);
        println!("{}", serde_json::to_string_pretty(&v).expect("serializes"));
    } else {
        print_extensions(&plan, &progress);
        progress.println(format!("log: {}", built.log_path.display()));
        println!("{} {}", args.tag, built.image_id);
    }
    Ok(())
}

/// A failure in the final stage's check of a base-provided extension is not
/// in an `ext-<name>` stage: name the extension from the check's own message.
fn name_failed_extension(e: EngineError, log_path: &std::path::Path) -> pgha_image::Error {
    if let EngineError::BuildFailed { stage, tail, .. } = &e
        && !stage.as_deref().is_some_and(|s| s.starts_with("ext-"))
        && let Some(line) = tail.iter().rev().find(|l| l.contains("pgha-image: extension "))
        && let Some(ext) = context::failed_extension(line)
    {
        return context::ContextError::BaseCheckFailed {
            extension: ext,
            detail: line.trim().to_string(),
            log_path: log_path.to_path_buf(),
        }
        .into();
    }
    e.into()
}
