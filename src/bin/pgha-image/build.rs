//! `generate` (and `build`, which the engine work completes): select → sources
//! → plan → render → pack.

use crate::Global;
use clap::Args;
use pgha_image::context::{self, BaseOverrides, BuildPlan, Inputs, PlanRequest, SourceFile};
use pgha_image::error::UsageError;
use pgha_image::hash::Sha256Digest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
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

    /// The pgha-bootstrap executable to ship [default: the one next to pgha-image]
    #[arg(long, value_name = "PATH")]
    pub bootstrap_bin: Option<PathBuf>,

    /// Directory of already-downloaded sources named <ext>-<version>.tar.gz (verified against the catalog)
    #[arg(long, value_name = "DIR")]
    pub sources: Option<PathBuf>,

    /// Print a JSON summary on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct BuildArgs {}

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

/// The plan's sources, from a directory of `<ext>-<version><suffix>` files,
/// each verified against the catalog's digest.
// The fetch step (`pgha_image::fetch`) replaces this when it is wired in.
fn sources_from_dir(plan: &BuildPlan, dir: Option<&Path>) -> Result<Vec<SourceFile>, pgha_image::Error> {
    let mut out = Vec::new();
    for (ext, src) in plan.sources_needed() {
        let Some(dir) = dir else {
            return Err(context::ContextError::MissingSource {
                extension: ext.name.clone(),
                version: ext.version.clone(),
                looked_for: None,
            }
            .into());
        };
        let path = dir.join(&src.file_name);
        if !path.is_file() {
            return Err(context::ContextError::MissingSource {
                extension: ext.name.clone(),
                version: ext.version.clone(),
                looked_for: Some(path),
            }
            .into());
        }
        let (actual, _) = Sha256Digest::of_file(&path).map_err(|source| context::ContextError::Io {
            path: path.clone(),
            source,
        })?;
        if actual != src.sha256 {
            return Err(context::ContextError::SourceMismatch {
                source_of: format!("{} {}", ext.name, ext.version),
                path,
                expected: src.sha256.to_hex(),
                actual: actual.to_hex(),
            }
            .into());
        }
        out.push(SourceFile {
            extension: ext.name.clone(),
            version: ext.version.clone(),
            sha256: actual,
            path,
            file_name: src.file_name.clone(),
        });
    }
    Ok(out)
}

pub fn run_generate(args: GenerateArgs, global: &Global) -> Result<(), pgha_image::Error> {
    let progress = global.progress();
    let catalog = global.catalog()?;
    let plan = BuildPlan::new(&catalog, &args.selection.plan_request())?;
    progress.println(format!(
        "base: {} ({})",
        plan.base.reference,
        plan.base.describe()
    ));
    for n in &plan.notes {
        progress.println(format!("note: {n}"));
    }
    let sources = sources_from_dir(&plan, args.sources.as_deref())?;
    let bin = match args.bootstrap_bin {
        Some(p) => p,
        None => default_bootstrap_bin()?,
    };
    let generated = context::generate(
        &plan,
        &Inputs {
            sources: &sources,
            bootstrap_bin: &bin,
            source_date_epoch: source_date_epoch()?,
        },
        &args.out,
    )?;
    if args.json {
        let summary = serde_json::json!({
            "out_dir": generated.out_dir,
            "context_dir": generated.context_dir,
            "context_tar": generated.context_tar,
            "context_digest": generated.manifest.context_digest,
            "base_image": plan.base.reference,
            "pg_majors": plan.pg_majors,
            "extensions": generated.manifest.manifest.extensions,
            "shared_preload_libraries": plan.preload,
            "labels": generated.manifest.labels,
            "notes": plan.notes,
        });
        println!("{}", serde_json::to_string_pretty(&summary).expect("serializes"));
    } else {
        for e in &plan.extensions {
            progress.println(format!(
                "  {:<16} {:<8} {}",
                e.name,
                e.version,
                e.stage.as_deref().unwrap_or("(provided by the base, checked)")
            ));
        }
        progress.println(format!("context: {}", generated.context_dir.display()));
        println!("{}", generated.manifest.context_digest);
    }
    Ok(())
}

pub fn run_build(_args: BuildArgs, _global: &Global) -> Result<(), pgha_image::Error> {
    Err(UsageError::new("`build` is being written").into())
}
