//! The build orchestration: plan → fetch (verified, cached) → render → pack,
//! and for a build the engine's build of the packed context. One function
//! each for `generate` and `build`, callable from a test; the binary turns
//! flags into a request and prints the outcome.
//!
//! Everything that can be refused is refused before the long work: the tag
//! (a malformed one is exit 2), the platform against the bootstrap binary,
//! the output directory (replaced only when provably the tool's own, see
//! [`crate::context::pack`]), the engine, the bootstrap binary; then sources
//! are fetched.

use crate::catalog::Catalog;
use crate::context::{self, BaseFacts, BuildPlan, ContextError, Generated, Inputs, PlanRequest, SourceFile};
use crate::engine::{self, Engine, EngineChoice, EngineError, EngineKind};
use crate::error::{Error, UsageError};
use crate::fetch::{self, FetchOptions};
use crate::hash::Sha256Digest;
use crate::progress::Progress;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How the base's facts are learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseProbe {
    /// Run the base once with this engine (pulling it when it is not there).
    /// For `generate` and `plan` with `auto`: when no engine answers, the
    /// built-in table and the flags, with a note.
    Engine(EngineChoice),
    /// The built-in table and the flags only (`--no-probe`).
    Off,
}

/// What `generate` needs besides the catalog.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    pub plan: PlanRequest,
    pub probe: BaseProbe,
    /// The `pgha-bootstrap` executable to ship.
    pub bootstrap_bin: PathBuf,
    pub fetch: FetchOptions,
    /// The output directory (see [`crate::context::pack`]).
    pub out: PathBuf,
    /// Timestamp of every entry of the context tar; None: 0.
    pub source_date_epoch: Option<u64>,
}

/// What `build` needs: a generate request, whose `out` also gets `build.log`.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub generate: GenerateRequest,
    pub tag: String,
    pub engine: EngineChoice,
    pub platform: Option<String>,
    pub push: bool,
    pub no_cache: bool,
    /// Podman's `--jobs`; None: one per CPU.
    pub jobs: Option<usize>,
    /// Inputs that are not in the context (mirror, platform, engine, tag),
    /// recorded in the image's `io.pgha.build-inputs` label for `--like`.
    pub recorded: crate::buildfile::BuildSettings,
    /// `--network` of the engine's build (e.g. `host` where the engine's
    /// bridge has no route or DNS for the RUN steps' `apt-get`); None: the
    /// engine's default.
    pub network: Option<String>,
}

#[derive(Debug, Clone)]
pub struct GenerateOutcome {
    pub plan: BuildPlan,
    pub generated: Generated,
}

#[derive(Debug, Clone)]
pub struct BuildOutcome {
    pub generate: GenerateOutcome,
    pub image_id: String,
    pub engine: EngineKind,
    pub log_path: PathBuf,
}

impl GenerateOutcome {
    /// The `--json` summary of `generate`.
    pub fn summary(&self) -> serde_json::Value {
        let (plan, g) = (&self.plan, &self.generated);
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
            "warnings": plan.warnings,
            "left_out": plan.left_out,
        })
    }
}

impl BuildOutcome {
    /// The `--json` summary of `build`: generate's, plus the image.
    pub fn summary(&self, tag: &str, pushed: bool) -> serde_json::Value {
        let mut v = self.generate.summary();
        v["tag"] = serde_json::json!(tag);
        v["image_id"] = serde_json::json!(self.image_id);
        v["engine"] = serde_json::json!(self.engine);
        v["log"] = serde_json::json!(self.log_path);
        v["pushed"] = serde_json::json!(pushed);
        v
    }
}

/// `<cache>/builds/<tag with unsafe characters replaced>`.
pub fn default_build_dir(cache_dir: &Path, tag: &str) -> PathBuf {
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
    cache_dir.join("builds").join(safe)
}

/// The base's facts, by `probe`: `Ok(None)` when the table is to be used.
/// The base must exist (it is pulled when the engine can); nothing is
/// written when it does not. Facts are cached under `cache_dir`.
pub fn probe_base(
    reference: &str,
    probe: BaseProbe,
    engine: Option<&Engine>,
    cache_dir: &Path,
    progress: &Progress,
) -> Result<Option<BaseFacts>, Error> {
    let detected;
    let engine = match (probe, engine) {
        (BaseProbe::Off, _) => return Ok(None),
        (_, Some(e)) => e,
        (BaseProbe::Engine(choice), None) => match Engine::detect(choice) {
            Ok(e) => {
                detected = e;
                &detected
            }
            Err(e) if choice == EngineChoice::Auto => {
                progress.println(format!(
                    "note: no container engine answers ({e}): the base's facts come from the built-in table \
                     and the flags (--no-probe says this on purpose)"
                ));
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        },
    };
    let spinner = progress.spinner(&format!("probing the base {reference}"));
    match BaseFacts::read(engine, reference, cache_dir) {
        Ok((facts, cached)) => {
            spinner.finish(format!(
                "base facts of {reference} ({}{})",
                facts.image_id,
                if cached { ", cached" } else { "" }
            ));
            Ok(Some(facts))
        }
        Err(e) => {
            spinner.fail("failed");
            Err(e.into())
        }
    }
}

/// The plan of `req`, with the base's facts read by `probe`.
pub fn plan(
    catalog: &Catalog,
    req: &PlanRequest,
    probe: BaseProbe,
    cache_dir: &Path,
    progress: &Progress,
) -> Result<BuildPlan, Error> {
    plan_with(catalog, req, probe, None, cache_dir, progress)
}

fn plan_with(
    catalog: &Catalog,
    req: &PlanRequest,
    probe: BaseProbe,
    engine: Option<&Engine>,
    cache_dir: &Path,
    progress: &Progress,
) -> Result<BuildPlan, Error> {
    let reference = req.base_image.as_deref().unwrap_or(context::DEFAULT_BASE_IMAGE);
    context::base::ImageRef::parse(reference)
        .map_err(|m| ContextError::BadBaseImage(reference.to_string(), m))?;
    // Misspelt names are refused before the base is looked at.
    catalog.select(&crate::catalog::SelectRequest {
        names: req.extensions.clone(),
        ..Default::default()
    })?;
    let mut req = req.clone();
    if req.base_facts.is_none() {
        req.base_facts = probe_base(reference, probe, engine, cache_dir, progress)?;
    }
    Ok(BuildPlan::new(catalog, &req)?)
}

/// The `--json` of `plan`: the base's facts with where each came from, and the plan.
pub fn plan_summary(plan: &BuildPlan) -> serde_json::Value {
    serde_json::json!({
        "base": plan.base,
        "pg_majors": plan.pg_majors,
        "extensions": plan.extensions,
        "shared_preload_libraries": plan.preload,
        "notes": plan.notes,
        "warnings": plan.warnings,
        "left_out": plan.left_out,
        "inputs": plan.inputs,
    })
}

/// Plan, fetch what the plan needs, render and pack into `req.out`.
pub fn generate(
    catalog: &Catalog,
    req: &GenerateRequest,
    progress: &Progress,
) -> Result<GenerateOutcome, Error> {
    context::pack::check_out_dir(&req.out)?;
    generate_checked(catalog, req, None, progress)
}

/// [`generate`] once `req.out` has been checked.
fn generate_checked(
    catalog: &Catalog,
    req: &GenerateRequest,
    engine: Option<&Engine>,
    progress: &Progress,
) -> Result<GenerateOutcome, Error> {
    let plan = plan_with(
        catalog,
        &req.plan,
        req.probe,
        engine,
        &req.fetch.cache_dir,
        progress,
    )?;
    progress.println(format!(
        "base: {} ({})",
        plan.base.reference,
        plan.base.describe()
    ));
    for w in &plan.warnings {
        progress.println(format!("warning: {w}"));
    }
    for n in &plan.notes {
        progress.println(format!("note: {n}"));
    }
    for l in &plan.left_out {
        progress.println(format!(
            "note: the default set's {} is not in the image: {}",
            l.name, l.reason
        ));
    }
    // Check the binary before downloading anything.
    context::check_bootstrap_bin(&req.bootstrap_bin, &plan.base)?;
    let wanted = plan.selected_for_fetch(catalog)?;
    let fetched = if wanted.is_empty() {
        Vec::new()
    } else {
        fetch::fetch_blocking(&wanted, &req.fetch, progress)?
    };
    // The crates of the Rust (pgrx) extensions: their Cargo.lock and cargo-pgrx's.
    let builds = plan.pgrx_extensions().filter_map(|e| {
        let f = fetched
            .iter()
            .find(|f| f.name == e.name && f.version == e.version)?;
        let c = e.cargo_pgrx.as_ref()?;
        Some(fetch::crates::PgrxBuild {
            name: &e.name,
            version: &e.version,
            archive: &f.path,
            cargo_pgrx: (&c.version, c.sha256),
        })
    });
    let requests = fetch::crates::requests(builds);
    let crates = if requests.is_empty() {
        Vec::new()
    } else {
        fetch::fetch_crates_blocking(&requests, &req.fetch, progress)?
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
            crates: &crates,
            bootstrap_bin: &req.bootstrap_bin,
            source_date_epoch: req.source_date_epoch,
        },
        &req.out,
    )?;
    Ok(GenerateOutcome { plan, generated })
}

/// The shipped pgha-bootstrap is one binary for one architecture: it must be
/// the platform's.
fn check_platform(bin: &Path, platform: &str) -> Result<(), Error> {
    let needs = context::glibc::elf_needs(bin).map_err(|reason| ContextError::BootstrapUnreadable {
        path: bin.to_path_buf(),
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
    if arches.len() != 1 || Some(arches[0]) != needs.platform_arch() {
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

/// Generate into `req.generate.out`, then build it with the engine; the
/// engine's whole output goes to `out/build.log`.
pub fn build(catalog: &Catalog, req: &BuildRequest, progress: &Progress) -> Result<BuildOutcome, Error> {
    EngineError::check_reference(&req.tag)?;
    if let Some(n) = &req.network {
        EngineError::check_network(n)?;
    }
    if let Some(platform) = &req.platform {
        check_platform(&req.generate.bootstrap_bin, platform)?;
    }
    context::pack::check_out_dir(&req.generate.out)?;
    // The engine next: no point fetching for an engine that is not there.
    let engine = Engine::detect(req.engine)?;
    let generated = generate_checked(catalog, &req.generate, Some(&engine), progress)?;
    let g = &generated.generated;
    progress.println(format!(
        "context {} ({} extensions)",
        g.manifest.context_digest,
        generated.plan.extensions.len()
    ));

    let out = &req.generate.out;
    let log_path = out.join(context::pack::BUILD_LOG);
    context::pack::record_log(out, None)?;
    let spinner = progress.spinner(&format!("{} build", engine.kind()));
    let built = engine.build(
        &engine::BuildRequest {
            context_dir: g.context_dir.clone(),
            tag: req.tag.clone(),
            platform: req.platform.clone(),
            build_args: g.manifest.build_args.clone(),
            // The image's labels are the Dockerfile's LABEL (the context
            // digest from a build argument); only the build's inputs, which
            // are not part of the context, go as `--label`, a key every
            // build sets. Podman 4.3 writes `--label` values into the config
            // of every stage it commits, and reuses such a cached stage (the
            // run-time packages' `pgha-runtime`) for a build of another
            // extension set: the image then carried the other set's
            // `io.pgha.extension.*` labels, and verify failed it.
            labels: BTreeMap::from([(
                crate::buildfile::INPUTS_LABEL.to_string(),
                serde_json::to_string(&req.recorded).expect("serializes"),
            )]),
            log_path: log_path.clone(),
            no_cache: req.no_cache,
            push: req.push,
            jobs: req.jobs,
            network: req.network.clone(),
        },
        &mut |line| {
            if let Some(step) = engine::stage::step_of(line) {
                spinner.set_message(step.chars().take(120).collect::<String>());
            }
        },
    );
    if let Ok((digest, _)) = Sha256Digest::of_file(&log_path) {
        context::pack::record_log(out, Some(digest))?;
    }
    match built {
        Ok(b) => {
            spinner.finish(format!("built {}", req.tag));
            Ok(BuildOutcome {
                generate: generated,
                image_id: b.image_id,
                engine: engine.kind(),
                log_path: b.log_path,
            })
        }
        Err(e) => {
            spinner.fail("failed");
            Err(name_failed_extension(e))
        }
    }
}

/// A failure in the final stage's check of a base-provided extension is not
/// in an `ext-<name>` stage: name the extension from the check's own message.
fn name_failed_extension(e: EngineError) -> Error {
    if let EngineError::BuildFailed {
        stage,
        tail,
        log_path,
        ..
    } = &e
        && !stage.as_deref().is_some_and(|s| s.starts_with("ext-"))
        && let Some((extension, detail)) = engine::stage::base_check_failure(tail)
    {
        return ContextError::BaseCheckFailed {
            extension,
            detail,
            log_path: log_path.clone(),
        }
        .into();
    }
    e.into()
}
